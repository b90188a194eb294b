"""`inceval compare`: error changes between two runs; exit status 1 on a regression."""

from __future__ import annotations

import sys

import click

from inceval.cli.console import console, print_json
from inceval.reports.compare import DEFAULT_MAX_ERROR_DELTA


@click.command(name="compare")
# Paths, not directories: two `inceval bench --json` files are compared on throughput instead.
@click.argument("baseline", type=click.Path())
@click.argument("current", type=click.Path())
@click.option("--max-error-delta", type=float, default=DEFAULT_MAX_ERROR_DELTA,
              show_default=True, metavar="PP",
              help="Largest allowed rise of any top-1 or top-5 error (all images or "
                   "non-blacklisted), in percentage points; a larger rise is a regression. "
                   "0.05 pp is 25 of 50,000 images: it tolerates a few near-tie flips from "
                   "nondeterministic GPU kernels. Use 0 to require no rise at all.")
@click.option("--alpha", type=float, default=None, metavar="A",
              help="Significance level, e.g. 0.01. With it, a rise counts as a regression only "
                   "when it exceeds --max-error-delta AND is significant: the exact McNemar "
                   "p-value of the images that turned wrong vs turned right is below A. Use it "
                   "on small subsets so that a few flipped images do not fail the check. Needs "
                   "both runs on the same images.  [default: none, the threshold alone]")
@click.option("--json", "as_json", is_flag=True,
              help="Print the comparison as JSON (every number, unrounded, with per-image "
                   "change counts, p-values, NLL and ECE) instead of a table.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE",
              help="Also write JUnit XML to FILE (replaced): one test case per "
                   "model/protocol/subset/metric, a failure for each regression with its "
                   "numbers, for GitHub Actions, GitLab and Jenkins test reports.")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE",
              help="Also write a Markdown summary to FILE (replaced), e.g. for "
                   "$GITHUB_STEP_SUMMARY (append it there with cat FILE >> "
                   "\"$GITHUB_STEP_SUMMARY\").")
@click.option("--allow-different-images", is_flag=True,
              help="Compare runs made on different image lists, labels or blacklists, or runs "
                   "of the same images that could not read the same ones (refused by default: "
                   "their errors are not comparable image for image). Runs of the same images "
                   "are then both scored, and paired, on the images both could read.")
@click.option("--ignore-missing", is_flag=True,
              help="Do not count models/protocols of BASELINE that CURRENT lacks as "
                   "regressions (they are still listed).")
@click.option("--allow-incomplete", is_flag=True,
              help="Score unfinished prediction files on the rows written so far.")
@click.option("--max-slowdown", type=float, default=None, metavar="FRACTION",
              help="Bench results only (two `inceval bench --json` files): largest allowed fall "
                   "of any row's normalised throughput (views/s divided by the reference "
                   "workload's rate of the same bench), e.g. 0.5 fails only beyond a 2x "
                   "slowdown.  [default: 0.2]")
@click.pass_context
def command(ctx: click.Context, baseline: str, current: str, max_error_delta: float,
            alpha: float | None, as_json: bool, junit_file: str | None,
            markdown_file: str | None, allow_different_images: bool, ignore_missing: bool,
            allow_incomplete: bool, max_slowdown: float | None) -> None:
    """Compare the errors of CURRENT against BASELINE, model by model and protocol by protocol.

    For each top-1/top-5 error (all images and non-blacklisted) it shows both errors, the
    change in percentage points, the images that turned wrong and turned right, and the exact
    McNemar p-value of those two counts; and each run's calibration (NLL in nats per image,
    ECE in % over 15 equal-width bins of the top-1 probability; reported, not gated).

    \b
    Exit status: 0 no regression; 1 an error rose by more than --max-error-delta (and, with
    --alpha, significantly), or a model/protocol of BASELINE is missing from CURRENT (see
    --ignore-missing); 2 a usage error (unreadable runs, different images or different
    unreadable images without --allow-different-images).

    Given two bench results (`inceval bench --json FILE`), it compares throughput instead: exit
    1 when any model/protocol/stage's normalised throughput fell by more than --max-slowdown
    (or a baseline row is missing, see --ignore-missing), 2 for invalid or mismatched files.
    """
    from inceval.cli.bench import bench_pair, compare_bench_files
    from inceval.errors import InceValError

    if bench_pair(baseline, current):
        status = compare_bench_files(ctx, baseline, current, max_slowdown=max_slowdown,
                                     as_json=as_json, ignore_missing=ignore_missing)
        if status:
            sys.exit(status)
        return
    if max_slowdown is not None:
        raise InceValError("--max-slowdown applies to bench results (two `inceval bench --json` "
                           "files); for run directories use --max-error-delta")

    from inceval.reports.compare import compare_runs, to_junit, to_markdown
    from inceval.store import RunReader

    result = compare_runs(
        RunReader(baseline), RunReader(current), max_error_delta=max_error_delta,
        allow_different_images=allow_different_images, ignore_missing=ignore_missing,
        allow_incomplete=allow_incomplete, alpha=alpha,
    )
    if junit_file:
        _write(junit_file, to_junit(result), "--junit")
    if markdown_file:
        _write(markdown_file, to_markdown(result), "--markdown")
    if as_json:
        print_json(result.to_dict())
    else:
        _print(result)
    if result.exit_status:
        sys.exit(result.exit_status)


