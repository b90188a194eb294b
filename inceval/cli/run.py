"""``inceval run``: evaluate models under crop protocols and store per-image predictions."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from inceval.cli.console import err_console, print_json

# Literal copies of the engine's choices, so `--help` needs no heavy import (a test keeps them equal).
_LAYOUTS = ("auto", "valprep", "devkit", "kaggle", "list", "imagenetv2", "ilsvrc2012")
_DATASETS = ("auto", "imagenet", "imagenetv2-matched-frequency", "imagenetv2-threshold0.7",
             "imagenetv2-top-images", "imagenetv2", "imagenet-sketch", "imagenet-a", "imagenet-r")


@click.command(
    "run",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  inceval run --models v3 --crops 1,12 --weights random
      the bundled sample (8 photos), offline, random weights: checks the pipeline
  inceval run --models v4,irv2 --crops 1,12,144 --data /imagenet/val --blacklist ilsvrc2014
      the paper's Tables 1-3 for two networks in one pass over the images
  inceval run --models v4 --weights v4=/ckpt/v4.safetensors --data /imagenet/val --limit 500
""",
)
@click.option("--models", "models", default="v3", show_default=True, metavar="LIST",
              help="Comma-separated networks: v3, v4, irv1, irv2, irv2-paper (or aliases such as "
                   "inception_v4, or a weights name such as inception_v3.tv_in1k).")
@click.option("--crops", default="1", show_default=True, metavar="LIST",
              help="Comma-separated crop protocols: 1, 1-slim, 10, 10-full, 12, 12-image, 12-3sq, "
                   "12-resized, 144, or a .json/.yaml protocol file (see `inceval protocols`). "
                   "Views shared by several protocols are computed once.")
@click.option("--weights", default="pretrained", show_default=True, metavar="SPEC",
              help="'pretrained' (public weights from the Hugging Face cache or hub), 'random' "
                   "(seeded initialisation; accuracy meaningless) or a checkpoint file; per model "
                   "with MODEL=VALUE items, e.g. 'v4=/ckpt/v4.safetensors,irv2=pretrained' or "
                   "'random,v4=pretrained' (first item for all, then overrides).")
@click.option("--weights-tag", default=None, metavar="SPEC",
              help="Which public weights: a tag such as tv_in1k or tf_ens_adv_in1k, for all "
                   "models or per model as MODEL=TAG items. Default: each model's default "
                   "weights. For a checkpoint file it selects the evaluation settings.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="ImageNet validation folder. Default: the bundled sample of 8 labelled "
                   "photographs (works offline).")
@click.option("--layout", type=click.Choice(_LAYOUTS), default="auto", show_default=True,
              help="How --data is laid out (auto detects it).")
@click.option("--devkit", type=click.Path(path_type=Path), default=None,
              help="ILSVRC2012_devkit_t12 folder or .tar.gz labelling a flat folder "
                   "(devkit layout). Default: found inside or beside --data; without one, flat "
                   "ILSVRC2012_val_* files take inceval's bundled labels (ilsvrc2012 layout).")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="LOC_val_solution.csv (kaggle layout) or a file of 'relative/path label' "
                   "lines (list layout).")
@click.option("--blacklist", type=click.Path(path_type=Path), default=None,
              help="'ilsvrc2014' for the bundled ILSVRC2014 validation blacklist (1,762 image "
                   "numbers), or a file in the devkit's format: results are reported on all "
                   "images and on the non-blacklisted ones (Table 1). Default: none.")
@click.option("--dataset", type=click.Choice(_DATASETS), default="auto", show_default=True,
              help="Which evaluation set --data holds; auto detects ImageNet-A/-R (their 200 "
                   "WNID folders), ImageNet-Sketch (a --data folder named *sketch*) and the "
                   "ImageNetV2 variant (from the folder name). ImageNet-A/-R are scored among "
                   "their 200 classes; sets other than ImageNet get their own table beside "
                   "timm's published figures.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Evaluate only the first N images (after --subset). Default: all.")
@click.option("--subset", default=None, metavar="FORM",
              help="Quick-run selection: per-class:K, every:K or file:PATH. Default: all images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Images per rendered batch (each with all of its views). Default: enough "
                   "images to fill one forward pass (see --max-views-per-forward; on CUDA at "
                   "least 8 images), at most 256 MB (CPU) or 1 GB (CUDA) of uint8 views per "
                   "batch: e.g. 8 images at 1 crop and 1 at 12 or 144 crops on the CPU; 256, 21 "
                   "and 8 on CUDA at 299 px.")
