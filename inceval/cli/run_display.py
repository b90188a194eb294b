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
    request = prepared.request
    lines.append(f"device: {prepared.device}, dtype {request.dtype}"
                 f"{' (TF32 allowed)' if request.tf32 else ''}, "
                 f"backend {resolve_backend(request.backend)}"
                 f"{', compiled' if request.compile else ''}; output: {prepared.run_dir}"
                 f"{' (resuming)' if request.resume else ''}")
    if prepared.context.sharded:
        lines.append(f"ranks: {prepared.context.world_size} processes share the chunks of "
                     f"{request.chunk_size} images")
    if not request.strict:
        lines.append("unreadable images are recorded and skipped (--strict stops at the first)")
    return lines


def bad_image_line(path: object, reason: str) -> str:
    """The warning printed once per image that cannot be evaluated."""
    return f"warning: skipped unreadable image {path}: {reason}"


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
    unreadable = any(score.unreadable for score in scores)
    headers = ["images", "top-1 err", "top-5 err", "top-1 wrong", "top-5 wrong"]
    if unreadable:
        headers.insert(1, "unreadable")
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for score in scores:
        cells = [f"{score.images:,}", f"{score.top1_error:.2f}", f"{score.top5_error:.2f}",
                 f"{score.top1_wrong:,}", f"{score.top5_wrong:,}"]
        if unreadable:
            cells.insert(1, f"{score.unreadable:,}")
        table.add_row(score.model, score.protocol, score.subset, *cells)
    return table


def print_results(console: Console, outcome: RunOutcome, *, real: bool = False) -> None:
    """The run's own results table, then the paper's tables (and ReaL's) from the store."""
    from inceval.reports.render import print_unsqueezed, to_rich
    from inceval.reports.tables import build_tables, describe_runs

    print_unsqueezed(console, scores_table(outcome.scores))
    reader = RunReader(outcome.run_dir)
    print_unsqueezed(console, to_rich(build_tables([reader], real=real), describe_runs([reader])))
    stats = outcome.stats
    if outcome.already_complete or stats is None:
        console.print(f"run {outcome.run_dir} is complete; nothing was computed",
                      markup=False, highlight=False, soft_wrap=True)
    else:
        resumed = (f" (resumed: {stats.chunks_already_done} of {stats.chunks_total} chunks "
                   "were already done)" if stats.chunks_already_done else "")
        console.print(
            f"{stats.images:,} images, {stats.model_views:,} model views in "
            f"{format_seconds(stats.seconds)} ({stats.images_per_s:.2f} img/s, "
            f"{stats.views_per_s:.1f} views/s) on {stats.device}{resumed}; run stored in "
            f"{outcome.run_dir}",
            markup=False, highlight=False, soft_wrap=True,
        )
    if outcome.unreadable:
        console.print(
            f"{len(outcome.unreadable):,} unreadable image(s) were not scored (column error of "
            f"{outcome.run_dir / 'images.csv'})", markup=False, highlight=False, soft_wrap=True)


def summary(prepared: PreparedRun, outcome: RunOutcome, *, real: bool = False
            ) -> dict[str, Any]:
    """The machine-readable summary printed by ``--json`` (with ReaL scores if asked)."""
    stats = outcome.stats
    extra: dict[str, Any] = {}
    reader = RunReader(outcome.run_dir)
    if real:
        from inceval.reports.real import score_run_real

        extra["real"] = [s.to_dict() for s in score_run_real(reader)]
    execution = reader.manifest.get("execution") or {}
    return {
        "run_dir": str(outcome.run_dir),
        "images": reader.num_images,
        "complete_before": outcome.already_complete,
        "unreadable": [{"index": index, "path": str(reader.images["path"].iloc[index]),
                        "reason": reason} for index, reason in sorted(outcome.unreadable.items())],
        "chunks": {
            "size": (reader.manifest.get("chunks") or {}).get("size"),
            "total": (reader.manifest.get("chunks") or {}).get("count"),
            "already_done": stats.chunks_already_done if stats else None,
            "computed": stats.chunks_computed if stats else 0,
        },
        "pipeline_builds": stats.pipeline_builds if stats else 0,
        "batch_sizes": execution.get("batch_sizes"),
        "bundled_sample": prepared.bundled_sample,
        "device": stats.device if stats else str(prepared.device),
        "dtype": prepared.request.dtype,
        "backend": resolve_backend(prepared.request.backend),
        "models": {
            name: {"weights": model.weights_info.get("source"),
                   "weights_tag": model.weights_info.get("tag"),
                   "views_per_image": (reader.manifest["models"][name]
                                       .get("views_per_image"))}
            for name, model in zip(prepared.names, prepared.models)
        },
        "random_weights": prepared.request.random_models,
        "results": [score.to_dict() for score in outcome.scores],
        "throughput": None if stats is None else {
            "images": stats.images,
            "seconds": round(stats.seconds, 3),
            "images_per_s": round(stats.images_per_s, 3),
            "model_views": stats.model_views,
            "model_views_per_s": round(stats.views_per_s, 3),
        },
        **extra,
    }
