"""The reference view pipeline: PIL decoding and torch resizes, independent of DALI.

It renders a :class:`~inceval.data.views.ViewPlan` exactly as the pixel convention of
:mod:`inceval.data.views` states, and serves as the yardstick for the DALI pipeline and as a
slow fallback loader.

Resizes run in float32 through ``torch.nn.functional.interpolate`` (``align_corners=False``,
``antialias=True``: a PIL-style widened kernel when downscaling, Keys a=-0.5 cubic) and are rounded
(half to even) and clamped to uint8 once per resize. PIL itself rounds to uint8 after each of its
two separable passes, so this reference differs from ``PIL.Image.resize`` by ~0.15-0.2 grey levels
on average and a few levels at the worst pixel (measured in tests/data/test_reference.py); DALI,
which also keeps a float intermediate, is closer to this reference than to PIL.
"""

from __future__ import annotations

import io
import math
from typing import Any
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from inceval.data.views import (
    ResizeStage,
    SegmentBatch,
    ViewBatch,
    ViewPlan,
    ViewSpec,
    plan_views,
)
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig


def _image_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PNG"):
        # 16-bit grayscale (older Pillow opens such PNGs as "I"): convert("RGB") clips
        # values above 255 to white; scale to 8 bits as DALI's decoder does, round(v/257).
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        grey = np.round(values / 257.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.array(image.convert("RGB"))


_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                  Image.DecompressionBombError)


def decode_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 of shape (H, W, 3), ignoring any EXIF orientation.

    Grayscale, CMYK and palette images are converted to RGB by PIL.

    Raises:
        InceValError: if the file is missing or not a decodable image.
    """
    try:
        with Image.open(path) as image:
            return _image_to_rgb(image)
    except FileNotFoundError:
        raise InceValError(f"{path}: image file not found; check the data directory") from None
    except _DECODE_ERRORS as exc:
        raise InceValError(f"{path}: cannot decode image ({exc}); replace or remove it") from None


def decode_rgb_bytes(data: np.ndarray) -> np.ndarray | str:
    """Decode encoded image bytes to RGB uint8 (H, W, 3), or return why they cannot be decoded.

    The reason names no file (it is stored in images.csv), e.g. ``"cannot decode image (image
    file is truncated (2 bytes not processed))"``.
    """
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            return _image_to_rgb(image)
    except UnidentifiedImageError:
        return "not a readable image"
    except _DECODE_ERRORS as exc:
        return f"cannot decode image ({exc})"


def _to_uint8_values(x: torch.Tensor) -> torch.Tensor:
    """Round half to even and clamp to [0, 255], keeping float32 (the value a uint8 would hold)."""
    return torch.round(x).clamp_(0.0, 255.0)


def tf1_bilinear(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """TF1 legacy bilinear resize (``align_corners=False``, no half-pixel centres, no antialias).

    Output pixel ``i`` samples the input at ``i * in / out`` (float32 scale, as TF1 computes it):
    the image shifts by up to half a source pixel towards the top-left and the last rows and
    columns repeat the edge. Not rounded.

    Args:
        x: float tensor of shape (C, H, W).
        out_h: output height.
        out_w: output width.

    Returns:
        float32 tensor of shape (C, out_h, out_w).
    """
    x = x.to(torch.float32)
    _, in_h, in_w = x.shape

    def axis(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = np.float32(in_size) / np.float32(out_size)
        pos = torch.arange(out_size, dtype=torch.float32) * float(scale)
        low = torch.floor(pos)
        lerp = pos - low
        low = low.long()
        high = torch.clamp(low + 1, max=in_size - 1)
        return low, high, lerp

    y0, y1, ly = axis(in_h, out_h)
    x0, x1, lx = axis(in_w, out_w)
    top = x[:, y0]  # (C, out_h, W)
    bottom = x[:, y1]
    lx = lx.view(1, 1, -1)
    top = top[:, :, x0] + (top[:, :, x1] - top[:, :, x0]) * lx
    bottom = bottom[:, :, x0] + (bottom[:, :, x1] - bottom[:, :, x0]) * lx
    return top + (bottom - top) * ly.view(1, -1, 1)


def _resize(x: torch.Tensor, out_h: int, out_w: int, interpolation: str,
            antialias: bool) -> torch.Tensor:
    """Resize a float (C, H, W) image of uint8 values and round the result to uint8 values."""
    if x.shape[-2:] == (out_h, out_w) and interpolation != "tf1-bilinear":
        return x
    if interpolation == "tf1-bilinear":
        out = tf1_bilinear(x, out_h, out_w)
    else:
        out = F.interpolate(x[None], size=(out_h, out_w), mode=interpolation,
                            align_corners=False, antialias=antialias)[0]
    return _to_uint8_values(out)


def _run_stage(image: torch.Tensor, stage: ResizeStage) -> torch.Tensor:
    if stage.roi is not None:
        y0, x0, y1, x1 = stage.roi
        if not all(float(v).is_integer() for v in stage.roi):
            raise ValueError(f"the reference renders integer regions only, got {stage.roi}")
        image = image[:, int(y0):int(y1), int(x0):int(x1)]
    return _resize(image, stage.out_h, stage.out_w, stage.interpolation, stage.antialias)


def render_views(image: np.ndarray, plan: ViewPlan) -> torch.Tensor:
    """Render the views of ``plan`` from a decoded image.

    Args:
        image: RGB uint8 array of shape (H, W, 3) (from :func:`decode_rgb`).
        plan: ``plan_views(W, H, views)`` for this image.

    Returns:
        uint8 tensor of shape (N, 3, out_h, out_w), in plan order.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    if not plan.views:
        raise ValueError("the view plan is empty")
    sizes = {(v.out_h, v.out_w) for v in plan.views}
    if len(sizes) != 1:
        raise ValueError(f"views of one plan must share one output size, got {sorted(sizes)}")
    pixels = np.require(image, dtype=np.uint8, requirements=("C", "W"))
    source = torch.from_numpy(pixels).permute(2, 0, 1).to(torch.float32)
    stages = [_run_stage(source, stage) for stage in plan.stages]
    out = []
    for box in plan.views:
        stage = plan.stages[box.stage]
        crop = stages[box.stage][:, box.y:box.y + box.h, box.x:box.x + box.w]
        if crop.shape[-2:] != (box.h, box.w):
            raise ValueError(f"box {box} falls outside its stage of {stages[box.stage].shape}")
        view = _resize(crop, box.out_h, box.out_w, stage.interpolation, stage.antialias)
        out.append(view.flip(-1) if box.mirror else view)
    return torch.stack(out).to(torch.uint8)


