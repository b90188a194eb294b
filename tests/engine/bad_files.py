"""Datasets with bad image files mixed into good ones, for the engine's bad-file isolation tests.

Good images are textured colour-code images (tests/engine/colour_standin.py): each has a flat
colour code plus a seeded +-20 grey-level pattern, so the colour stand-in still reads its code
(the mean of any view stays inside the code's band) while :class:`TextureNet` sees the pattern
and gives other probabilities for other pixels, crops or sizes.

Every image is named ``ILSVRC2012_val_%08d.JPEG``: good image ``i`` has number ``100 + 10 * i``,
and a bad or odd file is slotted between two good ones by its number, so the good images keep
their names (and so their rows can be compared by path) whatever is inserted between them.

A bad kind is made by *spoiling* an entry after the dataset was loaded (the loader lists names
only): a directory or a missing file cannot be listed by the loader at all, and reaches the
engine only when the file changes between the scan and the evaluation.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from inceval.data.datasets import ValDataset, load_val_dataset
from inceval.eval_config import EvalConfig
from tests.engine.colour_standin import code_colour

INPUT_SIZE = 32
NUM_GOOD = 8
# (width, height) of the good images: landscape, portrait, square and odd sizes.
GOOD_SIZES = ((48, 40), (40, 56), (44, 44), (61, 37), (37, 53), (50, 50), (72, 45), (45, 71))
PATTERN_AMPLITUDE = 20
# 65000 x 1 at input size 32: the 1-crop stage resizes the shorter side to floor(32 / 0.875) =
# 36, i.e. to 65000 * 36 = 2,340,000 x 36 = 84,240,000 pixels, over the limit of 2**26 =
# 67,108,864. (3000 x 2 would need only 54,000 x 36 at this input size.)
ELONGATED_SIZE = (65000, 1)

KINDS = ("truncated", "empty", "garbage", "directory", "dangling_symlink", "missing",
         "elongated")
# Kinds found by DALI itself (the file header is fine); the others never reach DALI.
FOUND_BY_DALI = frozenset({"truncated"})

# The path-free reason stored for each kind (docs/results-format.md: images.csv `error`).
REASONS: dict[str, str | re.Pattern[str]] = {
    "truncated": re.compile(r"cannot decode image \(image file is truncated "
                            r"\(\d+ bytes not processed\)\)"),
    "empty": "file is empty",
    "garbage": "not a readable image",
    "directory": "cannot read file (Is a directory)",
    "dangling_symlink": "image file not found",
    "missing": "image file not found",
    "elongated": "image is 65000x1: too elongated "
                 "(a 36-pixel shorter side would need 2,340,000x36 pixels)",
}


def reason_matches(kind: str, reason: str) -> bool:
    """Whether ``reason`` is the documented reason for a bad file of ``kind``."""
    expected = REASONS[kind]
    if isinstance(expected, str):
        return reason == expected
    return expected.fullmatch(reason) is not None


def image_name(number: int, suffix: str = ".JPEG") -> str:
    """The ILSVRC file name of image ``number``."""
    return f"ILSVRC2012_val_{number:08d}{suffix}"


def good_number(index: int) -> int:
    """The image number of good image ``index``."""
    return 100 + 10 * index


def good_code(index: int) -> int:
    """The colour code of good image ``index`` (distinct for the 8 good images)."""
    return (7 * index + 3) % 64


def textured(code: int, width: int, height: int, seed: int) -> Image.Image:
    """A ``width`` x ``height`` RGB image of colour ``code`` plus a seeded +-20 level pattern."""
    rng = np.random.default_rng(seed)
    base = np.asarray(code_colour(code), dtype=np.int16)
    # 4x4-pixel blocks: coarse enough to survive JPEG coding, fine enough to move with any crop.
    blocks = rng.integers(-PATTERN_AMPLITUDE, PATTERN_AMPLITUDE + 1,
                          size=(-(-height // 4), -(-width // 4), 3))
    pattern = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)[:height, :width]
    return Image.fromarray((base + pattern).clip(0, 255).astype(np.uint8))


def truncated_jpeg_bytes() -> bytes:
    """The first half of a real JPEG whose header (through the start of scan) is in that half.

    The header check cannot refuse it; only decoding finds it cut short.
    """
    buffer = io.BytesIO()
    textured(5, 96, 64, seed=99).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    half = data[: len(data) // 2]
    start_of_scan = half.find(b"\xff\xda")
    if start_of_scan < 0 or start_of_scan + 64 > len(half):
        raise AssertionError("the truncated JPEG lost its header; make the source image larger")
    return half


def _replace(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _write(data: bytes) -> Callable[[Path], None]:
    def spoil(path: Path) -> None:
        _replace(path)
        path.write_bytes(data)
    return spoil


def _directory(path: Path) -> None:
    _replace(path)
    path.mkdir()


def _dangling_symlink(path: Path) -> None:
    _replace(path)
    os.symlink(path.with_name("nowhere_" + path.name), path)


def _elongated(path: Path) -> None:
    _replace(path)
    Image.new("RGB", ELONGATED_SIZE, code_colour(9)).save(path, format="JPEG", quality=90)


SPOILERS: dict[str, Callable[[Path], None]] = {
    "truncated": lambda path: _write(truncated_jpeg_bytes())(path),
    "empty": _write(b""),
    "garbage": _write(b"this is not an image, only text\n" * 40),
    "directory": _directory,
    "dangling_symlink": _dangling_symlink,
    "missing": _replace,
    "elongated": _elongated,
}


def _cmyk(code: int, path: Path) -> None:
    r, g, b = code_colour(code)
    Image.new("CMYK", (40, 30), (255 - r, 255 - g, 255 - b, 0)).save(path, "JPEG", quality=95)


def _grayscale(code: int, path: Path) -> None:
    Image.new("L", (40, 30), code_colour(code)[0]).save(path, "JPEG", quality=95)


def _gray16_png(code: int, path: Path) -> None:
    # 16-bit values v * 257 decode to 8-bit v on both backends (round(x / 257)).
    values = np.full((30, 40), code_colour(code)[0] * 257, dtype=np.uint16)
    Image.fromarray(values).save(path, "PNG")


def _png_named_jpeg(code: int, path: Path) -> None:
    textured(code, 40, 30, seed=code).save(path, "PNG")


def _progressive(code: int, path: Path) -> None:
    textured(code, 40, 30, seed=code).save(path, "JPEG", quality=90, progressive=True)


def _one_pixel(code: int, path: Path) -> None:
    Image.new("RGB", (1, 1), code_colour(code)).save(path, "JPEG", quality=95)


# Decodable oddities: name -> (colour code, file suffix, writer). Grey codes (equal levels in R,
# G and B: 0, 21, 42, 63) for the single-channel files.
ODDITIES: dict[str, tuple[int, str, Callable[[int, Path], None]]] = {
    "cmyk_jpeg": (11, ".JPEG", _cmyk),
    "grayscale_jpeg": (21, ".JPEG", _grayscale),
    "gray16_png": (42, ".PNG", _gray16_png),
    "png_named_jpeg": (13, ".JPEG", _png_named_jpeg),
    "progressive_jpeg": (19, ".JPEG", _progressive),
    "one_pixel": (23, ".JPEG", _one_pixel),
}


@dataclass(frozen=True)
class Built:
    """A dataset written to disk and what each of its images is.

    Attributes:
        dataset: the loaded dataset (bad entries already spoiled).
        codes: relative path -> colour code of every decodable image.
        bad: relative path -> bad kind.
    """

    dataset: ValDataset
    codes: dict[str, int]
    bad: dict[str, str]

    def position(self, name: str) -> int:
        """Position of the image ``name`` in the run."""
        return [r.path for r in self.dataset.records].index(name)


def build_dataset(root: Path, *, bad: Sequence[tuple[int, str]] = (),
                  odd: Sequence[tuple[int, str]] = ()) -> Built:
    """Write the 8 good images plus extra files, load the dataset, then spoil the bad entries.

    Args:
        root: an empty folder; images go to ``root/val``, the list file to ``root/labels.txt``.
        bad: (image number, kind) of each bad file; numbers between good ones place it.
        odd: (image number, oddity name) of each decodable oddity.
    """
    images = root / "val"
    images.mkdir(parents=True)
    codes: dict[str, int] = {}
    for index in range(NUM_GOOD):
        name = image_name(good_number(index))
        width, height = GOOD_SIZES[index]
        textured(good_code(index), width, height, seed=index).save(images / name, quality=90)
        codes[name] = good_code(index)
    for number, oddity in odd:
        code, suffix, write = ODDITIES[oddity]
        write(code, images / image_name(number, suffix))
        codes[image_name(number, suffix)] = code
    kinds = {image_name(number): kind for number, kind in bad}
    for name in kinds:  # a placeholder for the scan, spoiled below
        textured(1, 16, 16, seed=0).save(images / name, quality=90)
    names = sorted([*codes, *kinds])
    labels = root / "labels.txt"
    labels.write_text("".join(f"{name} {i}\n" for i, name in enumerate(names)))
    dataset = load_val_dataset(images, layout="list", labels_file=labels)
    for name, kind in kinds.items():
        SPOILERS[kind](images / name)
    return Built(dataset, codes, kinds)


class TextureNet(nn.Module):
    """A stand-in classifier that sees the pixels: a seeded linear map of 8x8 mean-pooled views.

    Computed in float64 per view, so a view's logits do not depend on what else is in the batch.
    """

    def __init__(self, input_size: int = INPUT_SIZE, name: str = "texture") -> None:
        super().__init__()
        self.eval_config = EvalConfig(input_size=input_size, crop_pct=0.875,
                                      interpolation="bicubic")
        self.model_name = name
        self.weights_info = {"source": "stand-in", "tag": None, "path": None, "sha256": None,
                             "seed": 1, "notes": ["texture stand-in for tests"]}
        generator = torch.Generator().manual_seed(1)
        self.register_buffer("weight", torch.randn(1000, 3 * 8 * 8, generator=generator,
                                                   dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.adaptive_avg_pool2d(x.double(), 8).flatten(1)
        # Small logits (spread about 0.3): probabilities near 1/1000 that float16 stores with
        # about three significant digits, so small pixel changes show in the stored rows.
        return (0.05 * features @ self.weight.T).to(x.dtype)
