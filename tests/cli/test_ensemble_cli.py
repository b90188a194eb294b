"""`inceval ensemble`: reproduces the stored fixture ensemble, refuses bad input with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inceval.cli import main
from inceval.store import RunReader
from tests.fixtures.factory import FIXTURE_RUNS, fingerprint, random_probs, write_run


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _fixture(name: str) -> str:
    return str(FIXTURE_RUNS / name)


def test_rebuilds_the_fixture_ensemble_bit_for_bit(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ens"
    code, stdout, err = run_cli(
        ["ensemble", _fixture("tf"), _fixture("adv"), _fixture("paper"),
         "--members", "v4,irv2,irv2@2,irv2-paper", "--out", str(out), "--json"], capsys)
    assert (code, err) == (0, "")
    data = json.loads(stdout)
    assert data["name"] == "v4+2xirv2+irv2-paper"
    assert [m["weight"] for m in data["members"]] == [0.25] * 4
    made = RunReader(out).probabilities(data["name"], "144")
    stored = RunReader(_fixture("ens4")).probabilities("v4+3xirv2", "144")
    np.testing.assert_array_equal(made, stored)
    direct = np.mean([RunReader(_fixture(r)).probabilities(m, "144").astype(np.float64)
                      for r, m in (("tf", "v4"), ("tf", "irv2"), ("adv", "irv2"),
                                   ("paper", "irv2-paper"))], axis=0)
    np.testing.assert_allclose(made.astype(np.float64), direct, rtol=2 ** -11, atol=1e-7)
    scores = {(s["protocol"], s["subset"]): s for s in data["scores"]}
    assert scores[("144", "all")]["images"] == 20
    assert scores[("144", "non-blacklisted")]["images"] == 16


def test_weights_and_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ens"
    code, stdout, _ = run_cli(["ensemble", _fixture("tf"), "--members", "v4,v3",
                               "--weights", "2,1", "--name", "w21", "--out", str(out)], capsys)
    assert code == 0 and "w21" in stdout and "0.6667" in stdout
    np.testing.assert_array_equal(RunReader(out).probabilities("w21", "144"),
                                  RunReader(_fixture("ens2")).probabilities("v4+v3", "144"))


def test_mismatched_runs_are_refused_naming_both(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    other = write_run(tmp_path / "v2set", list(range(20)),
                      {("v3", "144"): random_probs(0, 20, 100)},
                      data_fingerprint=fingerprint("ImageNetV2"))
    code, out, err = run_cli(["ensemble", _fixture("tf"), str(other), "--members", "v4,v3@2",
                              "--out", str(tmp_path / "ens")], capsys)
    assert code == 2 and out == ""
    assert err == (f"error: runs {_fixture('tf')} and {other} cannot be combined: image lists "
                   "differ (data.fingerprint)\n")
    assert not (tmp_path / "ens").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--members", "v4,v3", "--weights", "1"], "--weights has 1 value(s) for 2 member(s)"),
        (["--members", "v4,v3", "--weights", "1,x"],
         "--weights '1,x' must be comma-separated numbers"),
        (["--members", "v4,v3", "--weights", "1,0"], "--weights must be positive numbers, got 0.0"),
        (["--members", "v4,v4@1"], "--members names v4 of run 1 twice ('v4' and 'v4@1'); use "
                                  "MODEL@N to take it from another run"),
        (["--members", "v4", "--crops", "1-slim"], "has no predictions for model v4 under "
                                                   "protocol 1-slim"),
        (["--members", "v4", "--name", "../x"], "ensemble name '../x' cannot be stored"),
        (["--members", "v4,v3", "--crops", "144,144"], "--crops names protocol 144 twice"),
    ],
)
def test_bad_options_are_one_line_exit_2(args: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["ensemble", _fixture("tf"), "--out", str(tmp_path / "e"), *args],
                           capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_existing_output_needs_overwrite(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ensemble", _fixture("tf"), "--members", "v4,v3", "--out", str(tmp_path / "e")]
    assert run_cli(args, capsys)[0] == 0
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "is not empty; choose a new one or allow overwriting" in err
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0


def test_help_explains_member_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ensemble", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    for part in ("MODEL[@N]", "counting from 1", "[default: 144]", "normalised to sum to 1",
                 "runs/ensemble-NAME", "--overwrite", "--json"):
        assert part in text
