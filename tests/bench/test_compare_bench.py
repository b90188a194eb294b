"""`inceval compare A.json B.json`: the throughput gate on hand-made bench results.

Every expected ratio is worked out by hand from the rows' views/s and reference rates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inceval.bench.compare import compare_bench
from inceval.bench.result import validate
from inceval.cli import main
from tests.bench.helpers import changed, document, row, write
from tests.fixtures.factory import ranked_probs, write_run


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


BASE_ROWS = [
    row("v3", "1", "model", 40.0, 10.0),         # normalised 4.0
    row("v3", "1", "end-to-end", 30.0, 10.0),    # 3.0
    row("v3", "12", "end-to-end", 120.0, 10.0),  # 12.0
]


@pytest.fixture()
def baseline(tmp_path: Path) -> str:
    return write(tmp_path / "base.json", document(BASE_ROWS))


def test_identical_results_pass_with_ratio_one(baseline: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["compare", baseline, baseline, "--json"], capsys)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["kind"], data["status"], data["regressions"]) == ("bench", "ok", 0)
    assert [r["ratio"] for r in data["rows"]] == [1.0, 1.0, 1.0]
    assert data["missing_from_current"] == [] and data["new_in_current"] == []


def test_a_slower_machine_is_not_a_regression(baseline: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Everything, the reference included, at 40% of the speed: raw views/s fall by 60%, the
    # normalised values do not move (16 / 4 = 4.0, 12 / 4 = 3.0, 48 / 4 = 12.0).
    slow = [row("v3", "1", "model", 16.0, 4.0), row("v3", "1", "end-to-end", 12.0, 4.0),
            row("v3", "12", "end-to-end", 48.0, 4.0)]
    current = write(tmp_path / "slow.json", document(slow, reference_rate=4.0))
    code, out, _ = run_cli(["compare", baseline, current, "--max-slowdown", "0.2", "--json"],
                           capsys)
    assert code == 0
    assert [r["ratio"] for r in json.loads(out)["rows"]] == [1.0, 1.0, 1.0]


def test_a_normalised_slowdown_beyond_the_fraction_fails(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Same raw end-to-end rate at 1 crop, but the reference ran twice as fast: normalised
    # 30 / 20 = 1.5 against 3.0, ratio 0.5, a fall of 50% > 40%. The model row: 80 / 20 = 4.0,
    # ratio 1.0. The 12-crop row: 168 / 20 = 8.4 against 12.0, ratio 0.7, a fall of 30% < 40%.
    rows = [row("v3", "1", "model", 80.0, 20.0), row("v3", "1", "end-to-end", 30.0, 20.0),
            row("v3", "12", "end-to-end", 168.0, 20.0)]
    current = write(tmp_path / "cur.json", document(rows, reference_rate=20.0))
    code, out, _ = run_cli(["compare", baseline, current, "--max-slowdown", "0.4", "--json"],
                           capsys)
    assert code == 1
    data = json.loads(out)
    ratios = {(r["protocol"], r["stage"]): (r["ratio"], r["status"]) for r in data["rows"]}
    assert ratios[("1", "model")] == (1.0, "ok")
    assert ratios[("1", "end-to-end")] == (0.5, "regression")
    assert ratios[("12", "end-to-end")] == (pytest.approx(0.7), "ok")
    assert data["regressions"] == 1 and data["status"] == "regression"

    code, out, _ = run_cli(["compare", baseline, current, "--max-slowdown", "0.4"], capsys)
    assert code == 1
    assert "REGRESSION" in out and "1 row(s) with normalised throughput down by more than 40%" \
        in out


def test_a_fall_of_exactly_the_fraction_passes(baseline: str, tmp_path: Path) -> None:
    # 12-crop end to end: 90 / 10 = 9.0 against 12.0, ratio 0.75: a fall of exactly 25%.
    at_limit = [*BASE_ROWS[:2], row("v3", "12", "end-to-end", 90.0, 10.0)]
    just_over = [*BASE_ROWS[:2], row("v3", "12", "end-to-end", 89.9, 10.0)]
    base = validate(json.loads(Path(baseline).read_text()))
    ok = compare_bench(base, validate(document(at_limit)), max_slowdown=0.25)
    worse = compare_bench(base, validate(document(just_over)), max_slowdown=0.25)
    assert [c.ratio for c in ok.changes][2] == 0.75 and ok.exit_status == 0
    assert worse.exit_status == 1 and [c.regression for c in worse.changes] == [False] * 2 + [True]


def test_rows_in_one_file_only_are_reported(baseline: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rows = [BASE_ROWS[0], BASE_ROWS[1], row("v3", "1", "pipeline", 500.0, 10.0)]
    current = write(tmp_path / "cur.json", document(rows))
    code, out, _ = run_cli(["compare", baseline, current], capsys)
    assert code == 1
    assert "REGRESSION: missing: v3/12/end-to-end is in the baseline but not in the current " \
           "result" in out
    assert "new: v3/1/pipeline is only in the current result" in out
    code, out, _ = run_cli(["compare", baseline, current, "--ignore-missing", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["missing_from_current"] == ["v3/12/end-to-end"]
    assert data["new_in_current"] == ["v3/1/pipeline"]


@pytest.mark.parametrize(("change", "message"), [
    ({"settings__dtype": "bfloat16"}, "dtype (float32 vs bfloat16)"),
    ({"settings__workers": 2}, "workers (1 vs 2)"),
    ({"settings__device": "cuda:0"}, "device types (cpu vs cuda)"),
    ({"reference__version": 2}, "reference version (1 vs 2)"),
])
def test_results_measured_differently_are_refused(
        baseline: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict,
        message: str) -> None:
    current = write(tmp_path / "cur.json", changed(document(BASE_ROWS), **change))
    code, out, err = run_cli(["compare", baseline, current], capsys)
    assert (code, out) == (2, "")
    assert err == (f"error: {baseline} and {current} were measured with different {message}; "
                   "compare bench results made with the same settings\n")


def test_a_row_at_another_input_size_is_refused(baseline: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rows = [row("v3", "1", "model", 40.0, 10.0, input_size=107), *BASE_ROWS[1:]]
    current = write(tmp_path / "cur.json", document(rows))
    code, _, err = run_cli(["compare", baseline, current], capsys)
    assert code == 2
    assert "different input_size for v3/1/model (299 vs 107)" in err


def test_other_images_only_warn(baseline: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    current = write(tmp_path / "cur.json",
                    changed(document(BASE_ROWS), data__fingerprint="other"))
    code, out, _ = run_cli(["compare", baseline, current], capsys)
    assert code == 0
    assert "warning: the two results were measured on different images" in out


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "inceval-bench", "schema_version": 7}),
     "bench schema_version 7 is not supported by this inceval (reads 1)"),
    (json.dumps(changed(document(BASE_ROWS), reference__rate=0)),
     "reference.rate is missing or not a positive number"),
    (json.dumps(document([BASE_ROWS[0], BASE_ROWS[0]])), "row 2: v3/1/model appears twice"),
    (json.dumps(document([{**BASE_ROWS[0], "normalised": None}])),
     "row 1 (v3/1/model): \"normalised\" is missing or not a number > 0"),
])
def test_invalid_bench_files_give_one_line(baseline: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], content: str,
                                           message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    if content.startswith("{not"):
        # Not recognisable as a bench result: it is a file that is neither kind.
        code, _, err = run_cli(["compare", baseline, str(bad)], capsys)
        assert code == 2
        assert err == (f"error: {bad} is a file but not an inceval bench result; give two run "
                       "directories or two files written by `inceval bench --json`\n")
        return
    code, out, err = run_cli(["compare", baseline, str(bad)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {bad}") and message in err and err.count("\n") == 1


def test_bench_and_run_arguments_do_not_mix(baseline: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    labels = [0, 1, 2, 3]
    run = str(write_run(tmp_path / "run", labels, {("v3", "1"): ranked_probs(labels, [0] * 4, 5)}))
    code, _, err = run_cli(["compare", baseline, run], capsys)
    assert code == 2
    assert err == (f"error: {run} is a run directory but the other argument is a bench result; "
                   "give two run directories or two bench results\n")
    code, _, err = run_cli(["compare", run, run, "--max-slowdown", "0.5"], capsys)
    assert code == 2
    assert err == ("error: --max-slowdown applies to bench results (two `inceval bench --json` "
                   "files); for run directories use --max-error-delta\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--max-slowdown", "1.5"], "--max-slowdown 1.5 is not a fraction in [0, 1); e.g. 0.2 fails "
                                "when normalised throughput falls by more than 20%"),
    (["--max-slowdown", "-0.1"], "--max-slowdown -0.1 is not a fraction in [0, 1)"),
    (["--alpha", "0.01"], "--alpha applies to run directories, not bench results; drop it "
                          "(bench results take --max-slowdown)"),
    (["--junit", "x.xml"], "--junit applies to run directories"),
    (["--max-error-delta", "0.1"], "--max-error-delta applies to run directories"),
])
def test_bad_options_for_bench_results(baseline: str, capsys: pytest.CaptureFixture[str],
                                       args: list[str], message: str) -> None:
    code, out, err = run_cli(["compare", baseline, baseline, *args], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