def normalize(views: torch.Tensor, eval_config: EvalConfig) -> torch.Tensor:
    """Scale uint8 views (..., 3, H, W) to float32 ``(x / 255 - mean) / std``."""
    mean = torch.tensor(eval_config.mean, dtype=torch.float32, device=views.device).view(3, 1, 1)
    std = torch.tensor(eval_config.std, dtype=torch.float32, device=views.device).view(3, 1, 1)
    return (views.to(torch.float32) / 255.0 - mean) / std


def shard_range(num_items: int, shard_id: int, num_shards: int) -> range:
    """Positions of shard ``shard_id``: ``[floor(i*N/S), floor((i+1)*N/S))`` (DALI's rule)."""
    if num_shards < 1:
        raise InceValError(f"--num-shards must be at least 1, got {num_shards}")
    if not 0 <= shard_id < num_shards:
        raise InceValError(
            f"--shard-id must be in 0..{num_shards - 1} for {num_shards} shards, got {shard_id}"
        )
    return range(shard_id * num_items // num_shards, (shard_id + 1) * num_items // num_shards)


class _ViewDataset(torch.utils.data.Dataset):
    """One item = (position in the file list, uint8 views of that image)."""

    def __init__(self, paths: Sequence[Path], positions: range, views: tuple[ViewSpec, ...]):
        self.paths = list(paths)
        self.positions = positions
        self.views = views

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int) -> tuple[int, torch.Tensor | InceValError]:
        position = self.positions[item]
        try:
            image = decode_rgb(self.paths[position])
        except InceValError as exc:
            # Returned, not raised: a DataLoader worker would wrap it in a multi-line message.
            return position, exc
        plan = plan_views(image.shape[1], image.shape[0], self.views)
        return position, render_views(image, plan)


def _collate(items: list[tuple[int, torch.Tensor | InceValError]]) -> ViewBatch | InceValError:
    for _, views in items:
        if isinstance(views, InceValError):
            return views
    indices = np.asarray([position for position, _ in items], dtype=np.int64)
    return ViewBatch(indices=indices, views=torch.stack([views for _, views in items]))


def _checked(batch: ViewBatch | InceValError) -> ViewBatch:
    if isinstance(batch, InceValError):
        raise batch
    return batch


