"""Statistics of stored predictions: exact intervals, paired tests, bootstrap, calibration.

Pure numpy/math (scipy is a test dependency only, used there as the independent reference).

* :func:`clopper_pearson`: exact (Clopper-Pearson) interval of a binomial proportion, found by
  bisection on the binomial tail probabilities (equivalently the beta quantiles).
* :func:`mcnemar_exact`: exact McNemar test of paired correctness, the two-sided binomial test of
  the discordant pairs, ``p = min(1, 2 P[X <= min(b, c)])`` with ``X ~ Bin(b + c, 1/2)``.
* :func:`paired_bootstrap`: percentile interval of a difference of two error rates measured on the
  same images, resampling images with replacement (:data:`BOOTSTRAP_RESAMPLES` resamples, seed
  :data:`BOOTSTRAP_SEED` unless given).
* :func:`calibration`: negative log-likelihood and expected calibration error (:data:`ECE_BINS`
  equal-width bins on the top-1 probability).
* :func:`per_image`: the per-image vectors of one stored prediction file that all of the above
  need (correctness under the pessimistic tie rule, top-1 confidence, probability of the label).
  Unreadable images (the run's images.csv ``error`` column) keep their place in the vectors but
  are marked not ``scored``; every statistic leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from inceval.engine.metrics import label_rank
from inceval.scoring import check_rows_finite, class_positions

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
ECE_BINS = 15
# Smallest positive float16 (2**-24): a stored probability of 0 is read as this before the log,
# which caps one image's NLL at 24 ln 2 = 16.64 nats.
NLL_EPSILON = 2.0 ** -24
_BISECTION_STEPS = 80
_CHUNK_ROWS = 2048


# ----------------------------------------------------------------------------------------------
# Binomial distribution


@lru_cache(maxsize=8)
def _log_choose(n: int) -> np.ndarray:
    """log C(n, j) for j = 0..n (cached: one run has few distinct image counts)."""
    lg = np.array([math.lgamma(j + 1.0) for j in range(n + 1)])
    return lg[n] - lg - lg[::-1]


def _log_sum_exp(values: np.ndarray) -> float:
    if values.size == 0:
        return -math.inf
    top = float(values.max())
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.exp(values - top).sum()))


def _check_counts(k: int, n: int) -> None:
    if int(n) != n or int(k) != k or n < 0 or not 0 <= k <= n:
        raise ValueError(f"need integers 0 <= k <= n, got k={k!r}, n={n!r}")


def binom_log_cdf(k: int, n: int, p: float) -> float:
    """log P[X <= k] for X ~ Bin(n, p), summed exactly over the terms (log-gamma coefficients)."""
    _check_counts(k, n)
    if p <= 0.0 or k == n:
        return 0.0
    if p >= 1.0:
        return -math.inf
    j = np.arange(k + 1)
    terms = _log_choose(n)[: k + 1] + j * math.log(p) + (n - j) * math.log1p(-p)
    return min(0.0, _log_sum_exp(terms))


def binom_log_sf(k: int, n: int, p: float) -> float:
    """log P[X >= k] for X ~ Bin(n, p) (the upper tail, including k)."""
    _check_counts(k, n)
    if k == 0 or p >= 1.0:
        return 0.0
    if p <= 0.0:
        return -math.inf
    j = np.arange(k, n + 1)
    terms = _log_choose(n)[k:] + j * math.log(p) + (n - j) * math.log1p(-p)
    return min(0.0, _log_sum_exp(terms))


def _bisect(decreasing_in_p: bool, tail: Callable[[float], float], target: float) -> float:
    """The p in [0, 1] where the monotone function ``tail(p)`` (a log probability) hits
    ``target``."""
    lo, hi = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = tail(mid) > target
        if above == decreasing_in_p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided interval for a binomial proportion with ``k`` successes in ``n`` trials.

    The bounds are the p at which each tail has probability (1 - confidence) / 2:
    ``P[X >= k | p_low] = alpha/2`` and ``P[X <= k | p_high] = alpha/2`` (0 and 1 at k = 0 and
    k = n). These are the quantiles Beta(alpha/2; k, n-k+1) and Beta(1-alpha/2; k+1, n-k).

    Returns:
        (low, high) as fractions in [0, 1].

    Raises:
        ValueError: counts outside 0 <= k <= n, n = 0, or a confidence outside (0, 1).
    """
    _check_counts(k, n)
    if n == 0:
        raise ValueError("an interval needs at least one trial (n >= 1)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    target = math.log((1.0 - confidence) / 2.0)
    low = 0.0 if k == 0 else _bisect(False, lambda p: binom_log_sf(k, n, p), target)
    high = 1.0 if k == n else _bisect(True, lambda p: binom_log_cdf(k, n, p), target)
    return low, high


def error_interval_pp(wrong: int, images: int,
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """:func:`clopper_pearson` of an error count, in percent."""
    low, high = clopper_pearson(wrong, images, confidence)
    return 100.0 * low, 100.0 * high


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar p-value of ``b`` and ``c`` discordant pairs (two-sided).

    ``p = min(1, 2 P[X <= min(b, c)])`` with ``X ~ Bin(b + c, 1/2)``; 1 when ``b + c = 0``.

    Raises:
        ValueError: negative or non-integer counts.
    """
    if int(b) != b or int(c) != c or b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative integers, got {b!r}, {c!r}")
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * math.exp(binom_log_cdf(min(int(b), int(c)), n, 0.5)))


# ----------------------------------------------------------------------------------------------
# Paired bootstrap


@dataclass(frozen=True)
class PairedDifference:
    """A difference of two error rates on the same images, ``a - b``, in percentage points.

    Attributes:
        images: images paired.
        a_wrong: images ``a`` gets wrong.
        b_wrong: images ``b`` gets wrong.
        only_a_wrong: images wrong for ``a`` and right for ``b``.
        only_b_wrong: images right for ``a`` and wrong for ``b``.
        delta: 100 (a_wrong - b_wrong) / images.
        low: lower end of the bootstrap interval.
        high: upper end.
        p_value: exact McNemar p-value of the discordant pairs.
        resamples: bootstrap resamples drawn.
        seed: seed of the resampling.
        confidence: the interval's nominal coverage.
    """

    images: int
    a_wrong: int
    b_wrong: int
    only_a_wrong: int
    only_b_wrong: int
    delta: float
    low: float
    high: float
    p_value: float
    resamples: int
    seed: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def paired_bootstrap(a_wrong: np.ndarray, b_wrong: np.ndarray, *,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                     confidence: float = CONFIDENCE) -> PairedDifference:
    """Percentile bootstrap interval of ``error(a) - error(b)`` over the same images.

    Each resample draws ``n`` images with replacement and recomputes both error rates on them;
    the interval is the (alpha/2, 1 - alpha/2) quantiles of the ``resamples`` differences.

    Args:
        a_wrong: (n,) bool, image i is wrong for ``a``.
        b_wrong: (n,) bool, the same images for ``b``.
        resamples: bootstrap resamples (>= 1).
        seed: seed of numpy's default generator.
        confidence: nominal coverage in (0, 1).

    Raises:
        ValueError: vectors of different lengths or empty, or bad settings.
    """
    a = np.asarray(a_wrong, dtype=bool)
    b = np.asarray(b_wrong, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two non-empty 1-D vectors of equal length, got {a.shape} and "
                         f"{b.shape}")
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    n = int(a.size)
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    # The difference of a resample depends on each drawn image only through which of three
    # kinds it is (only a wrong: +1, only b wrong: -1, else 0), so drawing the counts of the kinds
    # from the multinomial is the same resampling of images, in O(resamples) instead of
    # O(resamples x n).
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [only_a / n, only_b / n, (n - only_a - only_b) / n],
                             size=int(resamples))
    deltas = 100.0 * (counts[:, 0] - counts[:, 1]) / n
    alpha = 1.0 - confidence
    low, high = np.quantile(deltas, [alpha / 2.0, 1.0 - alpha / 2.0], method="inverted_cdf")
    return PairedDifference(
        images=n, a_wrong=int(a.sum()), b_wrong=int(b.sum()), only_a_wrong=only_a,
        only_b_wrong=only_b, delta=100.0 * (only_a - only_b) / n, low=float(low),
        high=float(high), p_value=mcnemar_exact(only_a, only_b), resamples=int(resamples),
        seed=int(seed), confidence=confidence,
    )


# ----------------------------------------------------------------------------------------------
# Calibration


@dataclass(frozen=True)
class Calibration:
    """Calibration of the stored probabilities on a set of images.

    Attributes:
        images: images scored.
        nll: mean negative log-likelihood of the label, nats per image (probabilities clipped
            below at :data:`NLL_EPSILON`).
        ece: expected calibration error in percent (:data:`ECE_BINS` equal-width bins on the
            top-1 probability).
        clipped: images whose stored label probability was below :data:`NLL_EPSILON`.
    """

    images: int
    nll: float
    ece: float
    clipped: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def calibration(label_prob: np.ndarray, confidence: np.ndarray, top1_correct: np.ndarray,
                bins: int = ECE_BINS) -> Calibration:
    """NLL and ECE from per-image vectors (see :func:`per_image`).

    ECE = sum over bins of |bin| / n x |accuracy(bin) - mean confidence(bin)|, with bins
    [0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1] on the top-1 probability, reported in percent.

    Args:
        label_prob: (n,) probability given to the true label.
        confidence: (n,) top-1 probability.
        top1_correct: (n,) bool, top-1 correct under the pessimistic tie rule.
        bins: number of equal-width bins.

    Raises:
        ValueError: empty or unequal vectors.
    """
    p = np.asarray(label_prob, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(top1_correct, dtype=bool)
    if p.ndim != 1 or p.size == 0 or conf.shape != p.shape or hit.shape != p.shape:
        raise ValueError("need three non-empty 1-D vectors of equal length")
    clipped = p < NLL_EPSILON
    nll = float(-np.log(np.maximum(p, NLL_EPSILON)).mean())
    index = np.minimum(np.floor(conf * bins).astype(np.int64), bins - 1)
    index = np.maximum(index, 0)
    n = p.size
    count = np.bincount(index, minlength=bins)
    hits = np.bincount(index, weights=hit.astype(np.float64), minlength=bins)
    conf_sum = np.bincount(index, weights=conf, minlength=bins)
    # |bin|/n |acc - conf| = |hits - conf_sum| / n, which needs no division by empty bins.
    ece = float(np.abs(hits - conf_sum).sum() / n)
    return Calibration(images=n, nll=nll, ece=100.0 * ece, clipped=int(clipped.sum()))


# ----------------------------------------------------------------------------------------------
# Per-image vectors of a stored prediction file


@dataclass(frozen=True)
class PerImage:
    """What the statistics need of one prediction file, one entry per image (run order).

    Attributes:
        top1_correct: label strictly first (pessimistic tie rule).
        top5_correct: label within the top 5 (pessimistic tie rule).
        confidence: the top-1 probability.
        label_prob: the probability of the label.
        scored: False for unreadable images: their entries are placeholders (not correct, NaN
            probabilities) that no statistic may count; None means every image is scored.
    """

    top1_correct: np.ndarray
    top5_correct: np.ndarray
    confidence: np.ndarray
    label_prob: np.ndarray
    scored: np.ndarray | None = None

    @property
    def scored_mask(self) -> np.ndarray:
        """(n,) bool: True for the images that count (``scored``, all True when None)."""
        if self.scored is None:
            return np.ones(len(self.top1_correct), dtype=bool)
        return self.scored

    def correct(self, k: int) -> np.ndarray:
        """top1_correct or top5_correct (placeholders False where not scored)."""
        if k == 1:
            return self.top1_correct
        if k == 5:
            return self.top5_correct
        raise ValueError(f"k must be 1 or 5, got {k!r}")

    def subset(self, keep: np.ndarray) -> "PerImage":
        """The same vectors restricted to the images where ``keep`` is True."""
        return PerImage(self.top1_correct[keep], self.top5_correct[keep], self.confidence[keep],
                        self.label_prob[keep], None if self.scored is None else self.scored[keep])

    def scored_only(self) -> "PerImage":
        """The vectors of the scored images alone."""
        return self if self.scored is None else self.subset(self.scored)

    def calibration(self) -> Calibration:
        """:func:`calibration` of these images (the scored ones).

        Raises:
            ValueError: no scored image.
        """
        kept = self.scored_only()
        return calibration(kept.label_prob, kept.confidence, kept.top1_correct)


def per_image_from_probs(probs: Any, labels: np.ndarray, chunk_rows: int = _CHUNK_ROWS,
                         classes: np.ndarray | None = None, unreadable: np.ndarray | None = None,
                         where: Any = "predictions") -> PerImage:
    """:class:`PerImage` of an (N, C) probability matrix (read ``chunk_rows`` rows at a time).

    With ``classes`` (sorted indices; ImageNet-A/R), only those columns count, renormalised to
    sum to 1 (a softmax over those classes' logits would give the same for one view), and every
    label must be one of them. Rows where ``unreadable`` (N,) is True are not scored, whatever
    they hold (NaN in a store).

    Raises:
        InceValError: a non-finite row not marked unreadable (the message names ``where``).
    """
    labels = np.asarray(labels)
    if classes is not None:
        labels, inside = class_positions(labels, classes)
        if not inside.all():
            raise ValueError("a label is not one of the scored classes")
    n = int(labels.shape[0])
    skip = None if unreadable is None or not np.any(unreadable) else np.asarray(unreadable, bool)
    rank = np.empty(n, dtype=np.int64)
    confidence = np.empty(n, dtype=np.float64)
    label_prob = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk_rows):
        # float64 holds float16/float32 stored values exactly: ranks equal the store's scoring.
        block = np.asarray(probs[start:start + chunk_rows], dtype=np.float64)
        stop = start + block.shape[0]
        check_rows_finite(block, start, skip, where)
        if skip is not None and skip[start:stop].any():
            # A placeholder row keeps the arrays aligned; its entries are marked not scored.
            block[skip[start:stop]] = 1.0
        if classes is not None:
            block = block[:, classes]
            block /= block.sum(axis=1, keepdims=True)
        y = labels[start:stop]
        rank[start:stop] = label_rank(block, y)
        confidence[start:stop] = block.max(axis=1)
        label_prob[start:stop] = block[np.arange(block.shape[0]), y]
    if skip is None:
        return PerImage(rank < 1, rank < 5, confidence, label_prob)
    scored = ~skip[:n]
    confidence[~scored] = np.nan
    label_prob[~scored] = np.nan
    return PerImage((rank < 1) & scored, (rank < 5) & scored, confidence, label_prob, scored)


def per_image(run: Any, model: str, protocol: str, *,
              allow_incomplete: bool = False) -> PerImage:
    """:class:`PerImage` of a stored file (``run`` is an :class:`inceval.store.RunReader`).

    With ``allow_incomplete`` only the rows written so far are covered. The run's unreadable
    images are marked not scored.

    Raises:
        InceValError: as :meth:`inceval.store.RunReader.probabilities`, or a non-finite row of
            an image images.csv marks readable (a damaged run).
    """
    probs = run.probabilities(model, protocol, allow_incomplete=allow_incomplete)
    rows = probs.shape[0]
    return per_image_from_probs(probs, run.labels[:rows],
                                classes=getattr(run, "scored_classes", None),
                                unreadable=run.unreadable[:rows],
                                where=run.status(model, protocol).path)


__all__ = [
    "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "CONFIDENCE", "Calibration", "ECE_BINS",
    "NLL_EPSILON", "PairedDifference", "PerImage", "binom_log_cdf", "binom_log_sf",
    "calibration", "clopper_pearson", "error_interval_pp", "mcnemar_exact", "paired_bootstrap",
    "per_image", "per_image_from_probs",
]
