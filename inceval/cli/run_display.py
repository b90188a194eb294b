"""What ``inceval run`` shows: the random-weights warning, progress, results and the JSON summary.

Progress and notices go to stderr, so stdout carries only results (tables, or JSON with --json).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    Progress as RichProgress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from inceval.data.loader import resolve_backend
from inceval.engine.launch import PreparedRun, RunOutcome
from inceval.engine.progress import Progress
from inceval.store import RunReader, Score

PLAIN_INTERVAL_S = 10.0


def random_weights_panel(models: list[str]) -> Panel:
    """The loud notice that a model has random weights."""
    names = ", ".join(models)
    body = Text.assemble(
        ("RANDOM WEIGHTS: ", "bold"),
        f"{names} {'is' if len(models) == 1 else 'are'} evaluated with randomly initialised "
        "weights. The accuracy printed below is meaningless (about 99.9 % top-1 error); the run "
        "only exercises the pipeline. Use --weights pretrained or a checkpoint file for real "
        "numbers.",
    )
    return Panel(body, title="warning", border_style="bold red", expand=False)


def format_seconds(seconds: float | None) -> str:
    """``H:MM:SS``, or ``-:--:--`` when unknown."""
    if seconds is None:
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def plan_lines(prepared: PreparedRun) -> list[str]:
    """What is about to run, one fact per line."""
    lines = [f"data: {prepared.dataset.describe()}"]
    if prepared.bundled_sample:
        lines[0] = f"data: bundled sample ({len(prepared.dataset)} photographs; see " \
                   "inceval/sample/SOURCES.md)"
    names = prepared.names
    for group in prepared.groups:
        # A protocol has as many views for every model of one input size.
        per = ", ".join(f"{p.name}: {len(idx)}" for p, idx in zip(prepared.protocols,
                                                                  group.members[0].protocol_views))
        distinct = ", ".join(f"{names[m.position]} {m.views_per_image}" for m in group.members)
        lines.append(f"{group.input_size} px input: rendered {group.rendered_views_per_image} "
                     f"views per image; {distinct} distinct ({per})")
    lines.append(f"device: {prepared.device}, dtype {prepared.request.dtype}, "
                 f"backend {resolve_backend(prepared.request.backend)}; "
                 f"output: {prepared.run_dir}")
    return lines


class _RateColumn(ProgressColumn):
    """Images done, images/s, views/s and ETA from the engine's own report."""

    def render(self, task: Task) -> Text:
        report: Progress | None = task.fields.get("report")
        if report is None:
            return Text("starting...", style="dim")
        return Text(f"{report.images_done:,}/{report.images_total:,} images  "
                    f"{report.images_per_s:.2f} img/s  {report.views_per_s:.1f} views/s  "
                    f"ETA {format_seconds(report.eta_s)}")


class RichProgressDisplay:
    """A rich progress bar on a terminal (stderr); the bar follows views, which set the cost."""

    def __init__(self, console: Console) -> None:
        self._bar = RichProgress(
            TextColumn("[bold]evaluating"),
            BarColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID = self._bar.add_task("run", total=None, report=None)

    def __enter__(self) -> "RichProgressDisplay":
        self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.stop()

    def __call__(self, report: Progress) -> None:
        self._bar.update(self._task, total=report.views_total, completed=report.views_done,
                         report=report)


class PlainProgressDisplay:
    """One line every ``interval_s`` seconds and at the end (logs, pipes, CI)."""

    def __init__(self, console: Console, interval_s: float = PLAIN_INTERVAL_S) -> None:
        self._console = console
        self._interval_s = interval_s
        self._last = time.monotonic()
        self._last_printed: tuple[int, int] | None = None

    def __enter__(self) -> "PlainProgressDisplay":
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def __call__(self, report: Progress) -> None:
        now = time.monotonic()
        counts = (report.images_done, report.views_done)
        if counts == self._last_printed:
            return  # the final report may repeat the numbers of the line already printed
        if not report.finished and now - self._last < self._interval_s:
            return
        self._last = now
        self._last_printed = counts
        width = len(str(report.images_total))
        self._console.print(
            f"[{report.images_done:>{width}}/{report.images_total} images] "
            f"{report.images_per_s:.2f} img/s, {report.views_per_s:.1f} views/s, "
            f"elapsed {format_seconds(report.elapsed_s)}, ETA {format_seconds(report.eta_s)}",
            markup=False, highlight=False, soft_wrap=True,
        )


def scores_table(scores: list[Score]) -> Table:
    """Every stored (model, protocol) on all images and on the non-blacklisted ones."""
    table = Table(title="Results of this run (top-k error in %, counts of images)",
                  title_justify="left")
    for header in ("model", "crops", "subset"):
        table.add_column(header, no_wrap=True)
    for header in ("images", "top-1 err", "top-5 err", "top-1 wrong", "top-5 wrong"):
        table.add_column(header, justify="right", no_wrap=True)
    for score in scores:
        table.add_row(score.model, score.protocol, score.subset, f"{score.images:,}",
                      f"{score.top1_error:.2f}", f"{score.top5_error:.2f}",
                      f"{score.top1_wrong:,}", f"{score.top5_wrong:,}")
    return table


def print_results(console: Console, outcome: RunOutcome, *, real: bool = False) -> None:
    """The run's own results table, then the paper's tables (and ReaL's) from the store."""
    from inceval.reports.render import print_unsqueezed, to_rich
    from inceval.reports.tables import build_tables, describe_runs

    print_unsqueezed(console, scores_table(outcome.scores))
    reader = RunReader(outcome.run_dir)
    print_unsqueezed(console, to_rich(build_tables([reader], real=real), describe_runs([reader])))
    stats = outcome.stats
    console.print(
        f"{stats.images:,} images, {stats.model_views:,} model views in "
        f"{format_seconds(stats.seconds)} ({stats.images_per_s:.2f} img/s, "
        f"{stats.views_per_s:.1f} views/s) on {stats.device}; run stored in {outcome.run_dir}",
        markup=False, highlight=False, soft_wrap=True,
    )


def summary(prepared: PreparedRun, outcome: RunOutcome, *, real: bool = False
            ) -> dict[str, Any]:
    """The machine-readable summary printed by ``--json`` (with ReaL scores if asked)."""
    stats = outcome.stats
    extra: dict[str, Any] = {}
    if real:
        from inceval.reports.real import score_run_real

        extra["real"] = [s.to_dict() for s in score_run_real(RunReader(outcome.run_dir))]
    return {
        "run_dir": str(outcome.run_dir),
        "images": stats.images,
        "bundled_sample": prepared.bundled_sample,
        "device": stats.device,
        "dtype": prepared.request.dtype,
        "backend": resolve_backend(prepared.request.backend),
        "models": {
            name: {"weights": model.weights_info.get("source"),
                   "weights_tag": model.weights_info.get("tag"),
                   "views_per_image": stats.views_per_image[name]}
            for name, model in zip(prepared.names, prepared.models)
        },
        "random_weights": prepared.request.random_models,
        "results": [score.to_dict() for score in outcome.scores],
        "throughput": {
            "seconds": round(stats.seconds, 3),
            "images_per_s": round(stats.images_per_s, 3),
            "model_views": stats.model_views,
            "model_views_per_s": round(stats.views_per_s, 3),
        },
        **extra,
    }
