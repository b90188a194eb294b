"""``inceval models``: the listing table, one model's details, JSON output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inceval.cli import cli, main

NAMES = ["v3", "v4", "irv2", "irv2-paper", "irv1"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # An empty, private hub cache: "cached" must not depend on the machine running the tests.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps cells at the default 80 columns
    return CliRunner()


def _run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, ["models", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_listing_table(runner: CliRunner) -> None:
    out = _run(runner)
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert list(rows) == NAMES
    cells = {name: [c.strip() for c in line.split("│")[1:-1]] for name, line in rows.items()}
    assert cells["v3"] == [
        "v3",
        "inception_v3",
        "23.83M",
        "5.71",
        "299",
        "341 -> 299 (0.875)",
        "bicubic",
        "0.5 / 0.5",
        "tf_in1k*, tv_in1k, tf_adv_in1k, gluon_in1k",
    ]
    assert cells["irv2"][2:6] == ["55.84M", "13.16", "299", "333 -> 299 (0.8975)"]
    assert cells["irv2"][8] == "tf_in1k*, tf_ens_adv_in1k"
    assert cells["v4"][3] == "12.25"
    assert cells["irv2-paper"][1:4] == ["-", "32.43M", "9.26"]
    assert cells["irv1"][3] == "6.21"
    assert cells["irv1"][8] == "none public"


def test_listing_json(runner: CliRunner) -> None:
    records = json.loads(_run(runner, "--json"))
    assert [r["name"] for r in records] == NAMES
    by_name = {r["name"]: r for r in records}
    v3 = by_name["v3"]
    assert (v3["params"], v3["input_size"], v3["resize_size"], v3["crop_pct"]) == (
        23_834_568,
        299,
        341,
        0.875,
    )
    assert v3["default_weights"] == "inception_v3.tf_in1k"
    weights = {w["tag"]: w for w in v3["weights"]}
    assert [w["default"] for w in v3["weights"]] == [True, False, False, False]
    assert weights["gluon_in1k"]["mean"] == [0.485, 0.456, 0.406]
    assert weights["gluon_in1k"]["std"] == [0.229, 0.224, 0.225]
    assert weights["tv_in1k"]["hub_repo"] == "timm/inception_v3.tv_in1k"
    assert (weights["tf_in1k"]["top1"], weights["tf_in1k"]["top5"]) == (77.866, 93.644)
    assert by_name["irv2"]["resize_size"] == 333
    assert (by_name["irv2"]["macs"], by_name["irv2"]["gmacs"]) == (13_155_794_016, 13.156)
    assert by_name["irv1"]["weights"] == [] and by_name["irv1"]["default_weights"] is None
    assert "cached_path" not in weights["tf_in1k"]


def test_details_of_one_model(runner: CliRunner) -> None:
    out = _run(runner, "inception_v3.gluon_in1k")
    assert "v3: Inception-v3" in out
    assert "23,834,568" in out
    assert "5.71 (11.43 GFLOPs)" in out
    row = next(line for line in out.splitlines() if "inception_v3.gluon_in1k" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:7] == [
        "inception_v3.gluon_in1k",
        "341 -> 299 (0.875)",
        "bicubic",
        "0.485,0.456,0.406 / 0.229,0.224,0.225",
        "78.806",
        "94.372",
        "no",
    ]
    assert "inception_v3.tf_in1k *" in out


def test_details_report_the_local_cache(runner: CliRunner, tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--timm--inception_resnet_v2.tf_in1k" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"placeholder")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("a" * 40)
    record = json.loads(_run(runner, "irv2", "--json"))
    cached = {w["tag"]: w["cached_path"] for w in record["weights"]}
    assert cached == {"tf_in1k": str(snapshot / "model.safetensors"), "tf_ens_adv_in1k": None}
    out = _run(runner, "irv2")
    row = next(line for line in out.splitlines() if "inception_resnet_v2.tf_in1k *" in line)
    assert "│ yes" in row


def test_model_without_weights(runner: CliRunner) -> None:
    out = _run(runner, "irv1")
    assert "none (no public weights)" in out
    assert "irv1 has no public weights: use --weights random or a checkpoint file." in out


def test_unknown_model_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "inception_v5"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "error: unknown model 'inception_v5'; did you mean inception_v4, inception_v3, inception_resnet_v2? "
        "available: "
        "v3 (inception_v3), v4 (inception_v4), irv2 (inception_resnet_v2), irv2-paper, irv1 (inception_resnet_v1)\n"
    )


def test_help_explains_every_option(runner: CliRunner) -> None:
    out = _run(runner, "--help")
    for text in (
        "GMACs",
        "1e9",
        "resize -> crop",
        "crop_pct",
        "mean/std",
        "* marks the default",
        "--json",
        "HF_HOME",
    ):
        assert text in out, text
