"""From a :class:`~inceval.engine.runspec.RunRequest` to a stored run: the steps of ``inceval run``.

:func:`prepare` does everything that can fail on user input (options, protocols, device, data,
output directory, weights) before any image is touched; :func:`execute` then runs the engine and
reads the scores back from the store. Neither prints: the CLI renders progress and results.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from inceval import __version__
from inceval.data.datasets import ValDataset, load_val_dataset
from inceval.data.protocols import Protocol, get_protocol
from inceval.data.loader import resolve_backend
from inceval.engine.evaluate import (
    PRECISIONS,
    RunStats,
    build_manifest,
    describe_device,
    evaluate,
    model_names,
    prepare_store,
    images_table,
    resolve_device,
)
from inceval.engine import distributed
from inceval.engine.distributed import DistContext
from inceval.engine.plan import ViewGroup, plan_groups
from inceval.engine.progress import ProgressCallback
from inceval.engine.runspec import RunRequest
from inceval.errors import InceValError
from inceval.models import create_model, get_eval_config, prepare_for_inference
from inceval.sample import SAMPLE_LABELS, SAMPLE_LAYOUT, SAMPLE_ROOT
from inceval.store import MANIFEST, RunReader, RunWriter, Score, resume_command

DEFAULT_RUNS_DIR = Path("runs")


@dataclass
class PreparedRun:
    """A run whose inputs are all checked and whose models are built.

    Attributes:
        request: what was asked.
        protocols: the resolved protocols, in ``--crops`` order.
        dataset: the images.
        models: the built models, in ``--models`` order.
        device: where the models will run.
        groups: the models grouped by input size, with the views each group renders and
            each model computes.
        run_dir: the output directory.
        bundled_sample: whether ``dataset`` is the bundled sample.
    """

    request: RunRequest
    protocols: list[Protocol]
    dataset: ValDataset
    models: list[nn.Module]
    device: torch.device
    groups: list[ViewGroup]
    run_dir: Path
    bundled_sample: bool
    context: DistContext = DistContext()

    @property
    def names(self) -> list[str]:
        """Model names as stored."""
        return model_names(self.models)


@dataclass(frozen=True)
class RunOutcome:
    """A finished run.

    Attributes:
        run_dir: where it is stored.
        stats: counts and timings (of every rank together in a sharded run).
        scores: top-1/top-5 errors per model, protocol and subset, read back from the store
            (empty on ranks other than 0).
        unreadable: position -> reason of every image that could not be evaluated.
        already_complete: ``--resume`` found the run finished: nothing was computed.
    """

    run_dir: Path
    stats: RunStats | None
    scores: list[Score]
    unreadable: dict[int, str] = field(default_factory=dict)
    already_complete: bool = False


def _versions() -> dict[str, str | None]:
    try:
        from nvidia.dali import __version__ as dali_version
    except ImportError:
        dali_version = None
    return {
        "inceval": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "nvidia_dali": dali_version,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
    }


def _default_name(models: tuple[str, ...], crops: tuple[str, ...]) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    crops_text = "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", Path(c).stem) for c in crops)
    return f"{stamp}_{'+'.join(models)}_crops{crops_text}"


def _run_dir(request: RunRequest) -> Path:
    if request.out is not None:
        return Path(request.out).expanduser()
    name = request.name or _default_name(request.models, request.crops)
    if "/" in name or name in (".", ".."):
        raise InceValError(f"--name {name!r} must be a plain directory name; use --out for a path")
    return DEFAULT_RUNS_DIR / name


def _check_run_dir(path: Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse an occupied output directory before any model is built (the store checks again)."""
    if path.exists() and not path.is_dir():
        raise InceValError(f"--out {path} is a file; choose a directory for the run")
    if resume:
        if overwrite:
            raise InceValError("--resume and --overwrite contradict each other; give one")
        if not (path / MANIFEST).is_file():
            raise InceValError(f"--resume: {path} holds no inceval run to resume; drop --resume "
                               "to start it")
        return
    if path.is_dir() and any(path.iterdir()):
        if (path / MANIFEST).is_file():
            if not overwrite:
                raise InceValError(f"--out {path} already holds a run; continue it with --resume, "
                                   "replace it with --overwrite, or choose another directory")
        else:
            raise InceValError(f"--out {path} is not empty and holds no inceval run; choose an "
                               "empty or new directory")


