"""The table outputs against numbers computed without inceval (tests/fixtures/independent_scores.py).

``tables_all.md`` pins the layout of ``inceval tables --format markdown``; these tests pin its
numbers: every score, image count and difference in it, and in the JSON output, must equal the
plain-numpy recomputation from the fixture arrays committed in ``expected_scores.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inceval.cli import main
from tests.fixtures import independent_scores as independent
from tests.fixtures.factory import FIXTURE_RUNS

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "tables_all.md"
RUNS = ["tf", "adv", "paper", "ens4", "ens2"]
SECTIONS = {"### Table 1": "1", "### Table 2": "2", "### Table 3": "3", "### Table 4": "4",
            "### Public checkpoints": "checkpoints", "### Other protocols": "other"}


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(independent.EXPECTED.read_text())


def _markdown_rows(text: str) -> list[tuple[str, dict[str, str]]]:
    """(table key, {column: cell}) for every measured row (Run is not '-') of every table."""
    rows, key, header = [], None, None
    for line in text.splitlines():
        for prefix, section in SECTIONS.items():
            if line.startswith(prefix):
                key, header = section, None
        if not line.startswith("| ") or key is None:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif cells[0] != "-":
            rows.append((key, dict(zip(header, cells, strict=True))))
    return rows


def test_the_independent_rank_counts_ties_against_the_label_by_hand() -> None:
    row = np.array([0.1, 0.3, 0.3, 0.2, 0.1], dtype=np.float16)
    assert independent.rank_of_label(row, 1) == 1  # class 2 ties with it and ranks above
    assert independent.rank_of_label(row, 3) == 2
    assert independent.rank_of_label(row, 0) == 4  # classes 1, 2, 3 and the tied 4
    # Labels 0, 1, 3: top-1 wrong for all three (a tie for first counts as wrong); top-5 right.
    probs = np.stack([row, row, row])
    result = independent.errors(probs, [0, 1, 3], [True, True, True])
    assert result == {"images": 3, "top1": 100.0, "top5": 0.0}
    assert independent.errors(probs, [0, 1, 3], [True, False, False])["images"] == 1


def test_expected_scores_are_the_independent_recomputation(expected: dict) -> None:
    assert independent.compute() == expected


def test_hand_checked_anchors_of_the_expected_scores(expected: dict) -> None:
    # 20 images, 4 of them blacklisted (3, 7, 11, 18): error rates are multiples of 5 % on all
    # images and of 6.25 % on the 16 others.
    for models in expected["scores"].values():
        for protocols in models.values():
            for subsets in protocols.values():
                assert subsets["all"]["images"] == 20
                assert subsets["non_blacklisted"]["images"] == 16
                for metric in ("top1", "top5"):
                    assert subsets["all"][metric] % 5 == 0
                    assert subsets["non_blacklisted"][metric] % 6.25 == 0
                    assert subsets["all"][metric] >= 0 and subsets["all"]["top5"] <= subsets["all"]["top1"]


@pytest.mark.parametrize(("run", "model"), list(independent.ENSEMBLES))
def test_stored_ensembles_equal_the_weighted_mean_of_their_members(run: str, model: str) -> None:
    stored = independent.read_probabilities(run, model, "144")
    np.testing.assert_array_equal(stored, independent.ensemble_mean(run, model, "144"))


def _check_row(key: str, cells: dict[str, str], expected: dict) -> None:
    subset = "non_blacklisted" if key == "1" else "all"
    score = expected["scores"][cells["Run"]][cells["Model"]][cells["Protocol"] if key != "checkpoints" else "1"][subset]
    assert int(cells["Images"]) == score["images"]
    assert cells["Top-1"] == f"{score['top1']:.2f}"
    assert cells["Top-5"] == f"{score['top5']:.2f}"
    if key == "checkpoints":
        timm_top1, timm_top5 = expected["timm"][cells["Weights"]]
        assert float(cells["timm top-1"]) == pytest.approx(timm_top1, abs=1e-9)
        assert cells["Diff top-1"] == f"{score['top1'] - timm_top1:+.2f}"
        assert cells["Diff top-5"] == f"{score['top5'] - timm_top5:+.2f}"
        return
    paper = expected["paper"].get(f"{key}|{cells['Model']}|{cells['Protocol']}")
    if key == "other":
        assert paper is None and "Paper top-1" not in cells
    elif paper is None:
        assert (cells["Paper top-1"], cells["Diff top-1"]) == ("-", "-")
    else:
        assert (float(cells["Paper top-1"]), float(cells["Paper top-5"])) == tuple(paper)
        assert cells["Diff top-1"] == f"{score['top1'] - paper[0]:+.2f}"
        assert cells["Diff top-5"] == f"{score['top5'] - paper[1]:+.2f}"


def test_every_number_of_the_golden_markdown_is_independent(expected: dict) -> None:
    rows = _markdown_rows(GOLDEN.read_text())
    seen = {(key, cells["Run"], cells["Model"], cells["Protocol"] if "Protocol" in cells else "1")
            for key, cells in rows}
    # Every stored (run, model, protocol) appears in some table; protocol 1 rows twice.
    stored = {(run, model, protocol) for run, models in expected["scores"].items()
              for model, protocols in models.items() for protocol in protocols}
    assert {(run, model, protocol) for _, run, model, protocol in seen} == stored
    assert len(rows) == len(stored) + 3  # v3, v4, irv2 protocol 1 in Table 1 and the checkpoints
    for key, cells in rows:
        _check_row(key, cells, expected)


def test_tables_json_equals_the_independent_scores(
        expected: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURE_RUNS)
    with pytest.raises(SystemExit) as exit_info:
        main(["tables", *RUNS, "--format", "json"])
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
    checked = 0
    for table in data["tables"]:
        subset = "non_blacklisted" if table["key"] == "1" else "all"
        for row in table["rows"]:
            if row["run"] is None:
                continue
            protocol = "1" if table["key"] == "checkpoints" else row["protocol"]
            score = expected["scores"][row["run"]][row["model"]][protocol][subset]
            assert (row["images"], row["top1"], row["top5"]) == \
                (score["images"], score["top1"], score["top5"])
            checked += 1
    assert checked == 17
