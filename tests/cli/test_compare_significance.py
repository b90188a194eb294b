"""`inceval compare`: paired change counts, McNemar p-values against scipy, the --alpha rule on the
same pair of runs, and NLL/ECE against a plain loop over the stored probabilities."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from inceval.cli import main
from tests.fixtures.factory import fingerprint, ranked_probs, write_run

N = 200
CLASSES = 10
LABELS = [i % CLASSES for i in range(N)]
BLACK = [3, 50, 120]
BASE_RANKS = [0] * 150 + [1, 2, 3, 7, 9] * 10  # 50 top-1 errors, 20 top-5 errors


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _write(path: Path, ranks: list[int], **kwargs) -> str:
    probs = ranked_probs(LABELS, ranks, CLASSES)
    return str(write_run(path, LABELS, {("v4", "1"): probs}, blacklisted=BLACK, **kwargs))


def _flip(ranks: list[int], to_wrong: list[int], to_right: list[int] = ()) -> list[int]:
    out = list(ranks)
    for i in to_wrong:
        assert out[i] == 0
        out[i] = 1  # top-1 wrong, top-5 still right
    for i in to_right:
        assert out[i] > 0
        out[i] = 0
    return out


@pytest.fixture()
def baseline(tmp_path: Path) -> str:
    return _write(tmp_path / "base", BASE_RANKS)


def _rows(out: str) -> dict[str, dict]:
    return {row["subset"]: row for row in json.loads(out)["accuracy"]["rows"]}


def test_turned_wrong_and_right_and_the_p_value_equal_scipy(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 5 images turn wrong (one of them, 50, blacklisted) and 2 turn right (150 and 155 had rank 1).
    ranks = _flip(BASE_RANKS, [10, 20, 30, 40, 50], [150, 155])
    current = _write(tmp_path / "cur", ranks)
    code, out, _ = run_cli(["compare", baseline, current, "--json"], capsys)
    rows = _rows(out)
    top1 = rows["all"]["top1"]
    assert (top1["turned_wrong"], top1["turned_right"]) == (5, 2)
    assert top1["delta"] == pytest.approx(100 * (5 - 2) / N)
    assert top1["p_value"] == pytest.approx(sps.binomtest(5, 7, 0.5).pvalue, rel=1e-12)
    clean = rows["non-blacklisted"]["top1"]
    assert (clean["turned_wrong"], clean["turned_right"]) == (4, 2)
    assert clean["p_value"] == pytest.approx(sps.binomtest(4, 6, 0.5).pvalue, rel=1e-12)
    top5 = rows["all"]["top5"]
    assert (top5["turned_wrong"], top5["turned_right"], top5["p_value"]) == (0, 0, 1.0)
    assert code == 1 and top1["significant"] is None and top1["exceeds_threshold"]


def test_alpha_passes_a_small_rise_and_fails_a_large_one_on_the_same_baseline(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = _write(tmp_path / "small", _flip(BASE_RANKS, [0, 1]))
    large = _write(tmp_path / "large", _flip(BASE_RANKS, list(range(40))))
    # The threshold alone fails both: +1 pp and +20 pp are above 0.05 pp.
    assert run_cli(["compare", baseline, small], capsys)[0] == 1
    assert run_cli(["compare", baseline, large], capsys)[0] == 1
    # With --alpha 0.01 the 2-image rise (p = 0.5) passes and the 40-image one (p = 2^-39) fails.
    code, out, _ = run_cli(["compare", baseline, small, "--alpha", "0.01", "--json"], capsys)
    top1 = _rows(out)["all"]["top1"]
    assert code == 0 and json.loads(out)["alpha"] == 0.01
    assert top1["p_value"] == pytest.approx(0.5) and top1["significant"] is False
    assert top1["exceeds_threshold"] and not top1["regression"]
    code, out, _ = run_cli(["compare", baseline, large, "--alpha", "0.01", "--json"], capsys)
    top1 = _rows(out)["all"]["top1"]
    assert code == 1 and top1["regression"] and top1["significant"] is True
    assert top1["p_value"] == pytest.approx(sps.binomtest(40, 40, 0.5).pvalue, rel=1e-12)
    code, out, _ = run_cli(["compare", baseline, small, "--alpha", "0.01"], capsys)
    assert code == 0 and "ok (rise not significant)" in out and "with p < 0.01" in out


def test_a_significant_rise_within_the_threshold_is_not_a_regression(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Significant but within the threshold: not a regression (both conditions are needed).
    large = _write(tmp_path / "large", _flip(BASE_RANKS, list(range(40))))
    code, out, _ = run_cli(["compare", baseline, large, "--alpha", "0.01",
                            "--max-error-delta", "25", "--json"], capsys)
    top1 = _rows(out)["all"]["top1"]
    assert code == 0 and top1["significant"] is True and not top1["exceeds_threshold"]


@pytest.mark.parametrize("alpha", ["0", "1", "-0.1", "1.5", "nan"])
def test_alpha_outside_zero_one_is_a_usage_error(baseline: str, alpha: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["compare", baseline, baseline, "--alpha", alpha], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: --alpha must lie strictly between 0 and 1 (e.g. 0.01), got ")
    assert err.count("\n") == 1


def test_alpha_needs_the_same_images(baseline: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    other = _write(tmp_path / "other", BASE_RANKS, data_fingerprint=fingerprint("ImageNetV2"))
    code, _, err = run_cli(["compare", baseline, other, "--allow-different-images", "--alpha",
                            "0.01"], capsys)
    assert code == 2
    assert err == ("error: --alpha needs both runs on the same images to pair them, but image "
                   "lists differ (data.fingerprint); drop --alpha to compare by threshold only\n")
    code, out, _ = run_cli(["compare", baseline, other, "--allow-different-images", "--json"],
                           capsys)
    top1 = _rows(out)["all"]["top1"]
    assert code == 0 and (top1["turned_wrong"], top1["p_value"]) == (None, None)


def _calibration_by_loop(path: str, keep: list[bool]) -> tuple[float, float]:
    """NLL (nats) and ECE (%) from the stored array, one image at a time."""
    probs = np.load(Path(path) / "predictions" / "v4" / "1.npy").astype(np.float64)
    nll, count = 0.0, 0
    bins = [[0, 0.0, 0.0] for _ in range(15)]  # images, correct, confidence sum
    for row, label, use in zip(probs, LABELS, keep):
        if not use:
            continue
        count += 1
        nll -= math.log(max(row[label], 2.0 ** -24))
        top = max(row)
        correct = row[label] == top and sum(1 for v in row if v >= row[label]) == 1
        index = min(int(top * 15), 14)
        bins[index][0] += 1
        bins[index][1] += correct
        bins[index][2] += top
    ece = sum(abs(c - s) for _, c, s in bins) / count
    return nll / count, 100 * ece


def test_calibration_in_json_equals_a_plain_loop(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = _write(tmp_path / "cur", _flip(BASE_RANKS, [0, 1, 2]))
    code, out, _ = run_cli(["compare", baseline, current, "--json"], capsys)
    rows = _rows(out)
    assert json.loads(out)["accuracy"]["units"]["nll"] == "nats per image"
    for subset, keep in (("all", [True] * N),
                         ("non-blacklisted", [i not in BLACK for i in range(N)])):
        calibration = rows[subset]["calibration"]
        for side, path in (("baseline", baseline), ("current", current)):
            nll, ece = _calibration_by_loop(path, keep)
            assert calibration[side]["nll"] == pytest.approx(nll, rel=1e-12)
            assert calibration[side]["ece"] == pytest.approx(ece, rel=1e-12)
            assert calibration[side]["images"] == sum(keep)
        assert calibration["nll_delta"] == pytest.approx(
            calibration["current"]["nll"] - calibration["baseline"]["nll"])
