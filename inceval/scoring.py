"""Scoring of stored predictions: top-1/top-5 errors on all images and on the non-blacklisted ones.

Pure logic over arrays, kept apart from the I/O of :mod:`inceval.store` (which re-exports
:class:`Score` and :data:`SUBSETS`), so it can be mutation-tested on its own. The tie rule is
:data:`inceval.engine.metrics.TIE_RULE`.

Unreadable images (a run's images.csv ``error`` column) have NaN rows in every prediction file.
They are neither right nor wrong: scoring leaves them out and counts them apart
(:attr:`Score.unreadable`). A non-finite row of an image *not* marked unreadable means a damaged
run (:func:`check_rows_finite`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Protocol

import numpy as np

from inceval.engine.metrics import TopkTally
from inceval.errors import InceValError

SUBSETS = ("all", "non-blacklisted")
SCORED_KS = (1, 5)


class ScoredEntry(Protocol):
    """What scoring needs to know of a prediction file (:class:`inceval.store.EntryStatus`)."""

    @property
    def model(self) -> str: ...

    @property
    def protocol(self) -> str: ...

    @property
    def protocol_version(self) -> int: ...

    @property
    def complete(self) -> bool: ...


@dataclass(frozen=True)
class Score:
    """Top-1/top-5 error of one prediction file on one subset of the images.

    Attributes:
        model: model (or ensemble) name.
        protocol: protocol name.
        protocol_version: its version.
        subset: "all" or "non-blacklisted".
        images: images scored.
        top1_error: percent.
        top5_error: percent.
        top1_wrong: images whose label is not the top class.
        top5_wrong: images whose label is outside the top 5.
        top1_tie_dependent: of ``top1_wrong``, images that are wrong only because of a tie (the
            tie rule is :data:`inceval.engine.metrics.TIE_RULE`).
        top5_tie_dependent: the same for top 5.
        complete: False when scored on the rows written so far of an incomplete file.
        unreadable: images of this subset left out because they could not be read (not in
            ``images``).
    """

    model: str
    protocol: str
    protocol_version: int
    subset: str
    images: int
    top1_error: float
    top5_error: float
    top1_wrong: int
    top5_wrong: int
    top1_tie_dependent: int
    top5_tie_dependent: int
    complete: bool = True
    unreadable: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields, in order; ``unreadable`` only when not 0, so the
        records of runs whose every image was read are the same as before it existed."""
        record = asdict(self)
        if not self.unreadable:
            del record["unreadable"]
        return record


def tally_subsets(
    chunks: Iterable[tuple[int, np.ndarray]], labels: np.ndarray, blacklisted: np.ndarray,
    unreadable: np.ndarray | None = None,
) -> dict[str, TopkTally]:
    """Top-1/top-5 counts of row blocks, on all rows and on the rows not blacklisted.

    Args:
        chunks: ``(start_row, probabilities of rows start_row..)`` blocks, as
            :meth:`inceval.store.RunReader.iter_chunks` yields them.
        labels: (N,) class index of every row of the file.
        blacklisted: (N,) bool, True for rows left out of ``"non-blacklisted"``.
        unreadable: (N,) bool, True for rows left out of both subsets (images that could not be
            read; their rows hold NaN). None: every row is scored.

    Returns:
        subset name (:data:`SUBSETS`) -> its tally.
    """
    tallies = {subset: TopkTally(SCORED_KS) for subset in SUBSETS}
    for start, block in chunks:
        stop = start + block.shape[0]
        y = labels[start:stop]
        keep = ~blacklisted[start:stop]
        if unreadable is not None and unreadable[start:stop].any():
            readable = ~unreadable[start:stop]
            keep &= readable
            tallies["all"].add(block[readable], y[readable])
        else:
            tallies["all"].add(block, y)
        tallies["non-blacklisted"].add(block[keep], y[keep])
    return tallies


def unreadable_counts(unreadable: np.ndarray, blacklisted: np.ndarray) -> dict[str, int]:
    """Unreadable images of each subset (:data:`SUBSETS`) among the rows given."""
    return {"all": int(unreadable.sum()),
            "non-blacklisted": int((unreadable & ~blacklisted).sum())}


def check_rows_finite(block: np.ndarray, start: int, unreadable: np.ndarray | None,
                      where: Any) -> None:
    """Refuse non-finite rows of images that images.csv marks readable (a damaged run).

    Args:
        block: rows ``start..`` of a prediction file.
        start: index of the block's first row.
        unreadable: (N,) bool over the whole file, or None when no image is unreadable.
        where: the file, for the message.

    Raises:
        InceValError: naming the first such rows.
    """
    finite = np.isfinite(block).all(axis=1)
    if finite.all():
        return
    bad = ~finite
    if unreadable is not None:
        bad &= ~unreadable[start:start + block.shape[0]]
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    shown = ", ".join(str(start + int(r)) for r in rows[:5])
    more = f" and {rows.size - 5} more" if rows.size > 5 else ""
    what = "NaN" if np.isnan(block[rows]).any() else "infinite values"
    noun, verb, pronoun = ("rows", "hold", "them") if rows.size > 1 else ("row", "holds", "it")
    raise InceValError(f"{where}: {noun} {shown}{more} {verb} {what} but images.csv marks "
                       f"{pronoun} readable; the run directory is damaged: restore it from a "
                       "copy or rerun")


def score_from_tally(entry: ScoredEntry, subset: str, tally: TopkTally,
                     unreadable: int = 0) -> Score:
    """The :class:`Score` of one subset's tally (NaN errors when the subset has no images);
    ``unreadable`` is the subset's images left out as unreadable."""
    if tally.images == 0:
        return Score(entry.model, entry.protocol, entry.protocol_version, subset, 0,
                     float("nan"), float("nan"), 0, 0, 0, 0, entry.complete, unreadable)
    errors = tally.errors()
    return Score(
        model=entry.model,
        protocol=entry.protocol,
        protocol_version=entry.protocol_version,
        subset=subset,
        images=tally.images,
        top1_error=errors[1],
        top5_error=errors[5],
        top1_wrong=tally.images - tally.correct[1],
        top5_wrong=tally.images - tally.correct[5],
        top1_tie_dependent=tally.tie_dependent[1],
        top5_tie_dependent=tally.tie_dependent[5],
        complete=entry.complete,
        unreadable=unreadable,
    )


def class_positions(labels: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each label's position among the sorted ``classes``, and whether it is one of them.

    Positions of labels outside ``classes`` are meaningless; check the second array.
    """
    positions = np.searchsorted(classes, labels)
    inside = (positions < classes.size) & (classes[np.minimum(positions, classes.size - 1)] == labels)
    return positions.astype(np.int64), inside


def restrict_to_classes(chunks: Iterable[tuple[int, np.ndarray]], labels: np.ndarray,
                        classes: np.ndarray, where: Any = "run"
                        ) -> tuple[Iterator[tuple[int, np.ndarray]], np.ndarray]:
    """Keep only the columns of ``classes`` and renumber the labels to positions among them.

    This is the ImageNet-A/R protocol: top-k is taken among the dataset's 200 classes.

    Raises:
        InceValError: a label outside ``classes`` (such an image cannot be scored this way).
    """
    positions, inside = class_positions(labels, classes)
    if not inside.all():
        row = int(np.flatnonzero(~inside)[0])
        raise InceValError(f"{where}: image {row} has label {int(labels[row])}, which is not one of "
                           "the run's scored classes (data.scored_classes); the run is damaged")
    return ((start, block[:, classes]) for start, block in chunks), positions
