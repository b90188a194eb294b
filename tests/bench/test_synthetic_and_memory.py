"""Generated JPEGs look like photographs to a decoder; memory peaks are per measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inceval.bench.memory import PeakTracker
from inceval.bench.synthetic import synthetic_image, write_synthetic_jpegs


def test_synthetic_jpegs_have_photo_size_quality_and_bytes(tmp_path: Path) -> None:
    paths = write_synthetic_jpegs(tmp_path / "a", 3, seed=5)
    assert [p.name for p in paths] == ["synthetic_00000.JPEG", "synthetic_00001.JPEG",
                                       "synthetic_00002.JPEG"]
    for path in paths:
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("JPEG", (500, 375), "RGB")
            pixels = np.asarray(image, dtype=np.int16)
        # A photograph, not noise: neighbouring pixels are close (uniform noise differs by 85
        # grey levels on average), yet the image is not flat.
        assert np.abs(np.diff(pixels, axis=1)).mean() < 25
        assert pixels.std() > 20
        # ImageNet validation JPEGs of this shape are about 100-150 KB.
        assert 70_000 < path.stat().st_size < 200_000


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    first = write_synthetic_jpegs(tmp_path / "a", 2, seed=1)
    again = write_synthetic_jpegs(tmp_path / "b", 2, seed=1)
    other = write_synthetic_jpegs(tmp_path / "c", 2, seed=2)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[0].read_bytes() != other[0].read_bytes()
    assert first[0].read_bytes() != first[1].read_bytes()


def test_synthetic_image_shape_and_refusal(tmp_path: Path) -> None:
    image = synthetic_image(np.random.default_rng(0), 40, 30)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    with pytest.raises(ValueError, match="count must be at least 1, got 0"):
        write_synthetic_jpegs(tmp_path, 0)


def _vm_hwm() -> int:
    """The kernel's own peak-RSS line, read independently of inceval.bench.memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_rss_peak_is_reset_for_each_measurement() -> None:
    size = 256 * 2**20
    tracker = PeakTracker(torch.device("cpu"))
    block = np.ones(size // 8)  # touched, so resident
    del block
    peak = tracker.read()
    assert peak.rss_scope == "measurement" and peak.device_bytes is None
    assert peak.rss_bytes >= size
    assert peak.rss_bytes == _vm_hwm()
    # A new measurement forgets the 256 MiB block: its peak is the current resident set.
    later = PeakTracker(torch.device("cpu")).read()
    assert later.rss_bytes <= peak.rss_bytes - size // 2
