"""Paper data against the notes, model -> row mapping, and the tables built from stored runs."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from inceval.errors import InceValError
from inceval.reports import paper
from inceval.reports import render
from inceval.reports.tables import PAPER_COLUMNS, build_tables, describe_runs
from inceval.store import RunReader, RunWriter
from tests.fixtures.factory import FIXTURE_RUNS, images, manifest, random_probs
from tests.fixtures.independent_scores import EXPECTED as EXPECTED_SCORES

FIXTURE = ["tf", "adv", "paper", "ens4", "ens2"]


def _runs(names: list[str] = FIXTURE) -> list[RunReader]:
    return [RunReader(FIXTURE_RUNS / name) for name in names]


def _notes_tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables of paper.md under their 'Table N' headings, as rows of cells."""
    tables: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^Table (\d)", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
        elif line.startswith("| Weights"):
            current = "checkpoints"
            tables[current] = []
        elif current and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] not in ("Network", "Weights"):
                tables[current].append(cells)
        elif current and not line.strip() and tables[current]:
            current = None
    return tables


def _number(cell: str) -> float | None:
    match = re.match(r"^([\d.]+)", cell)
    return float(match.group(1)) if match else None


def test_paper_values_match_the_notes() -> None:
    # A copy of the shared notes' paper.md (see tests/fixtures/notes/SOURCES.md).
    paper_md = Path(__file__).resolve().parent / "fixtures" / "notes" / "paper.md"
    notes = _notes_tables(paper_md.read_text())
    values = paper.load_paper()
    for key in ("1", "2", "3", "4"):
        ours = [(r.network, r.top1, r.top5) for r in values.tables[key].rows
                if r.footnote != "resnet-dense"]  # Table 3's ResNet-151 is quoted in the text
        theirs = [(cells[0], _number(cells[-2]), _number(cells[-1])) for cells in notes[key]]
        assert len(ours) == len(theirs)
        for (name, top1, top5), (their_name, their1, their5) in zip(ours, theirs):
            assert their_name.startswith(name)
            assert (top1, top5) == (their1, their5)
    assert values.tables["1"].images == 48238 and values.tables["3"].images == 50000
    resnet = values.tables["2"].rows[0]
    assert resnet.network == "ResNet" and "21.43 / 5.71" in values.footnotes[resnet.footnote]
    dense = [r for r in values.tables["3"].rows if r.network == "ResNet-151"][0]
    assert (dense.top1, dense.top5) == (19.4, 4.5)
    assert "3.08" in values.footnotes["test-set"]
    published = {cells[0]: (float(cells[1]), float(cells[2])) for cells in notes["checkpoints"]}
    assert {w: (c.top1_acc, c.top5_acc) for w, c in values.checkpoints.items()} == published


@pytest.mark.parametrize(
    ("model", "info", "network"),
    [
        ("v3", {}, "Inception-v3"), ("v4", {}, "Inception-v4"), ("irv1", {}, "Inception-ResNet-v1"),
        ("irv2", {}, "Inception-ResNet-v2"), ("irv2-paper", {}, "Inception-ResNet-v2"),
        ("mine", {"arch": "inception_v4"}, "Inception-v4"), ("dummy", {}, None),
    ],
)
def test_models_map_to_paper_networks(model: str, info: dict, network: str | None) -> None:
    assert paper.network_of(model, info) == network


def _ensemble(*members: tuple[str, float]) -> dict:
    return {"kind": "ensemble", "members": [{"model": m, "weight": w} for m, w in members]}


