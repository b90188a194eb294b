"""`inceval compare --junit/--markdown`: JUnit XML in the structure GitHub, GitLab and Jenkins read
(testsuites > testsuite > testcase > failure, with their counting attributes), and the Markdown
summary."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from inceval.cli import main
from tests.fixtures.factory import ranked_probs, write_run

LABELS = [i % 10 for i in range(100)]
BASE = [0] * 80 + [1, 2, 7, 9] * 5  # 20 top-1 and 10 top-5 errors


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _write(path: Path, ranks: list[int], *, with_v3: bool = True) -> str:
    entries = {("v4", "144"): ranked_probs(LABELS, ranks, 10)}
    if with_v3:
        entries[("v3", "1")] = ranked_probs(LABELS, BASE, 10)
    return str(write_run(path, LABELS, entries, blacklisted=[5, 6]))


def _worse() -> list[int]:
    ranks = list(BASE)
    for i in range(30):
        ranks[i] = 6  # 30 images turn wrong under top-1 and top-5
    return ranks


# Attributes the JUnit consumers read (GitHub test-report actions, GitLab, Jenkins).
SUITE_COUNTS = ("tests", "failures", "errors", "skipped", "time")


def _check_schema(root: ET.Element) -> list[ET.Element]:
    assert root.tag == "testsuites"
    for key in ("tests", "failures", "errors", "time"):
        assert key in root.attrib
    suites = list(root)
    assert [s.tag for s in suites] == ["testsuite"]
    suite = suites[0]
    assert suite.get("name")
    for key in SUITE_COUNTS:
        assert key in suite.attrib
    float(suite.get("time"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
    for child in suite:
        assert child.tag in ("properties", "testcase", "system-out", "system-err")
    cases = suite.findall("testcase")
    for case in cases:
        assert case.get("name") and case.get("classname")
        float(case.get("time"))
        for child in case:
            assert child.tag in ("failure", "error", "skipped", "system-out", "system-err")
        for failure in case.findall("failure"):
            assert failure.get("message") and failure.get("type")
    failures = sum(len(c.findall("failure")) for c in cases)
    skipped = sum(len(c.findall("skipped")) for c in cases)
    for element in (root, suite):
        assert int(element.get("tests")) == len(cases)
        assert int(element.get("failures")) == failures
        assert int(element.get("errors")) == 0
    assert int(suite.get("skipped")) == skipped
    return cases


def test_junit_has_one_case_per_model_protocol_subset_metric_and_failures_for_regressions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = _write(tmp_path / "base", BASE)
    current = _write(tmp_path / "cur", _worse())
    report = tmp_path / "junit.xml"
    code, _, _ = run_cli(["compare", baseline, current, "--junit", str(report)], capsys)
    assert code == 1
    cases = _check_schema(ET.parse(report).getroot())
    # 2 entries x 2 subsets x 2 metrics
    assert len(cases) == 8
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert sorted(failed) == [
        "v4/144 top-1 error, all images", "v4/144 top-1 error, non-blacklisted images",
        "v4/144 top-5 error, all images", "v4/144 top-5 error, non-blacklisted images"]
    message = failed["v4/144 top-1 error, all images"].get("message")
    # 20 -> 50 wrong of 100: +30 pp; 30 turned wrong, none right; McNemar p = 2 x 2^-30.
    assert "+30.0000 pp (20.0000% -> 50.0000%, 100 images" in message
    assert "30 turned wrong, 0 turned right, McNemar p = 1.863e-09" in message
    assert "regression when an error rises by more than 0.05 pp" in message
    assert failed["v4/144 top-1 error, all images"].text == message


def test_junit_of_a_passing_comparison_and_a_missing_entry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = _write(tmp_path / "base", BASE)
    current = _write(tmp_path / "cur", BASE, with_v3=False)
    report = tmp_path / "junit.xml"
    code, _, _ = run_cli(["compare", baseline, current, "--junit", str(report)], capsys)
    assert code == 1
    cases = _check_schema(ET.parse(report).getroot())
    assert len(cases) == 5  # 4 metric cases of v4/144 + v3/1 missing
    failing = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failing == ["v3/1 present in the current run"]
    code, _, _ = run_cli(["compare", baseline, current, "--junit", str(report),
                          "--ignore-missing"], capsys)
    root = ET.parse(report).getroot()
    cases = _check_schema(root)
    assert code == 0 and root.get("failures") == "0"
    assert root.find("testsuite").get("skipped") == "1"


def test_markdown_summary_holds_the_verdict_the_rule_and_every_metric(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = _write(tmp_path / "base", BASE)
    current = _write(tmp_path / "cur", _worse())
    summary = tmp_path / "summary.md"
    code, out, _ = run_cli(["compare", baseline, current, "--markdown", str(summary),
                            "--alpha", "0.05", "--json"], capsys)
    text = summary.read_text()
    assert code == 1 and out.startswith("{")  # the JSON still goes to stdout
    assert text.startswith("## inceval compare: REGRESSION\n")
    assert ("Regression when an error rises by more than 0.05 pp and the rise is significant "
            "(exact McNemar p < 0.05).") in text
    rows = [line for line in text.splitlines() if line.startswith("| v")]
    metric_rows = [r for r in rows if "top-" in r]
    assert len(metric_rows) == 8
    assert ("| v4 | 144 | all | top-1 | 100 | 20.00 | 50.00 | +30.00 | 30 | 0 | <0.0001 | "
            "**REGRESSION** |") in metric_rows
    assert "| v3 | 1 | all | top-1 | 100 | 20.00 | 20.00 | +0.00 | 0 | 0 | 1.0000 | ok |" \
        in metric_rows
    assert "**2 regression(s)**" in text and "Calibration (NLL" in text


def test_an_unwritable_report_file_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = _write(tmp_path / "base", BASE)
    target = tmp_path / "no" / "such" / "dir" / "junit.xml"
    code, out, err = run_cli(["compare", baseline, baseline, "--junit", str(target)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: --junit {target}: cannot write (")
    assert err.endswith("give a writable file path\n")
