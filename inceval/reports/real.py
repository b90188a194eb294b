"""ReaL accuracy ("Are we done with ImageNet?", Beyer et al. 2020) from stored predictions.

ReaL relabels the 50,000 ILSVRC-2012 validation images with *sets* of acceptable classes; 3,163
images have an empty set and are excluded. A top-k prediction is correct when one of its k
classes is in the image's set.

Ties follow inceval's pessimistic rule (:mod:`inceval.engine.metrics`), extended to sets: an image
is correct at k only if *every* top-k selection contains an acceptable class, i.e. when fewer than
k unacceptable classes have a probability at least that of the best acceptable class. For a set
of one class this is exactly the rule of the standard errors.

Nothing here runs a model: the stored per-image probabilities are rescored against the bundled
labels (inceval/labelsets/SOURCES.md). Images the run could not read (images.csv ``error``
column) are left out and counted apart from the images without a ReaL label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from inceval.data import builtin
from inceval.data.scan import image_number
from inceval.errors import InceValError

REAL_KS = (1, 5)


@dataclass(frozen=True)
class RealScore:
    """ReaL top-1/top-5 error of one prediction file.

    Attributes:
        model: model (or ensemble) name.
        protocol: protocol name.
        images: images scored (non-empty ReaL set).
        excluded: images of the run left out because their ReaL set is empty.
        top1_error: percent.
        top5_error: percent.
        top1_wrong, top5_wrong: images counted wrong.
        top1_tie_dependent, top5_tie_dependent: of those, images wrong only because of a tie.
        unreadable: images of the run left out because they could not be read (not counted in
            ``excluded``).
    """

    model: str
    protocol: str
    images: int
    excluded: int
    top1_error: float
    top5_error: float
    top1_wrong: int = 0
    top5_wrong: int = 0
    top1_tie_dependent: int = 0
    top5_tie_dependent: int = 0
    unreadable: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``unreadable`` only when not 0)."""
        record = asdict(self)
        if not self.unreadable:
            del record["unreadable"]
        return record


def real_sets_of_paths(paths: Sequence[str], where: str) -> list[frozenset[int]]:
    """The ReaL set of every image, found by the ILSVRC-2012 number in its file name.

    Raises:
        InceValError: an image that is not ILSVRC2012_val_%08d (1..50,000): ReaL labels exist
            only for the ILSVRC-2012 validation images.
    """
    labels = builtin.real_labels()
    sets = []
    for path in paths:
        number = image_number(path)
        if number is None or not 1 <= number <= len(labels):
            raise InceValError(f"{where}: image {path} is not an ILSVRC2012_val_%08d file; ReaL "
                               "labels exist only for the 50,000 ILSVRC-2012 validation images")
        sets.append(labels[number - 1])
    return sets


def real_correct(probs: np.ndarray, sets: Sequence[frozenset[int]], k: int, *,
                 ties: str = "pessimistic") -> np.ndarray:
    """Bool per row: whether its top k holds an acceptable class (rows with a non-empty set).

    Args:
        probs: (N, C) probabilities.
        sets: N non-empty sets of acceptable class indices.
        k: top-k.
        ties: "pessimistic" (inceval's rule: unacceptable classes tied with the best acceptable
            one rank above it) or "optimistic" (they rank below), to count tie-dependent rows.
    """
    at_least, above = _rivals(probs, sets)
    return (at_least if ties == "pessimistic" else above) < k


def _rivals(probs: np.ndarray, sets: Sequence[frozenset[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the unacceptable classes at least as probable as the best acceptable one, and
    those strictly more probable."""
    probs = np.asarray(probs, dtype=np.float32)
    acceptable = np.zeros(probs.shape, dtype=bool)
    for row, classes in enumerate(sets):
        acceptable[row, list(classes)] = True
    best = np.where(acceptable, probs, -np.inf).max(axis=1, keepdims=True)
    return (((probs >= best) & ~acceptable).sum(axis=1),
            ((probs > best) & ~acceptable).sum(axis=1))


def real_score(chunks: Iterable[tuple[int, np.ndarray]], sets: Sequence[frozenset[int]],
               model: str, protocol: str, unreadable: np.ndarray | None = None) -> RealScore:
    """Score row blocks ``(start, probabilities)`` against per-row ReaL sets.

    Rows where ``unreadable`` (N,) is True are left out and counted in ``RealScore.unreadable``.

    Raises:
        InceValError: no image of the run has a ReaL label.
    """
    correct = {k: 0 for k in REAL_KS}
    tie_dependent = {k: 0 for k in REAL_KS}
    scored = excluded = left_out = 0
    for start, block in chunks:
        rows = list(range(start, start + block.shape[0]))
        if unreadable is not None:
            readable = [row for row in rows if not unreadable[row]]
            left_out += len(rows) - len(readable)
            rows = readable
        keep = [i for i, row in enumerate(rows) if sets[row]]
        excluded += len(rows) - len(keep)
        if not keep:
            continue
        at_least, above = _rivals(block[[rows[i] - start for i in keep]],
                                  [sets[rows[i]] for i in keep])
        for k in REAL_KS:
            right, right_if_optimistic = at_least < k, above < k
            correct[k] += int(right.sum())
            tie_dependent[k] += int((right_if_optimistic & ~right).sum())
        scored += len(keep)
    if scored == 0:
        why = (f"{excluded} have an empty set and {left_out} could not be read" if left_out
               else f"all {excluded} have an empty set")
        raise InceValError(f"no image of {model}/{protocol} has a ReaL label ({why}); nothing "
                           "to score")
    wrong = {k: scored - correct[k] for k in REAL_KS}
    return RealScore(model, protocol, scored, excluded, 100.0 * wrong[1] / scored,
                     100.0 * wrong[5] / scored, wrong[1], wrong[5], tie_dependent[1],
                     tie_dependent[5], left_out)


def score_run_real(run: Any, *, allow_incomplete: bool = False) -> list[RealScore]:
    """ReaL scores of every (model, protocol) of a stored ImageNet run (:class:`RunReader`).

    Raises:
        InceValError: a run of another evaluation set, or images outside ILSVRC-2012 validation.
    """
    if run.dataset != "imagenet":
        raise InceValError(f"run {run.run_dir} holds {run.dataset} images; ReaL labels are for the "
                           "ILSVRC-2012 validation images only: drop --real for it")
    sets = real_sets_of_paths(run.images["path"].tolist(), f"run {run.run_dir}")
    unreadable = run.unreadable if run.num_unreadable else None
    return [real_score(run.iter_chunks(model, protocol, allow_incomplete=allow_incomplete), sets,
                       model, protocol, unreadable)
            for model, protocol in run.entries()]
