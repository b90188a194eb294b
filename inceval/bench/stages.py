"""The four measurements of a bench, each a fixed amount of work after an untimed warm-up.

* ``feeder``: what the engine's feeder does per image (file reads, header parsing, view geometry,
  argument arrays), no decoding.
* ``pipeline``: the view pipeline alone: rendered views delivered where the model would use
  them, nothing computed.
* ``model``: the model alone on views rendered once beforehand and already on the device,
  including normalisation and softmax (:class:`~inceval.engine.forward.ModelRunner`).
* ``end-to-end``: what ``inceval run`` does (:func:`~inceval.engine.evaluate.evaluate` with
  ``writer=None``: everything computed, nothing stored).

A measurement repeats its work in passes until ``min_seconds`` have passed (at least one pass)
and reports the totals, so short workloads are not measured on a few milliseconds. Every
``measure_*`` function takes ``between``, called between passes outside the timing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inceval.bench.memory import MemoryPeaks, PeakTracker
from inceval.data.protocols import Protocol
from inceval.data.views import ViewSpec

FEEDER, PIPELINE, MODEL, END_TO_END = "feeder", "pipeline", "model", "end-to-end"
STAGES = (FEEDER, PIPELINE, MODEL, END_TO_END)


@dataclass(frozen=True)
class Measurement:
    """Totals of the timed passes of one stage.

    Attributes:
        images: images processed over all passes.
        views: views rendered (feeder, pipeline) or computed (model, end to end).
        seconds: wall time of the timed passes.
        passes: how many times the work was done.
        memory: peaks over the timed passes.
    """

    images: int
    views: int
    seconds: float
    passes: int
    memory: MemoryPeaks

    @property
    def images_per_s(self) -> float:
        """Images per second."""
        return self.images / self.seconds

    @property
    def views_per_s(self) -> float:
        """Views per second."""
        return self.views / self.seconds


class FeederUnavailable(Exception):
    """The engine's feeder module does not import here (yet)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_passes(one_pass: Callable[[], tuple[int, int]], device: torch.device,
                 min_seconds: float, between: Callable[[], None] | None = None) -> Measurement:
    """Repeat ``one_pass`` (returning (images, views)) until ``min_seconds`` of it have passed.

    Args:
        one_pass: does the work once.
        device: synchronised after each pass so the clock sees finished work.
        min_seconds: least total time of the passes; one pass at least whatever its length.
        between: called between two passes, outside the timing (the bench measures its
            reference workload there, interleaved with the work it normalises).
    """
    tracker = PeakTracker(device)
    images = views = passes = 0
    elapsed = 0.0
    while True:
        _sync(device)
        start = time.perf_counter()
        done_images, done_views = one_pass()
        _sync(device)
        elapsed += time.perf_counter() - start
        images += done_images
        views += done_views
        passes += 1
        if elapsed >= min_seconds:
            break
        if between is not None:
            between()
    return Measurement(images, views, elapsed, passes, tracker.read())


def dali_device(device: torch.device) -> str:
    """Where the view pipeline renders: on the GPU when the models run there."""
    return "gpu" if device.type == "cuda" else "cpu"


def measure_feeder(paths: Sequence[Path], views: tuple[ViewSpec, ...], *, device: torch.device,
                   min_seconds: float, threads: int | None = None,
                   between: Callable[[], None] | None = None) -> Measurement:
    """The feeder alone: every image's bytes, header, geometry and arguments, no decoding.

    Raises:
        FeederUnavailable: ``inceval.data.feeder`` does not import.
    """
    try:
        from inceval.data.feeder import ImageFeeder
    except ImportError as exc:
        raise FeederUnavailable(f"inceval.data.feeder does not import ({exc})") from None

    def one_pass(subset: Sequence[Path]) -> tuple[int, int]:
        feeder = ImageFeeder(list(subset), views, threads=threads)
        for _ in feeder.iter_prepared(range(len(subset))):
            pass
        close = getattr(feeder, "close", None)
        if close is not None:
            close()
        return len(subset), len(subset) * len(views)

    one_pass(paths[:4])
    return timed_passes(lambda: one_pass(paths), device, min_seconds, between)


