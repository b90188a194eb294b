"""The feeder of the DALI view pipeline: file bytes and per-image view arguments, read ahead.

For each image it reads the file, takes the size from the header (:mod:`inceval.data.image_header`,
no decoding) and builds the two argument arrays of the fixed DALI graph
(``pipeline._sample_args``). Three things make it fast enough never to hold up a GPU:

* the arrays depend only on (width, height) for fixed views, so they are computed once per size
  and cached (photo collections repeat a few sizes: most ImageNet images are 500 pixels on the
  longer side);
* JPEG and PNG headers are parsed by hand instead of through PIL;
* files are read by a thread pool ahead of the consumer (the reads release the GIL).

A bad image never raises: it comes back as a :class:`PreparedImage` whose ``error`` is a short,
path-free reason for the run's images.csv; :func:`image_error_message` turns it into the one-line
message ``read_encoded`` would give.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from inceval.data.image_header import CONVERT_ADVICE, UnreadableImage, header_size
from inceval.data.pipeline import _layout, _Layout, _sample_args
from inceval.data.views import ViewPlan, ViewSpec, plan_views

# Most pixels one resize stage may produce for one image. DALI allocates each stage output whole
# (3 bytes a pixel: 2**26 pixels are 192 MiB, per image of a batch), so an image far longer than
# wide would exhaust memory before any check in the graph. A 500x375 photo's largest stage (the
# 470 of 144 crops) is 626x470, 0.3 M pixels; at 470 this limit refuses aspect ratios above 303:1.
MAX_STAGE_PIXELS = 2**26
# Distinct (width, height) whose argument arrays are kept; a miss costs one plan_views and
# _sample_args (about 0.5 ms at 144 crops).
GEOMETRY_CACHE_SIZE = 4096
# At most this many images per task handed to the pool (fewer tasks, less overhead per image).
MAX_CHUNK = 16
# Reader threads beyond this cost more in GIL hand-overs than they gain: on files in the page
# cache 8 threads ran at less than half the rate of 1 (benchmarks/feeder_cpu.py). More pay off
# only where reads wait on a disk or network; pass ``threads`` there.
MAX_DEFAULT_THREADS = 4

FILE_NOT_FOUND = "image file not found"
FILE_EMPTY = "file is empty"
_CANNOT_READ = "cannot read file"


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """One image ready for the DALI graph, or the reason it cannot be.

    Attributes:
        position: index into the feeder's ``paths``.
        data: the file bytes, uint8 of shape (N,); None when bad.
        floats: float32 (layout.num_floats, 6) per-sample arguments; None when bad. Read-only and
            shared by all images of one size (DALI copies its inputs).
        ints: int32 (layout.num_boxes, 4) per-sample arguments; None when bad. Read-only, shared.
        width: width from the header (0 when unknown).
        height: height from the header (0 when unknown).
        error: None, or a short path-free reason such as ``"file is empty"``.
    """

    position: int
    data: np.ndarray | None
    floats: np.ndarray | None
    ints: np.ndarray | None
    width: int
    height: int
    error: str | None


def default_threads() -> int:
    """Reader threads: the CPUs this process may use, at least 2, at most MAX_DEFAULT_THREADS.

    Two even on one CPU, so that one thread parses while the other waits for the disk.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(2, min(cpus, MAX_DEFAULT_THREADS))


def image_error_message(path: str | Path, reason: str) -> str:
    """The one-line message for a bad image, worded as ``pipeline.read_encoded`` words it.

    Args:
        path: the image file.
        reason: :attr:`PreparedImage.error`.
    """
    if reason == FILE_NOT_FOUND:
        return f"{path}: {reason}; check the data directory"
    if reason.startswith(_CANNOT_READ):
        return f"{path}: {reason}; check permissions"
    if reason.endswith(CONVERT_ADVICE):
        return f"{path}: {reason}"
    return f"{path}: {reason}; replace or remove it"


def read_bytes(path: str | Path) -> np.ndarray:
    """The whole file as uint8 of shape (N,), writable (the read releases the GIL).

    Raises:
        OSError: as ``open`` and ``read`` raise it (FileNotFoundError for a missing file).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = np.empty(size, dtype=np.uint8)
        view = memoryview(data)
        done = 0
        while done < size:
            got = os.readv(fd, [view[done:]])
            if got == 0:  # the file shrank since fstat
                return data[:done]
            done += got
        return data
    finally:
        os.close(fd)


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy on immutable bytes: its WRITEABLE flag cannot be turned back on."""
    return np.frombuffer(array.tobytes(), dtype=array.dtype).reshape(array.shape)


def elongation_error(plan: ViewPlan, width: int, height: int) -> str | None:
    """Why an image is refused as too elongated, or None.

    A stage producing more than MAX_STAGE_PIXELS pixels is refused; the check uses the plan's
    integer sizes only.
    """
    for stage in plan.stages:
        if stage.out_h * stage.out_w <= MAX_STAGE_PIXELS:
            continue
        need = f"{stage.out_w:,}x{stage.out_h:,} pixels"
        if stage.roi is None:
            side = min(stage.out_h, stage.out_w)
            return (f"image is {width}x{height}: too elongated "
                    f"(a {side}-pixel shorter side would need {need})")
        return (f"image is {width}x{height}: too elongated "
                f"(a resize to {need} is over the limit of {MAX_STAGE_PIXELS:,})")
    return None


