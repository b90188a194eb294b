"""A whole bench: models x protocols x stages, the yardsticks around them, one result document.

Order of work, all in one process: the GEMM rate at the run's dtype, a burst of the reference
workload, then per model and protocol the chosen stages (each with its own warm-up), each
followed by another reference burst, and the GEMM again (MFU divides by the better of the two).
A stage that repeats its work also measures a burst between two passes, at most one per
REFERENCE_INTERVAL_S.

A row is normalised by the mean rate of its bursts (the one before it, those between its passes,
the one after it), so that a load that comes and goes during the bench (another job on a shared
CI machine) weighs on its yardstick as it weighs on the row; the median of all bursts is
reported as the run's reference rate.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inceval import __version__
from inceval.bench.calibration import ReferenceWorkload, gemm_rate
from inceval.bench.memory import MIB
from inceval.bench.result import FORMAT, SCHEMA_VERSION, normalise
from inceval.bench.stages import (
    END_TO_END,
    FEEDER,
    MODEL,
    PIPELINE,
    STAGES,
    FeederUnavailable,
    Measurement,
    measure_end_to_end,
    measure_feeder,
    measure_model,
    measure_pipeline,
)
from inceval.data.protocols import Protocol, get_protocol
from inceval.data.views import ViewSpec, union_views
from inceval.errors import InceValError

PRECISIONS = ("float32", "bfloat16", "float16")
# Default images per protocol: (fewer than 100 views per image, 100 or more), per device type.
# Enough that warm-up effects are small on each device, few enough that a CPU bench of the
# large networks at 144 crops ends in minutes.
DEFAULT_IMAGES = {"cpu": (32, 4), "cuda": (512, 64)}
# Least seconds between two reference bursts inside one stage's measurement.
REFERENCE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class BenchSettings:
    """How to measure (the ``inceval bench`` options).

    Attributes:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: forward precision and GEMM dtype: ``float32``, ``bfloat16`` or ``float16``.
        backend: view loader: ``auto``, ``dali`` or ``torch``.
        batch_size: images per rendered batch; None for the engine's default per protocol.
        max_views_per_forward: most views in one forward call; None for the engine's default.
        workers: DALI CPU threads / decoding processes of the torch backend; None for the
            engine's default.
        threads: torch intra-op threads for the whole bench (reference workload included);
            None to leave torch's setting.
        compile: ``torch.compile`` the models (the engine's ``compile``; a whole untimed pass
            warms each stage up so every shape is compiled before timing).
        tf32: allow TF32 on CUDA for float32 (the engine's ``tf32``; the GEMM too).
        images: images per protocol and stage; None for DEFAULT_IMAGES.
        min_seconds: each stage repeats its work until this many seconds have passed.
        stages: which of STAGES to measure.
        gemm_seconds: length of each GEMM measurement.
        reference_seconds: length of each reference burst.
        extra: further keys recorded in the document's settings (e.g. the preset).
    """

    device: str = "auto"
    dtype: str = "float32"
    backend: str = "auto"
    batch_size: int | None = None
    max_views_per_forward: int | None = None
    workers: int | None = None
    threads: int | None = None
    compile: bool = False
    tf32: bool = False
    images: int | None = None
    min_seconds: float = 1.0
    stages: tuple[str, ...] = STAGES
    gemm_seconds: float = 1.0
    reference_seconds: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)


# Called as each stage finishes: (model, protocol, stage, measurement or None when skipped).
RowCallback = Callable[[str, str, str, "Measurement | None"], None]


def default_images(views_per_image: int, device_type: str) -> int:
    """Images per protocol when ``--images`` is not given."""
    few_views, many_views = DEFAULT_IMAGES["cuda" if device_type == "cuda" else "cpu"]
    return few_views if views_per_image < 100 else many_views


def check_settings(settings: BenchSettings, device: torch.device) -> None:
    """Refuse settings that cannot be measured, before any work.

    Raises:
        InceValError: one line naming the option.
    """
    if settings.dtype not in PRECISIONS:
        raise InceValError(f"--dtype {settings.dtype!r} is unknown; use {', '.join(PRECISIONS)}")
    if device.type == "cpu" and settings.dtype == "float16":
        raise InceValError("--dtype float16 is not supported on the CPU; use bfloat16 or float32")
    unknown = [stage for stage in settings.stages if stage not in STAGES]
    if unknown or not settings.stages:
        raise InceValError(f"--stages {','.join(settings.stages)!r}: use a comma-separated "
                           f"list of {', '.join(STAGES)}")
    for option, value, least in (("--batch-size", settings.batch_size, 1),
                                 ("--images", settings.images, 1),
                                 ("--max-views-per-forward", settings.max_views_per_forward, 1),
                                 ("--workers", settings.workers, 0),
                                 ("--threads", settings.threads, 1)):
        if value is not None and value < least:
            raise InceValError(f"{option} must be at least {least}, got {value}")
    if settings.min_seconds < 0:
        raise InceValError(f"--min-seconds must be 0 or more, got {settings.min_seconds}")
    if settings.tf32 and device.type != "cuda":
        raise InceValError(f"--tf32 applies to CUDA devices only; drop it for --device {device}")


def model_macs(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one view: from the registry for named networks, else counted."""
    from inceval.models.complexity import count_macs, model_complexity

    name = getattr(model, "model_name", None)
    if isinstance(name, str):
        try:
            return model_complexity(name, input_size).macs
        except InceValError:  # not a registered network: a stand-in
            pass
    return count_macs(getattr(model, "_orig_mod", model), input_size)


def cycled(paths: Sequence[Path], count: int) -> list[Path]:
    """``count`` paths, going round ``paths`` as often as needed."""
    if not paths:
        raise InceValError("no images to measure on; check --data")
    return [paths[i % len(paths)] for i in range(count)]


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU, cores, threads, versions and GPU of this process."""
    try:
        from nvidia.dali import __version__ as dali_version
    except ImportError:
        dali_version = None
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        gpu = torch.cuda.get_device_name(index)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cpus_usable": cpus,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "nvidia_dali": dali_version,
        "cuda": torch.version.cuda,
        "gpu": gpu,
        "load_average_at_start": list(os.getloadavg()),
    }


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


def build_row(model: str, protocol: str, stage: str, input_size: int, views_per_image: int,
              batch_size: int, measurement: Measurement, *, macs: int,
              gemm_tflop_per_s: float, reference_rate: float,
              views_per_forward: int | None = None) -> dict[str, Any]:
    """One result row; TFLOP/s and MFU only for stages that run the model.

    ``reference_rate`` is the reference workload's rate around this measurement (passes/s);
    ``normalised`` is views/s divided by it.
    """
    computes = stage in (MODEL, END_TO_END)
    tflop = measurement.views_per_s * 2 * macs / 1e12 if computes else None
    return {
        "model": model,
        "protocol": protocol,
        "stage": stage,
        "input_size": input_size,
        "views_per_image": views_per_image,
        "batch_size": batch_size,
        "views_per_forward": views_per_forward if computes else None,
        "images": measurement.images,
        "views": measurement.views,
        "passes": measurement.passes,
        "seconds": measurement.seconds,
        "images_per_s": measurement.images_per_s,
        "views_per_s": measurement.views_per_s,
        "reference_rate": reference_rate,
        "normalised": normalise(measurement.views_per_s, reference_rate),
        "tflop_per_s": tflop,
        "mfu": tflop / gemm_tflop_per_s if tflop is not None else None,
        "rss_peak_mib": _mib(measurement.memory.rss_bytes),
        "rss_peak_scope": measurement.memory.rss_scope,
        "device_peak_mib": _mib(measurement.memory.device_bytes),
        "feeder_share": None,
    }


@dataclass(frozen=True)
class _Work:
    """One model under one protocol, with every setting resolved."""

    model: nn.Module
    protocol: Protocol
    views: tuple[ViewSpec, ...]
    paths: list[Path]
    batch_size: int
    views_per_forward: int
    macs: int


@dataclass(frozen=True)
class _Measured:
    work: _Work
    stage: str
    measurement: Measurement
    reference_rate: float  # mean of the row's reference bursts


class _RowReference:
    """The reference bursts that belong to one row: before, between its passes, after."""

    def __init__(self, reference: ReferenceWorkload, seconds: float) -> None:
        self._reference = reference
        self._seconds = seconds
        self.rates = [reference.bursts[-1]]
        self._last = time.perf_counter()

    def between(self) -> None:
        """A burst, when the last one is at least REFERENCE_INTERVAL_S old."""
        if time.perf_counter() - self._last >= REFERENCE_INTERVAL_S:
            self.rates.append(self._reference.burst(self._seconds))
            self._last = time.perf_counter()

    def finish(self) -> float:
        """The burst after the row; the mean rate of all of the row's bursts."""
        self.rates.append(self._reference.burst(self._seconds))
        return sum(self.rates) / len(self.rates)


class _Bench:
    """The resolved settings of one bench and the stage measurements made with them."""

    def __init__(self, settings: BenchSettings, device: torch.device, backend: str) -> None:
        from inceval.engine.evaluate import default_workers

        self.settings = settings
        self.device = device
        self.backend = backend
        # Resolved here as evaluate() resolves them, so that every stage uses the same values.
        self.per_forward_used: set[int] = set()
        self.workers = settings.workers if settings.workers is not None else default_workers()
        # Only what was asked for, so that engines without these keywords still run the rest.
        self.runner_options = {key: True for key in ("tf32", "compile")
                               if getattr(settings, key)}

    def views_per_forward(self, views_per_image: int, input_size: int) -> int:
        """The asked views per forward call, else the engine's default for these views."""
        from inceval.engine.forward import default_views_per_forward

        per_forward = (self.settings.max_views_per_forward
                       or default_views_per_forward(self.device, views_per_image, input_size))
        self.per_forward_used.add(per_forward)
        return per_forward

    def batch_size(self, views_per_image: int, input_size: int, views_per_forward: int) -> int:
        """The asked batch size, else the engine's default for these views."""
        from inceval.engine.evaluate import default_batch_size

        if self.settings.batch_size is not None:
            return self.settings.batch_size
        return default_batch_size(views_per_image, input_size, self.device, views_per_forward)

    def measure(self, stage: str, work: _Work, between: Callable[[], None]) -> Measurement:
        """One stage of one model and protocol; ``between`` runs between its passes."""
        settings = self.settings
        common = {"backend": self.backend, "batch_size": work.batch_size, "device": self.device,
                  "workers": self.workers, "min_seconds": settings.min_seconds,
                  "between": between}
        if stage == FEEDER:
            return measure_feeder(work.paths, work.views, device=self.device,
                                  min_seconds=settings.min_seconds, threads=self.workers,
                                  between=between)
        if stage == PIPELINE:
            return measure_pipeline(work.paths, work.views, **common)
        forward = {"precision": settings.dtype, "max_views_per_forward": work.views_per_forward,
                   "full_warmup": settings.compile, "runner_options": self.runner_options}
        if stage == MODEL:
            return measure_model(work.model, work.paths, work.views, images=len(work.paths),
                                 **forward, **common)
        return measure_end_to_end(work.model, work.protocol, work.paths, **forward, **common)


def run_bench(models: Sequence[nn.Module], protocols: Sequence[Protocol | str],
              paths: Sequence[Path], settings: BenchSettings, *,
              data_info: dict[str, Any] | None = None, command: str | None = None,
              on_row: RowCallback | None = None) -> dict[str, Any]:
    """Measure every model under every protocol at every chosen stage.

    Args:
        models: prepared models (``model_name``, ``eval_config``), moved to the device; the
            engine compiles them when ``settings.compile``.
        protocols: Protocol objects or names.
        paths: the images; each protocol uses ``settings.images`` of them, going round the list
            when it is shorter.
        settings: how to measure.
        data_info: recorded as the document's ``data`` entry.
        command: the command line, recorded.
        on_row: told about each stage as it finishes (None for a feeder that cannot run).

    Returns:
        The bench document (see :mod:`inceval.bench.result`).

    Raises:
        InceValError: unusable settings, devices, protocols or images.
    """
    from inceval.data.loader import resolve_backend
    from inceval.engine.evaluate import resolve_device

    device = resolve_device(settings.device)
    check_settings(settings, device)
    saved_threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        return _run(models, protocols, paths, settings, device, resolve_backend(settings.backend),
                    data_info=data_info, command=command, on_row=on_row)
    finally:
        torch.set_num_threads(saved_threads)


def _run(models: Sequence[nn.Module], protocols: Sequence[Protocol | str],
         paths: Sequence[Path], settings: BenchSettings, device: torch.device, backend: str, *,
         data_info: dict[str, Any] | None, command: str | None,
         on_row: RowCallback | None) -> dict[str, Any]:
    bench = _Bench(settings, device, backend)
    protocols = [p if isinstance(p, Protocol) else get_protocol(p) for p in protocols]
    for model in models:  # a protocol that does not fit a model fails before any measurement
        for protocol in protocols:
            protocol.resolve(model.eval_config)
    machine = machine_info(device)
    gemm = gemm_rate(device, settings.dtype, settings.gemm_seconds, tf32=settings.tf32)
    reference = ReferenceWorkload(device)
    reference.burst(settings.reference_seconds)
    feeder_reason: str | None = None
    measured: list[_Measured] = []
    models_info: dict[str, Any] = {}
    for model in models:
        config = model.eval_config
        macs = model_macs(model, config.input_size)
        models_info[model.model_name] = {
            "input_size": config.input_size, "macs_per_view": macs,
            "weights": (getattr(model, "weights_info", None) or {}).get("source"),
            "inference_form": getattr(model, "inference_form", None)}
        for protocol in protocols:
            views, _ = union_views([protocol.resolve(config)])
            images = settings.images or default_images(len(views), device.type)
            per_forward = bench.views_per_forward(len(views), config.input_size)
            work = _Work(model, protocol, views, cycled(paths, images),
                         bench.batch_size(len(views), config.input_size, per_forward),
                         per_forward, macs)
            for stage in settings.stages:
                if stage == FEEDER and feeder_reason is not None:
                    continue
                row_reference = _RowReference(reference, settings.reference_seconds)
                try:
                    measurement = bench.measure(stage, work, row_reference.between)
                except FeederUnavailable as exc:
                    feeder_reason = str(exc)
                    measurement = None
                else:
                    measured.append(_Measured(work, stage, measurement, row_reference.finish()))
                if on_row is not None:
                    on_row(model.model_name, protocol.name, stage, measurement)
    # The device's peak: the better of a measurement before and one after the stages.
    gemm_after = gemm_rate(device, settings.dtype, settings.gemm_seconds, tf32=settings.tf32)
    gemm["measurements_tflop_per_s"] = [gemm["tflop_per_s"], gemm_after["tflop_per_s"]]
    gemm["tflop_per_s"] = max(gemm["measurements_tflop_per_s"])
    rows = _rows(measured, gemm["tflop_per_s"])
    machine["load_average_at_end"] = list(os.getloadavg())
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inceval": __version__,
        "command": command,
        "machine": machine,
        "settings": {
            **{k: v for k, v in asdict(settings).items() if k != "extra"},
            "device": str(device),
            "backend": bench.backend,
            # As asked, else the default when every row used the same (always so on a CPU),
            # else None (the rows say what each used).
            "max_views_per_forward": (settings.max_views_per_forward
                                      or (next(iter(bench.per_forward_used))
                                          if len(bench.per_forward_used) == 1 else None)),
            # As asked (None: the engine's default, which depends on the machine's CPUs), so
            # that results of two machines with default settings stay comparable.
            "workers": settings.workers,
            "workers_used": bench.workers,
            "stages": list(settings.stages),
            "protocols": [p.name for p in protocols],
            **settings.extra,
        },
        "data": dict(data_info or {}),
        "models": models_info,
        "reference": reference.describe(),
        "gemm": gemm,
        "feeder": {"available": feeder_reason is None if FEEDER in settings.stages else None,
                   "reason": feeder_reason},
        "rows": rows,
    }


def _rows(measured: list[_Measured], gemm_tflop_per_s: float) -> list[dict[str, Any]]:
    """Rows with normalised rates, and each end-to-end row's feeder share of wall time."""
    rows = [build_row(m.work.model.model_name, m.work.protocol.name, m.stage,
                      m.work.model.eval_config.input_size, len(m.work.views),
                      m.work.batch_size, m.measurement, macs=m.work.macs,
                      gemm_tflop_per_s=gemm_tflop_per_s, reference_rate=m.reference_rate,
                      views_per_forward=m.work.views_per_forward)
            for m in measured]
    feeder_rate = {(r["model"], r["protocol"]): r["images_per_s"] for r in rows
                   if r["stage"] == FEEDER}
    for row in rows:
        key = (row["model"], row["protocol"])
        if row["stage"] == END_TO_END and key in feeder_rate:
            # feeder seconds per image x images per second end to end
            row["feeder_share"] = row["images_per_s"] / feeder_rate[key]
    return rows
