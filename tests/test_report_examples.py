"""Example images of `inceval report`: shown from a readable data root, omitted (and said so)
when the root is gone.

The run is written through the store with chosen probabilities (no model runs): image 0 gets its
label first, image 1 another class first, over copies of two of the bundled sample photographs.
The expected top-5 lists follow from the chosen probabilities; the sheet's size from the contact
sheet's documented geometry; the mirrored tiles must be the mirror images of their twins.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inceval.cli import main
from inceval.cli.views import LABEL_LINE_HEIGHT, LABEL_LINES, SHEET_GAP, sheet_geometry
from inceval.data import builtin
from inceval.data.protocols import get_protocol
from inceval.eval_config import EvalConfig
from inceval.store import RunWriter
from tests.test_report_parsing import ReportPage, decode_data_uri

pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install -e .[test])")

SAMPLE = Path(__file__).resolve().parents[1] / "inceval" / "sample" / "images"
PHOTOS = [("chelsea.jpg", 281), ("coffee.jpg", 967)]
EVAL = EvalConfig(input_size=299, crop_pct=0.875, interpolation="bicubic")
# Per image: the classes ranked first to fifth (image 0: its label first; image 1: wrong).
TOP5 = [[281, 282, 285, 287, 283], [504, 967, 968, 969, 970]]


def _probabilities() -> np.ndarray:
    probs = np.full((2, 1000), 0.0002, dtype=np.float32)
    for row, classes in enumerate(TOP5):
        probs[row, classes] = [0.4, 0.2, 0.1, 0.05, 0.03]
    return probs / probs.sum(axis=1, keepdims=True)


def _write_run(run_dir: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    for name, _ in PHOTOS:
        shutil.copy(SAMPLE / name, root / "images" / name)
    views = {name: [spec.label for spec in get_protocol(name).resolve(EVAL)]
             for name in ("1", "12")}
    manifest = {
        "models": {"v3": {"arch": "inception_v3", "weights": "random", "weights_tag": None,
                          "weights_file": None, "weights_sha256": None,
                          "eval_config": {"input_size": 299, "crop_pct": 0.875,
                                          "interpolation": "bicubic", "mean": [0.5] * 3,
                                          "std": [0.5] * 3}}},
        "protocols": {name: {"version": 1, "num_views": len(v), "views": v}
                      for name, v in views.items()},
        "data": {"root": str(root), "fingerprint": "0" * 64},
    }
    writer = RunWriter.create(run_dir, manifest=manifest, images=[
        {"path": f"images/{name}", "label": label, "blacklisted": False}
        for name, label in PHOTOS])
    for protocol in ("1", "12"):
        writer.open_predictions("v3", protocol, num_classes=1000)
        writer.write("v3", protocol, 0, _probabilities())
        writer.mark_complete("v3", protocol)
    writer.finish()


def _report(run_dir: Path, out: Path) -> tuple[int, str, ReportPage]:
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", stdout)
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(run_dir), "--out", str(out), "--bootstrap-resamples", "100"])
    return exit_info.value.code, stdout.getvalue(), ReportPage(out.read_text(encoding="utf-8"))


def _examples(page: ReportPage) -> list[dict[str, str]]:
    return [img for img in page.images if img["src"].startswith("data:image/png")]


def test_examples_show_the_views_and_top5_then_vanish_with_the_data_root(tmp_path: Path) -> None:
    root, run_dir = tmp_path / "data", tmp_path / "run"
    _write_run(run_dir, root)
    code, _, page = _report(run_dir, tmp_path / "with.html")
    assert code == 0
    examples = _examples(page)
    assert [img["alt"] for img in examples] == ["views of images/chelsea.jpg",
                                                "views of images/coffee.jpg"]
    top5 = [t for t in page.tables if t.attrs.get("class") == "top5"]
    stored = _probabilities().astype(np.float16)  # the store keeps float16 probabilities
    for table, classes, probs in zip(top5, TOP5, stored):
        assert [row[1] for row in table.rows] == [builtin.class_label(c) for c in classes]
        assert [row[2] for row in table.rows] == [f"{float(probs[c]):.4f}" for c in classes]
    assert "examples" not in page.omitted
    width, height, corners = sheet_geometry(12, 128)
    for img in examples:
        sheet = np.asarray(Image.open(io.BytesIO(decode_data_uri(img["src"], "image/png")))
                           .convert("RGB")).astype(np.int16)
        assert sheet.shape == (height, width, 3)
        tiles = [sheet[y:y + 128, x:x + 128] for x, y in corners]
        for first, mirror in zip(tiles[0::2], tiles[1::2]):  # each view, then its mirror
            assert first.std() > 10  # a photograph, not a blank tile
            assert np.abs(first[:, ::-1] - mirror).mean() < 3
        # The tiles differ from one another (corners of the image, not one crop repeated).
        assert np.abs(tiles[0] - tiles[2]).mean() > 10
        below = sheet[corners[0][1] + 128:corners[0][1] + 128 + LABEL_LINES * LABEL_LINE_HEIGHT,
                      SHEET_GAP:SHEET_GAP + 128]
        assert (below < 128).any()  # the view's label is written under its tile

    shutil.rmtree(root)
    code, stdout, page = _report(run_dir, tmp_path / "without.html")
    assert code == 0
    assert _examples(page) == []
    assert page.omitted["examples"] == ("Example images omitted: no run's images can be read "
                                        f"here. run run: its data root {root} is not readable "
                                        "here")
    assert f"example images omitted: run run: its data root {root} is not readable here" in stdout
    # Everything else is still there.
    assert {"error-vs-views", "calibration"} <= set(page.figures)


def test_a_missing_image_file_under_a_readable_root_is_named(tmp_path: Path) -> None:
    root, run_dir = tmp_path / "data", tmp_path / "run"
    _write_run(run_dir, root)
    (root / "images" / "chelsea.jpg").unlink()
    code, _, page = _report(run_dir, tmp_path / "report.html")
    assert code == 0
    assert [img["alt"] for img in _examples(page)] == ["views of images/coffee.jpg"]
    assert "chelsea.jpg: image file not found" in page.omitted["examples"]
