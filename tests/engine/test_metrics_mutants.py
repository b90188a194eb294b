"""Top-k metrics: float16 ties that decide the outcome, and the exact refusals (mutation survivors).

Every expected number is worked out by hand in a comment.
"""

from __future__ import annotations

import numpy as np
import pytest

from inceval.engine.metrics import TopkTally, label_rank, topk_errors


def test_float16_ties_decide_the_outcome() -> None:
    """Rows whose float16 rounding ties the label with the class just above it.

    Row 0, a softmax of logits (0.0002, 0, -20, -20, -20): p0 = e^0.0002 / (e^0.0002 + 1 + ...)
    = 0.50005 and p1 = 0.49995; both round to float16 0.5 (spacing 2**-12 below 0.5, 2**-11
    above). Label 0 is first in float64 and tied first in float16: top-1 wrong (pessimistic),
    right (optimistic).
    Row 1, label 4: 0.3, 0.25, 0.2 are above it in any precision; class 3 (0.12502) is above it
    (0.12498) in float64, and both round to float16 0.125. Rank 4 in float64 and pessimistic
    float16, 3 optimistic: the tie decides top-4, not top-5.
    An optimistic or index-order scorer fails every count below.
    """
    row0 = np.exp([0.0002, 0.0, -20.0, -20.0, -20.0])
    row0 /= row0.sum()
    row1 = np.array([0.3, 0.25, 0.2, 0.12502, 0.12498])
    probs64 = np.stack([row0, row1])
    probs16 = probs64.astype(np.float16)
    labels = np.array([0, 4])
    assert probs64[0, 0] > probs64[0, 1] and probs16[0, 0] == probs16[0, 1] == 0.5
    assert probs64[1, 3] > probs64[1, 4] and probs16[1, 3] == probs16[1, 4]
    # float64: label 0 first (rank 0); label 4 fifth (classes 0..3 above: rank 4).
    assert label_rank(probs64, labels).tolist() == [0, 4]
    # float16, pessimistic: row 0 has class 1 tied -> rank 1; row 1 is still rank 4.
    assert label_rank(probs16, labels).tolist() == [1, 4]
    # optimistic: the tied class no longer counts -> ranks 0 and 3.
    assert label_rank(probs16, labels, ties="optimistic").tolist() == [0, 3]
    # top-1: row 0 wrong only because of the tie; row 1 wrong anyway -> 100 % (optimistic 50 %).
    assert topk_errors(probs16, labels, (1, 4, 5)) == {1: 100.0, 4: 50.0, 5: 0.0}
    assert topk_errors(probs16, labels, (1, 4, 5), ties="optimistic") == \
        {1: 50.0, 4: 0.0, 5: 0.0}
    tally = TopkTally((1, 4, 5))
    tally.add(probs16, labels)
    assert tally.correct == {1: 0, 4: 1, 5: 2}
    assert tally.tie_dependent == {1: 1, 4: 1, 5: 0}


def test_ranks_are_int64_for_any_input_dtype() -> None:
    """Ranks are int64 whatever the label dtype (uint8 labels, float32 or float16 probs)."""
    probs = np.array([[0.1, 0.6, 0.3]], dtype=np.float16)
    rank = label_rank(probs, np.array([2], dtype=np.uint8))
    assert rank.dtype == np.int64 and rank.tolist() == [1]


@pytest.mark.parametrize("labels, message", [
    ([0, 3], "labels must lie in 0..2, got 0..3"),
    ([-1, 2], "labels must lie in 0..2, got -1..2"),
])
def test_label_range_message_names_the_valid_range(labels: list[int], message: str) -> None:
    """Three classes: valid labels are 0..2, and the message shows the offending min..max."""
    probs = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError) as info:
        label_rank(probs, np.array(labels))
    assert str(info.value) == message


def test_non_finite_probabilities_message() -> None:
    """NaN and infinity are refused with one fixed message."""
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError) as info:
            label_rank(np.array([[0.5, bad]]), np.array([0]))
        assert str(info.value) == "probs contain NaN or infinity"


def test_tally_refusals() -> None:
    """No ks, an unknown tie rule in add(), and errors() before any row: exact messages."""
    with pytest.raises(ValueError) as info:
        TopkTally(())
    assert str(info.value) == "ks must name at least one k"
    tally = TopkTally((1,))
    with pytest.raises(ValueError) as info:
        tally.add(np.array([[1.0]]), np.array([0]), ties="random")  # type: ignore[arg-type]
    assert str(info.value) == "ties must be 'pessimistic' or 'optimistic', got 'random'"
    assert tally.images == 0
    with pytest.raises(ValueError) as info:
        tally.errors()
    assert str(info.value) == "no images to score"
