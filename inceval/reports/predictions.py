"""Per-image predictions of a stored run, with class names: what each image was taken for.

Rows come from the stored probabilities; no model runs. Top-k lists are ordered by probability,
ties by class index (a display order only: the errors use the pessimistic tie rule of
:mod:`inceval.engine.metrics`, and ``correct`` here follows that rule too). Images the run could
not read (images.csv ``error`` column) have no prediction and are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inceval.data import builtin
from inceval.engine.metrics import topk_correct
from inceval.errors import InceValError


@dataclass(frozen=True)
class ImagePrediction:
    """One image's label and its top-k classes."""

    index: int
    path: str
    label: int
    blacklisted: bool
    top: list[tuple[int, float]]
    correct_top1: bool
    correct_topk: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with class names."""
        names = builtin.class_names()
        return {
            "index": self.index, "path": self.path, "label": self.label,
            "label_name": names[self.label], "blacklisted": self.blacklisted,
            "top": [{"class": c, "name": names[c], "probability": p} for c, p in self.top],
            "correct_top1": self.correct_top1, "correct_topk": self.correct_topk,
        }


def image_predictions(run: Any, model: str, protocol: str, *, top: int = 5,
                      wrong_only: bool = False, limit: int | None = None) -> list[ImagePrediction]:
    """The top-``top`` classes of every readable image (or of the top-1 mistakes) of one
    prediction file; unreadable images are skipped.

    Args:
        run: a :class:`inceval.store.RunReader`.
        model: model (or ensemble) name.
        protocol: protocol name.
        top: how many classes to list (1..1000).
        wrong_only: keep only images whose top-1 prediction is wrong.
        limit: at most this many rows (after ``wrong_only``).

    Raises:
        InceValError: a bad ``top``/``limit``, or what :meth:`RunReader.probabilities` raises.
    """
    if not 1 <= top <= 1000:
        raise InceValError(f"--top must be between 1 and 1000, got {top}")
    if limit is not None and limit < 1:
        raise InceValError(f"--limit must be at least 1, got {limit}")
    images = run.images
    labels = run.labels
    unreadable = run.unreadable
    rows: list[ImagePrediction] = []
    for start, block in run.iter_chunks(model, protocol):
        indices = np.arange(start, start + block.shape[0])
        readable = ~unreadable[indices]
        block, indices = block[readable], indices[readable]
        block_labels = labels[indices]
        right1 = topk_correct(block, block_labels, 1)
        rightk = topk_correct(block, block_labels, top)
        order = np.argsort(-block, axis=1, kind="stable")[:, :top]
        for offset in range(block.shape[0]):
            if wrong_only and right1[offset]:
                continue
            i = int(indices[offset])
            rows.append(ImagePrediction(
                int(images["index"].iloc[i]), str(images["path"].iloc[i]), int(labels[i]),
                bool(images["blacklisted"].iloc[i]),
                [(int(c), float(block[offset, c])) for c in order[offset]],
                bool(right1[offset]), bool(rightk[offset])))
            if limit is not None and len(rows) >= limit:
                return rows
    return rows
