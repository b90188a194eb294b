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

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inceval.data.datasets import ValDataset
from inceval.data.protocols import Protocol, get_protocol
from inceval.data.pipeline import PipelineStats, bad_image_message, ready
from inceval.data.views import SegmentBatch
from inceval.engine.forward import ModelRunner, default_views_per_forward
from inceval.engine.plan import MemberViews, ViewGroup, plan_groups
from inceval.engine.producer import SegmentSource, ViewProducer, make_chunks
from inceval.engine.progress import Progress, ProgressCallback
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from inceval.store import RunWriter, check_name

# uint8 bytes of one rendered batch, at most (when --batch-size is not given).
BATCH_BYTES_BUDGET = {"cpu": 256 * 2**20, "cuda": 1024 * 2**20}
MAX_BATCH_IMAGES = 256
# Images per batch at least, memory allowing: a GPU pipeline decodes a batch's JPEGs together
# (nvJPEG, the hardware decoder) and launches each op once per batch, so one 144-view image per
# batch would leave that machinery mostly idle. A CPU gains nothing from it.
MIN_BATCH_IMAGES = {"cpu": 1, "cuda": 8}
# Seconds to sleep per batch: a planted slowdown that only the throughput gate's test sets.
SLEEP_ENV = "INCEVAL_TEST_SLEEP_PER_BATCH_S"
DEFAULT_CHUNK_SIZE = 1024
PRECISIONS = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class RunStats:
    """What an evaluation did and how fast.

    Attributes:
        images: images this process evaluated (the chunks it computed).
        model_views: views computed by models (per image: the sum over models of their own
            distinct views).
        rendered_views: views rendered by the loader (per image: the sum over view groups of the
            union of their members' views).
        views_per_image: model name -> distinct views it computed per image.
        seconds: wall time of the pass over the images.
        started_at: ISO time of the first batch request.
        ended_at: ISO time of the last write.
        device: where the models ran.
        chunks_total: chunks of the whole run.
        chunks_already_done: chunks found done at the start (a resumed run).
        chunks_computed: chunks this process computed.
        unreadable: position -> reason of the images this process found unreadable.
        pipeline_builds: view pipelines built (DALI: one per view group, plus one per failure).
        view_handoff: how DALI's views reached torch: ``"dlpack"`` (shared buffers, no copy) or
            ``"copy"``; None for the torch backend.
        batch_sizes: model name -> images per rendered batch of its view group.
        model_settings: model name -> how its forwards ran (precision facts, views per forward,
            out-of-memory halvings).
    """

    images: int
    model_views: int
    rendered_views: int
    views_per_image: dict[str, int]
    seconds: float
    started_at: str
    ended_at: str
    device: str
    chunks_total: int = 0
    chunks_already_done: int = 0
    chunks_computed: int = 0
    unreadable: dict[int, str] = field(default_factory=dict)
    pipeline_builds: int = 0
    view_handoff: str | None = None
    batch_sizes: dict[str, int] = field(default_factory=dict)
    model_settings: dict[str, Any] = field(default_factory=dict)

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
            "execution": {
                "chunks_total": self.chunks_total,
                "chunks_already_done": self.chunks_already_done,
                "chunks_computed": self.chunks_computed,
                "pipeline_builds": self.pipeline_builds,
                "view_handoff": self.view_handoff,
                "batch_sizes": self.batch_sizes,
                "models": self.model_settings,
            },
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