def _load_dataset(request: RunRequest) -> tuple[ValDataset, bool]:
    if request.data is None:
        dataset = load_val_dataset(SAMPLE_ROOT, layout=SAMPLE_LAYOUT, labels_file=SAMPLE_LABELS,
                                   limit=request.limit, subset=request.subset)
        return dataset, True
    dataset = load_val_dataset(request.data, layout=request.layout, devkit=request.devkit,
                               labels_file=request.labels, blacklist=request.blacklist,
                               limit=request.limit, subset=request.subset,
                               dataset=request.dataset)
    return dataset, False


def _build_models(request: RunRequest) -> list[nn.Module]:
    models = []
    for name in request.models:
        model = create_model(name, request.weights.get(name, "pretrained"),
                             weights_tag=request.weights_tags.get(name), seed=request.seed)
        models.append(prepare_for_inference(model))
    return models


def prepare(request: RunRequest) -> PreparedRun:
    """Check every input and build the models; nothing is written yet.

    Raises:
        InceValError: for any input the user can fix, one line each.
    """
    resolve_backend(request.backend)  # unknown name, or DALI asked for where it is missing
    if request.dtype not in PRECISIONS:
        raise InceValError(f"--dtype {request.dtype!r} is unknown; use {', '.join(PRECISIONS)}")
    for option, value, least in (("--batch-size", request.batch_size, 1),
                                 ("--max-views-per-forward", request.max_views_per_forward, 1),
                                 ("--workers", request.workers, 0),
                                 ("--chunk-size", request.chunk_size, 1)):
        if value is not None and value < least:
            raise InceValError(f"{option} must be at least {least}, got {value}")
    if not -2**63 <= request.seed < 2**64:  # the range torch.manual_seed accepts
        raise InceValError(f"--seed must be between -2**63 and 2**64 - 1, got {request.seed}")
    protocols = [get_protocol(name) for name in request.crops]
    for name in request.models:
        # Unknown names and protocols that do not fit a model fail before any model is built.
        config = get_eval_config(name, request.weights_tags.get(name))
        for protocol in protocols:
            protocol.resolve(config)
    context = distributed.from_environment()
    device = distributed.rank_device(resolve_device(request.device), context)
    if device.type == "cpu" and request.dtype == "float16":
        raise InceValError("--dtype float16 is not supported on the CPU; use bfloat16 or float32")
    dataset, bundled = _load_dataset(request)
    run_dir = _run_dir(request)
    if context.is_primary:
        _check_run_dir(run_dir, request.overwrite, request.resume)
    models = _build_models(request)
    groups = plan_groups(models, protocols)
    return PreparedRun(request, protocols, dataset, models, device, groups, run_dir, bundled,
                       context)


# Manifest keys whose change makes a resumed run a different run: (where, what to call it).
_RESUME_KEYS = (
    (("settings", "dtype"), "--dtype"),
    (("settings", "backend"), "--backend"),
    (("settings", "batch_size"), "--batch-size"),
    (("settings", "chunk_size"), "--chunk-size"),
    (("settings", "max_views_per_forward"), "--max-views-per-forward"),
    (("settings", "tf32"), "--tf32"),
    (("data", "fingerprint"), "the images (--data, --subset, --limit)"),
    (("data", "blacklist"), "--blacklist"),
)
_MODEL_KEYS = ("weights", "weights_tag", "weights_file", "weights_sha256", "eval_config")


