"""The evaluation engine: models x crop protocols over a dataset, into a run directory.

One pass over the images. Models of one input size form a view group
(:mod:`inceval.engine.plan`); per chunk of images and per group, a producer thread renders the
union of all members' protocol views once (:mod:`inceval.engine.producer`); each model of the
group computes each of its own distinct views once and averages softmax probabilities over each
protocol's views (:mod:`inceval.engine.forward`); the rows go to the
:class:`~inceval.store.RunWriter` as each batch finishes, so the N x 1000 matrices never sit in
memory.

Typical use (the CLI does the same through :mod:`inceval.engine.launch`)::

    writer = open_run(run_dir, models, protocols, dataset, settings={...})
    with writer:
        stats = evaluate(models, protocols, dataset, writer, backend="torch")
        writer.finish(stats.manifest_update())
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inceval.data.datasets import ValDataset
from inceval.data.protocols import Protocol, get_protocol
from inceval.data.views import ViewBatch, ViewSpec
from inceval.engine.forward import ModelRunner
from inceval.engine.plan import MemberViews, ViewGroup, plan_groups
from inceval.engine.producer import BatchSource, RenderedBatch, ViewProducer, make_chunks
from inceval.engine.progress import Progress, ProgressCallback
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from inceval.store import RunWriter, check_name

DEFAULT_BATCH_SIZE = 8
# Forward calls of this many views keep a GPU busy; on a CPU smaller calls cost nothing in speed
# and give finer progress.
DEFAULT_MAX_VIEWS_PER_FORWARD = {"cpu": 32, "cuda": 256}
DEFAULT_CHUNK_SIZE = 1024
PRECISIONS = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class RunStats:
    """What an evaluation did and how fast.

    Attributes:
        images: images evaluated.
        model_views: views computed by models (per image: the sum over models of their own
            distinct views).
        rendered_views: views rendered by the loader (per image: the sum over view groups of the
            union of their members' views).
        views_per_image: model name -> distinct views it computed per image.
        seconds: wall time of the pass over the images.
        started_at: ISO time of the first batch request.
        ended_at: ISO time of the last write.
        device: where the models ran.
    """

    images: int
    model_views: int
    rendered_views: int
    views_per_image: dict[str, int]
    seconds: float
    started_at: str
    ended_at: str
    device: str

    @property
    def images_per_s(self) -> float:
        """Images per second of wall time."""
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def views_per_s(self) -> float:
        """Model views per second of wall time."""
        return self.model_views / self.seconds if self.seconds > 0 else 0.0

    def manifest_update(self) -> dict[str, Any]:
        """The keys this pass adds to the run manifest (``RunWriter.finish``)."""
        return {
            "evaluation_started_at": self.started_at,
            "evaluation_ended_at": self.ended_at,
            "throughput": {
                "seconds": round(self.seconds, 3),
                "images": self.images,
                "images_per_s": round(self.images_per_s, 3),
                "model_views": self.model_views,
                "model_views_per_s": round(self.views_per_s, 3),
                "rendered_views": self.rendered_views,
            },
        }


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        InceValError: an unknown device, or CUDA asked for where there is none.
    """
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(text)
    except RuntimeError:
        raise InceValError(f"--device {device!r} is not a device; use auto, cpu, cuda or "
                           "cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):
        raise InceValError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InceValError(f"--device {device} asked for CUDA but torch sees no CUDA device; "
                               "use --device cpu (or auto) or install a CUDA build of torch")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise InceValError(f"--device {device}: only {count} CUDA device(s) present; use "
                               f"cuda:0..cuda:{count - 1}")
    return resolved


def describe_device(device: torch.device) -> str:
    """``cpu (N threads)`` or ``cuda:0 (<GPU name>)`` for manifests and summaries."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def as_protocols(protocols: Sequence[Protocol | str]) -> list[Protocol]:
    """Protocol objects from objects or names/files (``get_protocol``)."""
    return [p if isinstance(p, Protocol) else get_protocol(p) for p in protocols]


def model_names(models: Sequence[nn.Module]) -> list[str]:
    """The run names of the models (``model_name`` attributes), checked to be unique and storable.

    Raises:
        InceValError: a model without a name, a name twice, or a name the store cannot use.
    """
    names = []
    for model in models:
        name = getattr(model, "model_name", None)
        if not isinstance(name, str):
            raise InceValError(f"model {type(model).__name__} has no model_name; build it with "
                               "inceval.models.create_model or set model.model_name")
        check_name("model", name)
        if name in names:
            raise InceValError(f"model {name} is listed twice; evaluate each model once per run")
        names.append(name)
    return names


def _eval_config_dict(eval_config: EvalConfig) -> dict[str, Any]:
    config = asdict(eval_config)
    config["resize_size"] = eval_config.resize_size
    return config


def _member_of(groups: Sequence[ViewGroup]) -> dict[int, tuple[ViewGroup, MemberViews]]:
    """Model position -> its view group and its share of the group's views."""
    return {member.position: (group, member) for group in groups for member in group.members}


def build_manifest(models: Sequence[nn.Module], protocols: Sequence[Protocol | str],
                   dataset: ValDataset, *, settings: Mapping[str, Any] | None = None,
                   data_info: Mapping[str, Any] | None = None,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The caller's part of a run manifest: models, protocols, views, data and settings.

    Args:
        models: the run's models (``model_name``, ``eval_config``, ``weights_info``).
        protocols: the run's protocols.
        dataset: the images.
        settings: evaluation settings to record (device, dtype, backend, batch size ...).
        data_info: further keys of the ``data`` entry (e.g. how the images were selected).
        extra: further top-level keys (versions, command line, run name ...).

    Returns:
        A JSON-able mapping for :meth:`RunWriter.create`.
    """
    protocols = as_protocols(protocols)
    names = model_names(models)
    groups = plan_groups(models, protocols)
    member_of = _member_of(groups)
    model_entries: dict[str, Any] = {}
    for position, (name, model) in enumerate(zip(names, models)):
        info = dict(getattr(model, "weights_info", None) or {})
        group, member = member_of[position]
        model_entries[name] = {
            "class": type(model).__name__,
            "weights": info.get("source"),
            "weights_tag": info.get("tag"),
            "weights_file": info.get("path"),
            "weights_sha256": info.get("sha256"),
            "weights_info": info,
            "eval_config": _eval_config_dict(member.eval_config),
            "inference_form": getattr(model, "inference_form", None),
            "view_group": group.number,
            "views_per_image": member.views_per_image,
            "views_per_image_by_protocol": {p.name: int(len(idx))
                                            for p, idx in zip(protocols, member.protocol_views)},
        }
    first_group, first = member_of[0]
    protocol_entries = {
        p.name: {
            "version": p.version,
            "description": p.description,
            "source": p.source,
            "num_views": p.num_views,
            # Labels for the first model; "1" follows each model's crop_pct and the views follow
            # its input size: see view_groups for every model's.
            "views": [first_group.views[i].label for i in idx],
        }
        for p, idx in zip(protocols, first.protocol_views)
    }
    view_groups = [
        {
            "input_size": group.input_size,
            "models": [names[i] for i in group.positions],
            "views": [view.label for view in group.views],
            "protocol_views": {
                names[member.position]: {p.name: [int(i) for i in idx]
                                         for p, idx in zip(protocols, member.protocol_views)}
                for member in group.members
            },
        }
        for group in groups
    ]
    flags = dataset.blacklisted
    manifest: dict[str, Any] = {
        "models": model_entries,
        "protocols": protocol_entries,
        "view_groups": view_groups,
        "data": {
            "root": str(dataset.root),
            "layout": dataset.layout,
            "dataset": dataset.dataset,
            "scored_classes": (list(dataset.scored_classes)
                               if dataset.scored_classes is not None else None),
            "num_images": len(dataset),
            "fingerprint": dataset.fingerprint(),
            "label_source": dataset.label_source,
            "blacklist": str(dataset.blacklist_source) if dataset.blacklist_source else None,
            "blacklisted_images": int(flags.sum()),
            "non_blacklisted_images": int((~flags).sum()),
            **dict(data_info or {}),
        },
        "settings": dict(settings or {}),
    }
    for key, value in (extra or {}).items():
        manifest[key] = value
    return manifest


def images_table(dataset: ValDataset) -> list[dict[str, Any]]:
    """The rows of images.csv: path (relative to the data root), label, blacklisted."""
    return [
        {"path": record.path, "label": record.label, "blacklisted": bool(flag)}
        for record, flag in zip(dataset.records, dataset.blacklisted)
    ]


def open_run(run_dir: str | Path, models: Sequence[nn.Module], protocols: Sequence[Protocol | str],
             dataset: ValDataset, *, settings: Mapping[str, Any] | None = None,
             data_info: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
             overwrite: bool = False, flush_interval_s: float = 5.0) -> RunWriter:
    """Create the run directory and its writer (manifest from :func:`build_manifest`).

    Raises:
        InceValError: the directory holds something (unless ``overwrite`` and it is a run), is in
            use or not writable.
    """
    manifest = build_manifest(models, protocols, dataset, settings=settings, data_info=data_info,
                              extra=extra)
    return RunWriter.create(run_dir, manifest=manifest, images=images_table(dataset),
                            overwrite=overwrite, flush_interval_s=flush_interval_s)


def _loader(backend: str, device: torch.device, workers: int) -> BatchSource:
    """The view loader as (paths, views, batch_size) -> batches, for the producer thread."""
    from inceval.data.loader import iter_view_batches

    # DALI decodes on the GPU only when the models run there, so views arrive where they are used.
    dali_device = "gpu" if device.type == "cuda" else "cpu"

    def source(paths: Sequence[Path], views: tuple[ViewSpec, ...],
               batch_size: int) -> Iterator[ViewBatch]:
        return iter_view_batches(paths, views, backend=backend, batch_size=batch_size,
                                 device=dali_device, num_workers=workers)

    return source


def _check_contiguous(batch: RenderedBatch) -> int:
    start = int(batch.indices[0]) if batch.indices.size else batch.chunk.start
    if not np.array_equal(batch.indices, np.arange(start, start + batch.indices.size)):
        raise RuntimeError(f"view loader returned images out of order near position {start}")
    return start


def evaluate(
    models: Sequence[nn.Module],
    protocols: Sequence[Protocol | str],
    dataset: ValDataset,
    writer: RunWriter,
    *,
    backend: str = "auto",
    device: str | torch.device = "auto",
    precision: str = "float32",
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_views_per_forward: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    prefetch: int = 2,
    workers: int = 2,
    progress: ProgressCallback | None = None,
) -> RunStats:
    """Evaluate every model under every protocol on every image; store per-image predictions.

    Args:
        models: eval-mode classifiers with ``model_name``, ``eval_config`` (and ideally
            ``weights_info``); they are moved to ``device`` in place.
        protocols: Protocol objects or names (``"1"``, ``"12"``, ``"144"``, a protocol file).
        dataset: the images, in run order.
        writer: an open writer whose manifest names these models and protocols
            (:func:`open_run`); rows are written as batches finish; the caller finishes it.
        backend: view loader: ``"auto"``, ``"dali"`` or ``"torch"`` (the PIL/torch reference).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch device.
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` for the forward passes.
        batch_size: images per rendered batch.
        max_views_per_forward: the most views in one forward call; None for 32 on a CPU and
            256 on CUDA.
        chunk_size: images per chunk (the unit of future resume and sharding).
        prefetch: rendered batches queued ahead of the models.
        workers: DALI CPU threads, or decoding processes of the torch backend (0: in the
            producer thread).
        progress: called with a :class:`Progress` after every forward call and every finished
            batch.

    Returns:
        Counts and timings of the pass.

    Raises:
        InceValError: bad settings, undecodable images, protocols that do not fit a model.
    """
    if precision not in PRECISIONS:
        raise InceValError(f"--dtype {precision!r} is unknown; use {', '.join(PRECISIONS)}")
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    if max_views_per_forward is None:
        max_views_per_forward = DEFAULT_MAX_VIEWS_PER_FORWARD[torch_device.type]
    for option, value in (("--batch-size", batch_size),
                          ("--max-views-per-forward", max_views_per_forward),
                          ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InceValError(f"{option} must be a positive whole number, got {value!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InceValError(f"--workers must be 0 or more, got {workers!r}")
    if len(dataset) == 0:
        raise InceValError("the dataset holds no images; check --data")
    protocols = as_protocols(protocols)
    names = model_names(models)
    groups = plan_groups(models, protocols)
    runners = {member.position: ModelRunner(models[member.position], member.eval_config,
                                            torch_device, precision, max_views_per_forward)
               for group in groups for member in group.members}

    num_images = len(dataset)
    chunks = make_chunks(num_images, chunk_size)
    views_total = num_images * sum(m.views_per_image for g in groups for m in g.members)
    opened: set[tuple[str, str]] = set()
    views_done = 0
    images_done = 0
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    chunk_number = 0

    def report(finished: bool = False) -> None:
        if progress is not None:
            progress(Progress(images_done, num_images, views_done, views_total,
                              time.perf_counter() - clock, chunk_number, len(chunks), finished))

    def count_views(n: int) -> None:
        nonlocal views_done
        views_done += n
        report()

    source = _loader(backend, torch_device, workers)
    with ViewProducer(dataset.paths(), chunks, groups, source, batch_size, prefetch) as producer:
        for batch in producer:
            start = _check_contiguous(batch)
            chunk_number = batch.chunk.number
            for member in batch.group.members:
                name = names[member.position]
                probs = runners[member.position].protocol_probabilities(
                    batch.views, member.computed_protocol_views, count_views, member.selection)
                for protocol, rows in zip(protocols, probs):
                    if (name, protocol.name) not in opened:
                        writer.open_predictions(name, protocol.name, num_classes=rows.shape[1])
                        opened.add((name, protocol.name))
                    writer.write(name, protocol.name, start, rows)
            # An image is done once the last view group has scored it.
            if batch.group.number == groups[-1].number:
                images_done = start + batch.indices.size
                report()
    for name in names:
        for protocol in protocols:
            writer.mark_complete(name, protocol.name)
    seconds = time.perf_counter() - clock
    report(finished=True)
    return RunStats(
        images=num_images,
        model_views=views_total,
        rendered_views=num_images * sum(g.rendered_views_per_image for g in groups),
        views_per_image={names[m.position]: m.views_per_image for g in groups for m in g.members},
        seconds=seconds,
        started_at=started_at,
        ended_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device=describe_device(torch_device),
    )