def _write(path: str, text: str, option: str) -> None:
    from inceval.errors import InceValError

    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InceValError(f"{option} {path}: cannot write ({exc.strerror or exc}); give a "
                           "writable file path") from exc


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _print(result) -> None:  # noqa: ANN001 - Comparison, imported lazily
    from rich import box
    from rich.table import Table

    from inceval.reports.render import print_unsqueezed

    console.print(f"baseline: {result.baseline.run_dir}\ncurrent:  {result.current.run_dir}")
    table = Table(title="Errors (%) and their change (current - baseline, percentage points)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("Model", "Protocol", "Subset"):
        table.add_column(header)
    table.add_column("Images", justify="right")
    for k in ("1", "5"):
        for header in (f"Top-{k} base", f"Top-{k} now", "Change", "Turned wrong/right", "p"):
            table.add_column(header, justify="right")
    table.add_column("Status")
    for change in result.changes:
        old, new = change.baseline_protocol_version, change.current_protocol_version
        version = "" if old == new else f" (v{old}->v{new})"
        cells = [change.model, change.protocol + version, change.subset,
                 f"{change.current_images:,}"]
        for metric in (change.top1, change.top5):
            flips = ("-" if metric.turned_wrong is None
                     else f"{metric.turned_wrong:,}/{metric.turned_right:,}")
            cells += [f"{metric.baseline:.2f}", f"{metric.current:.2f}", f"{metric.delta:+.2f}",
                      flips, _p(metric.p_value)]
        quiet = (result.alpha is not None and not change.regression
                 and (change.top1.exceeds_threshold or change.top5.exceeds_threshold))
        cells.append("REGRESSION" if change.regression else
                     "ok (rise not significant)" if quiet else "ok")
        table.add_row(*cells, style="red" if change.regression else None)
    print_unsqueezed(console, table)
    calibration = Table(title="Calibration (NLL: nats per image; ECE: %, 15 bins of the top-1 "
                              "probability; reported, not gated)",
                        box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("Model", "Protocol", "Subset"):
        calibration.add_column(header)
    for header in ("NLL base", "NLL now", "Change", "ECE base", "ECE now", "Change"):
        calibration.add_column(header, justify="right")
    for change in result.changes:
        before, after = change.baseline_calibration, change.current_calibration
        calibration.add_row(change.model, change.protocol, change.subset, f"{before.nll:.4f}",
                            f"{after.nll:.4f}", f"{after.nll - before.nll:+.4f}",
                            f"{before.ece:.2f}", f"{after.ece:.2f}",
                            f"{after.ece - before.ece:+.2f}")
    if result.changes:
        print_unsqueezed(console, calibration)
    if result.images_difference:
        console.print(f"warning: {result.images_difference}; compared anyway")
    if result.scored_difference:
        console.print(f"note: {result.scored_difference}; both runs scored on the images both "
                      "could read")
    for model, protocol in result.missing_from_current:
        label = "missing" if result.ignore_missing else "REGRESSION: missing"
        console.print(f"{label}: {model}/{protocol} is in the baseline but not in the current run")
    for model, protocol in result.new_in_current:
        console.print(f"new: {model}/{protocol} is only in the current run")
    threshold = f"{result.max_error_delta:g} pp"
    significant = "" if result.alpha is None else f" with p < {result.alpha:g}"
    verdict = (f"{result.regressions} regression(s) above {threshold}{significant}"
               if result.regressions
               else f"no error rose by more than {threshold}{significant}")
    console.print(verdict)
