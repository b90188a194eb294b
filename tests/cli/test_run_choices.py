"""The literal option choices of `inceval run` (kept literal for a fast --help) equal the engine's."""

from __future__ import annotations

from inceval.cli import run as run_cli
from inceval.data.benchmarks import DATASET_CHOICES
from inceval.data.datasets import LAYOUTS
from inceval.engine.runspec import RunRequest
from inceval.errors import InceValError


def test_layout_and_dataset_choices_equal_the_engine_lists() -> None:
    assert run_cli._LAYOUTS == ("auto", *LAYOUTS)
    assert run_cli._DATASETS == DATASET_CHOICES


def test_dataset_needs_data() -> None:
    try:
        RunRequest.from_options(models="v3", crops="1", weights=None, weights_tag=None,
                                dataset="imagenet-a")
    except InceValError as exc:
        assert str(exc) == ("--dataset needs --data; without --data the bundled sample is "
                            "evaluated")
    else:
        raise AssertionError("--dataset without --data was accepted")


def test_the_manifest_records_the_arguments_inceval_was_called_with(tmp_path) -> None:  # noqa: ANN001
    import json

    from click.testing import CliRunner

    from inceval.cli import cli

    out = tmp_path / "run"
    args = ["run", "--models", "v3", "--crops", "1", "--weights", "random", "--limit", "1",
            "--quiet", "--backend", "torch", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    command = json.loads((out / "manifest.json").read_text())["command"]
    assert command == "inceval " + " ".join(args)  # not the test runner's own sys.argv
