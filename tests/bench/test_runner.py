"""run_bench on a tiny stand-in network: what each stage counts, and a feeder that is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inceval.bench.result import validate
from inceval.bench.runner import BenchSettings, run_bench
from inceval.bench.synthetic import write_synthetic_jpegs
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from tests.bench.helpers import TinyNet

FAST = {"device": "cpu", "backend": "dali", "workers": 1, "min_seconds": 0.0,
        "gemm_seconds": 0.01, "reference_seconds": 0.01}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_synthetic_jpegs(tmp_path_factory.mktemp("images"), 3, size=(120, 90))


@pytest.mark.dali
def test_every_stage_counts_images_and_views_of_each_protocol(images: list[Path]) -> None:
    seen = []
    doc = run_bench([TinyNet()], ["1", "12", "144"], images,
                    BenchSettings(images=5, batch_size=2, **FAST),
                    on_row=lambda *args: seen.append(args[:3]))
    validate(doc)
    expected = [(p, s) for p in ("1", "12", "144")
                for s in ("feeder", "pipeline", "model", "end-to-end")]
    assert [(r["protocol"], r["stage"]) for r in doc["rows"]] == expected
    assert seen == [("tiny", p, s) for p, s in expected]
    for row in doc["rows"]:
        views = {"1": 1, "12": 12, "144": 144}[row["protocol"]]
        assert row["views_per_image"] == views
        assert row["images"] == 5 * row["passes"] and row["views"] == row["images"] * views
        # The engine's CPU default, recorded where a model runs.
        computes = row["stage"] in ("model", "end-to-end")
        assert row["views_per_forward"] == (8 if computes else None)
    assert doc["settings"]["max_views_per_forward"] == 8
    # A reference burst before the first stage and after each of the 12 stages.
    assert len(doc["reference"]["bursts"]) == 13
    assert len(doc["gemm"]["measurements_tflop_per_s"]) == 2
    assert doc["gemm"]["tflop_per_s"] == max(doc["gemm"]["measurements_tflop_per_s"])


def test_a_missing_feeder_is_reported_not_measured(images: list[Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "inceval.data.feeder", None)  # import fails
    seen = []
    doc = run_bench([TinyNet()], ["1", "12"], images,
                    BenchSettings(images=2, batch_size=2, stages=("feeder",), **FAST),
                    on_row=lambda *args: seen.append(args))
    assert doc["rows"] == []
    assert doc["feeder"]["available"] is False
    assert doc["feeder"]["reason"].startswith("inceval.data.feeder does not import")
    assert seen == [("tiny", "1", "feeder", None)]  # said once, not tried again


def test_a_protocol_that_does_not_fit_fails_before_measuring(
        images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # crop_pct 1.2 at 32 px: "1" resizes the shorter side to floor(32 / 1.2) = 26 < 32.
    model = TinyNet(input_size=32)
    model.eval_config = EvalConfig(input_size=32, crop_pct=1.2)
    from inceval.bench import runner

    monkeypatch.setattr(runner, "gemm_rate", None)  # measuring anything would now fail
    with pytest.raises(InceValError, match="scale 26 px is smaller than the 32-pixel crop"):
        run_bench([model], ["1"], images, BenchSettings(images=1, **FAST))
