"""Evaluation sets beyond ImageNet: detection, labels in the 1000-class space, and the 200-class
restriction of ImageNet-A/R against a direct masked computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inceval.data import builtin
from inceval.data.benchmarks import EVAL_SETS, scored_classes
from inceval.data.datasets import load_val_dataset
from inceval.engine.evaluate import build_manifest
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from inceval.store import RunReader, RunWriter
from tests.data.test_datasets_builders import make_class_folders
from tests.fixtures.factory import images, manifest


def _wnid_tree(root: Path, wnids: tuple[str, ...], per_class: int = 1) -> Path:
    files = {wnid: [f"img_{wnid}_{k}.jpg" for k in range(per_class)] for wnid in wnids[:5]}
    return make_class_folders(root, wnids, files)


@pytest.mark.parametrize("name", ["imagenet-a", "imagenet-r"])
def test_200_class_folders_are_detected_and_labelled_in_the_1000_class_space(
        tmp_path: Path, name: str) -> None:
    wnids = builtin.dataset_wnids(name)
    root = _wnid_tree(tmp_path / name.upper(), wnids)
    dataset = load_val_dataset(root)
    assert dataset.dataset == name
    all_wnids = builtin.imagenet_wnids()
    # Each image's label is its WNID's position among all 1000 sorted WNIDs, not among the 200.
    expected = [all_wnids.index(r.path.split("/")[0]) for r in dataset.records]
    assert dataset.labels().tolist() == expected
    assert max(expected) > 199 or min(expected) > 0  # not the 0..199 positions
    classes = dataset.scored_classes
    assert classes is not None and len(classes) == 200
    assert [all_wnids[c] for c in classes] == sorted(wnids)


def test_a_and_r_are_different_class_sets() -> None:
    a, r = scored_classes("imagenet-a"), scored_classes("imagenet-r")
    assert a is not None and r is not None and a != r
    assert scored_classes("imagenet") is None and scored_classes("imagenet-sketch") is None


def test_sketch_by_folder_name_and_imagenetv2_variants(tmp_path: Path) -> None:
    wnids = builtin.imagenet_wnids()
    sketch = _wnid_tree(tmp_path / "imagenet-sketch" / "sketch", wnids)
    assert load_val_dataset(sketch).dataset == "imagenet-sketch"
    plain = _wnid_tree(tmp_path / "val", wnids)
    assert load_val_dataset(plain).dataset == "imagenet"
    assert load_val_dataset(plain, dataset="imagenet-sketch").dataset == "imagenet-sketch"
    numbers = [str(i) for i in range(1000)]
    for folder, expected in [("imagenetv2-matched-frequency-format-val", "imagenetv2-matched-frequency"),
                             ("imagenetv2-threshold0.7-format-val", "imagenetv2-threshold0.7"),
                             ("imagenetv2-top-images-format-val", "imagenetv2-top-images"),
                             ("v2", "imagenetv2")]:
        root = make_class_folders(tmp_path / folder, numbers, {"7": ["a.jpeg"], "10": ["b.jpeg"]})
        dataset = load_val_dataset(root)
        assert (dataset.layout, dataset.dataset) == ("imagenetv2", expected)
        assert dataset.labels().tolist() == [10, 7]  # in path order: 10/b.jpeg, 7/a.jpeg
    assert set(EVAL_SETS) >= {"imagenet", "imagenet-a", "imagenet-r", "imagenet-sketch"}


def test_a_named_set_that_the_labels_cannot_belong_to_is_refused(tmp_path: Path) -> None:
    plain = _wnid_tree(tmp_path / "val", builtin.imagenet_wnids())
    first = builtin.imagenet_wnids()[0]  # tench: not one of ImageNet-A's classes
    assert first not in builtin.dataset_wnids("imagenet-a")
    with pytest.raises(InceValError) as info:
        load_val_dataset(plain, dataset="imagenet-a")
    assert str(info.value) == (f"--dataset imagenet-a: class 0 of --data {plain} is not one of "
                               "the 200 classes of imagenet-a; check --data or --dataset")
    with pytest.raises(InceValError, match="--dataset 'imagenet-b' is unknown"):
        load_val_dataset(plain, dataset="imagenet-b")


def test_the_manifest_records_the_set_and_its_classes(tmp_path: Path) -> None:
    root = _wnid_tree(tmp_path / "a", builtin.dataset_wnids("imagenet-a"))
    dataset = load_val_dataset(root)
    from torch import nn

    model = nn.Identity()
    model.model_name = "stand-in"  # type: ignore[attr-defined]
    model.eval_config = EvalConfig()  # type: ignore[attr-defined]
    data = build_manifest([model], ["1"], dataset)["data"]
    assert data["dataset"] == "imagenet-a"
    assert data["scored_classes"] == list(scored_classes("imagenet-a") or ())


def _masked_errors(probs: np.ndarray, labels: np.ndarray, classes: list[int]) -> tuple[float, float]:
    """Top-1/top-5 error among ``classes`` only, by a loop; ties count against the label."""
    wrong1 = wrong5 = 0
    for row, label in zip(probs.astype(np.float32), labels, strict=True):
        mine = row[label]
        above = sum(1 for c in classes if c != label and row[c] >= mine)
        wrong1 += above >= 1
        wrong5 += above >= 5
    return 100.0 * wrong1 / len(labels), 100.0 * wrong5 / len(labels)


def test_restricted_scores_equal_a_direct_masked_computation(tmp_path: Path) -> None:
    classes = list(scored_classes("imagenet-a") or ())
    rng = np.random.default_rng(5)
    labels = rng.choice(classes, 60)
    logits = rng.normal(0.0, 1.0, (60, 1000))
    logits[np.arange(60), labels] += rng.uniform(1.0, 4.0, 60)  # near the top, not always first
    probs = np.exp(logits)
    # Make the restriction matter: for half the rows a class outside the 200 beats the label.
    outside = [c for c in range(1000) if c not in set(classes)]
    for row in range(0, 60, 2):
        probs[row, outside[row]] = probs[row].max() * 2 + 0.1
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float16)
    meta = manifest({"m": None}, {"1": 1})
    meta["data"].update({"dataset": "imagenet-a", "scored_classes": classes})
    writer = RunWriter.create(tmp_path / "run", manifest=meta, images=images(labels))
    writer.open_predictions("m", "1", num_classes=1000)
    writer.write("m", "1", 0, probs)
    writer.mark_complete("m", "1")
    writer.finish()
    reader = RunReader(tmp_path / "run")
    assert reader.dataset == "imagenet-a"
    score = reader.score("m", "1")[0]
    expected = _masked_errors(probs, labels, classes)
    assert (score.top1_error, score.top5_error) == pytest.approx(expected, abs=1e-9)
    unrestricted = _masked_errors(probs, labels, list(range(1000)))
    assert unrestricted[0] > expected[0]  # the outside winners would have counted as errors
