"""Pure scoring logic for unreadable images: exclusion, counts, the NaN-row check (issue 8).

Fast and without files, so that mutation testing of inceval/scoring.py can use it. Expected
values are counted by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from inceval.errors import InceValError
from inceval.scoring import (Score, check_rows_finite, score_from_tally, tally_subsets,
                             unreadable_counts)
from tests.fixtures.factory import ranked_probs

# Six images, four classes. Ranks 0 1 0 3 0 2: top-1 wrong 1, 3, 5; top-5 never wrong.
LABELS = np.array([0, 1, 2, 3, 0, 1])
PROBS = ranked_probs(LABELS.tolist(), [0, 1, 0, 3, 0, 2], 4)
BLACK = np.array([False, True, False, False, True, False])
UNREADABLE = np.array([False, False, False, True, True, False])


class Entry:
    model, protocol, protocol_version, complete = "v3", "1", 2, True


def _blocks(probs: np.ndarray, rows: int) -> list[tuple[int, np.ndarray]]:
    return [(s, probs[s:s + rows]) for s in range(0, len(probs), rows)]


@pytest.mark.parametrize("rows", [1, 2, 4, 6])
def test_tally_leaves_unreadable_rows_out_of_both_subsets_in_any_chunking(rows: int) -> None:
    probs = PROBS.copy()
    probs[UNREADABLE] = np.nan  # as stored; they must never reach the ranking
    tallies = tally_subsets(_blocks(probs, rows), LABELS, BLACK, UNREADABLE)
    # All: rows 0 1 2 5 scored; top-1 right 0 2 -> 2 of 4.
    assert (tallies["all"].images, tallies["all"].correct[1], tallies["all"].correct[5]) == \
        (4, 2, 4)
    # Non-blacklisted: rows 0 2 5 (1 and 4 blacklisted, 3 and 4 unreadable); right 0 2.
    assert (tallies["non-blacklisted"].images, tallies["non-blacklisted"].correct[1]) == (3, 2)


def test_tally_without_a_mask_or_with_an_empty_one_scores_every_row() -> None:
    for mask in (None, np.zeros(6, dtype=bool)):
        tallies = tally_subsets(_blocks(PROBS, 4), LABELS, BLACK, mask)
        assert (tallies["all"].images, tallies["all"].correct[1]) == (6, 3)
        assert (tallies["non-blacklisted"].images, tallies["non-blacklisted"].correct[1]) == (4, 2)


def test_unreadable_counts_per_subset() -> None:
    # Unreadable 3 and 4; 4 is blacklisted.
    assert unreadable_counts(UNREADABLE, BLACK) == {"all": 2, "non-blacklisted": 1}
    assert unreadable_counts(np.zeros(6, bool), BLACK) == {"all": 0, "non-blacklisted": 0}


def test_score_from_tally_carries_the_unreadable_count() -> None:
    tallies = tally_subsets(_blocks(PROBS, 6), LABELS, BLACK, UNREADABLE)
    score = score_from_tally(Entry(), "all", tallies["all"], 2)
    assert score == Score("v3", "1", 2, "all", 4, 50.0, 0.0, 2, 0, 0, 0, True, 2)
    empty = score_from_tally(Entry(), "all", tally_subsets([], LABELS, BLACK)["all"], 6)
    assert (empty.images, empty.unreadable) == (0, 6) and math.isnan(empty.top1_error)
    assert score_from_tally(Entry(), "all", tallies["all"]).unreadable == 0


def test_score_to_dict_names_unreadable_last_and_only_when_some_are() -> None:
    score = Score("v3", "1", 2, "all", 4, 50.0, 0.0, 2, 0, 0, 0, True, 2)
    record = score.to_dict()
    assert list(record)[-2:] == ["complete", "unreadable"] and record["unreadable"] == 2
    assert "unreadable" not in Score("v3", "1", 2, "all", 4, 50.0, 0.0, 2, 0, 0, 0).to_dict()


def test_finite_rows_and_marked_nan_rows_pass_the_check() -> None:
    check_rows_finite(PROBS, 0, None, "f.npy")
    block = PROBS.copy()
    block[[3, 4]] = np.nan
    check_rows_finite(block, 0, UNREADABLE, "f.npy")
    check_rows_finite(block[2:], 2, UNREADABLE, "f.npy")  # rows numbered from the block's start


def test_a_nan_row_not_marked_unreadable_is_a_damaged_run() -> None:
    block = PROBS.copy()
    block[[3, 4]] = np.nan
    with pytest.raises(InceValError) as info:
        check_rows_finite(block[2:], 2, np.zeros(6, bool), "f.npy")
    assert str(info.value) == ("f.npy: rows 3, 4 hold NaN but images.csv marks them readable; "
                               "the run directory is damaged: restore it from a copy or rerun")
    with pytest.raises(InceValError, match=r"^f\.npy: row 3 holds NaN but images\.csv marks it "):
        check_rows_finite(block, 0, np.array([False] * 4 + [True, False]), "f.npy")
    with pytest.raises(InceValError, match=r"^f\.npy: rows 3, 4 hold NaN"):
        check_rows_finite(block, 0, None, "f.npy")


def test_infinite_values_and_many_rows_are_named() -> None:
    block = PROBS.copy()
    block[1, 2] = np.inf
    with pytest.raises(InceValError, match=r"row 1 holds infinite values but"):
        check_rows_finite(block, 0, None, "f.npy")
    many = np.full((8, 4), np.nan)
    with pytest.raises(InceValError, match=r"rows 10, 11, 12, 13, 14 and 3 more hold NaN"):
        check_rows_finite(many, 10, None, "f.npy")
