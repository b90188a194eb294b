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
    work = _Work(model, get_protocol("1"), (), [], 8, 8, 1000)
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


def test_passes_repeat_until_min_seconds_with_between_calls_outside_the_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Each pass advances a fake clock by 0.4 s, each between-call by 5 s (which must not count).
    # min_seconds 1.0: passes end at 0.4, 0.8, 1.2 s of work -> 3 passes, 2 between-calls.
    from inceval.bench import stages

    clock = [0.0]
    calls = []

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return clock[0]

    def one_pass() -> tuple[int, int]:
        clock[0] += 0.4
        return 2, 6

    def between() -> None:
        clock[0] += 5.0
        calls.append(clock[0])

    monkeypatch.setattr(stages, "time", FakeTime)
    m = stages.timed_passes(one_pass, torch.device("cpu"), 1.0, between)
    assert (m.passes, m.images, m.views, len(calls)) == (3, 6, 18, 2)
    assert m.seconds == pytest.approx(1.2)
    one = stages.timed_passes(one_pass, torch.device("cpu"), 0.0, between)
    assert (one.passes, len(calls)) == (1, 2)  # one pass, nothing between


def test_a_row_is_normalised_by_the_mean_of_its_bursts(monkeypatch: pytest.MonkeyPatch) -> None:
    from inceval.bench import runner

    class FakeReference:
        def __init__(self) -> None:
            self.bursts = [10.0]
            self.next = iter([20.0, 30.0, 60.0])

        def burst(self, seconds: float) -> float:
            self.bursts.append(next(self.next))
            return self.bursts[-1]

    clock = iter([0.0, 0.5, 1.5, 1.6, 1.7])
    monkeypatch.setattr(runner.time, "perf_counter", lambda: next(clock))
    reference = FakeReference()
    row = runner._RowReference(reference, 0.1)  # created at 0.0
    row.between()   # at 0.5: too soon after the start, no burst
    row.between()   # at 1.5: a burst (20), then the clock reads 1.6
    row.between()   # at 1.7: too soon after the last burst
    # The burst before (10), the one between (20), the one after (30): mean 20.
    assert row.finish() == 20.0
    assert reference.bursts == [10.0, 20.0, 30.0]


def test_baseline_takes_each_rows_median_run() -> None:
    from inceval.bench.gate import median_document
    from tests.bench.helpers import document, row

    def run(model_rate: float, e2e_rate: float) -> dict:
        return document([row("v3", "1", "model", model_rate, 10.0),
                         row("v3", "1", "end-to-end", e2e_rate, 10.0)])

    # Normalised (rate / 10): model 3, 1, 2 -> median 2 (run 3); end to end 5, 6, 4 -> 5 (run 1).
    baseline = median_document([run(30.0, 50.0), run(10.0, 60.0), run(20.0, 40.0)])
    assert [r["normalised"] for r in baseline["rows"]] == [2.0, 5.0]
    assert baseline["rows"][0]["normalised_runs"] == [3.0, 1.0, 2.0]
    assert baseline["baseline"]["runs"] == 3
    # Two runs: the lower of the two.
    assert [r["normalised"] for r in median_document([run(30.0, 50.0),
                                                      run(10.0, 60.0)])["rows"]] == [1.0, 5.0]
    with pytest.raises(InceValError, match="bench run 2 measured other rows than run 1"):
        median_document([run(1.0, 1.0), document([])])


def test_under_load_report_as_markdown() -> None:
    from inceval.bench.gate import to_markdown

    def check(sleep: str | None, raw: float, ratio: float, status: int) -> dict:
        return {"planted_sleep_per_batch_s": sleep, "load_average_1min_at_start": 2.5,
                "bench_seconds": 30.4, "exit_status": status,
                "rows": {"v3/1/model": {"raw_ratio": raw, "ratio": ratio}}}

    report = {"date": "D", "what": "W", "max_slowdown": 0.5,
              "checks": [check(None, 0.4, 0.9, 0), check(None, 1.7, 1.1, 0),
                         check("1.0", 0.1, 0.2, 1)]}
    text = to_markdown(report)
    assert "| 1 | - | 2.50 | 30 | 0.90 | 0 |" in text
    assert "| 3 | 1.0 | 2.50 | 30 | 0.20 | 1 |" in text
    assert "the gate fails below 0.5." in text
    # The planted check is left out of the ranges.
    assert text.endswith("Under load, raw views/s ranged from 0.40x to 1.70x the baseline's; "
                         "normalised ratios from 0.90 to 1.10.\n")
