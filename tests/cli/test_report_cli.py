"""`inceval report` at the command line: bad input is one line and exit 2; the help explains."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inceval.cli import main
from tests.fixtures.factory import FIXTURE_RUNS

TF = str(FIXTURE_RUNS / "tf")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [
    (["--out", "{tmp}/report.txt"], "--out {tmp}/report.txt: the report is an HTML file; give a "
                                    "name ending in .html"),
    (["--out", "{tmp}/missing/report.html"], "--out {tmp}/missing/report.html: folder "
                                             "{tmp}/missing does not exist; create it"),
    (["--out", "{tmp}/r.html", "--png", "{tmp}/file.png"], "--png {tmp}/file.png is a file; give "
                                                           "a folder"),
    (["--out", "{tmp}/r.html", "--bootstrap-resamples", "0"],
     "--bootstrap-resamples must be a positive number of resamples, got 0"),
])
def test_bad_options_name_the_option_and_the_fix(args: list[str], says: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file.png").write_bytes(b"")
    code, _, err = run_cli(["report", TF, *(a.format(tmp=tmp_path) for a in args)], capsys)
    assert says.format(tmp=tmp_path) in _one_line_error(code, err)
    assert not (tmp_path / "r.html").exists()


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["report", str(tmp_path / "empty"), "--out",
                            str(tmp_path / "r.html")], capsys)
    assert str(tmp_path / "empty") in _one_line_error(code, err)
    assert not (tmp_path / "r.html").exists()


def test_without_matplotlib_the_error_says_how_to_install_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.delitem(sys.modules, "inceval.reports.plots", raising=False)
    import inceval.reports

    monkeypatch.delattr(inceval.reports, "plots", raising=False)  # imported again, and fails
    code, _, err = run_cli(["report", TF, "--out", str(tmp_path / "r.html")], capsys)
    assert "pip install 'inceval[report]'" in _one_line_error(code, err)


def test_help_explains_every_option_with_units_and_defaults(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["report", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    for option in ("--out FILE.html", "--png DIR", "--examples / --no-examples",
                   "--allow-incomplete", "--bootstrap-resamples N", "--seed N"):
        assert option in text
    for detail in ("150 dpi", "[default: no PNG files]", "[default: examples]",
                   "[default: 10000]", "[default: 0]", "percentage points",
                   "15 equal-width bins", "pip install 'inceval[report]'"):
        assert detail in text
    code, out, _ = run_cli(["--help"], capsys)
    assert "report" in out and "HTML report" in out
