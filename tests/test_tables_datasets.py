"""Where runs of other evaluation sets and ReaL scores go in the tables, against direct numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inceval.cli import main
from inceval.data import builtin
from inceval.data.benchmarks import scored_classes
from inceval.reports.tables import build_tables
from inceval.store import RunReader, RunWriter
from tests.fixtures.factory import manifest


def _write(run_dir: Path, paths: list[str], labels: list[int], probs: np.ndarray, tag: str,
           data: dict | None = None) -> Path:
    meta = manifest({"v3": tag}, {"1": 1})
    meta["data"].update(data or {})
    images = [{"path": p, "label": y, "blacklisted": False} for p, y in zip(paths, labels)]
    writer = RunWriter.create(run_dir, manifest=meta, images=images)
    writer.open_predictions("v3", "1", num_classes=probs.shape[1])
    writer.write("v3", "1", 0, probs)
    writer.mark_complete("v3", "1")
    writer.finish()
    return run_dir


def _probs(rng: np.random.Generator, labels: list[int], boost: float = 3.0) -> np.ndarray:
    logits = rng.normal(0.0, 1.0, (len(labels), 1000))
    logits[np.arange(len(labels)), labels] += rng.uniform(0.0, boost, len(labels))
    probs = np.exp(logits)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float16)


def _table(tables, key):
    return next(t for t in tables if t.key == key)


def test_an_imagenet_a_run_goes_to_the_datasets_table_beside_timm(tmp_path: Path) -> None:
    classes = list(scored_classes("imagenet-a") or ())
    rng = np.random.default_rng(8)
    labels = [int(c) for c in rng.choice(classes, 40)]
    probs = _probs(rng, labels)
    wnids = builtin.imagenet_wnids()
    run = _write(tmp_path / "a", [f"{wnids[y]}/{i}.jpg" for i, y in enumerate(labels)], labels,
                 probs, "inception_v3.tf_in1k",
                 {"dataset": "imagenet-a", "scored_classes": classes})
    tables = build_tables([RunReader(run)])
    assert [t.key for t in tables] == ["datasets"]  # never in the paper's tables or checkpoints
    row = _table(tables, "datasets").frame.iloc[0]
    # Direct: top-1 among the 200 classes only, ties against the label.
    restricted = probs.astype(np.float32)[:, classes]
    position = [classes.index(y) for y in labels]
    wrong = [int((np.delete(r, p) >= r[p]).sum() >= 1) for r, p in zip(restricted, position)]
    assert row["top1"] == pytest.approx(100.0 * sum(wrong) / 40, abs=1e-9)
    assert row["dataset"] == "imagenet-a"
    # timm publishes 10.853 % top-1 accuracy for inception_v3.tf_in1k on ImageNet-A.
    assert row["paper_top1"] == pytest.approx(100 - 10.853)
    assert row["delta_top1"] == pytest.approx(row["top1"] - (100 - 10.853))


def test_real_table_equals_a_direct_count_beside_timm(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    numbers = list(range(1, 41))
    sets = builtin.real_labels()
    rng = np.random.default_rng(9)
    targets = [min(sets[n - 1]) if sets[n - 1] else 0 for n in numbers]
    probs = _probs(rng, targets, boost=5.0)
    run = _write(tmp_path / "real", [f"ILSVRC2012_val_{n:08d}.JPEG" for n in numbers],
                 [int(rng.integers(0, 1000)) for _ in numbers], probs, "inception_v4.tf_in1k")
    with pytest.raises(SystemExit) as info:
        main(["tables", str(run), "--real", "--format", "json"])
    assert info.value.code == 0
    data = json.loads(capsys.readouterr().out)
    table = next(t for t in data["tables"] if t["key"] == "real")
    (row,) = table["rows"]
    kept = [i for i, n in enumerate(numbers) if sets[n - 1]]
    right = 0
    for i in kept:
        row_probs = probs[i].astype(np.float32)
        best = max(row_probs[c] for c in sets[numbers[i] - 1])
        rivals = sum(1 for c in range(1000) if c not in sets[numbers[i] - 1] and row_probs[c] >= best)
        right += rivals < 1
    assert row["images"] == len(kept)
    assert row["top1"] == pytest.approx(100.0 * (len(kept) - right) / len(kept), abs=1e-9)
    assert row["paper_top1"] == pytest.approx(100 - 86.150)  # timm's ReaL top-1 of v4 tf_in1k
    assert row["top1_ci_low"] <= row["top1"] <= row["top1_ci_high"]
    excluded = len(numbers) - len(kept)
    assert any(f"{len(kept):,} images scored, {excluded:,} excluded" in n for n in table["notes"])


def test_real_without_ilsvrc_images_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _write(tmp_path / "odd", ["cat.jpg"], [1], np.full((1, 1000), 1e-3, np.float16),
                 "inception_v3.tf_in1k")
    with pytest.raises(SystemExit) as info:
        main(["tables", str(run), "--real"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: --real: no run holds ILSVRC-2012 validation images")


def test_blacklist_note_says_what_the_manifest_knows(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    probs = _probs(rng, [1, 2])
    given = _write(tmp_path / "given", ["ILSVRC2012_val_00000001.JPEG",
                                        "ILSVRC2012_val_00000002.JPEG"], [1, 2], probs,
                   "inception_v3.tf_in1k", {"blacklist": "/lists/blacklist.txt"})
    notes = _table(build_tables([RunReader(given)]), "1").notes
    assert notes[0] == ("Blacklist: run given applied /lists/blacklist.txt, but none of its 2 "
                        "images is on it, so its rows cover all its images.")
