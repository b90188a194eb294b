"""Pure parts of the bench: row arithmetic, image cycling, defaults, the reference and GEMM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inceval.bench import calibration
from inceval.bench.calibration import ConvStack, ReferenceWorkload
from inceval.bench.memory import MemoryPeaks
from inceval.bench.runner import build_row, cycled, default_images, _rows, _Measured, _Work
from inceval.bench.stages import Measurement
from inceval.data.protocols import get_protocol
from inceval.errors import InceValError
from tests.bench.helpers import TinyNet

PEAKS = MemoryPeaks(300 * 2**20, "measurement", None)


def test_row_rates_flops_and_mfu_by_hand() -> None:
    # 240 views in 2 s = 120 views/s; 24 images / 2 s = 12 images/s. 5e9 MACs per view:
    # 120 x 2 x 5e9 = 1.2e12 FLOP/s = 1.2 TFLOP/s; against a 4 TFLOP/s GEMM, MFU 0.3.
    # Normalised: 120 / 30 passes/s = 4.0.
    measurement = Measurement(images=24, views=240, seconds=2.0, passes=3, memory=PEAKS)
    row = build_row("v4", "12", "model", 299, 10, 8, measurement, macs=5_000_000_000,
                    gemm_tflop_per_s=4.0, reference_rate=30.0)
    assert row["views_per_s"] == 120.0 and row["images_per_s"] == 12.0
    assert row["tflop_per_s"] == pytest.approx(1.2) and row["mfu"] == pytest.approx(0.3)
    assert row["normalised"] == 4.0 and row["reference_rate"] == 30.0
    assert (row["rss_peak_mib"], row["rss_peak_scope"], row["device_peak_mib"]) == \
        (300.0, "measurement", None)
    assert (row["passes"], row["batch_size"], row["views_per_image"]) == (3, 8, 10)


def test_stages_without_the_model_have_no_flops() -> None:
    measurement = Measurement(images=10, views=10, seconds=1.0, passes=1, memory=PEAKS)
    for stage in ("feeder", "pipeline"):
        row = build_row("v3", "1", stage, 299, 1, 8, measurement, macs=10**9,
                        gemm_tflop_per_s=1.0, reference_rate=5.0)
        assert row["tflop_per_s"] is None and row["mfu"] is None and row["normalised"] == 2.0


def test_feeder_share_is_feeder_seconds_per_image_times_images_per_second() -> None:
    # Feeder: 2,000 images in 1 s (0.5 ms per image); end to end: 50 images in 2 s (25/s).
    # Share of wall time: 0.0005 s x 25 /s = 0.0125.
    model = TinyNet()
    work = _Work(model, get_protocol("1"), (), [], 8, 1000)
    feeder = Measurement(2000, 2000, 1.0, 5, PEAKS)
    e2e = Measurement(50, 50, 2.0, 1, PEAKS)
    rows = _rows([_Measured(work, "feeder", feeder, 10.0), _Measured(work, "end-to-end", e2e,
                                                                     10.0)], 1.0)
    assert rows[0]["feeder_share"] is None
    assert rows[1]["feeder_share"] == pytest.approx(0.0125)


def test_images_go_round_the_files() -> None:
    paths = [Path("a"), Path("b"), Path("c")]
    assert cycled(paths, 7) == [Path(p) for p in "abcabca"]
    assert cycled(paths, 2) == [Path("a"), Path("b")]
    with pytest.raises(InceValError, match="no images to measure on; check --data"):
        cycled([], 3)


def test_default_images_by_views_and_device() -> None:
    assert [default_images(n, "cpu") for n in (1, 12, 99, 100, 144)] == [32, 32, 32, 4, 4]
    assert [default_images(n, "cuda") for n in (1, 144)] == [512, 64]


def test_conv_stack_flops_by_hand() -> None:
    # 2 FLOP x 8 images x 56 x 56 positions x 32 out x 32 in x 9 taps x 4 layers
    # = 2 x 8 x 3136 x 1024 x 9 x 4 = 1,849,688,064.
    assert calibration.REFERENCE_STACKS["cpu"].flop == 1_849_688_064
    assert ConvStack(batch=1, channels=2, size=3, layers=1).flop == 2 * 1 * 9 * 2 * 2 * 9


def test_reference_output_is_the_stack_computed_by_hand() -> None:
    # A second implementation with torch.nn.functional: conv, bias (zero), ReLU, four times.
    workload = ReferenceWorkload(torch.device("cpu"))
    x = workload.input
    for module in workload.net:
        if isinstance(module, torch.nn.Conv2d):
            x = torch.nn.functional.conv2d(x, module.weight, module.bias, padding=1)
        else:
            x = x.clamp(min=0)
    with torch.no_grad():
        torch.testing.assert_close(workload.net(workload.input), x)
    assert workload.input.shape == (8, 32, 56, 56)
    # Fixed: built twice, the same tensor (seeded), so every bench runs the same workload.
    assert torch.equal(ReferenceWorkload(torch.device("cpu")).input, workload.input)


def test_reference_rate_is_the_median_of_bursts() -> None:
    workload = ReferenceWorkload(torch.device("cpu"))
    with pytest.raises(RuntimeError):
        workload.rate
    workload.bursts[:] = [3.0, 1.0, 2.0]
    assert workload.rate == 2.0
    workload.bursts.append(10.0)
    assert workload.rate == 2.5  # (2 + 3) / 2
    rate = workload.burst(0.01)
    assert rate > 0 and workload.bursts[-1] == rate and len(workload.bursts) == 5


def test_gemm_rate_counts_two_n_cubed_per_product(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock that advances 0.5 s per reading: start 0.0, then 0.5 and 1.0 after the first two
    # products (fewer than the minimum of 3), 1.5 after the third, past the 1.0 s asked for.
    # So 3 products in 1.5 s: 2 x 64^3 x 3 / 1.5 / 1e12 TFLOP/s.
    ticks = iter(np.arange(0.0, 100.0, 0.5))
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: float(next(ticks)))
    entry = calibration.gemm_rate(torch.device("cpu"), "float32", seconds=1.0, size=64)
    assert (entry["repeats"], entry["seconds"]) == (3, 1.5)
    assert entry["tflop_per_s"] == 2 * 64**3 * 3 / 1.5 / 1e12
    assert (entry["size"], entry["dtype"], entry["allow_tf32"]) == (64, "float32", None)
