"""Choose the view loader: DALI when it imports, the PIL/torch reference otherwise.

Both backends yield :class:`~inceval.data.views.ViewBatch` objects with the same meaning: each
image of one shard exactly once, in order, as all of its views. The reference is slower and runs
everywhere (``--backend torch`` on macOS); DALI decodes on the GPU when there is one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from inceval.data.pipeline import (
    DEVICES,
    PipelineStats,
    dali_available,
    iter_dali_batches,
    iter_segment_batches,
)
from inceval.data.reference import (
    iter_reference_batches,
    iter_reference_segments,
    normalize as reference_normalize,
)
from inceval.data.views import SegmentBatch, ViewBatch, ViewSpec
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

BACKENDS = ("auto", "dali", "torch")


def resolve_backend(backend: str) -> str:
    """The backend that ``backend`` stands for here: ``"dali"`` or ``"torch"``.

    Raises:
        InceValError: unknown name, or ``"dali"`` where DALI does not import.
    """
    if backend not in BACKENDS:
        raise InceValError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "dali" if dali_available() else "torch"
    if backend == "dali" and not dali_available():
        raise InceValError(
            "--backend dali: NVIDIA DALI does not import here (Linux only; "
            "pip install nvidia-dali-cuda120); use --backend torch"
        )
    return backend


def iter_view_batches(
    paths: Sequence[str | Path],
    views: Sequence[ViewSpec],
    *,
    backend: str = "auto",
    batch_size: int,
    shard_id: int = 0,
    num_shards: int = 1,
    normalize: EvalConfig | None = None,
    dtype: torch.dtype | None = None,
    device: str = "auto",
    num_workers: int = 2,
    prefetch: int = 2,
) -> Iterator[ViewBatch]:
    """Yield the views of each image of one shard, in order, from the chosen backend.

    Args:
        paths: all image files of the run (every shard gets the same list).
        views: the views of each image.
        backend: ``"dali"``, ``"torch"`` (PIL + torch reference) or ``"auto"`` (DALI if present).
        batch_size: images per batch; the last batch may be smaller.
        shard_id: which shard this process reads.
        num_shards: how many shards split ``paths``.
        normalize: None for uint8 views, else the EvalConfig whose mean/std normalise them.
        dtype: dtype of normalised views (default float16 on a GPU with DALI, else float32).
        device: DALI only: ``"gpu"``, ``"cpu"`` or ``"auto"``; the torch backend always yields
            CPU tensors.
        num_workers: DALI CPU threads, or torch DataLoader worker processes (0 = in process).
        prefetch: DALI only: batches prepared ahead.

    Yields:
        :class:`ViewBatch` of shape (B, N, 3, size, size).

    Raises:
        InceValError: bad settings or an unreadable image (naming the file).
    """
    if device not in DEVICES:
        raise InceValError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if resolve_backend(backend) == "dali":
        yield from iter_dali_batches(
            paths, views, batch_size=batch_size, device=device, shard_id=shard_id,
            num_shards=num_shards, num_threads=max(num_workers, 1), normalize=normalize,
            dtype=dtype, prefetch=prefetch,
        )
        return
    if normalize is None and dtype not in (None, torch.uint8):
        raise InceValError(f"dtype {dtype} needs normalisation; pass normalize=<EvalConfig>")
    for batch in iter_reference_batches(
        paths, views, batch_size=batch_size, shard_id=shard_id, num_shards=num_shards,
        num_workers=num_workers,
    ):
        if normalize is not None:
            batch.views = reference_normalize(batch.views, normalize).to(dtype or torch.float32)
        yield batch


def iter_view_segments(
    paths: Sequence[str | Path],
    views: Sequence[ViewSpec],
    segments: Sequence[range],
    *,
    backend: str = "auto",
    batch_size: int,
    device: str = "auto",
    device_id: int | None = None,
    num_workers: int | None = None,
    prefetch: int = 2,
    known_bad: dict[int, str] | None = None,
    stats: PipelineStats | None = None,
) -> Iterator[SegmentBatch]:
    """Render segments of images (e.g. the chunks of a run) with the chosen backend, isolating
    images that cannot be used.

    DALI renders every segment through one pipeline built once (rebuilt only after a bad file);
    the torch backend decodes with PIL. Both report unusable images in
    :attr:`SegmentBatch.errors` and render the others exactly as without them.

    Args:
        paths: all image files of the run.
        views: the views of each image.
        segments: ranges of positions, in order.
        backend: ``"dali"``, ``"torch"`` or ``"auto"``.
        batch_size: most images per batch.
        device: DALI only: ``"gpu"``, ``"cpu"`` or ``"auto"``.
        device_id: DALI only: the GPU to decode on.
        num_workers: DALI CPU threads (None: from the CPU count), or torch DataLoader worker
            processes (None or 0: in this thread).
        prefetch: DALI only: batches prepared ahead.
        known_bad: position -> reason, shared by the iterators of one run.
        stats: DALI only: counts pipeline builds.

    Yields:
        :class:`~inceval.data.views.SegmentBatch` objects covering every position of every
        segment, uint8 views.
    """
    if device not in DEVICES:
        raise InceValError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if resolve_backend(backend) == "dali":
        yield from iter_segment_batches(
            paths, views, segments, batch_size=batch_size, device=device, device_id=device_id,
            num_threads=num_workers or None, prefetch=prefetch, known_bad=known_bad,
            stats=stats,
        )
        return
    yield from iter_reference_segments(paths, views, segments, batch_size=batch_size,
                                       num_workers=num_workers or 0, known_bad=known_bad)