def default_batch_size(views_per_image: int, input_size: int, device: torch.device,
                       views_per_forward: int | None = None) -> int:
    """Images per rendered batch when ``--batch-size`` is not given.

    A batch should fill at least one forward call (``views_per_forward`` views; None for
    :func:`~inceval.engine.forward.default_views_per_forward`: 8 on a CPU, about 256 on CUDA)
    and hold at least :data:`MIN_BATCH_IMAGES` images (8 on CUDA), and its uint8 views should
    stay under :data:`BATCH_BYTES_BUDGET` (several batches are in flight: DALI's prefetch, the
    queue, the one being computed), which wins over both. So 1-crop batches are large, and
    144-view images (38.6 MB each at 299 px) come a few at a time.
    """
    per_forward = views_per_forward or default_views_per_forward(device, views_per_image,
                                                                 input_size)
    by_views = max(-(-per_forward // max(1, views_per_image)), MIN_BATCH_IMAGES[device.type])
    image_bytes = max(1, views_per_image) * 3 * input_size * input_size
    by_memory = max(1, BATCH_BYTES_BUDGET[device.type] // image_bytes)
    return int(max(1, min(by_views, by_memory, MAX_BATCH_IMAGES)))


def default_workers() -> int:
    """DALI CPU threads when ``--workers`` is not given: the CPUs this process may use."""
    from inceval.data.pipeline import usable_cpus

    return usable_cpus()


def _segment_source(paths: Sequence[Path], backend: str, device: torch.device,
                    workers: int | None, batch_sizes: Mapping[int, int],
                    stats: Any) -> SegmentSource:
    """The view loader as (group, segments, known_bad) -> batches, for the producer thread."""
    from inceval.data.loader import iter_view_segments

    # DALI decodes on the GPU only when the models run there, and on the models' GPU.
    dali_device = "gpu" if device.type == "cuda" else "cpu"
    device_id = None
    if device.type == "cuda":
        device_id = device.index if device.index is not None else torch.cuda.current_device()

    def source(group: ViewGroup, segments: list[range],
               known_bad: dict[int, str]) -> Iterator[SegmentBatch]:
        return iter_view_segments(
            paths, group.views, segments, backend=backend,
            batch_size=batch_sizes[group.number], device=dali_device, device_id=device_id,
            num_workers=workers, known_bad=known_bad, stats=stats,
        )

    return source


class _Discard:
    """A writer that keeps nothing: ``evaluate(..., writer=None)`` (benchmarks)."""

    def open_predictions(self, model: str, protocol: str, num_classes: int = 1000) -> None:
        pass

    def write_rows(self, model: str, protocol: str, indices: Any, probs: Any) -> None:
        pass

    def complete_chunk(self, number: int, start: int, stop: int,
                       errors: Mapping[int, str] | None = None) -> None:
        pass

    def done_chunks(self) -> dict[int, Any]:
        return {}

    def use_chunks(self, size: int, count: int) -> None:
        pass


def prepare_store(writer: Any, models: Sequence[nn.Module], protocols: Sequence[Protocol | str],
                  num_images: int, chunk_size: int) -> None:
    """Record the chunks and open every prediction file of the run (before other ranks attach).

    Raises:
        InceValError: a resumed run whose chunks have another size.
    """
    writer.use_chunks(chunk_size, len(make_chunks(num_images, chunk_size)))
    for name, model in zip(model_names(models), models):
        for protocol in as_protocols(protocols):
            writer.open_predictions(name, protocol.name,
                                    num_classes=int(getattr(model, "num_classes", 1000) or 1000))


def _sleep_per_batch() -> float:
    """A planted slowdown for the throughput gate's own test (never set in normal use)."""
    text = os.environ.get(SLEEP_ENV, "")
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        return 0.0


def evaluate(
    models: Sequence[nn.Module],
    protocols: Sequence[Protocol | str],
    dataset: ValDataset,
    writer: RunWriter | None,
    *,
    backend: str = "auto",
    device: str | torch.device = "auto",
    precision: str = "float32",
    batch_size: int | None = None,
    max_views_per_forward: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    prefetch: int = 2,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    strict: bool = False,
    rank: int = 0,
    world_size: int = 1,
    finalize: bool = True,
    on_bad_image: Callable[[Path, str], None] | None = None,
    tf32: bool = False,
    compile: bool = False,  # noqa: A002 - the CLI's name
) -> RunStats:
    """Evaluate every model under every protocol on every image; store per-image predictions.

    The images are split into chunks of ``chunk_size``. Chunks the writer already holds (a
    resumed run) are skipped; the others are shared round-robin between ``world_size``
    processes, this one taking those of ``rank``. Each finished chunk is flushed and marked
    done in the store, so an interruption loses at most the chunks in progress.

    Args:
        models: eval-mode classifiers with ``model_name``, ``eval_config`` (and ideally
            ``weights_info``); they are moved to ``device`` in place.
        protocols: Protocol objects or names (``"1"``, ``"12"``, ``"144"``, a protocol file).
        dataset: the images, in run order.
        writer: an open writer whose manifest names these models and protocols
            (:func:`open_run`), or None to compute everything and keep nothing (benchmarks).
        backend: view loader: ``"auto"``, ``"dali"`` or ``"torch"`` (the PIL/torch reference).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch device.
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` for the forward passes.
        batch_size: images per rendered batch; None sizes it per view group from its views
            (:func:`default_batch_size`).
        max_views_per_forward: the most views in one forward call; None for each model's
            :func:`~inceval.engine.forward.default_views_per_forward` (8 on a CPU; on CUDA 256
            at 299 px, scaled by the pixel count and rounded down to whole images).
        chunk_size: images per chunk (the unit of resuming and sharding).
        prefetch: rendered batches queued ahead of the models.
        workers: DALI CPU threads (None: from the CPU count), or decoding processes of the
            torch backend (None or 0: in the producer thread).
        progress: called with a :class:`Progress` after every forward call and every batch.
        strict: stop at the first image that cannot be read or decoded (InceValError) instead
            of recording it as unreadable and going on.
        rank: this process's rank in a sharded run.
        world_size: processes sharing the run.
        finalize: seal the store when done (every chunk done: unreadable images recorded,
            files marked complete); a sharded run seals once, in rank 0, after all ranks.
        on_bad_image: called with (path, reason) once per image found unreadable.
        tf32: allow TF32 matrix products and convolutions on CUDA for float32.
        compile: torch.compile the models.

    Returns:
        Counts and timings of the pass.

    Raises:
        InceValError: bad settings, a bad image with ``strict``, protocols that do not fit a
            model.
    """
    if precision not in PRECISIONS:
        raise InceValError(f"--dtype {precision!r} is unknown; use {', '.join(PRECISIONS)}")
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    for option, value in (("--batch-size", batch_size),
                          ("--max-views-per-forward", max_views_per_forward),
                          ("--chunk-size", chunk_size)):
        if value is None and option != "--chunk-size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InceValError(f"{option} must be a positive whole number, got {value!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise InceValError(f"--workers must be 0 or more, got {workers!r}")
    if len(dataset) == 0:
        raise InceValError("the dataset holds no images; check --data")
    if not 0 <= rank < world_size:
        raise InceValError(f"rank {rank} is not in 0..{world_size - 1}")
    protocols = as_protocols(protocols)
    names = model_names(models)
    groups = plan_groups(models, protocols)
    runners = {member.position: ModelRunner(
        models[member.position], member.eval_config, torch_device, precision,
        max_views_per_forward or default_views_per_forward(
            torch_device, member.views_per_image, member.eval_config.input_size),
        tf32=tf32, compile=compile)
        for group in groups for member in group.members}
    batch_sizes = {group.number: batch_size or default_batch_size(
        group.rendered_views_per_image, group.input_size, torch_device, max_views_per_forward)
        for group in groups}
    sink = writer if writer is not None else _Discard()
    num_images = len(dataset)
    chunks = make_chunks(num_images, chunk_size)
    prepare_store(sink, models, protocols, num_images, chunk_size)
    done = sink.done_chunks()
    todo = [chunk for chunk in chunks if chunk.number not in done]
    mine = todo[rank::world_size]
    views_per_image = sum(m.views_per_image for g in groups for m in g.members)
    images_total = sum(len(chunk) for chunk in mine)
    views_total = images_total * views_per_image
    views_done = 0
    images_done = 0
    chunk_number = mine[0].number if mine else 0
    unreadable: dict[int, str] = {}
    chunk_errors: dict[int, str] = {}
    paths = dataset.paths()
    sleep_s = _sleep_per_batch()
    pipeline_stats = PipelineStats()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()

    def report(finished: bool = False) -> None:
        if progress is not None:
            progress(Progress(images_done, images_total, views_done, views_total,
                              time.perf_counter() - clock, chunk_number, len(chunks), finished))

    def count_views(n: int) -> None:
        nonlocal views_done
        views_done += n
        report()

    source = _segment_source(paths, backend, torch_device, workers, batch_sizes, pipeline_stats)
    with ViewProducer(mine, groups, source, prefetch) as producer:
        for batch in producer:
            chunk_number = batch.chunk.number
            for position in sorted(batch.errors):
                if position in chunk_errors:
                    continue
                reason = batch.errors[position]
                if strict:
                    raise InceValError(bad_image_message(paths[position], reason))
                chunk_errors[position] = reason
                if on_bad_image is not None:
                    on_bad_image(paths[position], reason)
            if batch.indices.size:
                views = ready(batch.views)
                for member in batch.group.members:
                    name = names[member.position]
                    probs = runners[member.position].protocol_probabilities(
                        views, member.computed_protocol_views, count_views, member.selection)
                    for protocol, rows in zip(protocols, probs):
                        sink.write_rows(name, protocol.name, batch.indices, rows)
                if sleep_s:
                    time.sleep(sleep_s)
            if batch.group.number == groups[-1].number:
                # An image is done once the last view group has scored it (or found it
                # unreadable: it has no views to compute, count them as done).
                images_done += batch.indices.size + len(batch.errors)
                if batch.errors:
                    views_done += len(batch.errors) * views_per_image
                report()
            if batch.chunk_done:
                chunk = batch.chunk
                sink.complete_chunk(chunk.number, chunk.start, chunk.stop, chunk_errors)
                unreadable.update(chunk_errors)
                chunk_errors = {}
    if finalize and writer is not None:
        writer.seal()
    seconds = time.perf_counter() - clock
    report(finished=True)
    return RunStats(
        images=images_total,
        model_views=views_total,
        rendered_views=images_total * sum(g.rendered_views_per_image for g in groups),
        views_per_image={names[m.position]: m.views_per_image for g in groups for m in g.members},
        seconds=seconds,
        started_at=started_at,
        ended_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device=describe_device(torch_device),
        chunks_total=len(chunks),
        chunks_already_done=len(done),
        chunks_computed=len(mine),
        unreadable=unreadable,
        pipeline_builds=pipeline_stats.builds,
        view_handoff=pipeline_stats.handoff,
        batch_sizes={names[m.position]: batch_sizes[g.number] for g in groups
                     for m in g.members},
        model_settings={names[position]: runner.settings()
                        for position, runner in runners.items()},
    )