@click.option("--max-views-per-forward", type=click.IntRange(min=1), default=None, metavar="N",
              help="Most views (images x views) in one forward pass; lower it if memory runs "
                   "out (on CUDA it is halved by itself after an out-of-memory error). Default: "
                   "8 on the CPU (faster there than larger calls); on CUDA 256 at 299 px, scaled "
                   "by the pixel count and rounded down to whole images (144 at 144 crops).")
@click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
              help="DALI CPU threads, or decoding processes of the torch backend (0: decode in "
                   "the loader thread). Default: DALI uses as many threads as this process may "
                   "use CPUs; the torch backend decodes in the loader thread.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=1024, show_default=True,
              metavar="N",
              help="Images per chunk: the unit that is stored as done, resumed and shared "
                   "between ranks. An interruption loses at most the chunks in progress.")
@click.option("--resume", is_flag=True, default=False,
              help="Continue the interrupted run in --out: finished chunks are kept, the rest "
                   "is computed, and the store comes out identical to an uninterrupted run. "
                   "Refused when models, weights, protocols, data, dtype or batching differ; a "
                   "finished run is reported complete (exit 0).")
@click.option("--strict", is_flag=True, default=False,
              help="Stop at the first image that cannot be read or decoded (exit 2). Default: "
                   "such images are reported, recorded in images.csv (column error) with NaN "
                   "predictions, and left out of every score.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Processes on this machine sharing the chunks (torch.distributed: one GPU "
                   "each on CUDA, gloo on CPUs). The same as `torchrun --nproc_per_node N -m "
                   "inceval run ...`; the run directory is identical to a one-process run.")
@click.option("--device", default="auto", show_default=True,
              help="Where the models run: auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--backend", type=click.Choice(["auto", "dali", "torch"]), default="auto",
              show_default=True,
              help="View loader: dali (NVIDIA DALI, GPU decoding with CUDA), torch (PIL + torch "
                   "reference), auto (DALI when installed).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True,
              help="Precision of the forward passes (autocast); float16 needs CUDA. float32 is "
                   "IEEE float32 (TF32 off) unless --tf32. Stored probabilities are float16 in "
                   "every case.")
@click.option("--tf32", is_flag=True, default=False,
              help="Allow TF32 matrix products and convolutions for --dtype float32 on CUDA "
                   "(faster on Ampere/Hopper, ~10 mantissa bits). Recorded in the manifest.")
@click.option("--compile", "compile_model", is_flag=True, default=False,
              help="torch.compile the networks (fixed shapes per protocol; the first batches "
                   "are slower while compiling). Needs a working C++ compiler (CPU) or Triton "
                   "(CUDA).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run directory to create. Default: runs/NAME in the current directory.")
@click.option("--name", default=None,
              help="Run name, recorded in the manifest and used for the default --out. Default: "
                   "date-time, models and crops.")
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace an earlier run in --out (refused by default).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of random weights (--weights random).")
@click.option("--quiet", "-q", is_flag=True, default=False,
              help="No progress or notices on stderr (the random-weights warning stays).")
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print a JSON summary on stdout instead of the tables.")
@click.option("--real", is_flag=True, default=False,
              help="Also report ReaL top-1/top-5 errors (Beyer et al. 2020; bundled labels) for "
                   "runs of ILSVRC-2012 validation images (ILSVRC2012_val_* files). The same "
                   "table comes later from the stored run with `inceval tables --real RUN`.")
