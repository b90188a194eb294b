"""Choose the view loader: DALI when it imports, the PIL/torch reference otherwise.

Both backends yield :class:`~inceval.data.views.ViewBatch` objects with the same meaning: each
image of one shard exactly once, in order, as all of its views. The reference is slower and runs
everywhere (``--backend torch`` on macOS); DALI decodes on the GPU when there is one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from inceval.data.pipeline import DEVICES, dali_available, iter_dali_batches
from inceval.data.reference import iter_reference_batches, normalize as reference_normalize
from inceval.data.views import ViewBatch, ViewSpec
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