def measure_pipeline(paths: Sequence[Path], views: tuple[ViewSpec, ...], *, backend: str,
                     batch_size: int, device: torch.device, workers: int,
                     min_seconds: float,
                     between: Callable[[], None] | None = None) -> Measurement:
    """The view pipeline alone: uint8 views delivered on the device, nothing computed."""
    from inceval.data.loader import iter_view_batches

    def one_pass(subset: Sequence[Path]) -> tuple[int, int]:
        images = rendered = 0
        for batch in iter_view_batches(list(subset), views, backend=backend,
                                       batch_size=batch_size, device=dali_device(device),
                                       num_workers=workers):
            images += int(batch.views.shape[0])
            rendered += int(batch.views.shape[0] * batch.views.shape[1])
        return images, rendered

    one_pass(paths[:batch_size])
    return timed_passes(lambda: one_pass(paths), device, min_seconds, between)


def prerender(paths: Sequence[Path], views: tuple[ViewSpec, ...], *, backend: str,
              device: torch.device, workers: int) -> torch.Tensor:
    """uint8 views (B, N, 3, H, W) of ``paths``, rendered once and moved to ``device``."""
    from inceval.data.loader import iter_view_batches

    batches = [batch.views for batch in iter_view_batches(
        list(paths), views, backend=backend, batch_size=len(paths),
        device=dali_device(device), num_workers=workers)]
    rendered = torch.cat(batches) if len(batches) > 1 else batches[0]
    rendered = rendered.to(device)
    _sync(device)
    return rendered


def measure_model(model: nn.Module, paths: Sequence[Path], views: tuple[ViewSpec, ...], *,
                  images: int, backend: str, batch_size: int, device: torch.device,
                  precision: str, max_views_per_forward: int, workers: int,
                  min_seconds: float, full_warmup: bool = False,
                  runner_options: dict[str, Any] | None = None,
                  between: Callable[[], None] | None = None) -> Measurement:
    """The model alone on views already on the device: ``images`` images per pass.

    The views of one batch (the first ``batch_size`` images) are rendered once; each pass scores
    them in batches of ``batch_size`` images until ``images`` images are done, the last batch
    cut short, as the engine would batch them.

    Args:
        full_warmup: warm up with a whole pass (compiled models see every batch shape once)
            instead of one batch.
        runner_options: further ModelRunner keywords (``tf32``, ``compile``), given only when
            asked for.
    """
    from inceval.engine.forward import ModelRunner

    runner = ModelRunner(model, model.eval_config, device, precision, max_views_per_forward,
                         **(runner_options or {}))
    pool = prerender(list(paths[:min(batch_size, images)]), views, backend=backend,
                     device=device, workers=workers)

    def one_pass(total: int) -> tuple[int, int]:
        done = 0
        while done < total:
            take = min(pool.shape[0], total - done)
            runner.probabilities(pool[:take])
            done += take
        return total, total * pool.shape[1]

    one_pass(images if full_warmup else pool.shape[0])
    measurement = timed_passes(lambda: one_pass(images), device, min_seconds, between)
    del pool
    return measurement


def bench_dataset(paths: Sequence[Path]):  # noqa: ANN201 - ValDataset, imported lazily
    """An unlabelled dataset of ``paths`` in this order (repeats allowed) for the engine."""
    from inceval.data.datasets import ValDataset
    from inceval.data.records import ImageRecord

    absolute = [Path(p).resolve() for p in paths]
    root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    records = tuple(ImageRecord(p.relative_to(root).as_posix(), 0, None) for p in absolute)
    return ValDataset(root, "list", records, np.zeros(len(records), dtype=bool), None,
                      "inceval bench (unlabelled)")


def measure_end_to_end(model: nn.Module, protocol: Protocol, paths: Sequence[Path], *,
                       backend: str, batch_size: int, device: torch.device, precision: str,
                       max_views_per_forward: int, workers: int, min_seconds: float,
                       full_warmup: bool = False,
                       runner_options: dict[str, Any] | None = None,
                       between: Callable[[], None] | None = None) -> Measurement:
    """What ``inceval run`` does for one model and protocol, storing nothing.

    Each pass is one :func:`~inceval.engine.evaluate.evaluate` call on all of ``paths`` with
    ``writer=None``, timed whole (pipeline construction included, as in a run).

    Args:
        runner_options: further ``evaluate`` keywords (``tf32``, ``compile``), given only when
            asked for.
    """
    from inceval.engine.evaluate import evaluate

    def one_pass(subset: Sequence[Path]) -> tuple[int, int]:
        stats = evaluate([model], [protocol], bench_dataset(subset), None, backend=backend,
                         device=device, precision=precision, batch_size=batch_size,
                         max_views_per_forward=max_views_per_forward, workers=workers,
                         progress=None, **(runner_options or {}))
        return stats.images, stats.model_views

    one_pass(paths if full_warmup else paths[:batch_size])
    return timed_passes(lambda: one_pass(paths), device, min_seconds, between)
