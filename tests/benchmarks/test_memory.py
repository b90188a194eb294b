"""benchmarks/memory.py: the flatness verdict, the image generator, and one tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from benchmarks import memory


def _row(backend: str, crops: str, images: int, peak: float, exit_code: int = 0) -> dict:
    return {"backend": backend, "crops": crops, "images": images, "peak_rss_mib": peak,
            "exit_code": exit_code}


def test_flatness_verdict_by_hand() -> None:
    rows = [_row("dali", "1", 1000, 400.0), _row("dali", "1", 10000, 440.0),  # +10.0%: passes
            _row("dali", "12", 1000, 400.0), _row("dali", "12", 10000, 440.8),  # +10.2%: fails
            _row("torch", "1", 1000, 300.0), _row("torch", "1", 10000, 290.0, exit_code=1)]
    result = memory.compare(rows, 1000, 10000)
    assert [(c["backend"], c["crops"], c["ratio"], c["passed"]) for c in result] == [
        ("dali", "1", 1.1, True), ("dali", "12", 1.102, False), ("torch", "1", None, False)]


def test_generated_images_are_deterministic_mixed_and_kept(tmp_path: Path) -> None:
    first = memory.write_synthetic_jpegs(tmp_path / "a", 6)
    second = memory.write_synthetic_jpegs(tmp_path / "b", 6)
    assert [p.name for p in first] == [f"synthetic_{i:05d}.JPEG" for i in range(6)]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    sizes = set()
    for path in first:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size in memory.SIZES
            sizes.add(image.size)
    assert len(sizes) > 1  # a mix, not one size
    first[2].write_bytes(b"kept")  # an existing file is not generated again
    memory.write_synthetic_jpegs(tmp_path / "a", 6)
    assert first[2].read_bytes() == b"kept"


@pytest.mark.parametrize("images", ["10", "10,5", "a,b", "0,10"])
def test_bad_image_counts_are_usage_errors(images: str) -> None:
    with pytest.raises(SystemExit) as exited:
        memory.main(["--images", images])
    assert exited.value.code == 2


@pytest.mark.slow
def test_tiny_real_run(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    status = memory.main(["--images", "2,3", "--crops", "1", "--backends", "torch",
                          "--workers", "0", "--image-dir", str(tmp_path / "images"),
                          "--out", str(out)])
    report = json.loads(out.read_text())
    assert status == (0 if report["passed"] else 1)
    assert [(r["backend"], r["crops"], r["images"], r["exit_code"]) for r in report["runs"]] == [
        ("torch", "1", 2, 0), ("torch", "1", 3, 0)]
    for row in report["runs"]:
        assert row["model_views"] == row["images"]
        # The kernel's peak for the child (wait4) covers what the child saw of itself at its end.
        assert row["peak_rss_mib"] >= row["child_self_maxrss_mib"] > 50
        # ... and every sample the child took of its resident set along the way (0.1 rounding).
        sampled = row["rss_sampled_peak"]
        assert 0 < sampled["rss_mib"] <= row["peak_rss_mib"] + 0.1
        assert sampled["anon_mib"] + sampled["file_mib"] <= sampled["rss_mib"] + 0.2
    assert len(report["comparisons"]) == 1