class ImageFeeder:
    """Reads image files and prepares the per-image arguments of one view layout.

    Args:
        paths: all image files; positions index this list.
        views: the views of every image (e.g. ``protocol.resolve(cfg)``).
        threads: reader threads for :meth:`iter_prepared`; None for :func:`default_threads`,
            0 to prepare in the calling thread.
        read_ahead: most images read but not yet consumed (bounds memory).

    Raises:
        ValueError: no views, negative ``threads`` or ``read_ahead`` below 1.
    """

    def __init__(self, paths: Sequence[Path], views: Sequence[ViewSpec], *,
                 threads: int | None = None, read_ahead: int = 64) -> None:
        views = tuple(views)
        if not views:
            raise ValueError("ImageFeeder needs at least one view")
        if threads is not None and threads < 0:
            raise ValueError(f"threads must be 0 or more, got {threads}")
        if read_ahead < 1:
            raise ValueError(f"read_ahead must be at least 1, got {read_ahead}")
        self.paths = [Path(p) for p in paths]
        self._names = [os.fspath(p) for p in self.paths]  # os.open would convert each time
        self.views = views
        self.threads = default_threads() if threads is None else threads
        self.read_ahead = read_ahead
        self.layout: _Layout = _layout(views)
        self._geometry = functools.lru_cache(maxsize=GEOMETRY_CACHE_SIZE)(self._compute_geometry)
        self._pools: set[ThreadPoolExecutor] = set()
        self._closed = False

    def __enter__(self) -> "ImageFeeder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _compute_geometry(self, width: int,
                          height: int) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
        """The read-only argument arrays of one image size, or why the size is refused."""
        plan = plan_views(width, height, self.views)
        reason = elongation_error(plan, width, height)
        if reason is not None:
            return None, None, reason
        floats, ints = _sample_args(self.layout, plan, width, height)
        return _frozen(floats), _frozen(ints), None

    def geometry_cache_info(self) -> "functools._CacheInfo":
        """Hits, misses and size of the per-size argument cache."""
        return self._geometry.cache_info()

    def prepare(self, position: int) -> PreparedImage:
        """Read and prepare one image, in the calling thread.

        Bad images (missing, unreadable, empty, not an image, a format DALI cannot decode, a
        decompression bomb, too elongated) come back with ``error`` set; nothing is raised for
        them.

        Raises:
            IndexError: ``position`` is not an index of ``paths``.
        """
        if not 0 <= position < len(self.paths):
            raise IndexError(f"image position {position} is outside 0..{len(self.paths) - 1}")
        try:
            data = read_bytes(self._names[position])
            if data.size == 0:
                raise UnreadableImage(FILE_EMPTY)
            width, height = header_size(data)
            floats, ints, reason = self._geometry(width, height)
            if reason is not None:
                raise UnreadableImage(reason, width, height)
        except FileNotFoundError:
            return PreparedImage(position, None, None, None, 0, 0, FILE_NOT_FOUND)
        except OSError as exc:
            return PreparedImage(position, None, None, None, 0, 0,
                                 f"{_CANNOT_READ} ({exc.strerror})")
        except UnreadableImage as bad:
            return PreparedImage(position, None, None, None, bad.width, bad.height, bad.reason)
        return PreparedImage(position, data, floats, ints, width, height, None)

    def _prepare_many(self, positions: list[int]) -> list[PreparedImage]:
        return [self.prepare(position) for position in positions]

    def iter_prepared(self, positions: Iterable[int]) -> Iterator[PreparedImage]:
        """Prepare images in the order of ``positions``, read ahead by a thread pool.

        At most ``read_ahead`` images are in flight (queued, being read, or read but not yet
        yielded). Closing the iterator, or :meth:`close`, cancels what is queued and waits for the
        few images being read. An exception other than a bad image is raised here, at its image.
        """
        if self._closed:
            raise RuntimeError("ImageFeeder is closed")
        if self.threads == 0:
            yield from (self.prepare(position) for position in positions)
            return
        source = iter(positions)
        chunk = max(1, min(MAX_CHUNK, self.read_ahead // (2 * self.threads)))
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="inceval-feeder")
        self._pools.add(pool)
        pending: deque[tuple[Future[list[PreparedImage]], int]] = deque()
        in_flight = 0
        try:
            while not self._closed:
                while in_flight < self.read_ahead:
                    batch = list(islice(source, min(chunk, self.read_ahead - in_flight)))
                    if not batch:
                        break
                    pending.append((pool.submit(self._prepare_many, batch), len(batch)))
                    in_flight += len(batch)
                if not pending:
                    return
                future, count = pending.popleft()
                try:
                    prepared = future.result()
                except CancelledError:
                    if self._closed:  # close() from another thread cancelled it
                        return
                    raise
                yield from prepared
                in_flight -= count
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._pools.discard(pool)

    def close(self) -> None:
        """Stop the reader threads of any open iteration; the feeder cannot iterate after this.

        Iterators still open end after the images already read; no more are read.
        """
        self._closed = True
        for pool in list(self._pools):
            pool.shutdown(wait=True, cancel_futures=True)
