"""The throughput gate end to end: a planted slowdown is caught, identical results pass.

The slowdown is the engine's test hook INCEVAL_TEST_SLEEP_PER_BATCH_S (a sleep per rendered
batch). A bench of a tiny network on two small images computes for well under a second per pass;
2.5 seconds of sleep per pass make its end-to-end row several times slower, far beyond the 2x
the gate tolerates, whatever the machine's load. No assertion is made about real speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inceval.bench.result import read_bench, write_bench
from inceval.bench.runner import BenchSettings, run_bench
from inceval.bench.synthetic import write_synthetic_jpegs
from inceval.cli import main
from inceval.engine.evaluate import SLEEP_ENV
from tests.bench.helpers import TinyNet

SLEEP_S = 2.5
# One torch thread, as the CI preset: the reference then slows as the work does under load.
SETTINGS = BenchSettings(device="cpu", backend="dali", batch_size=2, workers=1, threads=1,
                         images=2, min_seconds=0.0, stages=("model", "end-to-end"),
                         gemm_seconds=0.01, reference_seconds=0.2)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_synthetic_jpegs(tmp_path_factory.mktemp("images"), 2, size=(120, 90))


@pytest.mark.dali
def test_planted_slowdown_fails_the_gate_and_identical_results_pass(
        images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(SLEEP_ENV, raising=False)
    baseline = tmp_path / "baseline.json"
    write_bench(baseline, run_bench([TinyNet()], ["1"], images, SETTINGS))
    monkeypatch.setenv(SLEEP_ENV, str(SLEEP_S))
    slowed = tmp_path / "slowed.json"
    write_bench(slowed, run_bench([TinyNet()], ["1"], images, SETTINGS))

    rows = {row["stage"]: row for row in read_bench(slowed).rows}
    # One batch of two images per pass: the sleep was really taken, once per timed pass.
    assert rows["end-to-end"]["passes"] == 1 and rows["end-to-end"]["seconds"] >= SLEEP_S

    code, out, _ = run_cli(["compare", str(baseline), str(baseline), "--max-slowdown", "0.5",
                            "--json"], capsys)
    assert code == 0 and [r["ratio"] for r in json.loads(out)["rows"]] == [1.0, 1.0]

    code, out, _ = run_cli(["compare", str(baseline), str(slowed), "--max-slowdown", "0.5",
                            "--json"], capsys)
    assert code == 1
    status = {r["stage"]: r["status"] for r in json.loads(out)["rows"]}
    # The model alone never sees the planted sleep; it is not asserted on (its speed is real).
    assert status["end-to-end"] == "regression"
