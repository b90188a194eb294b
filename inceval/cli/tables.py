"""`inceval tables`: the paper's Tables 1-4 from stored runs, beside the paper's values."""

from __future__ import annotations

import click

from inceval.cli.console import console, print_json


@click.command(name="tables")
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True,
                type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["rich", "markdown", "csv", "json", "latex"]),
              default="rich", show_default=True,
              help="Output format. rich: terminal tables; markdown/latex: one table per section "
                   "with notes; csv: every table in one long CSV with a 'table' column; json: "
                   "every number, unrounded, with run details and notes.")
@click.option("--paper/--no-paper", default=True, show_default=True,
              help="Show the paper's values (errors in %, as printed), the difference "
                   "ours - paper in percentage points, the paper-only reference rows "
                   "(BN-Inception, ResNet) and the public-checkpoint table.")
@click.option("--allow-incomplete", is_flag=True,
              help="Score unfinished prediction files on the rows written so far (marked as "
                   "partial) instead of refusing them.")
@click.option("--ci/--no-ci", "ci", default=None,
              help="Add 95% intervals: an exact (Clopper-Pearson) interval beside every error, "
                   "whether the paper's (or timm's) value lies inside it, and a 'differences' "
                   "table of paired changes on the same images (10/12/144 crops minus 1 crop, "
                   "ensemble minus its best member) with paired-bootstrap intervals and McNemar "
                   "p-values.  [default: on for json and csv, off for rich, markdown and latex]")
@click.option("--bootstrap-resamples", type=int, default=10_000, show_default=True,
              metavar="N", help="Resamples of the images drawn for each paired-bootstrap "
                                "interval of the differences table.")
@click.option("--seed", type=int, default=0, show_default=True, metavar="N",
              help="Seed (>= 0) of the bootstrap resampling (same seed, same intervals).")
@click.option("--real", is_flag=True,
              help="Add a ReaL table: the stored predictions of runs of ILSVRC-2012 validation "
                   "images rescored against the bundled ReaL labels (Beyer et al. 2020; an image "
                   "is right when its top k holds one of its acceptable classes; the 3,163 "
                   "images without one are excluded and counted), beside timm's published ReaL "
                   "figures. No model is run.")
def command(run_dirs: tuple[str, ...], fmt: str, paper: bool, allow_incomplete: bool,
            ci: bool | None, bootstrap_resamples: int, seed: int, real: bool) -> None:
    """Print Tables 1-4 of the paper from one or more RUN_DIRs.

    \b
    Table 1: protocols 1 and 1-slim, non-blacklisted images (paper: 48,238).
    Table 2: 10- and 12-crop protocols, all images (paper: 50,000).
    Table 3: protocol 144, all images.
    Table 4: ensembles (from `inceval ensemble`) under protocol 144, all images.
    Also: public checkpoints under protocol 1 beside timm's published accuracy; runs of
    other evaluation sets (ImageNetV2, -Sketch, -A, -R) beside timm's figures for that set;
    with --real, ReaL errors; and any other protocol in a last table.

    Errors are percentages (top-1/top-5), ties counted as wrong. Models map to the paper's
    rows by architecture (v3, v4, irv1, irv2 / irv2-paper; the Weights column says which
    weights); ensembles by their members (4 x v3; 1 x v4 + 3 x irv2, equal weights).
    Rows the runs do not cover are omitted; tables without measured rows are left out.

    JSON and CSV also carry each row's calibration: nll, the mean negative log-likelihood of
    the label in nats per image (stored float16 probabilities clipped below at 2**-24), and
    ece, the expected calibration error in percent (15 equal-width bins on the top-1
    probability).
    """
    from inceval import stats
    from inceval.errors import InceValError
    from inceval.reports import paper as paper_data
    from inceval.reports import render
    from inceval.reports.tables import PerImageCache, build_differences, build_tables, \
        describe_runs
    from inceval.store import RunReader

    if bootstrap_resamples < 1:
        raise InceValError(f"--bootstrap-resamples must be a positive number of resamples, got "
                           f"{bootstrap_resamples}; the default is 10000")
    if seed < 0:
        raise InceValError(f"--seed must be a non-negative integer, got {seed}; the default is 0")
    if ci is None:
        ci = fmt in ("json", "csv")
    calibration = fmt in ("json", "csv")
    runs = [RunReader(path) for path in run_dirs]
    cache = PerImageCache(allow_incomplete)
    tables = build_tables(runs, paper=paper, allow_incomplete=allow_incomplete, ci=ci,
                          calibration=calibration, cache=cache, real=real)
    differences = (build_differences(runs, allow_incomplete=allow_incomplete,
                                     resamples=bootstrap_resamples, seed=seed, cache=cache,
                                     keep_empty=fmt == "json")
                   if ci else None)
    shown = tables + ([differences] if differences is not None else [])
    infos = describe_runs(runs)
    if fmt == "json":
        settings = {
            "intervals": ci, "confidence": stats.CONFIDENCE,
            "error_interval": "exact (Clopper-Pearson)",
            "difference_interval": "paired bootstrap over images, percentile",
            "bootstrap_resamples": bootstrap_resamples, "seed": seed,
            "difference_test": "exact McNemar (two-sided binomial test of discordant images)",
            "ece_bins": stats.ECE_BINS, "nll_epsilon": stats.NLL_EPSILON,
        }
        print_json(render.to_json(tables, infos,
                                  paper_data.load_paper().source if paper else None,
                                  differences=differences, settings=settings))
    elif fmt == "markdown":
        click.echo(render.to_markdown(shown, infos), nl=False)
    elif fmt == "csv":
        click.echo(render.to_csv(shown), nl=False)
    elif fmt == "latex":
        click.echo(render.to_latex(shown, infos), nl=False)
    else:
        render.print_unsqueezed(console, render.to_rich(shown, infos))
