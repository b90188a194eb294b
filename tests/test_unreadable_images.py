"""Unreadable images in stored runs (issue 8): every reader leaves them out and counts them.

Runs are written through the real store API, then images are marked unreadable by editing the
files as the run contract says (tests/fixtures/unreadable.py: NaN rows, images.csv ``error``
column, manifest ``unreadable``, images_sha256 without the error column). Expected numbers are
counted by hand from the ranks each run was built with (ranked_probs puts a label at a chosen
rank, no ties), and cross-checked with plain numpy.

Ranks of run A (10 images; top-1 right at rank 0, top-5 right below rank 5):

    image     0  1  2  3  4  5  6  7  8  9
    label     0  1  2  3  4  5  0  1  2  3
    rank A    0  0  1  0  5  0  2  0  0  6      blacklisted: 1, 6; unreadable: 4, 6
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inceval import stats
from inceval.cli import main
from inceval.errors import InceValError
from inceval.reports.real import real_score
from inceval.reports.report.data import class_errors
from inceval.reports.tables import build_differences, build_tables, describe_runs
from inceval.store import RunReader, RunWriter, images_identity_sha256
from tests.fixtures.factory import (FIXTURE_RUNS, images, manifest, ranked_probs,
                                    write_run)
from tests.fixtures.unreadable import identity_sha256, mark_unreadable

LABELS = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
BLACK = [1, 6]
CLASSES = 8
RANKS_A = [0, 0, 1, 0, 5, 0, 2, 0, 0, 6]
RANKS_A12 = [0, 0, 0, 0, 5, 0, 2, 1, 0, 0]  # protocol 12 of run A
UNREADABLE_A = {4: "file is empty", 6: "not a readable image"}
# Run B: same images; it could read 4 but not 6 (another reason) and not 8.
RANKS_B = [0, 1, 1, 0, 0, 0, 0, 3, 0, 0]
UNREADABLE_B = {6: "cannot read file (Permission denied)", 8: "image file not found"}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _run_a(path: Path) -> Path:
    write_run(path, LABELS, {("v3", "1"): ranked_probs(LABELS, RANKS_A, CLASSES),
                             ("v3", "12"): ranked_probs(LABELS, RANKS_A12, CLASSES)},
              blacklisted=BLACK)
    mark_unreadable(path, UNREADABLE_A)
    return path


def _run_b(path: Path) -> Path:
    write_run(path, LABELS, {("v3", "1"): ranked_probs(LABELS, RANKS_B, CLASSES)},
              blacklisted=BLACK)
    mark_unreadable(path, UNREADABLE_B)
    return path


@pytest.fixture()
def run_a(tmp_path: Path) -> Path:
    return _run_a(tmp_path / "a")


@pytest.fixture()
def run_b(tmp_path: Path) -> Path:
    return _run_b(tmp_path / "b")


def _ranks(probs: np.ndarray, labels: list[int]) -> np.ndarray:
    """Pessimistic rank of each label, plain numpy (a second implementation)."""
    p = np.asarray(probs, dtype=np.float64)
    label_p = p[np.arange(len(labels)), labels][:, None]
    return (p >= label_p).sum(axis=1) - 1


# ----------------------------------------------------------------------------------------------
# Reading and scoring


def test_the_reader_exposes_the_error_column_and_the_mask(run_a: Path) -> None:
    run = RunReader(run_a)
    assert run.errors.tolist() == ["", "", "", "", "file is empty", "", "not a readable image",
                                   "", "", ""]
    np.testing.assert_array_equal(np.flatnonzero(run.unreadable), [4, 6])
    assert run.num_unreadable == 2
    assert "error" not in run.images.columns  # identity only; the reasons are `errors`
    assert run.labels.tolist() == LABELS
    probs = np.asarray(run.probabilities("v3", "1"), dtype=np.float64)
    assert np.isnan(probs[[4, 6]]).all() and np.isfinite(np.delete(probs, [4, 6], 0)).all()


def test_scores_leave_unreadable_images_out_and_count_them(run_a: Path) -> None:
    every, clean = RunReader(run_a).score("v3", "1")
    # All: 8 scored (0 1 2 3 5 7 8 9); top-1 wrong 2 and 9, top-5 wrong 9; 2 unreadable.
    assert (every.images, every.unreadable, every.top1_wrong, every.top5_wrong) == (8, 2, 2, 1)
    assert (every.top1_error, every.top5_error) == (25.0, 12.5)
    # Non-blacklisted: 7 scored (0 2 3 5 7 8 9); image 6 is blacklisted, so 1 unreadable here.
    assert (clean.images, clean.unreadable, clean.top1_wrong, clean.top5_wrong) == (7, 1, 2, 1)
    assert clean.top1_error == pytest.approx(200 / 7) and clean.top5_error == pytest.approx(100 / 7)
    # The same from plain numpy on the rows images.csv marks readable.
    probs = np.asarray(RunReader(run_a).probabilities("v3", "1"), dtype=np.float64)
    keep = np.array([i not in UNREADABLE_A for i in range(10)])
    ranks = _ranks(np.nan_to_num(probs), LABELS)[keep]
    assert 100 * (ranks >= 1).mean() == every.top1_error
    assert every.to_dict()["unreadable"] == 2


def test_an_old_run_without_the_error_column_reads_exactly_as_before() -> None:
    run = RunReader(FIXTURE_RUNS / "tf")
    assert "error" not in (FIXTURE_RUNS / "tf" / "images.csv").read_text().splitlines()[0]
    assert run.num_unreadable == 0 and set(run.errors) == {""}
    expected = json.loads((FIXTURE_RUNS.parent / "expected_scores.json").read_text())["scores"]
    for score in run.results():
        subset = "non_blacklisted" if score.subset == "non-blacklisted" else "all"
        want = expected["tf"][score.model][score.protocol][subset]
        assert (score.images, score.top1_error, score.top5_error, score.unreadable) == \
            (want["images"], want["top1"], want["top5"], 0)
        assert "unreadable" not in score.to_dict()


def test_an_old_run_marked_afterwards_gains_the_column(tmp_path: Path) -> None:
    """A run whose images.csv has the four columns only (written before the error column
    existed) accepts the column added later, with the sha of the text without it."""
    path = write_run(tmp_path / "old", LABELS, {("v3", "1"): ranked_probs(LABELS, RANKS_A, 8)})
    lines = (path / "images.csv").read_text().splitlines()
    old = "".join(line.rsplit(",", 1)[0] + "\n" for line in lines) if lines[0].endswith(
        ",error") else "\n".join(lines) + "\n"
    (path / "images.csv").write_text(old)
    manifest_path = path / "manifest.json"
    record = json.loads(manifest_path.read_text())
    record["images_sha256"] = identity_sha256(old)
    record.pop("unreadable", None)
    manifest_path.write_text(json.dumps(record))
    assert RunReader(path).num_unreadable == 0
    mark_unreadable(path, {9: "file is empty"})
    assert RunReader(path).score("v3", "1")[0].images == 9


def test_scoring_an_unfinished_file_counts_only_the_rows_written(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path / "part", manifest=manifest({"v3": None}, {"1": 1}),
                              images=images(LABELS, BLACK))
    writer.open_predictions("v3", "1", num_classes=CLASSES)
    writer.write("v3", "1", 0, ranked_probs(LABELS, RANKS_A, CLASSES)[:6])
    writer.close()
    mark_unreadable(tmp_path / "part", {4: "file is empty", 8: "file is empty"})
    every, clean = RunReader(tmp_path / "part").score("v3", "1", allow_incomplete=True)
    # Rows 0..5 written; 4 is unreadable (8 is not written yet): 5 scored, top-1 wrong: 2.
    assert (every.images, every.unreadable, every.top1_wrong, every.complete) == (5, 1, 1, False)
    assert (clean.images, clean.unreadable) == (4, 1)


def test_a_run_whose_every_image_is_unreadable_has_nothing_to_score(tmp_path: Path) -> None:
    path = write_run(tmp_path / "none", [0, 1], {("v3", "1"): ranked_probs([0, 1], [0, 0], 4)})
    mark_unreadable(path, {0: "file is empty", 1: "file is empty"})
    with pytest.raises(InceValError, match=r"all 2 image\(s\) it covers are unreadable"):
        RunReader(path).score("v3", "1")


def test_the_identity_sha_is_the_csv_without_the_error_column() -> None:
    """images_identity_sha256 (pandas) against the csv module on the rendered text."""
    frame = pd.DataFrame({
        "index": [0, 1, 2], "path": ['a,b.JPEG', 'q"uote.JPEG', "plain.JPEG"],
        "label": [1, 2, 3], "blacklisted": [1, 0, 0], "note": ["", "x, y", '"']})
    frame["error"] = ["", 'image is 3000x2: too elongated (a "299", x)', ""]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    assert images_identity_sha256(frame) == identity_sha256(buffer.getvalue())
    assert images_identity_sha256(frame) != images_identity_sha256(frame.assign(label=[1, 2, 4]))
    # The error column does not enter the digest.
    assert images_identity_sha256(frame) == images_identity_sha256(frame.assign(error=""))


# ----------------------------------------------------------------------------------------------
# Statistics, tables, report data


def test_per_image_vectors_mark_unreadable_images_not_scored(run_a: Path) -> None:
    run = RunReader(run_a)
    vectors = stats.per_image(run, "v3", "1")
    np.testing.assert_array_equal(vectors.scored, ~run.unreadable)
    np.testing.assert_array_equal(vectors.top1_correct,
                                  (np.array(RANKS_A) == 0) & ~run.unreadable)
    # Calibration of the 8 readable rows, from the raw probabilities by numpy.
    probs = np.asarray(run.probabilities("v3", "1"), dtype=np.float64)
    keep = ~run.unreadable
    p, y = probs[keep], np.array(LABELS)[keep]
    expected = stats.calibration(p[np.arange(8), y], p.max(axis=1), np.array(RANKS_A)[keep] == 0)
    assert vectors.calibration() == expected and expected.images == 8
    assert vectors.subset(~run.blacklisted).calibration().images == 7


def test_tables_show_scored_and_unreadable_counts(run_a: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["tables", str(run_a), "--format", "markdown"], capsys)
    assert (code, err) == (0, "")
    assert out.startswith("Runs: a (10 images, 2 unreadable).")
    # Table 1 (non-blacklisted): 7 scored, 28.57 / 14.29; Table 2 (all): 8 scored.
    assert "| Inception-v3 | v3 | random | 1 | 7 | 28.57 |" in out
    assert "| Inception-v3 | v3 | random | 12 | 1 | 8 | 12.50 |" in out
    assert ("- Unreadable: run a: 7 scored, 1 unreadable (listed in images.csv, column error); "
            "they are neither right nor wrong.") in out
    assert "- Unreadable: run a: 8 scored, 2 unreadable (listed in images.csv, column error)" in out

    code, out, _ = run_cli(["tables", str(run_a), "--format", "json"], capsys)
    data = json.loads(out)
    assert (data["runs"][0]["images"], data["runs"][0]["images_scored"],
            data["runs"][0]["images_unreadable"]) == (10, 8, 2)
    rows = {(t["key"], r["protocol"]): r for t in data["tables"] for r in t["rows"]
            if r["run"] is not None}
    assert {k: (r["images"], r["images_scored"], r["images_unreadable"]) for k, r in rows.items()} \
        == {("1", "1"): (7, 7, 1), ("2", "12"): (8, 8, 2)}
    # Protocol 12: all subset, top-1 wrong 7 (rank 1) only -> 12.5 %, interval of 1 in 8.
    assert rows[("2", "12")]["top1"] == 12.5 and rows[("2", "12")]["top1_wrong"] == 1
    assert rows[("2", "12")]["top1_ci_low"] == pytest.approx(100 * stats.clopper_pearson(1, 8)[0])

    code, out, _ = run_cli(["tables", str(run_a), "--format", "csv"], capsys)
    assert {"images_scored", "images_unreadable"} <= set(out.splitlines()[0].split(","))


def test_tables_of_runs_without_unreadable_images_have_no_new_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_run(tmp_path / "clean", LABELS, {("v3", "1"): ranked_probs(LABELS, RANKS_A, 8)})
    code, out, _ = run_cli(["tables", str(path), "--format", "json"], capsys)
    data = json.loads(out)
    assert data["runs"][0]["images_unreadable"] == 0
    for table in data["tables"]:
        assert not any("images_unreadable" in row for row in table["rows"])
        assert not any("Unreadable" in note for note in table["notes"])
    code, out, _ = run_cli(["tables", str(path), "--format", "markdown"], capsys)
    assert out.startswith("Runs: clean (10 images).")


def test_differences_pair_only_readable_images(run_a: Path) -> None:
    table = build_differences([RunReader(run_a)], resamples=200)
    assert table is not None
    rows = {r["metric"]: r for r in table.frame.to_dict(orient="records")}
    # 12 - 1 crop on the 8 readable images: top-1 wrong for 12: {7}; for 1: {2, 9}.
    assert (rows["top1"]["images"], rows["top1"]["only_ours_wrong"],
            rows["top1"]["only_against_wrong"]) == (8, 1, 2)
    assert rows["top1"]["delta"] == pytest.approx(100 * (1 - 2) / 8)
    # Top-5: 1 crop misses 9 (rank 6); 12 crops miss nothing readable.
    assert (rows["top5"]["only_ours_wrong"], rows["top5"]["only_against_wrong"]) == (0, 1)
    assert any("Unreadable images" in note for note in table.notes)


def test_per_class_errors_leave_unreadable_images_out(run_a: Path) -> None:
    result = class_errors(RunReader(run_a), "v3", "1", "a 1")
    # Wrong and readable: 2 (class 2, with 8: 1 of 2) and 9 (class 3, with 3: 1 of 2). Image 4
    # (class 4, rank 5) and 6 (class 0, rank 2) are unreadable: classes 4 and 0 show no error.
    assert [(c.index, c.images, c.wrong) for c in result.worst] == [(2, 2, 1), (3, 2, 1)]


def test_real_scores_leave_unreadable_images_out() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [np.nan] * 3, [0.5, 0.3, 0.2]])
    sets = [frozenset({0}), frozenset(), frozenset({1}), frozenset({2})]
    score = real_score([(0, probs[:2]), (2, probs[2:])], sets, "m", "1",
                       np.array([False, False, True, False]))
    # Scored: row 0 (right) and row 3 (class 2 third: top-1 wrong, top-5 right).
    assert (score.images, score.excluded, score.unreadable) == (2, 1, 1)
    assert (score.top1_wrong, score.top5_wrong, score.top1_error) == (1, 0, 50.0)
    assert score.to_dict()["unreadable"] == 1


def test_the_report_counts_unreadable_images(run_a: Path) -> None:
    from inceval.reports.report import build_report

    report = build_report([RunReader(run_a)], resamples=50, examples=False)
    assert "a (10 images, 2 unreadable)" in report.html
    assert "8 scored, 2 unreadable" in report.html
    (table2,) = [t for t in report.content.tables if t.key == "2"]
    assert table2.frame["images"].dropna().tolist() == [8]


def test_predictions_skip_unreadable_images(run_a: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["predictions", str(run_a), "--protocol", "1", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["images_unreadable"] == 2
    assert [r["index"] for r in data["rows"]] == [0, 1, 2, 3, 5, 7, 8, 9]
    code, out, _ = run_cli(["predictions", str(run_a), "--protocol", "1", "--wrong", "--json"],
                           capsys)
    assert [r["index"] for r in json.loads(out)["rows"]] == [2, 9]
    code, out, _ = run_cli(["predictions", str(run_a), "--protocol", "1"], capsys)
    assert "2 unreadable image(s) have no prediction and are not listed" in out


# ----------------------------------------------------------------------------------------------
# compare and ensemble


def test_compare_refuses_runs_that_scored_different_images(
        run_a: Path, run_b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["compare", str(run_a), str(run_b)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "did not score the same images: scored images differ: 1 image(s) unreadable only in" \
        in err
    assert "(first: index 4)" in err and "(first: index 8)" in err
    assert "pass --allow-different-images" in err


def test_compare_allowed_scores_both_on_the_images_both_could_read(
        run_a: Path, run_b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # B has no protocol 12: --ignore-missing keeps that out of the verdict.
    code, out, _ = run_cli(["compare", str(run_a), str(run_b), "--allow-different-images",
                            "--max-error-delta", "50", "--ignore-missing", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["same_images"] and data["scored_on"] == "the images both runs could read"
    assert data["scored_difference"].startswith("scored images differ")
    assert (data["baseline"]["images_unreadable"], data["current"]["images_unreadable"]) == (2, 2)
    (every,) = [r for r in data["accuracy"]["rows"] if r["subset"] == "all"]
    (clean,) = [r for r in data["accuracy"]["rows"] if r["subset"] == "non-blacklisted"]
    # Both read 0 1 2 3 5 7 9 (7 images). A wrong at top-1: 2, 9; B: 1, 2, 7.
    assert (every["baseline_images"], every["current_images"]) == (7, 7)
    assert every["top1"]["baseline"] == pytest.approx(200 / 7)
    assert every["top1"]["current"] == pytest.approx(300 / 7)
    assert (every["top1"]["turned_wrong"], every["top1"]["turned_right"]) == (2, 1)
    assert every["top1"]["p_value"] == stats.mcnemar_exact(2, 1)
    # Top-5: A misses 9, B misses none.
    assert (every["top5"]["turned_wrong"], every["top5"]["turned_right"]) == (0, 1)
    # Non-blacklisted: 0 2 3 5 7 9 (6 images); A wrong 2, 9; B wrong 2, 7.
    assert (clean["current_images"], clean["top1"]["turned_wrong"],
            clean["top1"]["turned_right"]) == (6, 1, 1)
    assert every["calibration"]["baseline"]["images"] == 7

    code, out, _ = run_cli(["compare", str(run_a), str(run_b), "--allow-different-images",
                            "--max-error-delta", "50", "--ignore-missing"], capsys)
    assert "both runs scored on the images both could read" in out


def test_compare_of_one_run_with_unreadable_images_needs_no_option(
        run_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["compare", str(run_a), str(run_a), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["scored_difference"] is None and data["scored_on"] == "the same images"
    rows = {(r["protocol"], r["subset"]): r for r in data["accuracy"]["rows"]}
    assert rows[("1", "all")]["current_images"] == 8


def test_ensemble_refuses_members_that_scored_different_images(
        run_a: Path, run_b: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["ensemble", str(run_a), str(run_b), "--members", "v3,v3@2",
                              "--crops", "1", "--out", str(tmp_path / "ens")], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in out + err
    assert "cannot be combined: scored images differ" in err
    assert "pass --allow-different-images" in err
    assert not (tmp_path / "ens").exists()


def test_ensemble_is_unreadable_wherever_a_member_is(
        run_a: Path, run_b: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "ens"
    code, out, err = run_cli(["ensemble", str(run_a), str(run_b), "--members", "v3,v3@2",
                              "--crops", "1", "--out", str(out_dir), "--allow-different-images",
                              "--json"], capsys)
    assert (code, err) == (0, "")
    data = json.loads(out)
    ens = RunReader(out_dir)
    # Union of {4, 6} and {6, 8}; image 6 keeps the first member's reason.
    assert ens.errors.tolist()[4] == "file is empty"
    assert ens.errors.tolist()[6] == "not a readable image"
    assert ens.errors.tolist()[8] == "image file not found"
    np.testing.assert_array_equal(np.flatnonzero(ens.unreadable), [4, 6, 8])
    manifest_record = json.loads((out_dir / "manifest.json").read_text())["unreadable"]
    assert manifest_record == {"count": 3, "images": {"4": "file is empty",
                                                      "6": "not a readable image",
                                                      "8": "image file not found"}}
    stored = np.asarray(ens.probabilities(data["name"], "1"), dtype=np.float64)
    assert np.isnan(stored[[4, 6, 8]]).all()
    # The readable rows are the plain mean of the members' stored rows.
    a = np.asarray(RunReader(run_a).probabilities("v3", "1"), dtype=np.float64)
    b = np.asarray(RunReader(run_b).probabilities("v3", "1"), dtype=np.float64)
    keep = ~ens.unreadable
    mean = ((0.5 * a + 0.5 * b)[keep]).astype(np.float16)
    np.testing.assert_array_equal(stored[keep], mean.astype(np.float64))
    ranks = _ranks(mean, list(np.array(LABELS)[keep]))
    every = next(s for s in data["scores"] if s["subset"] == "all")
    assert (every["images"], every["unreadable"]) == (7, 3)
    assert every["top1_wrong"] == int((ranks >= 1).sum())
    assert data["images_unreadable"] == 3


def test_ensemble_of_one_run_keeps_its_unreadable_images(
        run_a: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["ensemble", str(run_a), "--members", "v3", "--crops", "1,12",
                              "--out", str(tmp_path / "ens")], capsys)
    assert (code, err) == (0, "")
    assert "8 scored, 2 unreadable in a member and so in the ensemble" in out
    ens = RunReader(tmp_path / "ens")
    assert ens.errors.tolist() == RunReader(run_a).errors.tolist()
    for protocol in ("1", "12"):  # one member of weight 1: the same rows, the same scores
        assert ens.score("v3", protocol) == RunReader(run_a).score("v3", protocol)


def test_ensemble_members_with_a_nan_row_not_marked_are_refused(
        run_a: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.unreadable import nan_rows

    nan_rows(run_a / "predictions" / "v3" / "12.npy", [3])
    code, _, err = run_cli(["ensemble", str(run_a), "--members", "v3", "--crops", "12",
                            "--out", str(tmp_path / "ens")], capsys)
    assert code == 2
    assert err == (f"error: {run_a}/predictions/v3/12.npy: row 3 holds NaN but images.csv "
                   "marks it readable; the run directory is damaged: restore it from a copy or "
                   "rerun\n")


def test_describe_runs_counts_scored_and_unreadable(run_a: Path) -> None:
    (info,) = describe_runs([RunReader(run_a)])
    assert (info.images, info.non_blacklisted, info.images_scored, info.images_unreadable) == \
        (10, 8, 8, 2)
    tables = build_tables([RunReader(run_a)], paper=False)
    assert {t.key: t.frame["images_unreadable"].tolist() for t in tables} == \
        {"1": [1], "2": [2]}