def test_ensembles_map_to_table_4_by_composition_and_equal_weights() -> None:
    v3x4 = _ensemble(*[("v3", 0.25)] * 4)
    assert paper.ensemble_paper_row(v3x4, 144).network == "Inception-v3"
    mixed = _ensemble(("irv2", 0.25), ("v4", 0.25), ("irv2-paper", 0.25), ("irv2", 0.25))
    row = paper.ensemble_paper_row(mixed, 144)
    assert (row.network, row.top1, row.top5) == ("Inception-v4(+Residual)", 16.4, 3.1)
    assert paper.describe_composition(mixed) == "1 x Inception-v4 + 3 x Inception-ResNet-v2"
    assert paper.ensemble_paper_row(mixed, 12) is None
    unequal = _ensemble(("v4", 0.4), ("irv2", 0.2), ("irv2", 0.2), ("irv2", 0.2))
    assert paper.ensemble_paper_row(unequal, 144) is None
    assert paper.ensemble_paper_row(_ensemble(("v4", 0.5), ("irv2", 0.5)), 144) is None
    nested = {"kind": "ensemble", "members": [
        {"model": "v4", "weight": 0.25},
        {"model": "inner", "weight": 0.75, "members": [{"model": "irv2", "weight": 1 / 3}] * 3},
    ]}
    assert paper.ensemble_paper_row(nested, 144).network == "Inception-v4(+Residual)"


def _table(tables, key):
    return next(t for t in tables if t.key == key)


def test_fixture_tables_place_rows_and_compute_differences() -> None:
    runs = _runs()
    tables = build_tables(runs)
    assert [t.key for t in tables] == ["1", "2", "3", "4", "checkpoints", "other"]
    t1 = _table(tables, "1").frame
    measured = t1[t1["model"].notna()]
    assert measured["model"].tolist() == ["v3", "v4", "irv2"]
    scores = json.loads(EXPECTED_SCORES.read_text())["scores"]  # plain numpy, not RunReader
    for _, row in measured.iterrows():
        clean = scores["tf"][row["model"]]["1"]["non_blacklisted"]
        assert (row["images"], row["top1"], row["top5"]) == \
            (clean["images"], clean["top1"], clean["top5"])
        assert row["delta_top1"] == pytest.approx(row["top1"] - row["paper_top1"])
        assert row["delta_top5"] == pytest.approx(row["top5"] - row["paper_top5"])
    assert measured.set_index("model").loc["v4", "paper_top1"] == 20.0
    reference = t1[t1["model"].isna()]
    assert reference["network"].tolist() == ["BN-Inception"]
    t2 = _table(tables, "2").frame.set_index(["model", "protocol"], drop=False)
    assert t2.loc[("v4", "10"), "paper_top1"] is None  # the paper has no 10-crop Inception row
    assert t2.loc[("v4", "12"), "paper_top1"] == 18.7
    t3 = _table(tables, "3").frame
    irv2 = t3[t3["model"].isin(["irv2", "irv2-paper"])]
    assert irv2["weights"].tolist() == ["inception_resnet_v2.tf_in1k",
                                        "inception_resnet_v2.tf_ens_adv_in1k",
                                        "irv2_paper.safetensors"]
    assert set(irv2["paper_top1"]) == {17.8}
    t4 = _table(tables, "4").frame.set_index("run", drop=False)
    assert t4.loc["ens4", "network"] == "Inception-v4(+Residual)"
    assert t4.loc["ens4", "paper_top5"] == 3.1
    assert t4.loc["ens2", "network"] is None and t4.loc["ens2", "paper_top1"] is None
    assert t4.loc["ens4", "top1"] == scores["ens4"]["v4+3xirv2"]["144"]["all"]["top1"]
    checkpoints = _table(tables, "checkpoints").frame.set_index("model")
    assert checkpoints.loc["v4", "paper_top1"] == pytest.approx(100 - 80.144)
    assert checkpoints.loc["v4", "top1"] == scores["tf"]["v4"]["1"]["all"]["top1"]
    other = _table(tables, "other").frame
    assert other[["model", "protocol"]].values.tolist() == [["irv2", "my-proto"]]


def test_tie_notes_report_rows_whose_errors_come_from_ties() -> None:
    tables = build_tables(_runs(["tf"]))
    t3 = _table(tables, "3")
    v4 = t3.frame.set_index("model").loc["v4"]
    assert v4["top1_tie_dependent"] == 2  # the fixture forces two exact ties for first place
    assert any(n.startswith("Ties: tf v4 144: 2 top-1") for n in t3.notes)


