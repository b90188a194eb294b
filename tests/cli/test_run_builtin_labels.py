"""`inceval run` on a flat folder of ILSVRC2012_val files with no devkit: bundled labels, the
bundled blacklist by name, and ReaL scores, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inceval.cli import main

# From the published ground truth (ILSVRC2012_val_wnid.txt) and real.json, by hand:
# image 2: n09193705 (alp, 970), ReaL {970, 795}; image 3: n02105855 (Shetland sheepdog, 230),
# ReaL {230, 231}; image 36: n04532106 (vestment, 887), ReaL {887}, first on the blacklist.
EXPECTED = {2: (970, False, {970, 795}), 3: (230, False, {230, 231}), 36: (887, True, {887})}


@pytest.fixture()
def flat_val(tmp_path: Path) -> Path:
    root = tmp_path / "val"
    root.mkdir()
    rng = np.random.default_rng(0)
    for number in EXPECTED:
        pixels = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"ILSVRC2012_val_{number:08d}.JPEG", quality=90)
    return root


def test_flat_ilsvrc_folder_runs_with_bundled_labels_blacklist_and_real(
        flat_val: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["run", "--models", "v3", "--crops", "1", "--weights", "random", "--data",
              str(flat_val), "--limit", "3", "--blacklist", "ilsvrc2014", "--real", "--json",
              "--quiet", "--backend", "torch", "--out", str(out)])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    summary = json.loads(captured.out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["layout"] == "ilsvrc2012"
    assert manifest["data"]["dataset"] == "imagenet"
    assert manifest["data"]["blacklist"].endswith("ILSVRC2014_clsloc_validation_blacklist.txt")
    rows = (out / "images.csv").read_text().splitlines()[1:]
    stored = [(int(r.split(",")[2]), r.split(",")[3] == "1") for r in rows]
    assert stored == [(label, black) for label, black, _ in EXPECTED.values()]
    (real,) = summary["real"]
    assert (real["images"], real["excluded"]) == (3, 0)
    # Independent check of the ReaL top-5 error from the stored probabilities.
    probs = np.load(out / "predictions" / "v3" / "1.npy").astype(np.float32)
    wrong5 = 0
    for row, (_, _, acceptable) in zip(probs, EXPECTED.values(), strict=True):
        best = max(row[c] for c in acceptable)
        wrong5 += sum(1 for c in range(1000) if c not in acceptable and row[c] >= best) >= 5
    assert real["top5_error"] == pytest.approx(100.0 * wrong5 / 3)


def test_real_on_images_without_real_labels_is_refused_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--models", "v3", "--crops", "1", "--weights", "random", "--real",
              "--out", str(tmp_path / "run")])  # the bundled sample: no ILSVRC numbers
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert "--real: image images/" in err and "is not an ILSVRC2012_val_XXXXXXXX file" in err
    assert not (tmp_path / "run").exists()
