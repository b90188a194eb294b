"""Rendering views in a background thread, chunk by chunk, ahead of the model loop.

The images of a run are split into numbered *chunks* of consecutive positions. For each chunk and
each view group, the producer renders batches with the view loader and puts them in a bounded
queue; the model loop takes them out. The queue bounds host memory (a 144-view batch is large)
while decoding and resizing overlap the forward passes. Chunks are the unit that multi-process
sharding, resuming an interrupted run and isolating an undecodable file will work on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import torch

from inceval.data.views import ViewBatch, ViewSpec
from inceval.engine.plan import ViewGroup

# (paths, views, batch_size) -> batches whose indices are positions in ``paths``.
BatchSource = Callable[[Sequence[Path], tuple[ViewSpec, ...], int], Iterator[ViewBatch]]

_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Chunk:
    """Consecutive images ``[start, stop)`` of the run, numbered from 0."""

    number: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def make_chunks(num_images: int, chunk_size: int) -> list[Chunk]:
    """Split ``num_images`` positions into chunks of ``chunk_size`` (the last may be shorter)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    return [Chunk(n, start, min(start + chunk_size, num_images))
            for n, start in enumerate(range(0, num_images, chunk_size))]


@dataclass(frozen=True)
class RenderedBatch:
    """Views of some images of one chunk, for one view group.

    Attributes:
        chunk: the chunk the images belong to.
        group: the view group whose union of views was rendered.
        indices: positions of the images in the run, int64 (B,).
        views: uint8 (B, N, 3, H, W) with N = ``len(group.views)``.
    """

    chunk: Chunk
    group: ViewGroup
    indices: np.ndarray
    views: torch.Tensor


class _Done:
    """End-of-stream marker."""


class ViewProducer:
    """A thread that renders every (chunk, group) into a bounded queue; iterate to consume.

    Use as a context manager so the thread stops if the consumer fails midway. An exception in the
    thread (an undecodable image, say) is re-raised in the consumer at the point it occurred.

    Args:
        paths: image files of the run, in run order.
        chunks: the chunks to render, in order.
        groups: the view groups; each chunk is rendered for each group in turn.
        source: the view loader, e.g. a partial of ``inceval.data.loader.iter_view_batches``.
        batch_size: images per rendered batch.
        prefetch: rendered batches that may wait in the queue.
    """

    def __init__(self, paths: Sequence[Path], chunks: Sequence[Chunk], groups: Sequence[ViewGroup],
                 source: BatchSource, batch_size: int, prefetch: int = 2) -> None:
        self._paths = list(paths)
        self._chunks = list(chunks)
        self._groups = list(groups)
        self._source = source
        self._batch_size = batch_size
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inceval-views", daemon=True)

    def __enter__(self) -> "ViewProducer":
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=_POLL_SECONDS)

    def __iter__(self) -> Iterator[RenderedBatch]:
        while True:
            item = self._queue.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _put(self, item: object) -> bool:
        """Block until there is room; False once the consumer asked to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for chunk in self._chunks:
                paths = self._paths[chunk.start:chunk.stop]
                for group in self._groups:
                    if not self._render(chunk, group, paths):
                        return
            self._put(_Done())
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _render(self, chunk: Chunk, group: ViewGroup, paths: list[Path]) -> bool:
        batches = self._source(paths, group.views, self._batch_size)
        try:
            for batch in batches:
                indices = np.asarray(batch.indices, dtype=np.int64) + chunk.start
                if not self._put(RenderedBatch(chunk, group, indices, batch.views)):
                    return False
            return True
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # frees the loader (a DALI pipeline) now, not at garbage collection