def _checked_settings(views: Sequence[ViewSpec], batch_size: int,
                      num_workers: int) -> tuple[ViewSpec, ...]:
    """The views as a tuple, after refusing settings a loader cannot use."""
    if batch_size < 1:
        raise InceValError(f"--batch-size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise InceValError(f"--workers must be 0 or more, got {num_workers}")
    views = tuple(views)
    if not views:
        raise InceValError("no views to render; choose at least one protocol")
    return views


def iter_reference_batches(
    paths: Sequence[str | Path],
    views: Sequence[ViewSpec],
    *,
    batch_size: int,
    shard_id: int = 0,
    num_shards: int = 1,
    num_workers: int = 0,
) -> Iterator[ViewBatch]:
    """Yield each image of one shard exactly once, in order, as uint8 views.

    Args:
        paths: all image files of the run (every shard gets the same list).
        views: the views to render for each image (e.g. a union of protocols).
        batch_size: images per batch; the last batch may be smaller.
        shard_id: which shard this process reads.
        num_shards: how many shards split ``paths``.
        num_workers: 0 decodes in this process; more uses a torch DataLoader (order kept).

    Yields:
        :class:`ViewBatch` with ``indices`` = positions in ``paths`` and ``views`` uint8 of shape
        (B, N, 3, size, size); normalise with :func:`normalize`.

    Raises:
        InceValError: for a bad shard or batch setting, or an unreadable image.
    """
    views = _checked_settings(views, batch_size, num_workers)
    positions = shard_range(len(paths), shard_id, num_shards)
    dataset = _ViewDataset([Path(p) for p in paths], positions, views)
    if num_workers == 0:
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            yield _checked(_collate([dataset[i] for i in range(start, stop)]))
        return
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, drop_last=False,
        num_workers=num_workers, collate_fn=_collate,
    )
    for batch in loader:
        yield _checked(batch)


class _SegmentItems(torch.utils.data.Dataset):
    """One item = (position, uint8 views) or (position, reason) for an image that cannot be used.

    Files go through the same checks as for DALI (:class:`~inceval.data.feeder.ImageFeeder`:
    missing, unreadable, empty, not an image, unsupported format, too elongated), so both backends
    refuse the same files with the same reasons; only what passes is decoded by PIL.
    """

    def __init__(self, paths: Sequence[Path], views: tuple[ViewSpec, ...]):
        self.paths = list(paths)
        self.views = views
        self._feeder: Any = None  # made in the process that uses it (DataLoader workers)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> tuple[int, torch.Tensor | str]:
        if self._feeder is None:
            from inceval.data.feeder import ImageFeeder

            self._feeder = ImageFeeder(self.paths, self.views, threads=0)
        prepared = self._feeder.prepare(position)
        if prepared.error is not None:
            return position, prepared.error
        image = decode_rgb_bytes(prepared.data)
        if isinstance(image, str):
            return position, image
        height, width = image.shape[:2]
        return position, render_views(image, plan_views(width, height, self.views))


def iter_reference_segments(
    paths: Sequence[str | Path],
    views: Sequence[ViewSpec],
    segments: Sequence[range],
    *,
    batch_size: int,
    num_workers: int = 0,
    known_bad: dict[int, str] | None = None,
) -> Iterator[SegmentBatch]:
    """Render segments of images with PIL + torch; isolate images that cannot be used.

    The reference counterpart of :func:`inceval.data.pipeline.iter_segment_batches`: batches never
    span two segments; an image PIL cannot decode (or too elongated to resize) is reported in the
    batch's ``errors`` and the others are rendered exactly as without it.

    Args:
        paths: all image files of the run.
        views: the views of each image.
        segments: ranges of positions to render, in order.
        batch_size: most images per batch.
        num_workers: 0 decodes in this thread; more uses a torch DataLoader (order kept).
        known_bad: position -> reason of images to skip (found bad elsewhere); images found bad
            here are added.

    Yields:
        :class:`~inceval.data.views.SegmentBatch` objects covering every position.
    """
    views = _checked_settings(views, batch_size, num_workers)
    known_bad = known_bad if known_bad is not None else {}
    plan = [(number, list(range(start, min(start + batch_size, segment.stop))))
            for number, segment in enumerate(segments)
            for start in range(segment.start, segment.stop, batch_size)]
    items = _SegmentItems([Path(p) for p in paths], views)

    def assemble(number: int, results: list[tuple[int, torch.Tensor | str]]) -> SegmentBatch:
        errors: dict[int, str] = {}
        good: list[tuple[int, torch.Tensor]] = []
        for position, result in results:
            reason = known_bad.get(position)
            if reason is None and isinstance(result, str):
                reason = result
            if reason is not None:
                errors[position] = reason
                known_bad[position] = reason
            else:
                good.append((position, result))  # type: ignore[arg-type]
        indices = np.asarray([p for p, _ in good], dtype=np.int64)
        stacked = torch.stack([v for _, v in good]) if good else None
        return SegmentBatch(number, indices, stacked, errors)

    if num_workers == 0:
        for number, positions in plan:
            yield assemble(number, [items[p] for p in positions])
        return
    loader = torch.utils.data.DataLoader(
        items, batch_sampler=[positions for _, positions in plan], num_workers=num_workers,
        collate_fn=list,
    )
    for (number, _), results in zip(plan, loader):
        yield assemble(number, results)


def num_batches(num_items: int, batch_size: int, shard_id: int = 0, num_shards: int = 1) -> int:
    """How many batches :func:`iter_reference_batches` yields for one shard."""
    return math.ceil(len(shard_range(num_items, shard_id, num_shards)) / batch_size)
