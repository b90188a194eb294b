"""`inceval report`: stored runs as one self-contained HTML page of tables and plots."""

from __future__ import annotations

from pathlib import Path

import click

from inceval.cli.console import console
from inceval.errors import InceValError


def _check_out(out: Path) -> None:
    if out.suffix.lower() not in (".html", ".htm"):
        raise InceValError(f"--out {out}: the report is an HTML file; give a name ending in "
                           ".html")
    if out.is_dir():
        raise InceValError(f"--out {out} is a folder; give a file name ending in .html")
    if not out.parent.is_dir():
        raise InceValError(f"--out {out}: folder {out.parent} does not exist; create it")


def _check_png_dir(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InceValError(f"--png {folder} is a file; give a folder (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InceValError(f"--png {folder}: cannot create the folder ({exc.strerror}); "
                           "choose a writable place") from None


@click.command(name="report")
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True,
                type=click.Path(file_okay=False))
@click.option("--out", "out", required=True, metavar="FILE.html",
              type=click.Path(path_type=Path),
              help="The HTML report to write (replaced if it exists; its folder must exist). "
                   "Self-contained: plots and images are embedded, no script, no network.")
@click.option("--png", "png_dir", metavar="DIR", default=None,
              type=click.Path(path_type=Path),
              help="Also write every plot as DIR/<plot>.png (150 dpi) for papers and slides; "
                   "DIR is created if missing.  [default: no PNG files]")
@click.option("--examples/--no-examples", default=True, show_default=True,
              help="Show the views of one correctly and one wrongly classified image (top-1), "
                   "rendered from the first run whose data root is readable here. Runs whose "
                   "images cannot be read are named in the report, never an error.")
@click.option("--allow-incomplete", is_flag=True,
              help="Report unfinished prediction files on the rows written so far (marked as "
                   "partial) instead of refusing them.")
@click.option("--bootstrap-resamples", type=int, default=10_000, show_default=True,
              metavar="N", help="Resamples of the images drawn for each paired-bootstrap "
                                "interval (ensemble gains and the differences table).")
@click.option("--seed", type=int, default=0, show_default=True, metavar="N",
              help="Seed of the bootstrap resampling (same seed, same intervals).")
def command(run_dirs: tuple[str, ...], out: Path, png_dir: Path | None, examples: bool,
            allow_incomplete: bool, bootstrap_resamples: int, seed: int) -> None:
    """Write an HTML report of one or more RUN_DIRs: tables and plots, no model run.

    \b
    The report holds:
      - Tables 1-4 beside the paper (and the other tables of `inceval tables`), with exact
        95% intervals, and the paired differences (10/12/144 crops minus 1 crop, ensemble
        minus its best member) with bootstrap intervals;
      - error vs views per image (1, 10/12, 144; log scale) per model, the paper's points
        overlaid;
      - ours minus paper per table row, with intervals (percentage points);
      - each ensemble against its best member;
      - reliability diagrams (15 equal-width bins of the top-1 probability) per model and
        protocol;
      - per model (under its protocol with the most views): the 20 classes with the highest
        top-1 error and the most frequent confusions (true -> predicted);
      - example images: the views of one correctly and one wrongly classified image, with
        their top-5 classes;
      - each run's provenance: versions, command line, weights (sha256), device, dtype,
        throughput.

    Errors are percentages with ties counted as wrong. Needs matplotlib:
    pip install 'inceval[report]'.
    """
    from inceval.reports.report import build_report
    from inceval.store import RunReader

    if bootstrap_resamples < 1:
        raise InceValError(f"--bootstrap-resamples must be a positive number of resamples, got "
                           f"{bootstrap_resamples}; the default is 10000")
    _check_out(out)
    if png_dir is not None:
        _check_png_dir(png_dir)
    runs = [RunReader(path) for path in run_dirs]
    report = build_report(runs, resamples=bootstrap_resamples, seed=seed,
                          allow_incomplete=allow_incomplete, examples=examples)
    try:
        out.write_text(report.html, encoding="utf-8")
    except OSError as exc:
        raise InceValError(f"--out {out}: cannot write ({exc.strerror}); choose a writable "
                           "place") from None
    console.print(f"wrote {out} ({len(report.figures)} plots)", markup=False, highlight=False,
                  soft_wrap=True)
    if png_dir is not None:
        written = report.write_pngs(png_dir)
        console.print(f"wrote {len(written)} PNG files to {png_dir}", markup=False,
                      highlight=False, soft_wrap=True)
    if report.content.examples is not None and not report.content.examples.images:
        console.print("example images omitted: " + "; ".join(report.content.examples.reasons),
                      markup=False, highlight=False, soft_wrap=True)
