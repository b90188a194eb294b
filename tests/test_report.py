"""`inceval report` on the stored fixture runs, checked against numbers computed without inceval.

The references: ``expected_scores.json`` (plain csv + numpy scores, the paper's and timm's values
copied by hand), scipy's beta quantiles for the exact intervals, and loops over the stored arrays
(tests/fixtures/independent_scores.py) for the per-class errors, confusions and reliability bins.
The fixture runs' data root (/data/imagenet) does not exist here, so the example images are
omitted, which the report must say.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import beta

from inceval.cli import main
from inceval.data import builtin
from tests.fixtures import independent_scores as independent
from tests.fixtures.factory import FIXTURE_RUNS
from tests.test_report_parsing import ReportPage, decode_data_uri

pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install -e .[test])")

RUNS = ["tf", "adv", "paper", "ens4", "ens2"]
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The report of the five fixture runs, with --png: (html file, png folder, stdout)."""
    out = tmp_path_factory.mktemp("report")
    html_file, png_dir = out / "report.html", out / "png"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", stdout)
        with pytest.raises(SystemExit) as exit_info:
            main(["report", *(str(FIXTURE_RUNS / run) for run in RUNS), "--out",
                  str(html_file), "--png", str(png_dir)])
    assert exit_info.value.code == 0, stdout.getvalue()
    return html_file, png_dir, stdout.getvalue()


