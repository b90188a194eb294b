"""`inceval compare`: exit 0/1/2, hand-computed changes, thresholds, image checks, JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inceval.cli import main
from tests.fixtures.factory import fingerprint, ranked_probs, write_run

LABELS = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8]  # 20 images
BLACK = [0, 5]
BASE_RANKS = [0] * 15 + [1, 2, 3, 6, 8]  # 5 top-1 errors, 2 top-5 errors


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _run(path: Path, ranks: list[int], *, extra: bool = True, **kwargs) -> str:
    entries = {("v4", "144"): ranked_probs(LABELS, ranks, 12)}
    if extra:
        entries[("v3", "1")] = ranked_probs(LABELS, BASE_RANKS, 12)
    return str(write_run(path, LABELS, entries, blacklisted=BLACK, **kwargs))


@pytest.fixture()
def baseline(tmp_path: Path) -> str:
    return _run(tmp_path / "base", BASE_RANKS)


def test_identical_runs_pass_with_zero_changes(baseline: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    current = _run(tmp_path / "cur", BASE_RANKS)
    code, out, err = run_cli(["compare", baseline, current, "--json"], capsys)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["status"], data["exit_status"], data["regressions"]) == ("ok", 0, 0)
    assert data["same_images"] and data["throughput"] is None
    assert len(data["accuracy"]["rows"]) == 4  # 2 entries x 2 subsets
    for row in data["accuracy"]["rows"]:
        assert row["top1"]["delta"] == 0.0 and row["top5"]["delta"] == 0.0


def test_a_rise_is_a_regression_with_the_hand_computed_delta(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worse = list(BASE_RANKS)
    worse[0] = 1  # one more top-1 error, on a blacklisted image (index 0)
    worse[1] = 5  # one more top-1 and top-5 error, on a clean image
    current = _run(tmp_path / "cur", worse)
    code, out, _ = run_cli(["compare", baseline, current, "--json"], capsys)
    assert code == 1
    data = json.loads(out)
    rows = {(r["model"], r["protocol"], r["subset"]): r for r in data["accuracy"]["rows"]}
    all_ = rows[("v4", "144", "all")]
    assert (all_["top1"]["baseline"], all_["top1"]["current"]) == (25.0, 35.0)
    assert all_["top1"]["delta"] == pytest.approx(10.0) and all_["top1"]["regression"]
    assert all_["top5"]["delta"] == pytest.approx(5.0) and all_["regression"]
    clean = rows[("v4", "144", "non-blacklisted")]
    assert clean["current_images"] == 18
    assert clean["top1"]["delta"] == pytest.approx(100 / 18)  # 1 more of 18 clean images
    assert not rows[("v3", "1", "all")]["regression"]
    assert data["regressions"] == 2 and data["status"] == "regression"


def test_threshold_is_strict_and_in_percentage_points(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    worse = list(BASE_RANKS)
    worse[0] = 1  # +1 top-1 error on a blacklisted image: +5 pp on all 20, none on the clean 18
    current = _run(tmp_path / "cur", worse)
    assert run_cli(["compare", baseline, current, "--max-error-delta", "5"], capsys)[0] == 0
    assert run_cli(["compare", baseline, current, "--max-error-delta", "4.99"], capsys)[0] == 1
    code, out, _ = run_cli(["compare", baseline, current], capsys)
    assert code == 1 and "REGRESSION" in out and "above 0.05 pp" in out


def test_an_improvement_passes(baseline: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    current = _run(tmp_path / "cur", [0] * 20)
    code, out, _ = run_cli(["compare", baseline, current, "--max-error-delta", "0"], capsys)
    assert code == 0 and "-25.00" in out


def test_different_images_are_refused_unless_allowed(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = _run(tmp_path / "other", BASE_RANKS, data_fingerprint=fingerprint("ImageNetV2"))
    code, out, err = run_cli(["compare", baseline, other], capsys)
    assert code == 2 and out == ""
    assert err == (f"error: runs {baseline} and {other} were not made on the same images: image "
                   "lists differ (data.fingerprint); pass --allow-different-images to compare "
                   "anyway\n")
    code, out, _ = run_cli(["compare", baseline, other, "--allow-different-images", "--json"],
                           capsys)
    data = json.loads(out)
    assert code == 0 and data["same_images"] is False
    assert data["images_difference"] == "image lists differ (data.fingerprint)"


def test_missing_entries_fail_unless_ignored(baseline: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    current = _run(tmp_path / "cur", BASE_RANKS, extra=False)
    code, out, _ = run_cli(["compare", baseline, current], capsys)
    assert code == 1 and "REGRESSION: missing: v3/1" in out
    code, out, _ = run_cli(["compare", baseline, current, "--ignore-missing", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["accuracy"]["missing_from_current"] == [
        {"model": "v3", "protocol": "1"}]
    code, out, _ = run_cli(["compare", current, baseline, "--json"], capsys)
    assert code == 0 and json.loads(out)["accuracy"]["new_in_current"] == [
        {"model": "v3", "protocol": "1"}]


def test_negative_threshold_is_a_usage_error(baseline: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["compare", baseline, baseline, "--max-error-delta", "-1"], capsys)
    assert code == 2
    assert err == "error: --max-error-delta must be >= 0 percentage points, got -1.0\n"


def test_help_documents_exit_status_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["compare", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    for part in ("--max-error-delta PP", "[default: 0.05]", "Exit status: 0 no regression; 1",
                 "--allow-different-images", "--ignore-missing", "--json", "--alpha A",
                 "[default: none, the threshold alone]", "exact McNemar p-value",
                 "--junit FILE", "JUnit XML", "--markdown FILE", "$GITHUB_STEP_SUMMARY",
                 "ECE in % over 15 equal-width bins"):
        assert part in text


def test_probabilities_are_not_modified(baseline: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = np.load(Path(baseline) / "predictions" / "v4" / "144.npy")
    run_cli(["compare", baseline, baseline], capsys)
    np.testing.assert_array_equal(np.load(Path(baseline) / "predictions" / "v4" / "144.npy"),
                                  before)
