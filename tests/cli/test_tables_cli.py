"""`inceval tables` on the stored fixture runs: exact Markdown, JSON numbers, errors, help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inceval.cli import main
from tests.fixtures.factory import FIXTURE_RUNS
from tests.fixtures.independent_scores import EXPECTED as EXPECTED_SCORES

EXPECTED = Path(__file__).resolve().parents[1] / "fixtures" / "tables_all.md"
RUNS = ["tf", "adv", "paper", "ens4", "ens2"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _in_fixture_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURE_RUNS)


def test_markdown_equals_the_expected_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["tables", *RUNS, "--format", "markdown"], capsys)
    assert (code, err) == (0, "")
    assert out == EXPECTED.read_text()


def test_json_numbers_come_from_the_store(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", *RUNS, "--format", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["tie_rule"] == "pessimistic"
    assert [r["label"] for r in data["runs"]] == RUNS
    assert data["runs"][0]["non_blacklisted"] == 16
    rows = {(t["key"], r["run"], r["model"], r["protocol"]): r
            for t in data["tables"] for r in t["rows"]}
    scores = json.loads(EXPECTED_SCORES.read_text())["scores"]  # plain numpy, not RunReader
    for (key, run, model, protocol), row in rows.items():
        if run is None or key == "checkpoints":
            continue
        score = scores[run][model][protocol]["non_blacklisted" if key == "1" else "all"]
        assert (row["top1"], row["top5"], row["images"]) == \
            (score["top1"], score["top5"], score["images"])
    ens = rows[("4", "ens4", "v4+3xirv2", "144")]
    assert (ens["paper_top1"], ens["paper_top5"]) == (16.4, 3.1)
    assert ens["delta_top1"] == pytest.approx(ens["top1"] - 16.4)


@pytest.mark.parametrize("fmt", ["rich", "csv", "latex"])
def test_other_formats_print_every_table(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["tables", *RUNS, "--format", fmt], capsys)
    assert (code, err) == (0, "")
    assert ("inception\\_resnet\\_v2" if fmt == "latex" else "inception_resnet_v2") in out
    if fmt == "rich":
        assert "…" not in out  # columns are never squeezed into ellipses
        assert "Inception-v4(+Residual)" in out and "Table 4: ensembles" in out


def test_no_paper_has_no_paper_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", "tf", "--no-paper", "--format", "markdown"], capsys)
    assert code == 0
    assert "Paper top-1" not in out and "BN-Inception" not in out and "timm" not in out
    assert "| Inception-v4 | v4 | inception_v4.tf_in1k | 1 | 16 | 25.00 | 12.50 |" in out


def test_a_directory_that_is_not_a_run_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["tables", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert err == f"error: {tmp_path} has no manifest.json; give a run directory written by " \
                  "inceval\n"


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["tables", "--help"], capsys)
    assert code == 0
    for text in ("--format", "--paper / --no-paper", "--allow-incomplete", "48,238",
                 "percentage points", "[default: rich]"):
        assert text in " ".join(out.split()) or text in out
