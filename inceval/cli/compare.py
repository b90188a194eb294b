"""`inceval compare`: error changes between two runs; exit status 1 on a regression."""

from __future__ import annotations

import sys

import click

from inceval.cli.console import console, print_json
from inceval.reports.compare import DEFAULT_MAX_ERROR_DELTA


@click.command(name="compare")
@click.argument("baseline", type=click.Path(file_okay=False))
@click.argument("current", type=click.Path(file_okay=False))
@click.option("--max-error-delta", type=float, default=DEFAULT_MAX_ERROR_DELTA,
              show_default=True, metavar="PP",
              help="Largest allowed rise of any top-1 or top-5 error (all images or "
                   "non-blacklisted), in percentage points; a larger rise is a regression. "
                   "0.05 pp is 25 of 50,000 images: it tolerates a few near-tie flips from "
                   "nondeterministic GPU kernels. Use 0 to require no rise at all.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the comparison as JSON (every number, unrounded) instead of a table.")
@click.option("--allow-different-images", is_flag=True,
              help="Compare runs made on different image lists, labels or blacklists "
                   "(refused by default: their errors are not comparable image for image).")
@click.option("--ignore-missing", is_flag=True,
              help="Do not count models/protocols of BASELINE that CURRENT lacks as "
                   "regressions (they are still listed).")
@click.option("--allow-incomplete", is_flag=True,
              help="Score unfinished prediction files on the rows written so far.")
def command(baseline: str, current: str, max_error_delta: float, as_json: bool,
            allow_different_images: bool, ignore_missing: bool, allow_incomplete: bool) -> None:
    """Compare the errors of CURRENT against BASELINE, model by model and protocol by protocol.

    \b
    Exit status: 0 no regression; 1 an error rose by more than --max-error-delta, or a
    model/protocol of BASELINE is missing from CURRENT (see --ignore-missing); 2 a usage
    error (unreadable runs, different images without --allow-different-images).
    """
    from inceval.reports.compare import compare_runs
    from inceval.store import RunReader

    result = compare_runs(
        RunReader(baseline), RunReader(current), max_error_delta=max_error_delta,
        allow_different_images=allow_different_images, ignore_missing=ignore_missing,
        allow_incomplete=allow_incomplete,
    )
    if as_json:
        print_json(result.to_dict())
    else:
        _print(result)
    if result.exit_status:
        sys.exit(result.exit_status)


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
    for header in ("Top-1 base", "Top-1 now", "Change", "Top-5 base", "Top-5 now", "Change"):
        table.add_column(header, justify="right")
    table.add_column("Status")
    for change in result.changes:
        old, new = change.baseline_protocol_version, change.current_protocol_version
        version = "" if old == new else f" (v{old}->v{new})"
        cells = [change.model, change.protocol + version, change.subset,
                 f"{change.current_images:,}"]
        for metric in (change.top1, change.top5):
            cells += [f"{metric.baseline:.2f}", f"{metric.current:.2f}", f"{metric.delta:+.2f}"]
        cells.append("REGRESSION" if change.regression else "ok")
        table.add_row(*cells, style="red" if change.regression else None)
    print_unsqueezed(console, table)
    if result.images_difference:
        console.print(f"warning: {result.images_difference}; compared anyway")
    for model, protocol in result.missing_from_current:
        label = "missing" if result.ignore_missing else "REGRESSION: missing"
        console.print(f"{label}: {model}/{protocol} is in the baseline but not in the current run")
    for model, protocol in result.new_in_current:
        console.print(f"new: {model}/{protocol} is only in the current run")
    threshold = f"{result.max_error_delta:g} pp"
    verdict = (f"{result.regressions} regression(s) above {threshold}" if result.regressions
               else f"no error rose by more than {threshold}")
    console.print(verdict)
