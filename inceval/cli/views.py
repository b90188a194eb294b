"""`inceval views`: the views of one image as the model sees them (.png sheet or .npy array)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from inceval.cli.console import console
from inceval.errors import InceValError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from inceval.data.views import ViewSpec

OUTPUT_SUFFIXES = (".png", ".npy")
# Contact sheet layout: gap between and around tiles, and the label band under each tile.
SHEET_GAP = 8
LABEL_LINE_HEIGHT = 12
LABEL_LINES = 2
SHEET_BACKGROUND = (255, 255, 255)
LABEL_COLOUR = (0, 0, 0)


def sheet_geometry(num_views: int, size: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Size of a contact sheet and the top-left corner of each tile.

    Tiles run left to right, then top to bottom, in ``ceil(sqrt(N))`` columns; under each tile
    is a band of ``LABEL_LINES`` label lines.

    Returns:
        The sheet width and height, and the ``(x, y)`` corner of each of the ``num_views`` tiles.
    """
    cols = math.ceil(math.sqrt(num_views))
    rows = math.ceil(num_views / cols)
    cell_w = size + SHEET_GAP
    cell_h = size + LABEL_LINES * LABEL_LINE_HEIGHT + SHEET_GAP
    corners = [(SHEET_GAP + (i % cols) * cell_w, SHEET_GAP + (i // cols) * cell_h)
               for i in range(num_views)]
    return SHEET_GAP + cols * cell_w, SHEET_GAP + rows * cell_h, corners


def _wrap(text: str, width: int, measure) -> list[str]:  # noqa: ANN001 - a font's getlength
    """Greedy word wrap of a label into at most LABEL_LINES lines that fit ``width`` pixels."""
    lines: list[str] = []
    for word in text.split():
        if lines and measure(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > LABEL_LINES:
        lines = lines[:LABEL_LINES - 1] + [" ".join(lines[LABEL_LINES - 1:])]
    return lines


def contact_sheet(views: "np.ndarray", labels: list[str]) -> "Image.Image":
    """A labelled grid of uint8 views of shape (N, 3, H, W), tiles in :func:`sheet_geometry`."""
    from PIL import Image, ImageDraw, ImageFont

    num_views, _, size, _ = views.shape
    width, height, corners = sheet_geometry(num_views, size)
    sheet = Image.new("RGB", (width, height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for view, label, (x, y) in zip(views, labels, corners):
        sheet.paste(Image.fromarray(view.transpose(1, 2, 0)), (x, y))
        for line_no, line in enumerate(_wrap(label, size, font.getlength)):
            draw.text((x, y + size + 1 + line_no * LABEL_LINE_HEIGHT), line, fill=LABEL_COLOUR,
                      font=font)
    return sheet


def render_image_views(image: Path, views: "tuple[ViewSpec, ...]", backend: str) -> "np.ndarray":
    """The uint8 views (N, 3, H, W) of one image from the chosen backend."""
    from inceval.data.loader import iter_view_batches

    batches = list(iter_view_batches([image], views, backend=backend, batch_size=1,
                                     num_workers=0 if backend == "torch" else 1))
    return batches[0].views[0].cpu().numpy()


@click.command(name="views")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--crops", "protocol_name", required=True, metavar="NAME",
              help="Crop protocol (1, 1-slim, 10, 12, 144, ...) or a .json/.yaml protocol file.")
@click.option("--model", required=True, metavar="M",
              help="Model or weights name; its input size, interpolation and mean/std apply.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE",
              help=".png: a labelled contact sheet; .npy: float32 (N, 3, H, W) normalised "
                   "exactly as fed to the model.")
@click.option("--backend", type=click.Choice(["auto", "dali", "torch"]), default="auto",
              show_default=True, help="DALI pipeline, or the PIL/torch reference.")
@click.option("--input-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Override the model's input size (the protocol scales follow it).")
def command(image: Path, protocol_name: str, model: str, out_path: Path, backend: str,
            input_size: int | None) -> None:
    """Write the views of IMAGE under a crop protocol, for one model's preprocessing."""
    import numpy as np
    import torch

    from inceval.data.loader import resolve_backend
    from inceval.data.protocols import get_protocol
    from inceval.data.reference import normalize
    from inceval.models import get_eval_config

    suffix = out_path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InceValError(
            f"--out {out_path}: unknown extension {out_path.suffix or '(none)'!r}; "
            f"use .png (contact sheet) or .npy (array)"
        )
    if not out_path.parent.is_dir():
        raise InceValError(f"--out {out_path}: folder {out_path.parent} does not exist; create it")
    eval_config = get_eval_config(model)
    if input_size is not None:
        eval_config = eval_config.with_input_size(input_size)
    views = get_protocol(protocol_name).resolve(eval_config)
    used = resolve_backend(backend)
    pixels = render_image_views(image, views, used)
    if suffix == ".png":
        contact_sheet(pixels, [spec.label for spec in views]).save(out_path, format="PNG")
    else:
        array = normalize(torch.from_numpy(pixels), eval_config).numpy().astype(np.float32)
        np.save(out_path, array)
    count, _, height, width = pixels.shape
    console.print(f"wrote {count} views of {height}x{width} from {image} to {out_path} "
                  f"(backend {used})", markup=False, highlight=False, soft_wrap=True)