@pytest.fixture(scope="module")
def page(built: tuple[Path, Path, str]) -> ReportPage:
    return ReportPage(built[0].read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(independent.EXPECTED.read_text())


def _main_protocol(run: str, model: str) -> str:
    """The protocol with the most views: 144 for every fixture model."""
    views = {"1": 1, "10": 10, "12": 12, "144": 144, "my-proto": 3}
    return max(independent.RUN_CONTENTS[run][model], key=views.__getitem__)


def _expected_plots(expected: dict) -> set[str]:
    """Plots the fixture report must hold: the four summary plots and a per-class plot for every
    model with at least one top-1 error under its main protocol."""
    keys = {"error-vs-views", "ours-minus-paper", "ensemble-gain", "calibration"}
    for run, models in independent.RUN_CONTENTS.items():
        for model in models:
            protocol = _main_protocol(run, model)
            if expected["scores"][run][model][protocol]["all"]["top1"] > 0:
                slug = f"{run}/{model} {protocol}".replace("/", "-").replace(" ", "-")
                keys.add(f"per-class-{slug.replace('+', '-')}")
    return keys


def test_the_report_is_a_well_formed_self_contained_page(built: tuple[Path, Path, str],
                                                         page: ReportPage) -> None:
    text = built[0].read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert page.sections == ["tables", "plots", "per-class", "examples", "provenance"]
    # Nothing to fetch and nothing to run: every image is a data: URI, no script, no link.
    assert "script" not in page.tags and "link" not in page.tags
    assert page.images and all(img["src"].startswith("data:image/") for img in page.images)
    for remote in ('src="http', 'href="http', "url(", "@import"):
        assert remote not in text
    assert "wrote" in built[2] and "plots" in built[2]


def test_every_plot_is_embedded_and_written_as_png(built: tuple[Path, Path, str], page: ReportPage,
                                                   expected: dict) -> None:
    keys = _expected_plots(expected)
    assert len(keys) == 10  # ens4 gets every image right under 144: no per-class plot
    assert set(page.figures) == keys
    for key, src in page.figures.items():
        root = ET.fromstring(decode_data_uri(src, "image/svg+xml"))
        assert root.tag == f"{SVG_NS}svg", key
        # Glyphs are paths: a plot with axes, ticks and labels draws many of them.
        assert len(root.findall(f".//{SVG_NS}path")) > 20, key
    pngs = {path.name for path in built[1].iterdir()}
    assert pngs == {f"{key}.png" for key in keys}
    for name in pngs:
        with Image.open(built[1] / name) as image:
            image.load()
            assert image.format == "PNG" and image.width >= 600 and image.height >= 200, name
            pixels = np.asarray(image.convert("L"))
            assert (pixels < 200).mean() > 0.005, f"{name} is blank"


def _interval(wrong: int, images: int) -> str:
    low = 0.0 if wrong == 0 else beta.ppf(0.025, wrong, images - wrong + 1)
    high = 1.0 if wrong == images else beta.ppf(0.975, wrong + 1, images - wrong)
    return f"[{100 * low:.2f}, {100 * high:.2f}]"


def _check_row(key: str, cells: dict[str, str], expected: dict) -> None:
    subset = "non_blacklisted" if key == "1" else "all"
    protocol = "1" if key == "checkpoints" else cells["Protocol"]
    score = expected["scores"][cells["Run"]][cells["Model"]][protocol][subset]
    images = score["images"]
    assert int(cells["Images"]) == images
    for k in ("1", "5"):
        value = score[f"top{k}"]
        assert cells[f"Top-{k}"] == f"{value:.2f}"
        wrong = round(value * images / 100)
        assert cells[f"95% CI top-{k}"] == _interval(wrong, images)
    if key == "other":
        assert "Paper top-1" not in cells
        return
    if key == "checkpoints":
        reference = expected["timm"][cells["Weights"]]
        assert float(cells["timm top-1"]) == pytest.approx(reference[0], abs=5e-4)
    else:
        reference = expected["paper"].get(f"{key}|{cells['Model']}|{cells['Protocol']}")
        if reference is None:
            assert (cells["Paper top-1"], cells["Diff top-1"]) == ("-", "-")
            return
        assert (float(cells["Paper top-1"]), float(cells["Paper top-5"])) == tuple(reference)
    header = "timm" if key == "checkpoints" else "Paper"
    for k, ref in zip(("1", "5"), reference):
        assert cells[f"Diff top-{k}"] == f"{score[f'top{k}'] - ref:+.2f}"
        low, high = (float(v) for v in cells[f"95% CI top-{k}"].strip("[]").split(","))
        inside = "yes" if low <= ref <= high else "no"
        assert cells[f"{header} in CI top-{k}"] == inside


def test_the_tables_hold_every_independent_number(page: ReportPage, expected: dict) -> None:
    tables = page.tables_with("data-table")
    assert set(tables) == {"1", "2", "3", "4", "checkpoints", "other", "differences"}
    checked = set()
    for key, table in tables.items():
        if key == "differences":
            continue
        for cells in table.records():
            if cells["Run"] == "-":  # the paper's rows of networks inceval cannot evaluate
                assert cells["Images"] == "-" and cells["Network"].endswith("(paper only)")
                continue
            _check_row(key, cells, expected)
            checked.add((key, cells["Run"], cells["Model"], cells.get("Protocol", "1")))
    stored = {(run, model, protocol) for run, models in expected["scores"].items()
              for model, protocols in models.items() for protocol in protocols}
    assert {entry[1:] for entry in checked} == stored
    assert len(checked) == len(stored) + 3  # protocol 1 also in the checkpoints table


def test_the_ensemble_gains_are_against_the_best_member(page: ReportPage, expected: dict) -> None:
    rows = [r for r in page.tables_with("data-table")["differences"].records()
            if r["Comparison"] == "ensemble - best member"]
    assert len(rows) == 2 * len(independent.ENSEMBLES)
    scores = expected["scores"]
    for (run, model), members in independent.ENSEMBLES.items():
        for metric in ("top1", "top5"):
            row = next(r for r in rows if (r["Run"], r["Model"], r["Metric"]) ==
                       (run, model, metric.replace("top", "top-")))
            member_errors = [(scores[r][m]["144"]["all"][metric], f"{r}/{m}")
                             for r, m, _ in members]
            best = min(member_errors, key=lambda item: item[0])  # first on a tie
            ours = scores[run][model]["144"]["all"][metric]
            assert (row["Against"], row["Against error"]) == (best[1], f"{best[0]:.2f}")
            assert row["Error"] == f"{ours:.2f}"
            assert row["Diff"] == f"{ours - best[0]:+.2f}"


def _independent_classes(run: str, model: str, protocol: str) -> tuple[list, list]:
    """Worst classes (name, images, wrong) and confusions (true, predicted, count) by loops."""
    labels, _ = independent.read_images(run)
    probs = independent.read_probabilities(run, model, protocol)
    images: dict[int, int] = {}
    wrong: dict[int, int] = {}
    pairs: dict[tuple[int, int], int] = {}
    for row, label in zip(probs, labels):
        images[label] = images.get(label, 0) + 1
        if independent.rank_of_label(row, label) == 0:
            continue
        wrong[label] = wrong.get(label, 0) + 1
        best = None
        for cls, value in enumerate(row):
            if cls != label and (best is None or value > row[best]):
                best = cls
        pairs[(label, best)] = pairs.get((label, best), 0) + 1
    worst = sorted(wrong, key=lambda c: (-wrong[c] / images[c], -wrong[c], c))[:20]
    confusions = sorted(pairs, key=lambda p: (-pairs[p], p))[:15]
    return ([[builtin.class_label(c), str(images[c]), str(wrong[c]),
              f"{100 * wrong[c] / images[c]:.2f}"] for c in worst],
            [[builtin.class_label(t), builtin.class_label(p), str(pairs[(t, p)])]
             for t, p in confusions])


def test_per_class_errors_and_confusions_are_the_independent_ones(page: ReportPage) -> None:
    sections = dict(page.per_class)
    assert len(sections) == sum(len(models) for models in independent.RUN_CONTENTS.values())
    for run, models in independent.RUN_CONTENTS.items():
        for model in models:
            protocol = _main_protocol(run, model)
            worst, confusions = _independent_classes(run, model, protocol)
            tables = {t.attrs["class"]: t for t in sections[f"{run}/{model} {protocol}"]}
            if not worst:
                assert tables == {}
                continue
            assert tables["worst-classes"].rows == worst
            assert tables["confusions"].rows == confusions


def test_the_reliability_bins_are_the_independent_ones() -> None:
    from inceval import stats
    from inceval.reports.report.data import reliability_bins
    from inceval.store import RunReader

    run = RunReader(FIXTURE_RUNS / "tf")
    diagram = reliability_bins(stats.per_image(run, "v4", "144"), "tf/v4 144")
    labels, _ = independent.read_images("tf")
    probs = independent.read_probabilities("tf", "v4", "144").astype(np.float64)
    counts, hits, confidence = [0] * 15, [0] * 15, [0.0] * 15
    for row, label in zip(probs, labels):
        top = max(row)
        b = min(int(top * 15), 14)
        counts[b] += 1
        hits[b] += independent.rank_of_label(row, label) == 0
        confidence[b] += top
    assert list(diagram.counts) == counts
    for b in range(15):
        if counts[b]:
            assert diagram.accuracy[b] == pytest.approx(hits[b] / counts[b], abs=1e-12)
            assert diagram.confidence[b] == pytest.approx(confidence[b] / counts[b], abs=1e-12)
        else:
            assert diagram.accuracy[b] == diagram.confidence[b] == 0.0
    ece = sum(abs(hits[b] - confidence[b]) for b in range(15)) / len(labels)
    assert diagram.ece == pytest.approx(100 * ece, abs=1e-9)


def test_example_images_are_omitted_and_the_report_says_why(page: ReportPage) -> None:
    note = page.omitted["examples"]
    assert "no run's images can be read here" in note
    for run in RUNS:
        assert f"run {run}: its data root /data/imagenet is not readable here" in note
    assert not any(img["src"].startswith("data:image/png") for img in page.images)


def test_provenance_names_commands_weights_devices_and_throughput(page: ReportPage) -> None:
    tables = [t for t in page.tables if t.attrs.get("class") == "provenance"]
    assert len(tables) == len(RUNS)
    tf = {row[0]: row[1] for row in tables[0].rows}
    manifest = json.loads((FIXTURE_RUNS / "tf" / "manifest.json").read_text())
    assert tf["Command"] == " ".join(manifest["command"])
    assert tf["Device"] == manifest["device"] and tf["Compute dtype"] == manifest["dtype"]
    assert tf["Throughput"].startswith(f"{manifest['throughput']['images_per_s']:g} images/s")
    assert tf["Versions"] == (f"inceval {manifest['inceval_version']}, "
                              f"torch {manifest['torch_version']}")
    for model, info in manifest["models"].items():
        assert tf[f"Weights of {model}"] == \
            f"{info['weights_tag']}, sha256 {info['weights_sha256']}"


def test_the_same_runs_give_the_same_bytes(built: tuple[Path, Path, str]) -> None:
    from inceval.reports.report import build_report
    from inceval.store import RunReader

    again = build_report([RunReader(FIXTURE_RUNS / run) for run in RUNS])
    assert again.html == built[0].read_text(encoding="utf-8")


def test_text_from_the_runs_is_escaped(tmp_path: Path) -> None:
    from inceval.reports.report import build_report
    from inceval.store import RunReader
    from tests.fixtures.factory import random_probs, write_run

    run_dir = tmp_path / "<b>run</b> & co"
    labels = [0, 1, 2, 3, 4, 5]
    write_run(run_dir, labels, {("m", "1"): random_probs(7, 6, 10)},
              weights={"m": "<i>tag</i>"})
    text = build_report([RunReader(run_dir)], resamples=50).html
    page = ReportPage(text)
    assert "<b>" not in text and "<i>" not in text
    assert "&lt;b&gt;run&lt;/b&gt; &amp; co" in text
    rows = [r for r in page.tables_with("data-table")["1"].records() if r["Model"] != "-"]
    assert [(row["Model"], row["Weights"]) for row in rows] == [("m", "<i>tag</i>")]
    assert "its data root (not recorded) is not readable here" in page.omitted["examples"]
