"""`inceval bench` from the command line: rows, JSON, the CI preset's settings, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from inceval.bench.result import read_bench
from inceval.cli import main
from inceval.models import create_model
from inceval.models.complexity import count_macs
from inceval.sample import SAMPLE_ROOT

FAST = ["--min-seconds", "0", "--gemm-seconds", "0.01", "--reference-seconds", "0.01",
        "--workers", "1", "--quiet"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.dali
def test_bench_writes_every_stage_with_consistent_counts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "bench.json"
    code, out, err = run_cli(["bench", "--models", "v3", "--input-size", "75", "--crops", "1",
                              "--synthetic", "2", "--images", "3", "--batch-size", "2",
                              "--stages", "feeder,pipeline,model,end-to-end", "--json",
                              str(out_file), *FAST], capsys)
    assert (code, err) == (0, "")
    assert "Throughput (normalised = views/s per reference pass/s)" in out
    result = read_bench(out_file)
    doc = result.document
    assert [r["stage"] for r in result.rows] == ["feeder", "pipeline", "model", "end-to-end"]
    for row in result.rows:
        # 3 images per pass (going round the 2 files), one view each.
        assert row["images"] == 3 * row["passes"] and row["views"] == row["images"]
        assert row["normalised"] == pytest.approx(row["views_per_s"] / row["reference_rate"])
        assert (row["batch_size"], row["input_size"], row["protocol"]) == (2, 75, "1")
    by_stage = {r["stage"]: r for r in result.rows}
    assert by_stage["end-to-end"]["feeder_share"] == pytest.approx(
        by_stage["end-to-end"]["images_per_s"] / by_stage["feeder"]["images_per_s"])
    # MACs per view from the registry, checked against a count on the built network.
    macs = count_macs(create_model("v3", "random"), 75)
    assert doc["models"]["v3"]["macs_per_view"] == macs
    model_row = by_stage["model"]
    assert model_row["tflop_per_s"] == pytest.approx(model_row["views_per_s"] * 2 * macs / 1e12)
    assert model_row["mfu"] == pytest.approx(model_row["tflop_per_s"]
                                             / doc["gemm"]["tflop_per_s"])
    assert doc["data"]["source"] == "synthetic" and doc["data"]["files"] == 2
    assert doc["settings"]["input_size"] == 75 and doc["settings"]["preset"] is None
    assert doc["feeder"] == {"available": True, "reason": None}
    assert doc["command"].startswith("inceval bench --models v3 --input-size 75")


@pytest.mark.dali
def test_ci_preset_fills_what_the_command_line_leaves_open(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "ci.json"
    code, _, err = run_cli(["bench", "--preset", "ci", "--crops", "1", "--images", "2",
                            "--stages", "model", "--json", str(out_file), *FAST], capsys)
    assert (code, err) == (0, "")
    doc = read_bench(out_file).document
    settings = doc["settings"]
    assert (settings["preset"], settings["input_size"], settings["device"]) == ("ci", 107, "cpu")
    assert (settings["images"], settings["stages"], settings["protocols"]) == (2, ["model"],
                                                                               ["1"])
    assert settings["batch_size"] == 8 and settings["workers"] == 1  # preset 2, given 1
    # The bundled photos, fingerprinted by relative path and size (computed here by hand).
    images = SAMPLE_ROOT / "images"
    lines = "".join(f"{p.name}\t{p.stat().st_size}\n" for p in sorted(images.glob("*.jpg")))
    assert doc["data"]["fingerprint"] == hashlib.sha256(lines.encode()).hexdigest()
    assert doc["data"]["files"] == 8


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "{tmp}", "--synthetic", "2"],
     "--data and --synthetic both given; measure on one of them"),
    (["--data", "{tmp}"], "--data {tmp} holds no .jpg/.jpeg/.png file; give a folder of images "
                          "or use --synthetic N"),
    (["--data", "{tmp}/missing"], "--data {tmp}/missing: no such folder; give a folder of "
                                  "JPEG/PNG images or use --synthetic N"),
    (["--stages", "model,bogus"],
     "--stages 'model,bogus': use a comma-separated list of feeder, pipeline, model, end-to-end"),
    (["--dtype", "float16", "--device", "cpu"],
     "--dtype float16 is not supported on the CPU; use bfloat16 or float32"),
    (["--tf32", "--device", "cpu"], "--tf32 applies to CUDA devices only; drop it for --device "
                                    "cpu"),
    (["--crops", "1,1"], "--crops lists 1 twice; list each once"),
])
def test_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out, err = run_cli(["bench", *args], capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {message.replace('{tmp}', str(tmp_path))}\n"


def test_stage_names_of_the_cli_equal_the_packages() -> None:
    from inceval.bench.stages import STAGES
    from inceval.cli import bench

    assert bench._STAGES == STAGES
    assert json.loads(json.dumps(list(STAGES))) == ["feeder", "pipeline", "model", "end-to-end"]
