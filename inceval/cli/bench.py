"""``inceval bench``: throughput of the feeder, the view pipeline, the model and the whole run.

Also the bench half of ``inceval compare``: two bench JSON files compared on normalised
throughput (:func:`compare_bench_files`).
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from inceval.cli.console import console, err_console, print_json

# Literal copies, so that `--help` imports no torch (tests keep them equal to the engine's).
_STAGES = ("feeder", "pipeline", "model", "end-to-end")
_PRESETS = ("ci",)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_SYNTHETIC = 32


@click.command(
    "bench",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  inceval bench --models v4,irv2 --crops 1,12,144 --synthetic 64 --json bench.json
  inceval bench --models v3 --crops 1 --data /imagenet/val --images 512 --device cuda
  inceval bench --preset ci --json results/bench/ci_baseline.json   (the CI gate's baseline)
  inceval compare results/bench/ci_baseline.json bench.json --max-slowdown 0.5
""",
)
@click.option("--models", default="v3", show_default=True, metavar="LIST",
              help="Comma-separated networks (random weights: speed does not depend on them).")
@click.option("--crops", default="1", show_default=True, metavar="LIST",
              help="Comma-separated crop protocols, e.g. 1,12,144; one row per model, protocol "
                   "and stage.")
@click.option("--data", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Measure on the .jpg/.jpeg/.png files under DIR (sorted by path; labels are "
                   "not needed).")
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help=f"Measure on N generated photograph-like JPEGs (500x375, quality 90, about "
                   f"110 KB each), written once to a temporary folder. Default without --data: "
                   f"{DEFAULT_SYNTHETIC}.")
@click.option("--images", type=click.IntRange(min=1), default=None, metavar="N",
              help="Images per protocol and stage (going round the files when there are fewer). "
                   "Default: 32 on the CPU, 512 on CUDA; 4 and 64 for 100 or more views.")
@click.option("--stages", default=",".join(_STAGES), show_default=True, metavar="LIST",
              help="What to measure: feeder (file reads and view arguments, no decoding), "
                   "pipeline (rendered views, no model), model (views already on the device), "
                   "end-to-end (as `inceval run`, storing nothing).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Images per rendered batch. Default: the engine's, per protocol.")
@click.option("--max-views-per-forward", type=click.IntRange(min=1), default=None, metavar="N",
              help="Most views in one forward call. Default: the engine's: 8 on the CPU; on "
                   "CUDA 256 at 299 px, scaled by the pixel count, rounded down to whole images.")
@click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
              help="DALI CPU threads or torch-backend decoding processes. Default: the "
                   "engine's.")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="torch intra-op threads for the whole bench. Default: torch's (the CPUs).")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--backend", type=click.Choice(["auto", "dali", "torch"]), default="auto",
              show_default=True, help="View loader.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True,
              help="Forward precision, and the dtype of the GEMM that MFU is measured against.")
@click.option("--compile", "compile_", is_flag=True, default=False,
              help="torch.compile the models (a whole untimed pass warms each stage up).")
@click.option("--tf32", is_flag=True, default=False,
              help="Allow TF32 for float32 on CUDA (forwards and the GEMM).")
@click.option("--input-size", type=click.IntRange(min=75), default=None, metavar="PX",
              help="Run the networks at this input size instead of their weights' (smoke tests "
                   "and the CI gate).")
@click.option("--min-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True,
              metavar="S", help="Repeat each stage's work until at least S seconds have passed.")
@click.option("--gemm-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True,
              metavar="S", help="Length of each of the two GEMM measurements.")
