"""Scoring of stored predictions (inceval.scoring), against counts worked out by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inceval.engine.metrics import TopkTally
from inceval.scoring import SUBSETS, Score, score_from_tally, tally_subsets
from inceval.store import Score as StoreScore


@dataclass(frozen=True)
class Entry:
    """Stand-in for inceval.store.EntryStatus (only the fields scoring reads)."""

    model: str
    protocol: str
    protocol_version: int
    complete: bool


def ranked_row(label: int, rank: int, classes: int = 7) -> list[float]:
    """A probability row whose label has exactly ``rank`` classes above it, no ties.

    Classes other than the label get 2, 3, 4, ... units in class order; the label gets one unit
    more than the rank-th largest of them (or 1 unit for the last place).
    """
    others = [c for c in range(classes) if c != label]
    units = {c: 2 * (i + 1) for i, c in enumerate(others)}  # 2, 4, 6, ... all even
    ordered = sorted(units.values(), reverse=True)
    units[label] = ordered[rank - 1] - 1 if rank else ordered[0] + 1  # odd: never tied
    total = sum(units.values())
    return [units[c] / total for c in range(classes)]


# Six rows. Label ranks 0, 1, 5, 0, 6, 2 (by construction of ranked_row); rows 1 and 4 are
# blacklisted.
#   all (6 rows):            top-1 correct: ranks 0, 0 -> 2, wrong 4; top-5: ranks < 5 -> 0,1,0,2
#                            = 4 correct, wrong 2 (ranks 5 and 6).
#   non-blacklisted (rows 0, 2, 3, 5; ranks 0, 5, 0, 2): top-1 wrong 2, top-5 wrong 1 (rank 5).
LABELS = np.array([3, 0, 6, 2, 5, 1])
RANKS = [0, 1, 5, 0, 6, 2]
BLACK = np.array([False, True, False, False, True, False])
PROBS = np.array([ranked_row(y, r) for y, r in zip(LABELS.tolist(), RANKS)], dtype=np.float32)


def chunks(rows: int) -> list[tuple[int, np.ndarray]]:
    """(start, block) pairs of ``rows`` rows each, as RunReader.iter_chunks yields them."""
    return [(s, PROBS[s:s + rows]) for s in range(0, len(PROBS), rows)]


def test_ranked_rows_have_the_intended_ranks() -> None:
    """The fixture itself, checked with a plain count (no inceval code)."""
    for row, label, rank in zip(PROBS.tolist(), LABELS.tolist(), RANKS):
        assert sum(p > row[label] for p in row) == rank
        assert sum(p == row[label] for p in row) == 1


def test_tally_subsets_counts_all_and_non_blacklisted_rows_in_any_chunking() -> None:
    """Counts of the table above, for chunks of 1, 4 (uneven) and 6 rows."""
    for rows in (1, 4, 6):
        tallies = tally_subsets(chunks(rows), LABELS, BLACK)
        assert list(tallies) == list(SUBSETS) == ["all", "non-blacklisted"]
        assert (tallies["all"].images, tallies["all"].correct) == (6, {1: 2, 5: 4})
        assert (tallies["non-blacklisted"].images, tallies["non-blacklisted"].correct) == \
            (4, {1: 2, 5: 3})
        assert tallies["all"].ks == (1, 5)


def test_tally_subsets_of_no_chunks_is_empty() -> None:
    """No rows written: both tallies are empty (the store refuses to score that)."""
    tallies = tally_subsets([], LABELS, BLACK)
    assert tallies["all"].images == 0 and tallies["non-blacklisted"].images == 0


def test_score_from_tally_fills_every_field() -> None:
    """Score of the 'all' subset: 6 images, 4 / 2 wrong -> 66.67 % / 33.33 %."""
    tally = tally_subsets(chunks(4), LABELS, BLACK)["all"]
    score = score_from_tally(Entry("v4", "144", 3, False), "all", tally)
    assert score == Score(model="v4", protocol="144", protocol_version=3, subset="all", images=6,
                          top1_error=100.0 * 4 / 6, top5_error=100.0 * 2 / 6, top1_wrong=4,
                          top5_wrong=2, top1_tie_dependent=0, top5_tie_dependent=0,
                          complete=False)


def test_score_counts_tie_dependent_rows() -> None:
    """Two rows: label tied for first (top-1 wrong, tie-dependent), label clear first.

    Row 0: (0.4, 0.4, 0.2), label 1 -> class 0 ties: pessimistic rank 1, optimistic 0.
    Row 1: (0.1, 0.2, 0.7), label 2 -> rank 0. top-1 wrong 1 (50 %), tie-dependent 1; top-5 0.
    """
    tally = TopkTally((1, 5))
    tally.add(np.array([[0.4, 0.4, 0.2], [0.1, 0.2, 0.7]]), np.array([1, 2]))
    score = score_from_tally(Entry("m", "1", 1, True), "non-blacklisted", tally)
    assert (score.images, score.top1_wrong, score.top1_error, score.top1_tie_dependent) == \
        (2, 1, 50.0, 1)
    assert (score.top5_wrong, score.top5_error, score.top5_tie_dependent) == (0, 0.0, 0)
    assert (score.subset, score.complete) == ("non-blacklisted", True)


def test_empty_subset_scores_nan_errors_and_zero_counts() -> None:
    """A subset without images (every image blacklisted): NaN errors, all counts 0."""
    score = score_from_tally(Entry("ens", "12", 2, True), "non-blacklisted", TopkTally((1, 5)))
    assert (score.model, score.protocol, score.protocol_version, score.subset) == \
        ("ens", "12", 2, "non-blacklisted")
    assert (score.images, score.top1_wrong, score.top5_wrong, score.top1_tie_dependent,
            score.top5_tie_dependent, score.complete) == (0, 0, 0, 0, 0, True)
    assert isinstance(score.top1_error, float) and math.isnan(score.top1_error)
    assert isinstance(score.top5_error, float) and math.isnan(score.top5_error)
    incomplete = score_from_tally(Entry("ens", "12", 2, False), "all", TopkTally((1, 5)))
    assert incomplete.complete is False and incomplete.subset == "all"


def test_score_to_dict_is_plain_fields_in_order() -> None:
    """to_dict gives every field under its own name, in declaration order."""
    score = Score("v3", "10", 1, "all", 8, 12.5, 0.0, 1, 0, 1, 0, False)
    assert score.to_dict() == {
        "model": "v3", "protocol": "10", "protocol_version": 1, "subset": "all", "images": 8,
        "top1_error": 12.5, "top5_error": 0.0, "top1_wrong": 1, "top5_wrong": 0,
        "top1_tie_dependent": 1, "top5_tie_dependent": 0, "complete": False,
    }
    assert list(score.to_dict()) == ["model", "protocol", "protocol_version", "subset", "images",
                                     "top1_error", "top5_error", "top1_wrong", "top5_wrong",
                                     "top1_tie_dependent", "top5_tie_dependent", "complete"]
    assert Score("a", "b", 1, "all", 1, 0.0, 0.0, 0, 0, 0, 0).complete is True


def test_store_re_exports_the_score_class() -> None:
    """inceval.store.Score is the scoring module's class (callers import it from the store)."""
    assert StoreScore is Score
