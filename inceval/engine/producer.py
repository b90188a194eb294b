"""Rendering views in a background thread, chunk by chunk, ahead of the model loop.

The images of a run are split into numbered *chunks* of consecutive positions. Each view group
has one long-lived source (one DALI pipeline for the whole run); for each chunk and each group in
turn, the producer takes that chunk's batches from the group's source and puts them in a bounded
queue, and the model loop takes them out. The queue bounds host memory (a 144-view batch is
large) while decoding and resizing overlap the forward passes. Chunks are the unit of resuming an
interrupted run and of sharding a run over several processes; images that cannot be read travel
with their chunk as errors.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import torch

from inceval.data.views import SegmentBatch
from inceval.engine.plan import ViewGroup

# (group, segments, known_bad) -> one iterator over every segment for the group's views; images
# found bad are added to known_bad (shared by the groups, so a bad file is found once).
SegmentSource = Callable[[ViewGroup, list[range], dict[int, str]], Iterator[SegmentBatch]]

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
    """Views of some images of one chunk, for one view group, and the images that failed.

    Attributes:
        chunk: the chunk the images belong to.
        group: the view group whose union of views was rendered.
        indices: positions of the rendered images in the run, int64 (B,); B may be 0.
        views: uint8 (B, N, 3, H, W) with N = ``len(group.views)``, or None when B is 0.
        errors: position -> reason for images of the chunk that could not be read or decoded.
        chunk_done: this is the chunk's last batch of its last view group.
    """

    chunk: Chunk
    group: ViewGroup
    indices: np.ndarray
    views: torch.Tensor | None
    errors: dict[int, str]
    chunk_done: bool


class _Done:
    """End-of-stream marker."""


class ViewProducer:
    """A thread that renders every (chunk, group) into a bounded queue; iterate to consume.

    Each view group gets ONE source iterator for the whole run (for DALI: one pipeline, built
    once), fed the chunks in order; batches never span two chunks, so chunks stay the unit of
    resuming and sharding. Use as a context manager so the thread stops if the consumer fails
    midway. An exception in the thread is re-raised in the consumer at the point it occurred.

    Args:
        chunks: the chunks to render, in order.
        groups: the view groups; each chunk is rendered for each group in turn.
        source: makes the iterator of one group over all chunks.
        prefetch: rendered batches that may wait in the queue.
    """

    def __init__(self, chunks: Sequence[Chunk], groups: Sequence[ViewGroup],
                 source: SegmentSource, prefetch: int = 2) -> None:
        self._chunks = list(chunks)
        self._groups = list(groups)
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inceval-views", daemon=True)
        self.known_bad: dict[int, str] = {}

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
        segments = [range(chunk.start, chunk.stop) for chunk in self._chunks]
        iterators: list[Iterator[SegmentBatch]] = []
        try:
            iterators = [self._source(group, segments, self.known_bad) for group in self._groups]
            last_group = len(self._groups) - 1
            for number, chunk in enumerate(self._chunks):
                for group_index, (group, batches) in enumerate(zip(self._groups, iterators)):
                    remaining = len(chunk)
                    while remaining > 0:
                        batch = next(batches)
                        remaining -= batch.indices.size + len(batch.errors)
                        if batch.segment != number or remaining < 0:
                            raise RuntimeError(f"view source returned images outside chunk "
                                               f"{chunk.number} ({chunk.start}..{chunk.stop - 1})")
                        item = RenderedBatch(chunk, group, batch.indices, batch.views,
                                             dict(batch.errors),
                                             group_index == last_group and remaining == 0)
                        if not self._put(item):
                            return
            self._put(_Done())
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)
        finally:
            for batches in iterators:
                close = getattr(batches, "close", None)
                if close is not None:
                    close()  # frees the loader (a DALI pipeline) now, not at garbage collection