@click.option("--reference-seconds", type=click.FloatRange(min=0), default=0.5,
              show_default=True, metavar="S",
              help="Length of each burst of the reference workload.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
@click.option("--preset", type=click.Choice(_PRESETS), default=None,
              help="A named fixed bench; options given beside it win. ci: the CI throughput "
                   "gate (v3 at 107 px, bundled photos, CPU, one torch thread, crops 1,12, model "
                   "and end to end).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE",
              help="Also write the result as JSON to FILE (input of `inceval compare`).")
@click.option("--quiet", "-q", is_flag=True, default=False,
              help="No progress lines on stderr.")
@click.pass_context
def command(ctx: click.Context, **options: Any) -> None:
    """Measure throughput: per model, protocol and stage, views/s and images/s.

    Stages: the feeder alone, the view pipeline alone, the model alone on views already on the
    device, and end to end (what `inceval run` does, without writing a store). Also achieved
    TFLOP/s and MFU (against a GEMM at the run's dtype measured in the same process), peak host
    RSS and device memory, the feeder's share of wall time, and the rate of a fixed reference
    workload: every row's normalised throughput is its views/s divided by that rate, which
    `inceval compare A.json B.json --max-slowdown F` gates on.
    """
    from inceval.bench.runner import BenchSettings, check_settings, run_bench
    from inceval.engine.evaluate import resolve_device
    from inceval.errors import InceValError

    options = _with_preset(ctx, options)
    if options["data"] is not None and options["synthetic"] is not None:
        raise InceValError("--data and --synthetic both given; measure on one of them")
    settings = BenchSettings(
        device=options["device"], dtype=options["dtype"], backend=options["backend"],
        batch_size=options["batch_size"], max_views_per_forward=options["max_views_per_forward"],
        workers=options["workers"], threads=options["threads"], compile=options["compile_"],
        tf32=options["tf32"], images=options["images"], min_seconds=options["min_seconds"],
        stages=_split("--stages", options["stages"]), gemm_seconds=options["gemm_seconds"],
        reference_seconds=options["reference_seconds"],
        extra={"preset": options["preset"], "input_size": options["input_size"],
               "seed": options["seed"]},
    )
    check_settings(settings, resolve_device(settings.device))  # before minutes of set-up
    _check_models(options)
    with ExitStack() as stack:
        paths, data_info = _images(options, stack)
        models = _build_models(options)
        on_row = None if options["quiet"] else _progress_line
        document = run_bench(models, _split("--crops", options["crops"]), paths, settings,
                             data_info=data_info, command=_command_line(), on_row=on_row)
    if options["json_file"] is not None:
        from inceval.bench.result import write_bench

        write_bench(options["json_file"], document)
    print_bench(document)


def _with_preset(ctx: click.Context, options: dict[str, Any]) -> dict[str, Any]:
    """Preset values for the options not given on the command line."""
    name = options.get("preset")
    if name is None:
        return options
    from inceval.bench.presets import PRESETS

    merged = dict(options)
    given_synthetic = _given(ctx, "synthetic")
    for key, value in PRESETS[name].options.items():
        if key == "data" and given_synthetic:
            continue
        if not _given(ctx, key):
            merged[key] = value
    return merged


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _split(option: str, text: str) -> tuple[str, ...]:
    from inceval.engine.runspec import split_list

    return split_list(option, text)


def _command_line() -> str:
    from inceval.cli import ARGV_KEY

    context = click.get_current_context(silent=True)
    recorded = context.meta.get(ARGV_KEY) if context is not None else None
    return shlex.join(["inceval", *(recorded if recorded is not None else sys.argv[1:])])


def list_images(root: Path) -> list[Path]:
    """The image files under ``root`` (any depth), sorted by path.

    Raises:
        InceValError: ``root`` is not a folder or holds no image.
    """
    from inceval.errors import InceValError

    if not root.is_dir():
        raise InceValError(f"--data {root}: no such folder; give a folder of JPEG/PNG images "
                           "or use --synthetic N")
    found = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise InceValError(f"--data {root} holds no .jpg/.jpeg/.png file; give a folder of "
                           "images or use --synthetic N")
    return found


def data_fingerprint(root: Path, paths: Sequence[Path]) -> str:
    """SHA-256 over each file's path relative to ``root`` and its size: the same images here
    and on another machine give the same value."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _images(options: dict[str, Any], stack: ExitStack) -> tuple[list[Path], dict[str, Any]]:
    """The image files to measure on (synthetic ones live as long as ``stack``), described."""
    data, synthetic = options["data"], options["synthetic"]
    if data is not None:
        root = Path(data).expanduser()
        paths = list_images(root)
        info = {"source": "folder", "path": str(root.resolve()), "files": len(paths)}
    else:
        from inceval.bench.synthetic import DEFAULT_QUALITY, DEFAULT_SIZE, write_synthetic_jpegs

        count = synthetic or DEFAULT_SYNTHETIC
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inceval-bench-")))
        paths = write_synthetic_jpegs(root, count)
        info = {"source": "synthetic", "files": count, "size": list(DEFAULT_SIZE),
                "quality": DEFAULT_QUALITY, "seed": 0}
    sizes = [p.stat().st_size for p in paths]
    info["mean_file_bytes"] = round(sum(sizes) / len(sizes))
    info["fingerprint"] = data_fingerprint(root, paths)
    return paths, info


def _check_models(options: dict[str, Any]) -> None:
    """Unknown models and protocols that do not fit them fail before any image or model."""
    from inceval.data.protocols import get_protocol
    from inceval.models import get_eval_config

    protocols = [get_protocol(name) for name in _split("--crops", options["crops"])]
    size = options["input_size"]
    for name in _split("--models", options["models"]):
        config = get_eval_config(name)
        config = config.with_input_size(size) if size else config
        for protocol in protocols:
            protocol.resolve(config)


def _build_models(options: dict[str, Any]) -> list:
    """Random-weight models in inference form, at ``--input-size`` when given."""
    from inceval.models import create_model, prepare_for_inference

    size = options["input_size"]
    models = []
    for name in _split("--models", options["models"]):
        model = create_model(name, "random", seed=options["seed"])
        if size:
            model.eval_config = model.eval_config.with_input_size(size)
        models.append(prepare_for_inference(model))
    return models


def _progress_line(model: str, protocol: str, stage: str, measurement: Any) -> None:
    if measurement is None:
        err_console.print(f"{model} {protocol} {stage}: not available", highlight=False)
        return
    err_console.print(f"{model} {protocol} {stage}: {measurement.views_per_s:,.1f} views/s, "
                      f"{measurement.images_per_s:,.2f} images/s ({measurement.passes} "
                      f"pass(es), {measurement.seconds:.1f} s)", highlight=False)


def _number(value: float | None, digits: int = 1, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.{digits}f}%" if percent else f"{value:,.{digits}f}"


def print_bench(document: dict[str, Any]) -> None:
    """The result as a rich table, with the yardsticks above it."""
    from rich import box
    from rich.table import Table

    settings, reference, gemm = document["settings"], document["reference"], document["gemm"]
    feeder = document["feeder"]
    console.print(
        f"device {settings['device']}, dtype {settings['dtype']}, backend {settings['backend']}, "
        f"{document['machine']['torch_threads']} torch threads\n"
        f"reference workload ({reference['workload']} v{reference['version']}): "
        f"{reference['rate']:.2f} passes/s ({reference['gflop_per_s']:.1f} GFLOP/s; bursts "
        f"{', '.join(f'{b:.2f}' for b in reference['bursts'])})\n"
        f"GEMM {gemm['size']}x{gemm['size']} {gemm['dtype']}: {gemm['tflop_per_s']:.3f} TFLOP/s",
        highlight=False)
    if feeder["available"] is False:
        console.print(f"feeder: not available ({feeder['reason']})", highlight=False)
    table = Table(title="Throughput (normalised = views/s per reference pass/s)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("Model", "Protocol", "Stage"):
        table.add_column(header)
    for header in ("Images", "Views/s", "Images/s", "Normalised", "TFLOP/s", "MFU",
                   "Peak RSS MiB", "Peak dev MiB", "Feeder share"):
        table.add_column(header, justify="right")
    for row in document["rows"]:
        table.add_row(row["model"], row["protocol"], row["stage"], f"{row['images']:,}",
                      _number(row["views_per_s"]), _number(row["images_per_s"], 2),
                      _number(row["normalised"], 3), _number(row["tflop_per_s"], 3),
                      _number(row["mfu"], 1, percent=True), _number(row["rss_peak_mib"], 0),
                      _number(row["device_peak_mib"], 0),
                      _number(row["feeder_share"], 2, percent=True))
    console.print(table)


# --- inceval compare on two bench files --------------------------------------------------------

# Options of `inceval compare` that only mean something for run directories.
RUN_ONLY_OPTIONS = ("max_error_delta", "alpha", "junit_file", "markdown_file",
                    "allow_different_images", "allow_incomplete")


def bench_pair(baseline: str, current: str) -> bool:
    """Whether ``inceval compare`` was given two bench results (False: two run directories).

    Raises:
        InceValError: a bench result beside something else, or a file that is not one.
    """
    from inceval.bench.result import is_bench_file
    from inceval.errors import InceValError

    flags = [is_bench_file(baseline), is_bench_file(current)]
    if all(flags):
        return True
    for path, flag in zip((baseline, current), flags):
        if not flag and Path(path).is_file():
            raise InceValError(f"{path} is a file but not an inceval bench result; give two run "
                               "directories or two files written by `inceval bench --json`")
    if any(flags):
        other = current if flags[0] else baseline
        raise InceValError(f"{other} is a run directory but the other argument is a bench "
                           "result; give two run directories or two bench results")
    return False


def compare_bench_files(ctx: click.Context, baseline: str, current: str, *,
                        max_slowdown: float | None, as_json: bool,
                        ignore_missing: bool) -> int:
    """``inceval compare`` of two bench results: print the comparison, return the exit status.

    Raises:
        InceValError: run-only options given, an invalid file, or results not comparable.
    """
    from inceval.bench.compare import DEFAULT_MAX_SLOWDOWN, compare_bench
    from inceval.bench.result import read_bench
    from inceval.errors import InceValError

    for name in RUN_ONLY_OPTIONS:
        if _given(ctx, name):
            option = "--" + name.removesuffix("_file").replace("_", "-")
            raise InceValError(f"{option} applies to run directories, not bench results; drop "
                               "it (bench results take --max-slowdown)")
    result = compare_bench(read_bench(baseline), read_bench(current),
                           max_slowdown=DEFAULT_MAX_SLOWDOWN if max_slowdown is None
                           else max_slowdown, ignore_missing=ignore_missing)
    if as_json:
        print_json(result.to_dict())
    else:
        print_bench_comparison(result)
    return result.exit_status


def print_bench_comparison(result: Any) -> None:  # BenchComparison, imported lazily
    """One table row per model/protocol/stage measured in both, then what is in only one."""
    from rich import box
    from rich.table import Table

    console.print(f"baseline: {result.baseline.path} (reference "
                  f"{result.baseline.reference_rate:.2f} passes/s)\n"
                  f"current:  {result.current.path} (reference "
                  f"{result.current.reference_rate:.2f} passes/s)", highlight=False)
    table = Table(title="Throughput: views/s, and normalised (views/s per reference pass/s)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("Model", "Protocol", "Stage"):
        table.add_column(header)
    for header in ("Views/s base", "Views/s now", "Norm. base", "Norm. now", "Ratio", "Change"):
        table.add_column(header, justify="right")
    table.add_column("Status")
    for change in result.changes:
        table.add_row(*change.key, _number(change.baseline_views_per_s),
                      _number(change.current_views_per_s), _number(change.baseline_normalised, 3),
                      _number(change.current_normalised, 3), f"{change.ratio:.3f}",
                      f"{change.change * 100:+.1f}%",
                      "REGRESSION" if change.regression else "ok",
                      style="red" if change.regression else None)
    console.print(table)
    for warning in result.warnings:
        console.print(f"warning: {warning}", highlight=False)
    _print_keys("REGRESSION: missing" if not result.ignore_missing else "missing",
                "is in the baseline but not in the current result", result.missing_from_current)
    _print_keys("new", "is only in the current result", result.new_in_current)
    limit = f"{result.max_slowdown * 100:g}%"
    slower = sum(change.regression for change in result.changes)
    verdict = (f"{slower} row(s) with normalised throughput down by more than {limit}"
               if slower else f"no normalised throughput fell by more than {limit}")
    if result.missing_from_current and not result.ignore_missing:
        verdict += f"; {len(result.missing_from_current)} baseline row(s) missing"
    console.print(verdict, highlight=False)


def _print_keys(label: str, text: str, keys: Iterable[tuple[str, str, str]]) -> None:
    for key in keys:
        console.print(f"{label}: {'/'.join(key)} {text}", highlight=False)
