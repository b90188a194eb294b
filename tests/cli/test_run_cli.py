"""``inceval run`` from the command line: the Quick start command, --json, and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from inceval.cli import cli, main
from inceval.cli.run_display import plan_lines
from inceval.engine import launch
from inceval.engine.runspec import RunRequest
from inceval.store import RunReader

# The README Quick start's main-job command (after `inceval`): bundled sample, offline.
QUICK_START = ["run", "--models", "v3", "--crops", "1,12", "--weights", "random"]
# One 299-pixel view of two sample images: the cheapest real run.
TINY = ["run", "--models", "v3", "--crops", "1", "--weights", "random", "--limit", "2"]


def _row(out: str, *cells: str) -> bool:
    """Whether a printed table has a row with these cells in order."""
    pattern = r"[\s│|]+".join(re.escape(c) for c in cells)
    return re.search(r"(^|[\s│|])" + pattern + r"([\s│|]|$)", out, re.MULTILINE) is not None


@pytest.mark.slow
def test_quick_start_runs_offline_on_the_sample_and_prints_tables(tmp_path: Path,
                                                                  monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(cli, QUICK_START, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    reader = RunReader(run_dir)
    assert reader.entries() == [("v3", "1"), ("v3", "12")]
    assert all(reader.status("v3", p).complete for p in ("1", "12"))
    assert reader.num_images == 8 and reader.manifest["data"]["bundled_sample"] is True
    assert reader.manifest["models"]["v3"]["weights"] == "random"
    assert reader.manifest["models"]["v3"]["views_per_image"] == 13
    assert reader.manifest["finished_at"] is not None

    out = result.stdout
    assert "Results of this run" in out and "Table 1" in out and "Table 2" in out
    for score in reader.results():
        assert _row(out, "v3", score.protocol, score.subset, f"{score.images:,}",
                    f"{score.top1_error:.2f}", f"{score.top5_error:.2f}",
                    f"{score.top1_wrong:,}", f"{score.top5_wrong:,}"), score
    assert "RANDOM WEIGHTS" in result.stderr
    assert re.search(r"\[8/8 images\] [\d.]+ img/s, [\d.]+ views/s", result.stderr)
    assert str(run_dir.relative_to(tmp_path)) in out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("cli") / "tiny"
    result = CliRunner().invoke(cli, [*TINY, "--out", str(out), "--json", "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout), result.stderr


def test_json_summary_matches_the_stored_run(tiny_run) -> None:
    out, summary, stderr = tiny_run
    reader = RunReader(out)
    assert summary["run_dir"] == str(out)
    assert summary["images"] == 2 and summary["bundled_sample"] is True
    assert summary["models"] == {"v3": {"weights": "random", "weights_tag": None,
                                        "views_per_image": 1}}
    assert summary["random_weights"] == ["v3"]
    assert summary["results"] == [score.to_dict() for score in reader.results()]
    assert [(r["protocol"], r["subset"], r["images"]) for r in summary["results"]] == \
        [("1", "all", 2), ("1", "non-blacklisted", 2)]
    assert summary["throughput"]["model_views"] == 2
    # --quiet: only the random-weights warning on stderr, no progress lines.
    assert "RANDOM WEIGHTS" in stderr and "images]" not in stderr


def test_an_occupied_out_directory_needs_overwrite(tiny_run, capsys) -> None:
    out, _, _ = tiny_run
    code, err = _main([*TINY, "--out", str(out), "--quiet"], capsys)
    assert code == 2
    assert err == f"error: --out {out} already holds a run; continue it with --resume, replace " \
                  "it with --overwrite, or choose another directory\n"
    result = CliRunner().invoke(cli, [*TINY, "--out", str(out), "--overwrite", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run_dir"] == str(out)
    assert re.search(r"\[2/2 images\] [\d.]+ img/s, [\d.]+ views/s", result.stderr)


def _main(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    assert captured.out == ""
    return exit_info.value.code, captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "v9"], "unknown model 'v9'"),
        (["--models", "v3,v3"], "--models lists v3 twice"),
        (["--crops", "13"], "unknown protocol '13'"),
        (["--weights", "v4=random"], "--weights item 'v4=random' names model v4, which is not in "
                                     "--models (v3)"),
        (["--weights", "random,pretrained"], "--weights 'random,pretrained' gives two values for "
                                             "all models"),
        (["--weights", "/no/such/v3.safetensors"], "--weights for v3: '/no/such/v3.safetensors' "
                                                   "is neither"),
        (["--weights-tag", "v3=no_such_tag"], "no_such_tag"),
        (["--data", "/no/such/imagenet"], "--data /no/such/imagenet does not exist"),
        (["--labels", "labels.txt"], "--labels needs --data"),
        (["--dtype", "float16", "--device", "cpu"], "--dtype float16 is not supported on the CPU"),
        (["--device", "tpu"], "--device 'tpu'"),
        (["--seed", str(2**64)], "--seed must be between"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(extra: list[str], message: str,
                                                     capsys) -> None:
    code, err = _main(["run", "--models", "v3", *extra], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda_is_a_one_line_error(capsys) -> None:
    code, err = _main(["run", "--device", "cuda"], capsys)
    assert code == 2
    assert err.startswith("error: --device cuda asked for CUDA") and err.count("\n") == 1


def test_help_explains_every_option() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    for option in ("--models", "--crops", "--weights", "--weights-tag", "--data", "--layout",
                   "--devkit", "--labels", "--blacklist", "--limit", "--subset", "--batch-size",
                   "--max-views-per-forward", "--workers", "--device", "--backend", "--dtype",
                   "--out", "--name", "--overwrite", "--seed", "--quiet", "--json", "--resume",
                   "--strict", "--chunk-size", "--nproc", "--tf32", "--compile"):
        assert option in result.output
    assert "default: 1024" in result.output and "default: float32" in result.output
    # The --batch-size default, explained (help text wraps, so compare without line breaks).
    assert "8 images at 1 crop" in " ".join(result.output.split())


def test_plan_lines_show_one_rendering_per_input_size(tmp_path: Path) -> None:
    # The real models, built by prepare() from the request: the weights tag must reach them. v3
    # with the gluon weights' settings (ImageNet mean/std), irv2 with its default ones; irv2's
    # single crop (0.8975) differs from v3's (0.875), so the 299-pixel group renders 146 views
    # (the 144, v3's own "1" at shorter side 341 and irv2's at 333) and each model computes 145
    # of them, whatever its normalisation.
    request = RunRequest.from_options(models="v3,irv2", crops="1,12,144", weights="random",
                                      weights_tag="v3=gluon_in1k", out=tmp_path / "run")
    prepared = launch.prepare(request)
    inception = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert [(m.model_name, m.weights_info["tag"], (m.eval_config.mean, m.eval_config.std),
             m.eval_config.crop_pct) for m in prepared.models] == [
        ("v3", "inception_v3.gluon_in1k", ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), 0.875),
        ("irv2", None, inception, 0.8975),
    ]
    (group,) = prepared.groups
    assert [m.eval_config for m in group.members] == [m.eval_config for m in prepared.models]
    lines = plan_lines(prepared)
    assert "299 px input: rendered 146 views per image; v3 145, irv2 145 distinct " \
           "(1: 1, 12: 12, 144: 144)" in lines
    assert sum("px input" in line for line in lines) == 1
