"""Top-k correctness and error rates from class probabilities (pure numpy).

Tie rule (pessimistic): a label counts as within the top k of a row only when fewer than k *other*
classes have a probability greater than **or equal to** the label's. A class tied with the label
therefore ranks above it.

Why pessimistic:

* It cannot reward a degenerate model: a network that outputs the same probability for every class
  scores 100 % error, where the optimistic rule ("fewer than k classes strictly higher") would
  score it 0 %.
* Stored probabilities are rounded to float16. Rounding is monotone, so it can merge two different
  probabilities into a tie but never reverse their order; under the pessimistic rule that can only
  *raise* an error rate, so a number computed from the store is never better than the same number
  computed from the unrounded probabilities. The optimistic rule would bound it from the other
  side, and an index-order tie-break (``argsort``, ``torch.topk``) would depend on class order.

:func:`label_rank` also offers the optimistic rule, so reports can count the images whose outcome
depends on the rule (:class:`TopkTally.tie_dependent`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

import numpy as np

TieRule = Literal["pessimistic", "optimistic"]
TIE_RULE: TieRule = "pessimistic"


def _as_numpy(array: Any) -> np.ndarray:
    """Accept numpy arrays, memmaps and torch tensors (moved to host) without importing torch."""
    if hasattr(array, "detach"):
        array = array.detach().cpu()
        # numpy has no bfloat16; widen floats (order-preserving, so ranks are unchanged).
        array = (array.float() if array.is_floating_point() else array).numpy()
    return np.asarray(array)


def _checked(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _as_numpy(probs)
    y = _as_numpy(labels)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (images, classes), got shape {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"labels must be 1-D of length {p.shape[0]}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1}, got {y.min()}..{y.max()}")
    if not np.isfinite(p).all():
        # NaN compares false with everything, which would make a NaN row rank its label first.
        raise ValueError("probs contain NaN or infinity")
    return p, y.astype(np.int64, copy=False)


def label_rank(probs: Any, labels: Any, *, ties: TieRule = TIE_RULE) -> np.ndarray:
    """Rank of each row's true label: 0 when the label is the clear first choice.

    Args:
        probs: (N, C) class probabilities (or any scores; only their order matters).
        labels: (N,) integer class indices in 0..C-1.
        ties: "pessimistic" counts the other classes scoring greater than or equal to the label;
            "optimistic" counts only those scoring strictly greater.

    Returns:
        (N,) int64 ranks; the label is within the top k exactly when rank < k.

    Raises:
        ValueError: on wrong shapes, labels out of range or non-finite probabilities.
    """
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")
    pessimistic, optimistic = _both_ranks(*_checked(probs, labels))
    return pessimistic if ties == "pessimistic" else optimistic


def _both_ranks(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    label_p = p[np.arange(p.shape[0]), y][:, None]
    at_least = (p >= label_p).sum(axis=1, dtype=np.int64) - 1  # minus the label itself
    greater = (p > label_p).sum(axis=1, dtype=np.int64)
    return at_least, greater


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def topk_correct(probs: Any, labels: Any, k: int, *, ties: TieRule = TIE_RULE) -> np.ndarray:
    """Whether each row's label is within its top k classes (tie rule in the module docstring).

    Returns:
        (N,) bool array.
    """
    _check_k(k)
    return label_rank(probs, labels, ties=ties) < k


def topk_errors(
    probs: Any, labels: Any, ks: Iterable[int] = (1, 5), *, ties: TieRule = TIE_RULE
) -> dict[int, float]:
    """Top-k error rates in percent (100 x fraction of rows whose label is outside the top k).

    Raises:
        ValueError: for an empty input, besides the cases of :func:`label_rank`.
    """
    tally = TopkTally(tuple(ks))
    tally.add(probs, labels, ties=ties)
    return tally.errors()


@dataclass
class TopkTally:
    """Running top-k counts, so that large prediction files can be scored chunk by chunk.

    Attributes:
        ks: the k values counted.
        images: rows added so far.
        correct: k -> rows whose label is within the top k (under the rule of :meth:`add`).
        tie_dependent: k -> rows counted wrong that the optimistic rule would count right, i.e.
            whose outcome depends on the tie rule (only tallied under the pessimistic rule).
    """

    ks: tuple[int, ...]
    images: int = 0
    correct: dict[int, int] = field(default_factory=dict)
    tie_dependent: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ks:
            raise ValueError("ks must name at least one k")
        for k in self.ks:
            _check_k(k)
        for k in self.ks:
            self.correct.setdefault(k, 0)
            self.tie_dependent.setdefault(k, 0)

    def add(self, probs: Any, labels: Any, *, ties: TieRule = TIE_RULE) -> None:
        """Count a chunk of rows."""
        if ties not in ("pessimistic", "optimistic"):
            raise ValueError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")
        at_least, greater = _both_ranks(*_checked(probs, labels))
        rank = at_least if ties == "pessimistic" else greater
        self.images += int(rank.shape[0])
        for k in self.ks:
            hits = rank < k
            self.correct[k] += int(hits.sum())
            self.tie_dependent[k] += int(((greater < k) & ~hits).sum())

    def errors(self) -> dict[int, float]:
        """k -> error in percent.

        Raises:
            ValueError: when no rows were added (an error rate of nothing is undefined).
        """
        if self.images == 0:
            raise ValueError("no images to score")
        return {k: 100.0 * (self.images - self.correct[k]) / self.images for k in self.ks}