def test_no_paper_drops_paper_columns_reference_rows_and_checkpoints() -> None:
    tables = build_tables(_runs(), paper=False)
    assert "checkpoints" not in [t.key for t in tables]
    for table in tables:
        assert not set(PAPER_COLUMNS) & set(table.frame.columns)
        assert table.frame["model"].notna().all()
        assert table.reference_label is None


def test_json_holds_every_number_the_markdown_shows() -> None:
    runs = _runs()
    tables = build_tables(runs)
    markdown = render.to_markdown(tables, describe_runs(runs))
    data = render.to_json(tables, describe_runs(runs), paper.load_paper().source)
    shown = re.findall(r"-?\+?\d[\d,]*\.?\d*", "\n".join(
        line for line in markdown.splitlines() if line.startswith("| ") and "Run |" not in line))
    numbers = set()
    for table in data["tables"]:
        for row in table["rows"]:
            for value in row.values():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    numbers.update({f"{value:.2f}", f"{value:+.2f}", f"{value:.1f}",
                                    f"{value:.3f}", f"{value:,}", str(value)})
    labels = {str(v) for t in data["tables"] for r in t["rows"] for v in r.values()}
    missing = [n for n in shown if n not in numbers and n not in labels
               and not any(n in label for label in labels)]
    assert missing == []


def test_csv_and_latex_render_the_same_tables() -> None:
    runs = _runs()
    tables = build_tables(runs)
    frame = pd.read_csv(io.StringIO(render.to_csv(tables)), dtype={"protocol": str})
    assert len(frame) == sum(len(t.frame) for t in tables)
    row = frame[(frame["table"] == "1") & (frame["model"] == "v4")].iloc[0]
    expected = _table(tables, "1").frame.set_index("model").loc["v4"]
    assert row["top1"] == pytest.approx(expected["top1"], abs=1e-6)
    latex = render.to_latex(tables, describe_runs(runs))
    assert latex.count("\\begin{tabular}") == len(tables)
    assert "inception\\_v4.tf\\_in1k" in latex and "error \\%" in latex


def test_incomplete_runs_are_refused_unless_allowed(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path / "run", manifest=manifest({"v4": None}, {"1": 1}),
                              images=images([1, 2, 3, 4]))
    writer.open_predictions("v4", "1", num_classes=5)
    writer.write("v4", "1", 0, random_probs(0, 2, 5))
    writer.close()
    with pytest.raises(InceValError, match="incomplete"):
        build_tables([RunReader(tmp_path / "run")])
    tables = build_tables([RunReader(tmp_path / "run")], allow_incomplete=True)
    t1 = _table(tables, "1")
    assert t1.frame.set_index("model").loc["v4", "images"] == 2
    assert any(n.startswith("Partial: 1 row(s)") for n in t1.notes)


def test_runs_without_predictions_are_refused(tmp_path: Path) -> None:
    RunWriter.create(tmp_path / "run", manifest=manifest({"v4": None}, {"1": 1}),
                     images=images([1])).finish()
    with pytest.raises(InceValError, match="hold no prediction files"):
        build_tables([RunReader(tmp_path / "run")])


def test_table_1_warns_when_a_run_has_no_blacklisted_image(tmp_path: Path) -> None:
    from tests.fixtures.factory import write_run

    write_run(tmp_path / "noblack", [0, 1, 2], {("v4", "1"): random_probs(0, 3, 4)})
    tables = build_tables([RunReader(tmp_path / "noblack"), *_runs(["tf"])])
    notes = _table(tables, "1").notes
    assert notes[0] == ("Blacklist: run noblack was made without --blacklist (e.g. --blacklist "
                        "ilsvrc2014), so its rows cover all its images.")
    assert "tf" not in notes[0]
    rows = _table(tables, "1").frame.set_index("run")
    assert rows.loc["noblack", "images"] == 3
