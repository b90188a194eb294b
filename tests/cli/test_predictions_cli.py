"""`inceval predictions`: top classes per image with names, marks and JSON, on a hand-made run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inceval.cli import main
from tests.fixtures.factory import write_run


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    # Image 0: tabby (281) first, tiger cat (282) second -> right at top-1.
    # Image 1: label tench (0); goldfish (1) first, tench second -> right within top 2 only.
    # Image 2: label kit fox (278) tied with tabby for first -> wrong (ties count as wrong).
    probs = np.full((3, 1000), 1e-4, dtype=np.float32)
    probs[0, [281, 282]] = [0.6, 0.3]
    probs[1, [1, 0]] = [0.5, 0.4]
    probs[2, [278, 281]] = [0.45, 0.45]
    return write_run(tmp_path / "run", [281, 0, 278], {("v3", "1"): probs})


def test_json_lists_names_probabilities_and_marks(run: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_cli(["predictions", str(run), "--top", "2", "--json"], capsys)
    assert (code, err) == (0, "")
    rows = json.loads(out)["rows"]
    assert [r["label_name"] for r in rows] == ["tabby", "tench", "kit fox"]
    assert [[t["name"] for t in r["top"]] for r in rows][:2] == [["tabby", "tiger cat"],
                                                                 ["goldfish", "tench"]]
    assert rows[0]["top"][0]["probability"] == pytest.approx(0.6, abs=1e-3)
    assert [(r["correct_top1"], r["correct_topk"]) for r in rows] == \
        [(True, True), (False, True), (False, True)]


def test_table_shows_names_with_indices_and_wrong_only_filters(
        run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    code, out, _ = _run_cli(["predictions", str(run), "--top", "2"], capsys)
    assert code == 0
    assert "tabby (281)" in out and "tench (0)" in out and "goldfish (1) 50.0" in out
    code, out, _ = _run_cli(["predictions", str(run), "--wrong", "--json"], capsys)
    assert [r["index"] for r in json.loads(out)["rows"]] == [1, 2]
    code, out, _ = _run_cli(["predictions", str(run), "--limit", "1", "--json"], capsys)
    assert len(json.loads(out)["rows"]) == 1


def test_ambiguous_or_unknown_choices_are_one_line_errors(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    probs = np.full((1, 1000), 1e-3, dtype=np.float32)
    run = write_run(tmp_path / "two", [0], {("v3", "1"): probs, ("v4", "1"): probs,
                                            ("v4", "144"): probs})
    code, _, err = _run_cli(["predictions", str(run)], capsys)
    assert (code, err) == (2, f"error: run {run} holds models v3, v4; choose one with --model\n")
    code, _, err = _run_cli(["predictions", str(run), "--model", "v9"], capsys)
    assert (code, err) == (2, f"error: run {run} has no model 'v9' (it has: v3, v4)\n")
    code, out, _ = _run_cli(["predictions", str(run), "--model", "v4", "--json"], capsys)
    assert (code, json.loads(out)["protocol"]) == (0, "1")
