"""The ``inceval`` command line: a click group whose subcommands load lazily.

Each subcommand lives in its own module ``inceval.cli.<module>`` exposing a click command named
``command``. Loading lazily keeps ``inceval --help`` fast (torch and DALI are imported only by the
commands that need them).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

import click

from inceval import __version__
from inceval.errors import InceValError

INTERNAL_ERROR = 3

# command name -> (module under inceval.cli, one-line help shown by `inceval --help`)
_COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("models", "List the networks, their weights and evaluation settings."),
    "protocols": ("protocols", "List crop protocols, or print every view of one."),
    "views": ("views", "Write the views of one image as the model sees them (.png or .npy)."),
    "run": ("run", "Evaluate models under crop protocols and store per-image predictions."),
    "ensemble": ("ensemble", "Average stored predictions of several models into an ensemble."),
    "tables": ("tables", "Print the paper's Tables 1-4 from stored runs, beside the paper's values."),
    "compare": ("compare", "Compare two runs; exit 1 when an error rate rises past a threshold."),
    "predictions": ("predictions", "List each image's top classes with names, from a stored run."),
    "report": ("report", "Write an HTML report of stored runs: tables, plots, example images."),
    "bench": ("bench", "Measure throughput: feeder, view pipeline, model, end to end (JSON)."),
}


# ctx.meta key: the arguments the group was invoked with (for the manifest's command line).
ARGV_KEY = "inceval.argv"


class _LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept before parsing so a command can record exactly how it was called, also when the
        # group is invoked from Python (main(argv), CliRunner) rather than from sys.argv.
        ctx.meta[ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in _COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS or not _module_exists(_COMMANDS[cmd_name][0]):
            return None
        module_name, _ = _COMMANDS[cmd_name]
        module = importlib.import_module(f"inceval.cli.{module_name}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f"inceval.cli.{module}") is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inceval")
def cli() -> None:
    """inceval: exact, reproducible ImageNet evaluation of Inception networks.

    Reproduces the evaluation of Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of
    Residual Connections on Learning" (AAAI-17): 1-, 10-, 12- and 144-crop views decoded by NVIDIA
    DALI (GPU when CUDA is present, CPU otherwise), softmax averaged over views and ensemble members.

    Exit status: 0 success, 1 a regression found by `compare` (nothing else), 2 a usage or
    input error (one line on stderr), 3 an internal error (a bug: the traceback is shown),
    130 interrupted.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: user errors become one line and exit status 2."""
    try:
        # In non-standalone mode click returns the code of ctx.exit(n) instead of exiting.
        result = cli.main(args=argv, prog_name="inceval", standalone_mode=False)
    except InceValError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception:  # noqa: BLE001 - anything else is a bug: say so, never exit 1 (= regression)
        traceback.print_exc()
        click.echo("error: internal error in inceval (a bug, not your input); the traceback above "
                   "says where: please report it", err=True)
        sys.exit(INTERNAL_ERROR)
    sys.exit(result if isinstance(result, int) else 0)