def resume_difference(stored: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """What differs between a stored run's manifest and a new invocation's, or None."""
    old_models, new_models = list(stored.get("models", {})), list(new["models"])
    if old_models != new_models:
        return f"--models was {','.join(old_models)}, now {','.join(new_models)}"
    old_protocols, new_protocols = list(stored.get("protocols", {})), list(new["protocols"])
    if old_protocols != new_protocols:
        return f"--crops was {','.join(old_protocols)}, now {','.join(new_protocols)}"
    for name in new_protocols:
        old_version = stored["protocols"][name].get("version")
        if old_version != new["protocols"][name].get("version"):
            return (f"protocol {name} was version {old_version}, now "
                    f"{new['protocols'][name].get('version')}")
    for name in new_models:
        for key in _MODEL_KEYS:
            old_value = stored["models"][name].get(key)
            new_value = new["models"][name].get(key)
            if old_value != new_value:
                return f"model {name}: {key} was {old_value!r}, now {new_value!r}"
    for (section, key), what in _RESUME_KEYS:
        old_value = (stored.get(section) or {}).get(key)
        new_value = (new.get(section) or {}).get(key)
        if old_value != new_value:
            return f"{what}: was {old_value!r}, now {new_value!r}"
    return None


def _open_store(prepared: PreparedRun, settings: dict[str, Any], data_info: dict[str, Any],
                extra: dict[str, Any]) -> tuple[RunWriter | None, bool]:
    """Rank 0: create the run, or reopen it for --resume; (writer, already complete)."""
    request = prepared.request
    manifest = build_manifest(prepared.models, prepared.protocols, prepared.dataset,
                              settings=settings, data_info=data_info, extra=extra)
    if not request.resume:
        writer = RunWriter.create(prepared.run_dir, manifest=manifest,
                                  images=images_table(prepared.dataset),
                                  overwrite=request.overwrite, flush_interval_s=5.0)
        return writer, False
    stored = RunReader(prepared.run_dir).manifest
    difference = resume_difference(stored, json.loads(json.dumps(manifest)))
    if difference is not None:
        raise InceValError(f"--resume: {prepared.run_dir} is another run ({difference}); resume "
                           "it with its own command (see its manifest.json) or use a new --out")
    entries = stored.get("predictions", {})
    if stored.get("finished_at") and entries and all(
            entry.get("complete") for files in entries.values() for entry in files.values()):
        return None, True
    writer = RunWriter.resume(prepared.run_dir, flush_interval_s=5.0)
    resumes = list(writer.manifest.get("resumes", []))
    resumes.append({"at": datetime.now().astimezone().isoformat(timespec="seconds"),
                    "command": request.command})
    writer.update_manifest({"resumes": resumes, "versions": extra["versions"]})
    return writer, False


@contextlib.contextmanager
def _resume_hint_on_error(command: str | None) -> Iterator[None]:
    """Errors during the evaluation say how to continue: the finished chunks are kept."""
    try:
        yield
    except InceValError as exc:
        raise InceValError(f"{exc}; finished chunks are kept: after fixing it, continue with "
                           f"{resume_command({'command': command})}") from None


def _decoder(backend: str, device: torch.device) -> str:
    """Which JPEG decoder renders the views (GPU decoding changes pixels slightly)."""
    if backend == "torch":
        return "PIL (libjpeg) on the CPU"
    if device.type == "cuda":
        return "DALI mixed: nvJPEG (hardware decoder where present, else CUDA)"
    return "DALI cpu (libjpeg-turbo)"


def _combine(stats: list[RunStats]) -> RunStats:
    """One RunStats for all ranks: counts summed, wall time of the slowest."""
    first = stats[0]
    unreadable: dict[int, str] = {}
    for item in stats:
        unreadable.update(item.unreadable)
    return replace(
        first,
        images=sum(s.images for s in stats),
        model_views=sum(s.model_views for s in stats),
        rendered_views=sum(s.rendered_views for s in stats),
        seconds=max(s.seconds for s in stats),
        started_at=min(s.started_at for s in stats),
        ended_at=max(s.ended_at for s in stats),
        chunks_computed=sum(s.chunks_computed for s in stats),
        pipeline_builds=sum(s.pipeline_builds for s in stats),
        unreadable=unreadable,
    )


def execute(prepared: PreparedRun, progress: ProgressCallback | None = None,
            on_bad_image: Callable[[Path, str], None] | None = None) -> RunOutcome:
    """Evaluate, store and score a prepared run (this process's share of a sharded one).

    Raises:
        InceValError: a bad image with --strict, a run that differs from the one to resume, an
            output directory taken meanwhile, a failed write. Finished chunks stay on disk.
    """
    request = prepared.request
    context = prepared.context
    settings: dict[str, Any] = {
        "device": describe_device(prepared.device),
        "dtype": request.dtype,
        "tf32": request.tf32,
        "compile": request.compile,
        "backend": resolve_backend(request.backend),
        "decoder": _decoder(resolve_backend(request.backend), prepared.device),
        "batch_size": request.batch_size,
        # As asked; None: each model's default (what was used is in execution.models).
        "max_views_per_forward": request.max_views_per_forward,
        "chunk_size": request.chunk_size,
        "workers": request.workers,
        "strict": request.strict,
        "ranks": context.world_size,
        "seed": request.seed,
    }
    extra = {
        "name": request.name or prepared.run_dir.name,
        "command": request.command,
        "versions": _versions(),
    }
    data_info = {"bundled_sample": prepared.bundled_sample, "limit": request.limit,
                 "subset": request.subset}
    distributed.init_process_group(context, prepared.device)
    writer: RunWriter | None = None
    complete = False
    if context.is_primary:
        writer, complete = _open_store(prepared, settings, data_info, extra)
        if writer is not None:
            prepare_store(writer, prepared.models, prepared.protocols, len(prepared.dataset),
                          request.chunk_size)
    complete = context.gather(complete)[0]
    if complete:
        reader = RunReader(prepared.run_dir)
        scores = reader.results() if context.is_primary else []
        return RunOutcome(prepared.run_dir, None, scores, _unreadable(reader),
                          already_complete=True)
    context.barrier()  # the store and its prediction files exist
    if writer is None:
        writer = RunWriter.attach(prepared.run_dir)
        stored = writer.manifest["data"]["fingerprint"]
        if stored != prepared.dataset.fingerprint():
            writer.close()
            raise InceValError(f"rank {context.rank} sees other images under --data than rank 0 "
                               "(data fingerprints differ); every rank must list the same files "
                               "in the same order")
    with writer, _resume_hint_on_error(request.command):
        stats = evaluate(prepared.models, prepared.protocols, prepared.dataset, writer,
                         backend=request.backend, device=prepared.device,
                         precision=request.dtype, batch_size=request.batch_size,
                         max_views_per_forward=request.max_views_per_forward,
                         chunk_size=request.chunk_size,
                         workers=request.workers, progress=progress, strict=request.strict,
                         rank=context.rank, world_size=context.world_size,
                         finalize=not context.sharded, on_bad_image=on_bad_image,
                         tf32=request.tf32, compile=request.compile)
        everyone = context.gather(stats)
        stats = _combine(everyone)
        if context.is_primary:
            if context.sharded:
                writer.seal()
            writer.finish(stats.manifest_update())
    context.barrier()  # rank 0 sealed the store
    if not context.is_primary:
        return RunOutcome(prepared.run_dir, stats, [], stats.unreadable)
    reader = RunReader(prepared.run_dir)
    return RunOutcome(prepared.run_dir, stats, reader.results(), _unreadable(reader))


def _unreadable(reader: RunReader) -> dict[int, str]:
    """Position -> reason of the run's unreadable images, from its manifest."""
    record = reader.manifest.get("unreadable") or {}
    return {int(k): v for k, v in (record.get("images") or {}).items()}
