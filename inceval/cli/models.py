"""``inceval models``: the networks, their weights and the preprocessing each set of weights needs."""

from __future__ import annotations

from typing import Any

import click

_HELP = """List the networks, their public weights and evaluation settings.

\b
Without NAME: one row per network with parameters, GMACs (multiply-accumulates per 299x299
image, 1e9 units; GFLOPs = 2 x GMACs), input size, the single-crop rule "resize -> crop
(crop_pct)" in pixels, interpolation, mean/std (for pixels scaled to [0,1]) of the default
weights, and the weights tags (* marks the default).

\b
With NAME (a model name, alias such as inception_v3, or weights name such as
inception_v3.gluon_in1k): that model's details and one row per weights tag with its settings,
published single-crop accuracy, and whether the file is already in the local Hugging Face cache
(HF_HOME / HF_HUB_CACHE) so that --weights pretrained works offline.
"""


@click.command("models", help=_HELP, short_help="List the networks, their weights and evaluation settings.")
@click.argument("name", required=False)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON instead of a table: a list of model objects, or one object when NAME is given.",
)
def command(name: str | None, as_json: bool) -> None:
    """Entry point of ``inceval models``."""
    from inceval.cli.console import console, print_json
    from inceval.models.registry import MODELS, resolve_model

    if name is None:
        records = [_model_record(spec.name) for spec in MODELS.values()]
        if as_json:
            print_json(records)
        else:
            console.print(_listing_table(records))
        return
    spec, _ = resolve_model(name)
    record = _model_record(spec.name, with_cache=True)
    if as_json:
        print_json(record)
    else:
        console.print(_details_table(record))
        console.print(_weights_table(record))


def _model_record(name: str, with_cache: bool = False) -> dict[str, Any]:
    from inceval.models.complexity import model_complexity
    from inceval.models.factory import get_eval_config
    from inceval.models.registry import MODELS, WEIGHTS

    spec = MODELS[name]
    cost = model_complexity(name)
    weights = []
    for full_name in (f"{spec.arch}.{tag}" for tag in spec.weights):
        w = WEIGHTS[full_name]
        entry = {
            "name": w.name,
            "tag": w.tag,
            "default": full_name == spec.default_weights,
            "hub_repo": w.hub_repo,
            "hub_file": w.hub_file,
            **_eval_record(w.eval_config),
            "top1": w.top1,
            "top5": w.top5,
            "accuracy_source": w.accuracy_source,
            "description": w.description,
        }
        if with_cache:
            from inceval.models.hub import cached_weights

            cached = cached_weights(w)
            entry["cached_path"] = str(cached) if cached else None
        weights.append(entry)
    return {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "paper_name": spec.paper_name,
        "description": spec.description,
        "class": spec.builder.rpartition(":")[2],
        "params": cost.params,
        "macs": cost.macs,
        "gmacs": round(cost.gmacs, 3),
        **_eval_record(get_eval_config(name)),
        "default_weights": spec.default_weights,
        "weights": weights,
    }


def _eval_record(cfg: Any) -> dict[str, Any]:
    return {
        "input_size": cfg.input_size,
        "resize_size": cfg.resize_size,
        "crop_pct": cfg.crop_pct,
        "interpolation": cfg.interpolation,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
    }


def _resize_crop(record: dict[str, Any]) -> str:
    return f"{record['resize_size']} -> {record['input_size']} ({record['crop_pct']:g})"


def _mean_std(record: dict[str, Any]) -> str:
    def fmt(values: list[float]) -> str:
        return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{v:g}" for v in values)

    return f"{fmt(record['mean'])} / {fmt(record['std'])}"


def _listing_table(records: list[dict[str, Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Inception networks", caption="* default weights; GMACs per 299x299 image")
    for header, justify in (
        ("name", "left"),
        ("aliases", "left"),
        ("params", "right"),
        ("GMACs", "right"),
        ("input", "right"),
        ("resize -> crop", "left"),
        ("interp.", "left"),
        ("mean / std", "left"),
        ("weights", "left"),
    ):
        table.add_column(header, justify=justify)
    for r in records:
        tags = ", ".join(w["tag"] + ("*" if w["default"] else "") for w in r["weights"])
        cells = (
            r["name"],
            ", ".join(r["aliases"]) or "-",
            f"{r['params'] / 1e6:.2f}M",
            f"{r['gmacs']:.2f}",
            str(r["input_size"]),
            _resize_crop(r),
            r["interpolation"],
            _mean_std(r),
            tags or "none public",
        )
        table.add_row(*(Text(c) for c in cells))
    return table


def _details_table(r: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{r['name']}: {r['paper_name']}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows = (
        ("description", r["description"]),
        ("aliases", ", ".join(r["aliases"]) or "-"),
        ("class", r["class"]),
        ("parameters", f"{r['params']:,}"),
        ("GMACs (299x299)", f"{r['gmacs']:.2f} ({2 * r['gmacs']:.2f} GFLOPs)"),
        ("default weights", r["default_weights"] or "none (no public weights)"),
        ("eval (default)", f"{_resize_crop(r)}, {r['interpolation']}, mean/std {_mean_std(r)}"),
    )
    for field, value in rows:
        table.add_row(Text(field), Text(value))
    return table


def _weights_table(r: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    if not r["weights"]:
        return Text(f"{r['name']} has no public weights: use --weights random or a checkpoint file.")
    sources = sorted({w["accuracy_source"] for w in r["weights"]})
    table = Table(title=f"{r['name']} weights", caption="accuracy: " + "; ".join(sources))
    for header in (
        "weights",
        "resize -> crop",
        "interp.",
        "mean / std",
        "top-1 %",
        "top-5 %",
        "cached",
        "origin",
    ):
        table.add_column(header, justify="right" if header.startswith("top") else "left")
    for w in r["weights"]:
        cells = (
            w["name"] + (" *" if w["default"] else ""),
            _resize_crop(w),
            w["interpolation"],
            _mean_std(w),
            f"{w['top1']:.3f}",
            f"{w['top5']:.3f}",
            "yes" if w.get("cached_path") else "no",
            w["description"],
        )
        table.add_row(*(Text(c) for c in cells))
    return table
