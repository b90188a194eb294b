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
def command(run_dirs: tuple[str, ...], fmt: str, paper: bool, allow_incomplete: bool) -> None:
    """Print Tables 1-4 of the paper from one or more RUN_DIRs.

    \b
    Table 1: protocols 1 and 1-slim, non-blacklisted images (paper: 48,238).
    Table 2: 10- and 12-crop protocols, all images (paper: 50,000).
    Table 3: protocol 144, all images.
    Table 4: ensembles (from `inceval ensemble`) under protocol 144, all images.
    Also: public checkpoints under protocol 1 beside timm's published accuracy, and any
    other protocol in a last table.

    Errors are percentages (top-1/top-5), ties counted as wrong. Models map to the paper's
    rows by architecture (v3, v4, irv1, irv2 / irv2-paper; the Weights column says which
    weights); ensembles by their members (4 x v3; 1 x v4 + 3 x irv2, equal weights).
    Rows the runs do not cover are omitted; tables without measured rows are left out.
    """
    from inceval.reports import paper as paper_data
    from inceval.reports import render
    from inceval.reports.tables import build_tables, describe_runs
    from inceval.store import RunReader

    runs = [RunReader(path) for path in run_dirs]
    tables = build_tables(runs, paper=paper, allow_incomplete=allow_incomplete)
    infos = describe_runs(runs)
    if fmt == "json":
        print_json(render.to_json(tables, infos,
                                  paper_data.load_paper().source if paper else None))
    elif fmt == "markdown":
        click.echo(render.to_markdown(tables, infos), nl=False)
    elif fmt == "csv":
        click.echo(render.to_csv(tables), nl=False)
    elif fmt == "latex":
        click.echo(render.to_latex(tables, infos), nl=False)
    else:
        render.print_unsqueezed(console, render.to_rich(tables, infos))
