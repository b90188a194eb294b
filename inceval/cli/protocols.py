"""``inceval protocols``: list the crop protocols, or print every view of one."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from inceval.cli.console import console, print_json
from inceval.errors import InceValError

if TYPE_CHECKING:
    from inceval.data.protocols import Protocol
    from inceval.eval_config import EvalConfig

_IMAGE_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")

_EPILOG = """\b
Examples:
  inceval protocols
  inceval protocols 144 --model v4 --image-size 500x375
  inceval protocols my_protocol.yaml --input-size 224 --json

\b
"""


def _eval_config(model: str | None, input_size: int | None) -> "EvalConfig":
    from inceval.eval_config import EvalConfig

    if model is not None and input_size is not None:
        raise InceValError("give --model or --input-size, not both")
    if input_size is not None:
        if input_size < 1:
            raise InceValError(
                f"--input-size must be a positive number of pixels, got {input_size}"
            )
        return EvalConfig().with_input_size(input_size)
    if model is None:
        return EvalConfig()
    try:
        from inceval.models import get_eval_config
    except ImportError:
        raise InceValError("model settings are not available in this build; use --input-size")
    return get_eval_config(model)


def _image_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _IMAGE_SIZE_RE.match(text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise InceValError(f"--image-size must be WIDTHxHEIGHT like 500x375, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _scales_text(protocol: "Protocol", cfg: "EvalConfig") -> str:
    return ", ".join(stage.label.split(" ")[0] for stage in protocol.stages(cfg))


def _list(cfg: "EvalConfig", as_json: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from inceval.data.protocols import list_protocols

    rows = [
        {
            "name": p.name,
            "version": p.version,
            "views": len(p.resolve(cfg)),
            "scales": _scales_text(p, cfg),
            "description": p.description,
        }
        for p in list_protocols()
    ]
    if as_json:
        print_json({"input_size": cfg.input_size, "protocols": rows})
        return
    table = Table(title=f"Crop protocols at input size {cfg.input_size} "
                        f"(crop_pct {cfg.crop_pct:g}, {cfg.interpolation})")
    for column in ("name", "version", "views", "scales", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(row[key])) for key in row))
    console.print(table)
    console.print(Text("Your own protocol: pass a .json/.yaml file as NAME "
                       "(schema: inceval protocols --help)."))


def _views(protocol: "Protocol", cfg: "EvalConfig", image: tuple[int, int] | None,
           as_json: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from inceval.data.views import plan_views

    views = protocol.resolve(cfg)
    plan = plan_views(*image, views) if image else None
    rows: list[dict[str, Any]] = []
    for k, spec in enumerate(views):
        row: dict[str, Any] = {
            "index": k,
            "label": spec.label,
            "scale": spec.stage.label,
            "square": spec.region,
            "crop": spec.crop,
            "size": spec.size,
            "mirror": spec.mirror,
        }
        if plan is not None:
            box = plan.views[k]
            stage = plan.stages[box.stage]
            row["stage_size"] = [stage.out_h, stage.out_w]
            row["roi"] = list(stage.roi) if stage.roi else None
            row["box"] = [box.y, box.x, box.h, box.w]
        rows.append(row)
    header = {
        "name": protocol.name,
        "version": protocol.version,
        "description": protocol.description,
        "source": protocol.source,
        "input_size": cfg.input_size,
        "image_size": list(image) if image else None,
    }
    if as_json:
        print_json({**header, "views": rows})
        return
    title = (f"Protocol {protocol.name} v{protocol.version}: {len(views)} view(s) at input size "
             f"{cfg.input_size}")
    if image:
        title += f" on a {image[0]}x{image[1]} image"
    caption = protocol.description
    if plan is not None:
        caption += " Resized: h x w; source box: y0, x0, y1, x1; box: y, x, h, w."
    table = Table(title=title, caption=caption)
    # The label already names scale, square, crop and mirror; the JSON has them as fields.
    table.add_column("#", justify="right")
    table.add_column("view", overflow="fold", min_width=20)
    show_roi = plan is not None and any(stage.roi for stage in plan.stages)
    if plan is not None:
        table.add_column("resized", no_wrap=True)
        if show_roi:
            table.add_column("source box", no_wrap=True)
        table.add_column("box", no_wrap=True)
    for row in rows:
        cells = [str(row["index"]), row["label"]]
        if plan is not None:
            cells.append("{} x {}".format(*row["stage_size"]))
            if show_roi:
                cells.append(", ".join(f"{v:g}" for v in row["roi"]) if row["roi"] else "-")
            cells.append(", ".join(map(str, row["box"])))
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


def _help_epilog() -> str:
    from inceval.data.protocols import FILE_SCHEMA_HELP

    return _EPILOG + FILE_SCHEMA_HELP


@click.command(name="protocols", epilog=_help_epilog())
@click.argument("name", required=False)
@click.option("--model", "-m", help="Take input size, crop_pct and interpolation from this model's "
                                    "weights (e.g. v4, irv2).")
@click.option("--input-size", type=int, help="Model input size in pixels (default 299).")
@click.option("--image-size",
              help="Show the pixel boxes on an image of WIDTHxHEIGHT (e.g. 500x375).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(name: str | None, model: str | None, input_size: int | None, image_size: str | None,
            as_json: bool) -> None:
    """List crop protocols, or print every view of protocol NAME (a built-in name or a file).

    Views are given for one model input size: from --model, from --input-size, or 299.
    """
    from inceval.data.protocols import get_protocol

    cfg = _eval_config(model, input_size)
    image = _image_size(image_size)
    if name is None:
        if image is not None:
            raise InceValError("--image-size needs a protocol NAME, e.g. inceval protocols 144 "
                               "--image-size 500x375")
        _list(cfg, as_json)
        return
    _views(get_protocol(name), cfg, image, as_json)
