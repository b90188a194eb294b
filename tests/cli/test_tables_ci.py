"""`inceval tables --ci`: exact intervals against scipy, paper-inside flags, the differences table
(paired bootstrap, McNemar) and calibration, all against numbers computed without inceval
(tests/fixtures/independent_scores.py reads the stored arrays with plain numpy)."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from inceval.cli import main
from tests.fixtures import independent_scores as independent
from tests.fixtures.factory import FIXTURE_RUNS

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "tables_all.md"
RUNS = ["tf", "adv", "paper", "ens4", "ens2"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _in_fixture_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURE_RUNS)


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(independent.EXPECTED.read_text())["scores"]


def _exact(wrong: int, images: int) -> tuple[float, float]:
    ci = sps.binomtest(wrong, images).proportion_ci(confidence_level=0.95, method="exact")
    return 100 * ci.low, 100 * ci.high


def _ranks(run: str, model: str, protocol: str) -> np.ndarray:
    labels, _ = independent.read_images(run)
    probs = independent.read_probabilities(run, model, protocol)
    return np.array([independent.rank_of_label(probs[i], labels[i]) for i in range(len(labels))])


def _ensemble_copy(tmp_path: Path, name: str, member_run: str | None) -> Path:
    """A copy of a fixture ensemble run whose manifest points its members at ``member_run``
    (None: at this checkout's fixture runs), so the test does not depend on where the fixtures
    were generated."""
    copy = tmp_path / name
    shutil.copytree(FIXTURE_RUNS / name, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for info in manifest["models"].values():
        for member in info["members"]:
            member["run"] = str(member_run or FIXTURE_RUNS / Path(member["run"]).name)
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


def test_intervals_are_opt_in_on_screen_formats(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", *RUNS, "--format", "markdown"], capsys)
    assert code == 0 and out == GOLDEN.read_text() and "95% CI" not in out
    code, out, _ = run_cli(["tables", *RUNS, "--format", "markdown", "--no-ci"], capsys)
    assert out == GOLDEN.read_text()
    code, out, _ = run_cli(["tables", "tf", "--format", "rich"], capsys)
    assert "95% CI" not in out and "Differences" not in out


def test_markdown_intervals_equal_scipy_and_say_whether_the_paper_is_inside(
        expected: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", "tf", "--format", "markdown", "--ci"], capsys)
    assert code == 0
    section, header, checked = None, None, 0
    for line in out.splitlines():
        if line.startswith("### "):
            section, header = line, None
            continue
        if not line.startswith("| ") or section is None or "Differences" in section:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        row = dict(zip(header, cells, strict=True))
        if row.get("Model", "-") == "-" or "Public checkpoints" in section:
            continue
        subset = "non_blacklisted" if section.startswith("### Table 1") else "all"
        score = expected["tf"][row["Model"]][row["Protocol"]][subset]
        for k in ("1", "5"):
            wrong = round(score[f"top{k}"] * score["images"] / 100)
            low, high = _exact(wrong, score["images"])
            assert row[f"95% CI top-{k}"] == f"[{low:.2f}, {high:.2f}]"
            if row.get(f"Paper top-{k}", "-") not in ("-", "N/A"):
                paper = float(row[f"Paper top-{k}"])
                assert row[f"Paper in CI top-{k}"] == ("yes" if low <= paper <= high else "no")
                checked += 1
    assert checked == 16  # with a paper value: Table 1: 3 rows, Table 2: 2, Table 3: 3; x 2
    assert "| Inception-v4 | v4 | inception_v4.tf_in1k | 144 | 144 | 20 | 40.00 | " \
           "[19.12, 63.95] | 17.7 | +22.30 | no |" in out  # 17.7 < 19.12: outside


def test_json_carries_intervals_and_calibration_by_default(
        expected: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", "tf", "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["statistics"]["intervals"] is True
    assert data["statistics"]["bootstrap_resamples"] == 10_000 and data["statistics"]["seed"] == 0
    labels, blacklisted = independent.read_images("tf")
    checked = 0
    for table in data["tables"]:
        subset = "non_blacklisted" if table["key"] == "1" else "all"
        for row in table["rows"]:
            if row["run"] is None:
                continue
            protocol = "1" if table["key"] == "checkpoints" else row["protocol"]
            score = expected["tf"][row["model"]][protocol][subset]
            wrong = round(score["top1"] * score["images"] / 100)
            low, high = _exact(wrong, score["images"])
            assert (row["top1_ci_low"], row["top1_ci_high"]) == \
                pytest.approx((low, high), rel=1e-9, abs=1e-9)
            if row["paper_top1"] is not None:
                assert row["delta_top1_ci_low"] == pytest.approx(low - row["paper_top1"])
                assert row["delta_top1_ci_high"] == pytest.approx(high - row["paper_top1"])
                assert row["paper_top1_inside"] == (low <= row["paper_top1"] <= high)
            # Calibration from the raw array with a plain loop (ECE in %, 15 bins).
            probs = independent.read_probabilities("tf", row["model"], protocol)
            keep = [True] * len(labels) if subset == "all" else [not b for b in blacklisted]
            nll, bins, count = 0.0, np.zeros((15, 3)), 0
            for i in range(len(labels)):
                if not keep[i]:
                    continue
                p = probs[i].astype(np.float64)
                count += 1
                nll -= math.log(max(p[labels[i]], 2.0 ** -24))
                top = p.max()
                b = min(int(top * 15), 14)
                bins[b] += (1, independent.rank_of_label(probs[i], labels[i]) == 0, top)
            assert row["nll"] == pytest.approx(nll / count, rel=1e-9)
            assert row["ece"] == pytest.approx(100 * np.abs(bins[:, 1] - bins[:, 2]).sum() / count,
                                               rel=1e-9)
            checked += 1
    assert checked == 13
    code, out, _ = run_cli(["tables", "tf", "--format", "json", "--no-ci"], capsys)
    data = json.loads(out)
    assert "differences" not in data
    assert all("top1_ci_low" not in row for t in data["tables"] for row in t["rows"])


def test_crop_differences_are_paired_and_match_an_independent_count(
        expected: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", "tf", "--format", "json", "--bootstrap-resamples", "2000",
                            "--seed", "7"], capsys)
    rows = {(r["model"], r["protocol"], r["metric"]): r
            for r in json.loads(out)["differences"]["rows"]}
    # v3: 144 vs 1; v4: 10, 12, 144 vs 1; irv2: 12, 144 vs 1 (my-proto is not a crop protocol).
    assert sorted({(m, p) for m, p, _ in rows}) == [
        ("irv2", "12"), ("irv2", "144"), ("v3", "144"), ("v4", "10"), ("v4", "12"),
        ("v4", "144")]
    for (model, protocol, metric), row in rows.items():
        k = 1 if metric == "top1" else 5
        ours, base = _ranks("tf", model, protocol) >= k, _ranks("tf", model, "1") >= k
        only_ours, only_base = int((ours & ~base).sum()), int((~ours & base).sum())
        assert (row["only_ours_wrong"], row["only_against_wrong"]) == (only_ours, only_base)
        score = expected["tf"][model]
        assert row["delta"] == pytest.approx(score[protocol]["all"][metric]
                                             - score["1"]["all"][metric])
        assert row["comparison"] == f"{protocol} - 1 crop" and row["against"] == f"{model}/1"
        if only_ours + only_base:
            assert row["p_value"] == pytest.approx(
                sps.binomtest(only_ours, only_ours + only_base, 0.5).pvalue, rel=1e-12)
        else:
            assert row["p_value"] == 1.0 and row["delta_ci_low"] == row["delta_ci_high"] == 0
        # 20 images: every resampled difference is a multiple of 5 pp.
        for bound in (row["delta_ci_low"], row["delta_ci_high"]):
            assert bound / 5 == pytest.approx(round(bound / 5))
        assert row["delta_ci_low"] <= row["delta"] <= row["delta_ci_high"]
        assert (row["resamples"], row["seed"]) == (2000, 7)
    again = json.loads(run_cli(["tables", "tf", "--format", "json", "--bootstrap-resamples",
                                "2000", "--seed", "7"], capsys)[1])["differences"]
    assert again["rows"] == json.loads(out)["differences"]["rows"]  # seeded: reproducible


def test_ensemble_minus_its_best_member(expected: dict, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ens2 = _ensemble_copy(tmp_path, "ens2", None)  # members tf/v4 and tf/v3
    code, out, _ = run_cli(["tables", str(ens2), "--format", "json"], capsys)
    rows = {r["metric"]: r for r in json.loads(out)["differences"]["rows"]}
    ens = expected["ens2"]["v4+v3"]["144"]["all"]
    members = {m: expected["tf"][m]["144"]["all"] for m in ("v4", "v3")}
    for metric in ("top1", "top5"):
        best = min(members, key=lambda m: members[m][metric])  # v3 (first on a tie: v4)
        row = rows[metric]
        assert row["comparison"] == "ensemble - best member"
        assert row["against"] == f"tf/{best}"
        assert row["delta"] == pytest.approx(ens[metric] - members[best][metric])
    assert rows["top1"]["against"] == "tf/v3"  # 25 % against v4's 40 %


def test_an_unreadable_member_run_is_a_note_not_a_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ens2 = _ensemble_copy(tmp_path, "ens2", tmp_path / "gone")
    code, out, err = run_cli(["tables", str(ens2), "--format", "markdown", "--ci"], capsys)
    assert (code, err) == (0, "")
    assert f"member gone/v4 cannot be read here ({tmp_path / 'gone'} does not exist" in out
    assert "no ensemble - best member row, since not every member could be compared" in out


def test_csv_carries_intervals_and_the_differences_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", "tf", "--format", "csv"], capsys)
    frame = pd.read_csv(io.StringIO(out), dtype={"protocol": str})
    assert code == 0 and {"top1_ci_low", "nll", "ece", "delta_ci_low"} <= set(frame.columns)
    assert (frame["table"] == "differences").sum() == 12  # 6 comparisons x 2 metrics
    code, out, _ = run_cli(["tables", "tf", "--format", "csv", "--no-ci"], capsys)
    frame = pd.read_csv(io.StringIO(out), dtype={"protocol": str})
    assert "top1_ci_low" not in frame.columns and "differences" not in set(frame["table"])


def test_bad_resamples_is_a_usage_error_and_help_documents_the_options(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["tables", "tf", "--bootstrap-resamples", "0"], capsys)
    assert code == 2 and out == ""
    assert err == ("error: --bootstrap-resamples must be a positive number of resamples, got 0; "
                   "the default is 10000\n")
    code, out, err = run_cli(["tables", "tf", "--seed", "-1"], capsys)
    assert code == 2 and err == "error: --seed must be a non-negative integer, got -1; the " \
                                "default is 0\n"
    code, out, _ = run_cli(["tables", "--help"], capsys)
    text = " ".join(out.split()).replace("- ", "-")  # click wraps lines after hyphens
    for part in ("--ci / --no-ci", "exact (Clopper-Pearson)", "[default: on for json and csv, off "
                 "for rich, markdown and latex]", "--bootstrap-resamples N", "[default: 10000]",
                 "--seed N", "[default: 0]", "clipped below at 2**-24", "15 equal-width bins"):
        assert part in text
