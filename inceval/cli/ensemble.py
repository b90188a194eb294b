"""`inceval ensemble`: average stored predictions of several models into a new run."""

from __future__ import annotations

import sys
from collections import Counter

import click

from inceval.cli.console import console, print_json


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def default_name(models: list[str]) -> str:
    """"v4+3xirv2" for members v4, irv2, irv2, irv2 (first-seen order)."""
    counts = Counter(models)
    return "+".join(name if counts[name] == 1 else f"{counts[name]}x{name}" for name in counts)


@click.command(name="ensemble")
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True,
                type=click.Path(file_okay=False))
@click.option("--members", required=True, metavar="MODEL[@N],...",
              help="Comma-separated members. MODEL takes the model from the first RUN_DIR "
                   "(in the order given) that has it; MODEL@N from the N-th RUN_DIR, counting "
                   "from 1. The same model of the same run may appear only once, e.g. "
                   "'v4,irv2,irv2@2' = v4 and irv2 of run 1 (if it has both) and irv2 of run 2.")
@click.option("--crops", default="144", show_default=True, metavar="PROTOCOL[,...]",
              help="Protocol(s) to ensemble, comma-separated (e.g. 144, or 12,144); every "
                   "member needs a complete prediction file for each, of the same protocol "
                   "version.")
@click.option("--weights", "weights_text", default=None, metavar="W,...",
              help="One positive weight per member, comma-separated, normalised to sum to 1. "
                   "Default: equal weights (as in the paper).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="New run directory for the ensemble. Default: runs/ensemble-NAME.")
@click.option("--name", default=None,
              help="Model name of the ensemble in the new run (letters, digits, . _ + -). "
                   "Default: the members' names, e.g. v4+3xirv2.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier inceval run in --out (refused for other directories).")
@click.option("--allow-different-images", is_flag=True,
              help="Accept RUN_DIRs of the same images that could not read the same ones "
                   "(refused by default: members would be scored on different images). An "
                   "image unreadable in any member is then unreadable in the ensemble. Runs of "
                   "different image lists, labels or blacklists are always refused.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the new run, its members and the ensemble's errors as JSON.")
def command(run_dirs: tuple[str, ...], members: str, crops: str, weights_text: str | None,
            out_dir: str | None, name: str | None, overwrite: bool,
            allow_different_images: bool, as_json: bool) -> None:
    """Average the stored probabilities of MEMBERS (weighted mean) into a new run.

    All RUN_DIRs must hold the same images (fingerprint), labels and blacklist, and have
    been able to read the same images (see --allow-different-images). The ensemble is stored
    like a model (predictions/NAME/PROTOCOL.npy) with its members (run, model, weights,
    weight) in the manifest, so `inceval tables` puts it in Table 4. Images a member could
    not read are unreadable in the ensemble too: left out of its errors and counted.
    """
    from inceval.engine.ensemble import Member, build_ensemble, resolve_members
    from inceval.errors import InceValError
    from inceval.store import RunReader

    runs = [RunReader(path) for path in run_dirs]
    chosen = resolve_members(_split(members), runs)
    if weights_text is None:
        weights = [1.0] * len(chosen)
    else:
        try:
            weights = [float(w) for w in _split(weights_text)]
        except ValueError:
            raise InceValError(f"--weights {weights_text!r} must be comma-separated "
                               "numbers") from None
        if len(weights) != len(chosen):
            raise InceValError(f"--weights has {len(weights)} value(s) for {len(chosen)} member(s)")
    protocols = _split(crops)
    name = name or default_name([model for _, model in chosen])
    out = out_dir or f"runs/ensemble-{name}"
    path = build_ensemble([Member(run, model, w) for (run, model), w in zip(chosen, weights)],
                          protocols, out, name, overwrite=overwrite, command=sys.argv,
                          allow_different_images=allow_different_images)
    result = RunReader(path)
    scores = [s for p in protocols for s in result.score(name, p)]
    record = result.manifest["models"][name]
    if as_json:
        print_json({"run": str(path), "name": name, "protocols": protocols,
                    "members": record["members"], "images_unreadable": result.num_unreadable,
                    "scores": [s.to_dict() for s in scores]})
        return
    _print(path, name, record["members"], scores)
    if result.num_unreadable:
        console.print(f"{result.num_images - result.num_unreadable:,} scored, "
                      f"{result.num_unreadable:,} unreadable in a member and so in the ensemble "
                      "(listed in images.csv, column error)")


def _print(path, name, members, scores) -> None:  # noqa: ANN001 - plain data
    from rich import box
    from rich.table import Table

    from inceval.reports.render import print_unsqueezed

    table = Table(title=f"Ensemble {name} -> {path}", box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("Run", "Model", "Weights", "Weight"):
        table.add_column(header, justify="right" if header == "Weight" else "left")
    for member in members:
        weights = member.get("weights_tag") or member.get("weights_file") or member["weights"]
        table.add_row(member["run"], member["model"], weights or "-",
                      f"{member['weight']:.4f}")
    print_unsqueezed(console, table)
    errors = Table(title="Errors (%)", box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("Protocol", "Images", "Subset", "Top-1", "Top-5"):
        errors.add_column(header, justify="left" if header in ("Protocol", "Subset") else "right")
    for score in scores:
        errors.add_row(score.protocol, f"{score.images:,}", score.subset,
                       f"{score.top1_error:.2f}", f"{score.top5_error:.2f}")
    print_unsqueezed(console, errors)
