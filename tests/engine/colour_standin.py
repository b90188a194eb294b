"""A stand-in classifier whose every prediction is known in advance, and a dataset made for it.

Each image is one flat colour. Every channel sits at one of four levels (32, 96, 160, 224), so a
colour is a *code* 0..63 that survives JPEG coding and any resize (a flat image stays flat). The
stand-in network averages each view's pixels, reads the code back and returns a fixed logit row
for that code: a seeded permutation of the 1000 classes with strictly decreasing logits. An image
labelled with the class at position ``r`` of its code's permutation therefore has its label at
rank ``r`` (0 = top-1) in every view and in any average of views, whatever the crop protocol.

The dataset writes ILSVRC-style names with sparse image numbers, a list-layout labels file and a
blacklist, and returns the expected error counts computed from the ranks alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from inceval.eval_config import EvalConfig

LEVELS = 4
NUM_CODES = LEVELS**3
NUM_CLASSES = 1000
_STEP = 256 // LEVELS


def code_colour(code: int) -> tuple[int, int, int]:
    """The RGB colour of a code: each channel at the middle of its level's band."""
    digits = (code // (LEVELS * LEVELS), (code // LEVELS) % LEVELS, code % LEVELS)
    return tuple(d * _STEP + _STEP // 2 for d in digits)  # type: ignore[return-value]


def class_orders(seed: int = 0) -> np.ndarray:
    """(NUM_CODES, 1000) int64: row k lists the classes from most to least likely for code k."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(NUM_CLASSES) for _ in range(NUM_CODES)])


class ColourCodeNet(nn.Module):
    """Decodes the mean colour of each view into the logits of its code.

    Args:
        orders: (NUM_CODES, 1000) class order per code, from :func:`class_orders`.
        input_size: model input side in pixels (reduced sizes keep the tests fast).
        name: the model name recorded in the run.
        crop_pct: the single-crop rule (0.875 as Inception-v4, 0.8975 as Inception-ResNet-v2).
    """

    def __init__(self, orders: np.ndarray, input_size: int = 32, name: str = "colour",
                 crop_pct: float = 0.875) -> None:
        super().__init__()
        self.eval_config = EvalConfig(input_size=input_size, crop_pct=crop_pct,
                                      interpolation="bicubic")
        self.model_name = name
        self.weights_info = {"source": "stand-in", "tag": None, "path": None, "sha256": None,
                             "seed": None, "notes": ["colour-code stand-in for tests"]}
        table = torch.empty(NUM_CODES, NUM_CLASSES)
        # Strictly decreasing by 0.01 per rank: distinct after float16 rounding of probabilities.
        ranks = torch.arange(NUM_CLASSES, dtype=torch.float32)
        for code in range(NUM_CODES):
            table[code, torch.as_tensor(orders[code])] = -0.01 * ranks
        self.register_buffer("table", table)
        self.register_buffer("mean", torch.tensor(self.eval_config.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.eval_config.std).view(1, 3, 1, 1))
        self.calls = 0
        self.views_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.views_seen += int(x.shape[0])
        pixels = (x.float() * self.std + self.mean).mean(dim=(2, 3)) * 255.0  # (B, 3) in 0..255
        level = torch.div(pixels, _STEP, rounding_mode="floor").clamp(0, LEVELS - 1).long()
        code = level[:, 0] * LEVELS * LEVELS + level[:, 1] * LEVELS + level[:, 2]
        return self.table[code].to(x.dtype)


# Rank of the label in its image's code order, cycled over the images: 0 is a top-1 hit, 1..4 a
# top-5 hit only, 5 and more a miss of both.
_RANK_PATTERN = (0, 0, 3, 0, 7, 1, 0, 4, 5, 0, 2, 0, 9, 0, 6, 0)
# Image sizes (width, height): landscape, portrait, square and odd sizes.
_SIZES = ((48, 40), (40, 56), (44, 44), (61, 37), (37, 53), (50, 50), (72, 45), (45, 71))


@dataclass(frozen=True)
class ColourDataset:
    """A generated dataset and what any correct evaluation of it must report.

    Attributes:
        root: folder of the images.
        labels_file: ``name label`` per line (list layout).
        blacklist_file: blacklisted image numbers, one per line.
        names: image file names in dataset order.
        labels: class index per image.
        ranks: rank of each label in its image's prediction (0 = top-1).
        blacklisted: whether each image is blacklisted.
        top1_predictions: the class each image must be predicted as.
    """

    root: Path
    labels_file: Path
    blacklist_file: Path
    names: tuple[str, ...]
    labels: np.ndarray
    ranks: np.ndarray
    blacklisted: np.ndarray
    top1_predictions: np.ndarray

    def expected_errors(self, *, blacklist_free: bool) -> dict[int, float]:
        """Top-1/top-5 error in percent, from the designed ranks (the inceval formula's shape)."""
        ranks = self.ranks[~self.blacklisted] if blacklist_free else self.ranks
        n = int(ranks.size)
        return {k: 100.0 * int((ranks >= k).sum()) / n for k in (1, 5)}

    def expected_counts(self, *, blacklist_free: bool) -> dict[str, int]:
        """Images scored and misses at top-1 and top-5."""
        ranks = self.ranks[~self.blacklisted] if blacklist_free else self.ranks
        return {"images": int(ranks.size), "top1_wrong": int((ranks >= 1).sum()),
                "top5_wrong": int((ranks >= 5).sum())}


def write_colour_dataset(root: Path, orders: np.ndarray, count: int = 40) -> ColourDataset:
    """Write ``count`` flat-colour JPEGs with ILSVRC names, a labels file and a blacklist.

    Image ``i`` gets code ``(7 * i) % NUM_CODES`` (distinct for up to 64 images, so a mix-up of
    images changes the predictions), number ``10 + 3 * i``, and the label at rank
    ``_RANK_PATTERN[i % 16]`` of its code. Every fourth image from the second on is blacklisted.
    """
    if count > NUM_CODES:
        raise ValueError(f"at most {NUM_CODES} images have distinct codes")
    root = Path(root)
    images = root / "val"
    images.mkdir(parents=True, exist_ok=True)
    names, labels, ranks, top1, numbers = [], [], [], [], []
    for i in range(count):
        code = (7 * i) % NUM_CODES
        rank = _RANK_PATTERN[i % len(_RANK_PATTERN)]
        number = 10 + 3 * i
        name = f"ILSVRC2012_val_{number:08d}.JPEG"
        width, height = _SIZES[i % len(_SIZES)]
        Image.new("RGB", (width, height), code_colour(code)).save(images / name, quality=90)
        names.append(name)
        labels.append(int(orders[code, rank]))
        ranks.append(rank)
        top1.append(int(orders[code, 0]))
        numbers.append(number)
    blacklisted = np.array([i % 4 == 1 for i in range(count)])
    labels_file = root / "labels.txt"
    labels_file.write_text("".join(f"{n} {y}\n" for n, y in zip(names, labels)))
    blacklist_file = root / "blacklist.txt"
    # 7 is no image of the set: a real blacklist names images a --limit run does not hold.
    listed = [7] + [n for n, b in zip(numbers, blacklisted) if b]
    blacklist_file.write_text("".join(f"{n}\n" for n in listed))
    return ColourDataset(images, labels_file, blacklist_file, tuple(names),
                         np.array(labels), np.array(ranks), blacklisted, np.array(top1))
