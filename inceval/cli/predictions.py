"""`inceval predictions`: what a stored run took each image for, with class names."""

from __future__ import annotations

import click

from inceval.cli.console import console, print_json


@click.command(name="predictions")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--model", default=None, metavar="NAME",
              help="Model (or ensemble) of the run. Default: the run's only model; required "
                   "when it has several.")
@click.option("--protocol", default=None, metavar="NAME",
              help="Protocol of the run. Default: the model's only protocol, else '1' when "
                   "stored.")
@click.option("--top", type=click.IntRange(1, 1000), default=5, show_default=True, metavar="K",
              help="Classes listed per image, most probable first.")
@click.option("--wrong", "wrong_only", is_flag=True,
              help="Only images whose top-1 prediction is wrong.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, metavar="N",
              help="Most images listed (in run order).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the rows as JSON (class indices, names and probabilities) instead of a "
                   "table.")
def command(run_dir: str, model: str | None, protocol: str | None, top: int, wrong_only: bool,
            limit: int, as_json: bool) -> None:
    """List the top-K classes of each image of RUN_DIR with class names and probabilities.

    Reads the stored probabilities; no model runs. A class is shown as 'name (index)', the name
    being the first WordNet lemma of its WNID; two names occur twice (crane, maillot), so the
    index is the identity. Marks: '1' = right at top-1, 'K' = right within the top K only, 'x' =
    wrong; ties count as wrong, as in every error inceval reports. Images the run could not
    read have no prediction and are skipped (their count is printed).
    """
    from inceval.data import builtin
    from inceval.errors import InceValError
    from inceval.reports.predictions import image_predictions
    from inceval.store import RunReader

    run = RunReader(run_dir)
    entries = run.entries()
    models = list(dict.fromkeys(m for m, _ in entries))
    if not models:
        raise InceValError(f"run {run_dir} holds no predictions yet; nothing to list")
    if model is None:
        if len(models) != 1:
            raise InceValError(f"run {run_dir} holds models {', '.join(models)}; choose one with "
                               "--model")
        model = models[0]
    protocols = [p for m, p in entries if m == model]
    if not protocols:
        raise InceValError(f"run {run_dir} has no model {model!r} (it has: {', '.join(models)})")
    if protocol is None:
        protocol = protocols[0] if len(protocols) == 1 else ("1" if "1" in protocols else None)
        if protocol is None:
            raise InceValError(f"model {model} of run {run_dir} has protocols "
                               f"{', '.join(protocols)}; choose one with --protocol")
    rows = image_predictions(run, model, protocol, top=top, wrong_only=wrong_only, limit=limit)
    skipped = run.num_unreadable
    if as_json:
        print_json({"run": str(run.run_dir), "model": model, "protocol": protocol, "top": top,
                    "images_unreadable": skipped, "rows": [row.to_dict() for row in rows]})
        return
    from rich import box
    from rich.table import Table

    title = (f"{run.run_dir}: {model} under protocol {protocol}, top {top}"
             f"{' (top-1 mistakes)' if wrong_only else ''}; {len(rows)} image(s)")
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("#", "Image", "True class", "Mark", f"Top {top} (probability %)"):
        table.add_column(header)
    for row in rows:
        mark = "1" if row.correct_top1 else (str(top) if row.correct_topk else "x")
        shown = ", ".join(f"{builtin.class_label(c)} {100 * p:.1f}" for c, p in row.top)
        table.add_row(str(row.index), row.path, builtin.class_label(row.label), mark, shown,
                      style=None if row.correct_top1 else "red")
    console.print(table)
    if skipped:
        console.print(f"{skipped:,} unreadable image(s) have no prediction and are not listed "
                      "(images.csv, column error)")