def command(models: str, crops: str, weights: str, weights_tag: str | None, data: Path | None,
            layout: str, devkit: Path | None, labels: Path | None, blacklist: Path | None,
            dataset: str, limit: int | None, subset: str | None, batch_size: int | None,
            max_views_per_forward: int | None, workers: int | None, chunk_size: int,
            resume: bool, strict: bool, nproc: int, device: str, backend: str, dtype: str,
            tf32: bool, compile_model: bool, out: Path | None, name: str | None,
            overwrite: bool, seed: int, quiet: bool, as_json: bool, real: bool) -> None:
    """Evaluate models under crop protocols and store per-image predictions.

    One pass over the images: each model computes the union of its protocols' views once per
    image (models of the same input size share one rendering of all their views), softmax
    probabilities are averaged over each protocol's views, and every image's probabilities are stored in the
    run directory (manifest.json, images.csv, predictions/MODEL/PROTOCOL.npy). At the end the
    top-1/top-5 errors on all images and on the non-blacklisted ones are printed with the
    paper's tables. Exit status 0 on success, 2 on a usage or input error.
    """
    from inceval.cli.run_display import (
        PlainProgressDisplay,
        RichProgressDisplay,
        bad_image_line,
        plan_lines,
        print_results,
        random_weights_panel,
        summary,
    )
    from inceval.cli.console import console
    from inceval.engine import distributed
    from inceval.engine.launch import execute, prepare
    from inceval.engine.runspec import RunRequest
    from inceval.errors import InceValError
    from inceval.store import resume_command

    invoked = _invoked_args()
    typed = os.environ.get(distributed.COMMAND_ENV) or shlex.join(["inceval", *invoked])
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise click.exceptions.Exit(distributed.launch_local(
            distributed.strip_option(invoked[1:] if invoked[:1] == ["run"] else invoked,
                                     "--nproc"), nproc, typed))
    request = RunRequest.from_options(
        models=models, crops=crops, weights=weights, weights_tag=weights_tag, data=data,
        layout=layout, devkit=devkit, labels=labels, blacklist=blacklist, limit=limit,
        subset=subset, batch_size=batch_size, max_views_per_forward=max_views_per_forward,
        workers=workers, chunk_size=chunk_size, resume=resume, strict=strict, device=device,
        backend=backend, dtype=dtype, tf32=tf32, compile=compile_model, out=out, name=name,
        overwrite=overwrite, seed=seed, command=typed,
    )
    prepared = prepare(request)
    primary = prepared.context.is_primary
    quiet = quiet or not primary
    if real:
        _check_real(prepared.dataset)
    if request.random_models and primary:
        err_console.print(random_weights_panel(request.random_models))
    if not quiet:
        for line in plan_lines(prepared):
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    rank = f"rank {prepared.context.rank}: " if prepared.context.sharded else ""

    def on_bad_image(path: Path, reason: str) -> None:
        err_console.print(rank + bad_image_line(path, reason), markup=False, highlight=False,
                          soft_wrap=True)

    hint = resume_command({"command": request.command})
    try:
        if quiet:
            outcome = execute(prepared, on_bad_image=on_bad_image)
        else:
            display = (RichProgressDisplay(err_console)
                       if err_console.is_terminal else PlainProgressDisplay(err_console))
            with display:
                outcome = execute(prepared, progress=display, on_bad_image=on_bad_image)
    except KeyboardInterrupt:
        err_console.print(f"{rank}interrupted; finished chunks are kept: continue with {hint}",
                          markup=False, highlight=False, soft_wrap=True)
        raise click.exceptions.Exit(130) from None
    except InceValError as exc:
        raise InceValError(f"{rank}{exc}") from None
    finally:
        prepared.context.close()
    if not primary:
        return
    if as_json:
        print_json(summary(prepared, outcome, real=real))
    else:
        print_results(console, outcome, real=real)


def _invoked_args() -> list[str]:
    """The arguments `inceval` was called with (sys.argv when called outside the group)."""
    from inceval.cli import ARGV_KEY

    context = click.get_current_context(silent=True)
    recorded = context.meta.get(ARGV_KEY) if context is not None else None
    return list(recorded) if recorded is not None else sys.argv[1:]


def _check_real(dataset) -> None:  # noqa: ANN001 - ValDataset, imported lazily
    """Refuse --real before any work when the images have no ReaL labels."""
    from inceval.data import builtin
    from inceval.errors import InceValError

    if dataset.dataset != "imagenet":
        raise InceValError(f"--real: --data holds {dataset.dataset} images; ReaL labels exist "
                           "only for the ILSVRC-2012 validation images: drop --real")
    odd = next((r for r in dataset.records if r.image_number is None
                or r.image_number > builtin.VAL_IMAGES), None)
    if odd is not None:
        raise InceValError(f"--real: image {odd.path} is not an ILSVRC2012_val_XXXXXXXX file; "
                           "ReaL labels exist only for the 50,000 validation images: drop --real")
