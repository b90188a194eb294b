"""benchmarks/gpu_check.py: its verdicts, guards and comparisons, and a CPU dry run of two sections.

The GPU itself cannot be checked here; these tests hold the script to what it promises: no
pretend pass without CUDA, a failing section never stops the others, failed checks and cut
sections make the exit status non-zero, and the numbers it reports are the right ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import Context, OutOfTime, Skipped, compare_probs, judge, run_section


def _context(tmp_path: Path, budget_s: float = 100.0) -> Context:
    return Context(torch.device("cpu"), dry_run=False, quick=False,
                   deadline=gpu_check.time.monotonic() + budget_s, models=["v3"], input_size=75,
                   work_dir=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_it_refuses_in_one_line(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    assert gpu_check.main(["--out", str(tmp_path / "x.json")]) == 2
    out = capsys.readouterr().out
    assert out.startswith("no CUDA device: ") and out.count("\n") == 1
    assert not (tmp_path / "x.json").exists()  # nothing pretends to have checked anything


def test_compare_probs_by_hand() -> None:
    reference = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]])  # 1 image, 2 views
    got = torch.tensor([[[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]]])
    metrics = compare_probs(got, reference)
    # |dp| = 0.1, 0.1, 0 and 0, 0.3, 0.3: max 0.3, mean 0.8 / 6.
    assert metrics["max_abs_prob_diff"] == pytest.approx(0.3)
    assert metrics["mean_abs_prob_diff"] == pytest.approx(0.8 / 6)
    assert metrics["top1_agreement_views"] == 0.5  # view 2: class 1 -> class 2
    # Image means: reference (0.4, 0.4, 0.2) -> class 0 (first of the tie); got (0.35, 0.3,
    # 0.35) -> class 0.
    assert metrics["top1_agreement_images"] == 1.0
    assert metrics["finite"] is True
    assert compare_probs(got * float("nan"), reference)["finite"] is False


@pytest.mark.parametrize(
    ("gpu", "precision", "tf32", "expected"),
    [
        ("NVIDIA H200", "bfloat16", False, 989.4),
        ("NVIDIA H200", "float32", True, 494.7),
        ("NVIDIA H200", "float32", False, 66.9),
        ("NVIDIA H100 PCIe", "float16", False, 756.0),  # not the SXM part's 989.4
        ("NVIDIA H100 80GB HBM3", "float16", False, 989.4),
        ("NVIDIA GeForce RTX 4090", "float16", False, None),
    ],
)
def test_peak_flops_by_gpu_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpu: str,
                                precision: str, tf32: bool, expected: float | None) -> None:
    ctx = _context(tmp_path)
    ctx.device = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu)
    assert gpu_check.peak_tflops(ctx, precision, tf32) == expected


def test_sections_are_guarded(tmp_path: Path) -> None:
    ctx = _context(tmp_path)

    def broken(ctx: Context) -> dict:
        raise ZeroDivisionError("division by zero")

    def absent(ctx: Context) -> dict:
        raise Skipped("DALI does not import here")

    def wrong(ctx: Context) -> dict:
        ctx.check("sums identical", False, 3, "0 differing views")
        ctx.check("shapes", True, 1, "1")
        return {"summary": "ran"}

    def long(ctx: Context) -> dict:
        ctx.need(1e9, "the long part")
        return {}

    entries = {name: run_section(ctx, name, function, 0)
               for name, function in (("broken", broken), ("absent", absent), ("wrong", wrong),
                                      ("long", long))}
    assert entries["broken"]["status"] == "failed"
    assert entries["broken"]["error"] == "ZeroDivisionError: division by zero"
    assert entries["absent"]["status"] == "skipped"
    assert entries["wrong"]["status"] == "failed"
    assert entries["wrong"]["error"] == "checks failed: sums identical"
    assert entries["long"]["status"] == "incomplete"
    assert ctx.incomplete == ["long: the long part"]
    assert [c["section"] for c in ctx.checks] == ["wrong", "wrong"]

    late = run_section(_context(tmp_path, budget_s=5), "late", lambda c: {}, least_s=60)
    assert late["status"] == "skipped" and late["error"].startswith("time budget")
    with pytest.raises(OutOfTime):
        _context(tmp_path, budget_s=-1).need(0, "anything")


def test_verdicts() -> None:
    ok = {"status": "ok", "error": None}
    failed_check = {"status": "failed", "error": "checks failed: sums identical"}
    raised = {"status": "failed", "error": "RuntimeError: boom"}
    skipped = {"status": "skipped", "error": "DALI does not import here"}
    assert judge({"a": ok, "b": skipped}, [], dry_run=False) == (
        0, "every section ran and every check passed")
    assert judge({"a": ok, "b": failed_check}, [], dry_run=False) == (1, "failed: b")
    assert judge({"a": ok}, ["compile: compile v4"], dry_run=False) == (
        1, "incomplete (time budget): compile: compile v4")
    # A dry run proves the script: only sections that raised fail it.
    assert judge({"a": ok, "b": failed_check}, ["x"], dry_run=True)[0] == 0
    assert judge({"a": raised, "b": ok}, [], dry_run=True) == (
        1, "dry run: sections raised errors: a")


def test_classifier_is_the_final_head_not_the_auxiliary_one() -> None:
    from inceval.models import create_model

    v3 = create_model("v3", "random", seed=0)
    assert gpu_check.classifier(v3) is v3.fc
    v4 = create_model("v4", "random", seed=0)
    assert gpu_check.classifier(v4) is v4.last_linear


@pytest.mark.slow
def test_dry_run_of_light_sections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "check.json"
    status = gpu_check.main(["--dry-run", "--sections", "environment,oom", "--models", "v3",
                             "--out", str(out)])
    assert status == 0
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["device"] == "cpu"
    oom = report["sections"]["oom"]["result"]
    # 16 views, simulated memory for 4: 16 -> 8 -> 4, two halvings; same probabilities.
    assert oom["simulated"] is True
    assert (oom["oom_halvings"], oom["final_views_per_forward"]) == (2, 4)
    assert oom["max_abs_prob_diff"] == 0.0
    assert "DRY RUN on the CPU: no GPU was checked" in capsys.readouterr().out
