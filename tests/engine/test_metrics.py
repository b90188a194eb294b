"""Top-k metrics against hand-computed cases and a plain-Python sorted() reference, with ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inceval.engine.metrics import TIE_RULE, TopkTally, label_rank, topk_correct, topk_errors


def reference_rank(row: list[float], label: int, ties: str) -> int:
    """Position of ``label`` after sorting classes by descending probability.

    Pessimistic: the label goes after every class tied with it; optimistic: before them.
    """
    label_last = ties == "pessimistic"
    order = sorted(range(len(row)),
                   key=lambda c: (-row[c], (c == label) if label_last else (c != label)))
    return order.index(label)


def reference_errors(probs: np.ndarray, labels: np.ndarray, ks: tuple[int, ...],
                     ties: str) -> dict[int, float]:
    rows = probs.tolist()
    ranks = [reference_rank(row, int(y), ties) for row, y in zip(rows, labels)]
    return {k: 100.0 * sum(r >= k for r in ranks) / len(ranks) for k in ks}


def test_tie_rule_is_pessimistic() -> None:
    assert TIE_RULE == "pessimistic"


def test_hand_computed_ranks_and_errors() -> None:
    probs = np.array([
        [0.5, 0.3, 0.2],   # label 0: clear first
        [0.2, 0.2, 0.6],   # label 1: tied with class 0 behind class 2
        [0.4, 0.4, 0.2],   # label 0: tied for first
        [0.1, 0.3, 0.6],   # label 0: last
    ])
    labels = np.array([0, 1, 0, 0])
    assert label_rank(probs, labels).tolist() == [0, 2, 1, 2]
    assert label_rank(probs, labels, ties="optimistic").tolist() == [0, 1, 0, 2]
    assert topk_correct(probs, labels, 1).tolist() == [True, False, False, False]
    assert topk_correct(probs, labels, 2).tolist() == [True, False, True, False]
    assert topk_correct(probs, labels, 3).tolist() == [True, True, True, True]
    assert topk_errors(probs, labels, ks=(1, 2, 3)) == {1: 75.0, 2: 50.0, 3: 0.0}
    assert topk_errors(probs, labels, ks=(1, 2), ties="optimistic") == {1: 50.0, 2: 25.0}


def test_uniform_output_scores_all_wrong() -> None:
    probs = np.full((5, 10), 0.1)
    labels = np.arange(5)
    assert topk_errors(probs, labels, ks=(1, 5, 9, 10)) == {1: 100.0, 5: 100.0, 9: 100.0,
                                                           10: 0.0}


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
@pytest.mark.parametrize("levels", [4, 16, 1000])
def test_matches_sorted_reference_with_quantised_ties(ties: str, levels: int) -> None:
    rng = np.random.default_rng(levels)
    probs = np.round(rng.random((300, 20)) * levels) / levels  # coarse levels force many ties
    labels = rng.integers(0, 20, 300)
    ks = (1, 2, 5, 20)
    assert topk_errors(probs, labels, ks, ties=ties) == pytest.approx(
        reference_errors(probs, labels, ks, ties), abs=1e-12)
    for k in ks:
        expected = [reference_rank(r, int(y), ties) < k for r, y in zip(probs.tolist(), labels)]
        assert topk_correct(probs, labels, k, ties=ties).tolist() == expected
    if levels == 4:  # the rule must actually matter on this data
        assert topk_errors(probs, labels, (1,), ties="pessimistic")[1] > \
            topk_errors(probs, labels, (1,), ties="optimistic")[1]


def test_float16_softmax_ties_match_reference() -> None:
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 3, (200, 1000))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float16)
    labels = rng.integers(0, 1000, 200)
    expected = reference_errors(probs.astype(np.float64), labels, (1, 5), "pessimistic")
    assert topk_errors(probs, labels) == pytest.approx(expected, abs=1e-12)


def test_torch_tensors_give_the_same_result() -> None:
    rng = np.random.default_rng(3)
    probs = rng.random((50, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 50)
    assert topk_errors(torch.from_numpy(probs), torch.from_numpy(labels)) == \
        topk_errors(probs, labels)
    coarse = torch.from_numpy(probs).to(torch.bfloat16)  # bfloat16 rounding creates ties
    assert topk_errors(coarse, torch.from_numpy(labels)) == pytest.approx(
        reference_errors(coarse.float().numpy().astype(np.float64), labels, (1, 5),
                         "pessimistic"), abs=1e-12)


def test_tally_in_chunks_equals_whole_and_counts_tie_dependent_rows() -> None:
    rng = np.random.default_rng(11)
    probs = np.round(rng.random((101, 8)) * 3) / 3
    labels = rng.integers(0, 8, 101)
    tally = TopkTally((1, 5))
    for start in range(0, 101, 17):
        tally.add(probs[start:start + 17], labels[start:start + 17])
    assert tally.images == 101
    assert tally.errors() == topk_errors(probs, labels)
    for k in (1, 5):
        pessimistic = topk_correct(probs, labels, k).sum()
        optimistic = topk_correct(probs, labels, k, ties="optimistic").sum()
        assert tally.correct[k] == pessimistic
        assert tally.tie_dependent[k] == optimistic - pessimistic
    assert tally.tie_dependent[1] > 0


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        (np.array([[0.5, np.nan]]), np.array([0]), "NaN"),
        (np.array([[0.5, 0.5]]), np.array([2]), "labels must lie"),
        (np.array([[0.5, 0.5]]), np.array([-1]), "labels must lie"),
        (np.array([0.5, 0.5]), np.array([0]), "2-D"),
        (np.array([[0.5, 0.5]]), np.array([0, 1]), "length 1"),
        (np.array([[0.5, 0.5]]), np.array([0.0]), "integers"),
    ],
)
def test_bad_inputs_raise(probs: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        label_rank(probs, labels)


def test_bad_k_and_empty_input_raise() -> None:
    probs, labels = np.array([[0.6, 0.4]]), np.array([0])
    with pytest.raises(ValueError, match="positive integer"):
        topk_correct(probs, labels, 0)
    with pytest.raises(ValueError, match="no images"):
        topk_errors(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="ties must be"):
        label_rank(probs, labels, ties="random")  # type: ignore[arg-type]
