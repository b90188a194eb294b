"""ReaL scoring against a direct computation: sort each row with acceptable classes last among
equals (the worst tie-break), take k, look for an acceptable class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inceval.data import builtin
from inceval.errors import InceValError
from inceval.reports.real import real_correct, score_run_real
from inceval.store import RunReader, RunWriter
from tests.fixtures.factory import manifest


def _direct_correct(row: np.ndarray, acceptable: frozenset[int], k: int) -> bool:
    order = sorted(range(row.size), key=lambda c: (-float(row[c]), c in acceptable))
    return any(c in acceptable for c in order[:k])


def test_ties_with_an_unacceptable_class_count_against_the_image_by_hand() -> None:
    row = np.array([[0.4, 0.4, 0.1, 0.1]], dtype=np.float16)
    assert real_correct(row, [frozenset({0})], 1).tolist() == [False]  # tied with class 1
    assert real_correct(row, [frozenset({0, 1})], 1).tolist() == [True]  # both tied are fine
    assert real_correct(row, [frozenset({2})], 2).tolist() == [False]
    assert real_correct(row, [frozenset({2})], 3).tolist() == [False]  # class 3 ties with it
    assert real_correct(row, [frozenset({2})], 4).tolist() == [True]


def test_the_bundled_labels_are_the_published_real_set() -> None:
    sets = builtin.real_labels()
    assert len(sets) == 50_000
    assert sum(1 for s in sets if not s) == 3_163  # 46,837 images remain
    # The first entries of real.json: [], [970, 795], [230, 231], [809].
    assert sets[:4] == (frozenset(), frozenset({970, 795}), frozenset({230, 231}), frozenset({809}))


def _real_run(tmp_path: Path, numbers: list[int]) -> tuple[Path, np.ndarray]:
    sets = builtin.real_labels()
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 1.0, (len(numbers), 1000))
    for row, number in enumerate(numbers):
        if sets[number - 1] and row % 3:
            logits[row, min(sets[number - 1])] += rng.uniform(1.5, 4.0)
    probs = np.exp(logits)
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float16)
    probs[5, :2] = probs[5, 2]  # some exact ties
    labels = [int(rng.integers(0, 1000)) for _ in numbers]  # ReaL ignores the original labels
    images = [{"path": f"val/ILSVRC2012_val_{n:08d}.JPEG", "label": y, "blacklisted": False}
              for n, y in zip(numbers, labels, strict=True)]
    writer = RunWriter.create(tmp_path / "run", manifest=manifest({"m": None}, {"1": 1}),
                              images=images)
    writer.open_predictions("m", "1", num_classes=1000)
    for start in range(0, len(numbers), 16):
        writer.write("m", "1", start, probs[start:start + 16])
    writer.mark_complete("m", "1")
    writer.finish()
    return tmp_path / "run", probs


def test_real_scores_of_a_stored_run_equal_the_direct_computation(tmp_path: Path) -> None:
    numbers = list(range(1, 61))
    run, probs = _real_run(tmp_path, numbers)
    (score,) = score_run_real(RunReader(run))
    sets = builtin.real_labels()
    kept = [row for row, n in enumerate(numbers) if sets[n - 1]]
    excluded = len(numbers) - len(kept)
    assert excluded >= 1  # image 1 has an empty set
    for k, error in ((1, score.top1_error), (5, score.top5_error)):
        wrong = sum(not _direct_correct(probs[row].astype(np.float32), sets[numbers[row] - 1], k)
                    for row in kept)
        assert error == pytest.approx(100.0 * wrong / len(kept), abs=1e-9)
    assert (score.images, score.excluded) == (len(kept), excluded)
    assert 0 < score.top1_error < 100 and score.top5_error < score.top1_error


def _one_image_run(run_dir: Path, path: str, dataset: str | None = None) -> Path:
    meta = manifest({"m": None}, {"1": 1})
    if dataset:
        meta["data"]["dataset"] = dataset
    writer = RunWriter.create(run_dir, manifest=meta,
                              images=[{"path": path, "label": 0, "blacklisted": False}])
    writer.open_predictions("m", "1", num_classes=1000)
    writer.write("m", "1", 0, np.full((1, 1000), 1e-3, dtype=np.float16))
    writer.mark_complete("m", "1")
    writer.finish()
    return run_dir


def test_images_outside_ilsvrc2012_and_other_sets_are_refused(tmp_path: Path) -> None:
    odd = _one_image_run(tmp_path / "odd", "photos/cat.jpg")
    with pytest.raises(InceValError, match="image photos/cat.jpg is not an ILSVRC2012_val_%08d"):
        score_run_real(RunReader(odd))
    beyond = _one_image_run(tmp_path / "beyond", "val/ILSVRC2012_val_00050001.JPEG")
    with pytest.raises(InceValError, match="ILSVRC2012_val_00050001.JPEG is not an ILSVRC2012"):
        score_run_real(RunReader(beyond))
    sketch = _one_image_run(tmp_path / "sketch", "n01440764/s.JPEG", "imagenet-sketch")
    with pytest.raises(InceValError, match="holds imagenet-sketch images; ReaL labels are for the"):
        score_run_real(RunReader(sketch))


def test_rows_wrong_only_because_of_a_tie_are_counted() -> None:
    from inceval.reports.real import real_score

    probs = np.array([[0.4, 0.4, 0.1, 0.1],    # acceptable {0}, tied with 1: tie-dependent at k=1
                      [0.1, 0.7, 0.1, 0.1],    # acceptable {0}: wrong at k=1 regardless
                      [0.25, 0.25, 0.25, 0.25]], dtype=np.float32)  # empty set: excluded
    sets = [frozenset({0}), frozenset({0}), frozenset()]
    score = real_score([(0, probs)], sets, "m", "1")
    assert (score.images, score.excluded) == (2, 1)
    assert (score.top1_wrong, score.top1_tie_dependent) == (2, 1)
    assert (score.top5_wrong, score.top5_tie_dependent) == (0, 0)
    assert score.top1_error == 100.0
