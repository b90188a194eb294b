"""From a :class:`~inceval.engine.runspec.RunRequest` to a stored run: the steps of ``inceval run``.

:func:`prepare` does everything that can fail on user input (options, protocols, device, data,
output directory, weights) before any image is touched; :func:`execute` then runs the engine and
reads the scores back from the store. Neither prints: the CLI renders progress and results.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inceval import __version__
from inceval.data.datasets import ValDataset, load_val_dataset
from inceval.data.protocols import Protocol, get_protocol
from inceval.data.loader import resolve_backend
from inceval.engine.evaluate import (
    DEFAULT_MAX_VIEWS_PER_FORWARD,
    PRECISIONS,
    RunStats,
    describe_device,
    evaluate,
    model_names,
    open_run,
    resolve_device,
)
from inceval.engine.plan import ViewGroup, plan_groups
from inceval.engine.progress import ProgressCallback
from inceval.engine.runspec import RunRequest
from inceval.errors import InceValError
from inceval.models import create_model, get_eval_config, prepare_for_inference
from inceval.sample import SAMPLE_LABELS, SAMPLE_LAYOUT, SAMPLE_ROOT
from inceval.store import MANIFEST, RunReader, Score

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

    @property
    def names(self) -> list[str]:
        """Model names as stored."""
        return model_names(self.models)


@dataclass(frozen=True)
class RunOutcome:
    """A finished run.

    Attributes:
        run_dir: where it is stored.
        stats: counts and timings.
        scores: top-1/top-5 errors per model, protocol and subset, read back from the store.
    """

    run_dir: Path
    stats: RunStats
    scores: list[Score]


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


def _check_run_dir(path: Path, overwrite: bool) -> None:
    """Refuse an occupied output directory before any model is built (the store checks again)."""
    if path.exists() and not path.is_dir():
        raise InceValError(f"--out {path} is a file; choose a directory for the run")
    if path.is_dir() and any(path.iterdir()):
        if (path / MANIFEST).is_file():
            if not overwrite:
                raise InceValError(f"--out {path} already holds a run; choose another directory "
                                   "or pass --overwrite to replace it")
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
                                 ("--workers", request.workers, 0)):
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
    device = resolve_device(request.device)
    if device.type == "cpu" and request.dtype == "float16":
        raise InceValError("--dtype float16 is not supported on the CPU; use bfloat16 or float32")
    dataset, bundled = _load_dataset(request)
    run_dir = _run_dir(request)
    _check_run_dir(run_dir, request.overwrite)
    models = _build_models(request)
    groups = plan_groups(models, protocols)
    return PreparedRun(request, protocols, dataset, models, device, groups, run_dir, bundled)


def execute(prepared: PreparedRun, progress: ProgressCallback | None = None) -> RunOutcome:
    """Evaluate, store and score a prepared run.

    Raises:
        InceValError: undecodable images, an output directory taken meanwhile, a failed write.
            Rows already written stay on disk and the manifest says how far the run got.
    """
    request = prepared.request
    per_forward = (request.max_views_per_forward
                   or DEFAULT_MAX_VIEWS_PER_FORWARD[prepared.device.type])
    settings: dict[str, Any] = {
        "device": describe_device(prepared.device),
        "dtype": request.dtype,
        "backend": resolve_backend(request.backend),
        "batch_size": request.batch_size,
        "max_views_per_forward": per_forward,
        "workers": request.workers,
        "seed": request.seed,
    }
    extra = {
        "name": request.name or prepared.run_dir.name,
        "command": request.command,
        "versions": _versions(),
    }
    data_info = {"bundled_sample": prepared.bundled_sample, "limit": request.limit,
                 "subset": request.subset}
    writer = open_run(prepared.run_dir, prepared.models, prepared.protocols, prepared.dataset,
                      settings=settings, data_info=data_info, extra=extra,
                      overwrite=request.overwrite)
    with writer:
        stats = evaluate(prepared.models, prepared.protocols, prepared.dataset, writer,
                         backend=request.backend, device=prepared.device,
                         precision=request.dtype, batch_size=request.batch_size,
                         max_views_per_forward=per_forward,
                         workers=request.workers, progress=progress)
        writer.finish(stats.manifest_update())
    scores = RunReader(prepared.run_dir).results()
    return RunOutcome(prepared.run_dir, stats, scores)
