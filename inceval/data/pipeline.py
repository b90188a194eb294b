"""The DALI view pipeline: encoded images in, every view of every image out (GPU or CPU).

This is the only module that imports ``nvidia.dali``, and only inside functions, so the package
imports on machines without DALI (macOS).

Design. The crop geometry is computed in Python, once per image, by
:func:`~inceval.data.views.plan_views` from the size in the image header, and fed to one fixed
DALI graph through ``fn.external_source`` together with the encoded bytes. The graph depends only
on the view specs, never on an image:

    decode (mixed on a GPU, else cpu; RGB; no EXIF rotation)
      -> per stage:  [slice the central-fraction box] -> resize (explicit integer size, uint8)
      -> per view:   crop_mirror_normalize (integer crop window, mirror, CHW, optional
                     normalisation); a "whole" box that may need resizing is sliced and
                     resized to the view size first
      -> stack all views: one sample of shape (N, 3, H, W)

Views that differ only by their mirror flag share the slice and resize. The numbers each op needs
per image (sizes, ROIs, boxes, crop windows) travel as two small arrays per sample, indexed
inside the graph.

A bad image kills a DALI pipeline for good. Headers are therefore checked before an image is
queued, and when DALI still fails, the in-flight images are decoded one by one to name the file.
"""

from __future__ import annotations

import functools
import io
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from inceval.data.reference import decode_rgb, shard_range
from inceval.data.views import (
    CENTRAL_FRACTION,
    ViewBatch,
    ViewPlan,
    ViewSpec,
    plan_views,
)
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

DEVICES = ("auto", "cpu", "gpu")

# Formats as PIL names them that DALI's image decoder reads (MPO is a multi-picture JPEG).
_DALI_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "TIFF", "WEBP", "JPEG2000", "PPM"})

# Columns of the per-sample float array, one row per resize op or crop window:
# resize: out_h, out_w, roi_y0, roi_x0, roi_y1, roi_x1 (the ROI is used by tf1-bilinear only);
# crop window: h, w, pos_y, pos_x, unused, unused.
_FLOAT_COLUMNS = 6
# Columns of the per-sample int array: one row per slice op.
_BOX_COLUMNS = 4  # y, x, h, w


@functools.cache
def dali_available() -> bool:
    """Whether ``nvidia.dali`` imports here (it does not on macOS or Windows)."""
    try:
        import nvidia.dali  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


@functools.cache
def cuda_device_count() -> int:
    """GPUs DALI can use (0 without DALI, a driver or a GPU)."""
    if not dali_available():
        return 0
    from nvidia.dali import backend

    return int(backend.GetCUDADeviceCount())


# ---------------------------------------------------------------- graph layout (pure Python)


@dataclass(frozen=True)
class _Cut:
    """The unflipped pixels of a view, shared by views that differ only by their mirror flag.

    A cut whose box always has the view size is cropped by ``crop_mirror_normalize`` itself
    (``crop_row``); a box that may need resizing is sliced (``box_row``) and resized
    (``resize_row``) first.

    Attributes:
        stage: index of the stage it is cut from.
        crop_row: float-array row of its crop window, or None.
        box_row: int-array row of its slice box, or None.
        resize_row: float-array row of its resize, or None.
    """

    stage: int
    crop_row: int | None
    box_row: int | None
    resize_row: int | None


@dataclass(frozen=True)
class _Layout:
    """How the ops of the fixed graph map onto the rows of the per-sample argument arrays.

    Attributes:
        stage_boxes: per stage, the int-array row of its source box (central-fraction stages)
            or None (the whole image).
        stage_resizes: per stage, its float-array row.
        stage_interpolations: per stage, ``(interpolation, antialias)``.
        cuts: the distinct cuts.
        view_cuts: per view, the index of its cut.
        mirrors: per view, whether it is flipped.
        num_floats: rows of the float array (resizes and crop windows).
        num_boxes: rows of the int array (slice boxes).
    """

    stage_boxes: tuple[int | None, ...]
    stage_resizes: tuple[int, ...]
    stage_interpolations: tuple[tuple[str, bool], ...]
    cuts: tuple[_Cut, ...]
    view_cuts: tuple[int, ...]
    mirrors: tuple[bool, ...]
    num_floats: int
    num_boxes: int


def _box_may_differ(spec: ViewSpec) -> bool:
    """Whether a view's box can differ in size from the view, so it needs a resize op.

    Corner and centre crops have the view size. A "whole" square has the stage side (the shorter
    side, or the output side of a central-fraction stage); only the "whole" resized image of a
    shorter-side stage has an image-dependent size.
    """
    if spec.crop != "whole":
        return False
    if spec.region != "image" or spec.stage.kind == CENTRAL_FRACTION:
        return spec.size != spec.stage.side
    return True


class _Rows:
    """Hands out consecutive row numbers of one argument array."""

    def __init__(self) -> None:
        self.count = 0

    def take(self) -> int:
        self.count += 1
        return self.count - 1


def _layout(views: Sequence[ViewSpec]) -> _Layout:
    """Lay out the graph of ``views``; it depends on the view specs only."""
    floats, ints = _Rows(), _Rows()
    stage_index: dict[Any, int] = {}
    stage_boxes: list[int | None] = []
    stage_resizes: list[int] = []
    interpolations: list[tuple[str, bool]] = []
    cut_index: dict[tuple[Any, ...], int] = {}
    cuts: list[_Cut] = []
    view_cuts: list[int] = []
    for spec in views:
        if spec.stage not in stage_index:
            stage_index[spec.stage] = len(stage_resizes)
            stage_boxes.append(ints.take() if spec.stage.kind == CENTRAL_FRACTION else None)
            stage_resizes.append(floats.take())
            interpolations.append((spec.stage.interpolation, spec.stage.antialias))
        # Every field but the mirror flag decides the pixels of the unflipped view.
        key = (spec.stage, spec.region, spec.crop, spec.size)
        if key not in cut_index:
            cut_index[key] = len(cuts)
            if _box_may_differ(spec):
                cut = _Cut(stage_index[spec.stage], None, ints.take(), floats.take())
            else:
                cut = _Cut(stage_index[spec.stage], floats.take(), None, None)
            cuts.append(cut)
        view_cuts.append(cut_index[key])
    return _Layout(
        stage_boxes=tuple(stage_boxes),
        stage_resizes=tuple(stage_resizes),
        stage_interpolations=tuple(interpolations),
        cuts=tuple(cuts),
        view_cuts=tuple(view_cuts),
        mirrors=tuple(spec.mirror for spec in views),
        num_floats=floats.count,
        num_boxes=ints.count,
    )


def _resize_row(out_h: int, out_w: int, in_h: int, in_w: int, interpolation: str) -> list[float]:
    """A resize row: the output size and, for TF1 bilinear, the shifted source ROI.

    DALI samples output pixel i at ``(i + 0.5) * roi_len / out + roi_start - 0.5``; TF1 legacy
    bilinear samples at ``i * in / out``. A ROI of length ``in`` starting at
    ``0.5 - 0.5 * in / out`` makes the two equal.
    """
    if interpolation != "tf1-bilinear":
        return [out_h, out_w, 0.0, 0.0, float(in_h), float(in_w)]
    y0 = 0.5 - 0.5 * in_h / out_h
    x0 = 0.5 - 0.5 * in_w / out_w
    return [out_h, out_w, y0, x0, y0 + in_h, x0 + in_w]


def _crop_row(y: int, x: int, h: int, w: int, stage_h: int, stage_w: int) -> list[float]:
    """A crop-window row ``[h, w, pos_y, pos_x, 0, 0]`` that puts the window at (y, x) exactly.

    ``crop_mirror_normalize`` starts the window at ``round(pos * (stage - size))``; with
    ``pos = offset / (stage - size)`` the float error is far below half a pixel.
    """
    pos_y = y / (stage_h - h) if stage_h > h else 0.0
    pos_x = x / (stage_w - w) if stage_w > w else 0.0
    return [h, w, pos_y, pos_x, 0.0, 0.0]


def _sample_args(layout: _Layout, plan: ViewPlan, width: int,
                 height: int) -> tuple[np.ndarray, np.ndarray]:
    """The float and int argument arrays of one image, in the rows of ``layout``."""
    floats = np.zeros((layout.num_floats, _FLOAT_COLUMNS), dtype=np.float32)
    ints = np.zeros((layout.num_boxes, _BOX_COLUMNS), dtype=np.int32)
    for index, stage in enumerate(plan.stages):
        box_row = layout.stage_boxes[index]
        if (stage.roi is None) != (box_row is None):
            raise RuntimeError(f"stage {index} ROI {stage.roi} does not match the graph layout")
        in_h, in_w = height, width
        if stage.roi is not None:
            if not all(float(v).is_integer() for v in stage.roi):
                raise RuntimeError(f"non-integer stage ROI {stage.roi} cannot be sliced exactly")
            y0, x0, y1, x1 = (int(v) for v in stage.roi)
            in_h, in_w = y1 - y0, x1 - x0
            ints[box_row] = (y0, x0, in_h, in_w)
        floats[layout.stage_resizes[index]] = _resize_row(
            stage.out_h, stage.out_w, in_h, in_w, stage.interpolation
        )
    for box, cut_id in zip(plan.views, layout.view_cuts):
        # Views sharing a cut have equal boxes; writing their rows twice is harmless.
        cut = layout.cuts[cut_id]
        stage = plan.stages[box.stage]
        if cut.crop_row is not None:
            if (box.h, box.w) != (box.out_h, box.out_w):
                raise RuntimeError(f"view box {box} needs a resize the graph does not have")
            floats[cut.crop_row] = _crop_row(box.y, box.x, box.h, box.w, stage.out_h,
                                             stage.out_w)
        else:
            ints[cut.box_row] = (box.y, box.x, box.h, box.w)
            floats[cut.resize_row] = _resize_row(box.out_h, box.out_w, box.h, box.w,
                                                 stage.interpolation)
    return floats, ints


# ---------------------------------------------------------------- reading and checking files


def read_encoded(path: Path) -> tuple[np.ndarray, int, int]:
    """Read an image file and its size from the header (no decoding).

    Returns:
        The file bytes as uint8, and the width and height.

    Raises:
        InceValError: missing, unreadable, empty or non-image file, or a format DALI cannot decode.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InceValError(f"{path}: image file not found; check the data directory") from None
    except OSError as exc:
        raise InceValError(f"{path}: cannot read file ({exc.strerror}); check permissions") \
            from None
    if data.size == 0:
        raise InceValError(f"{path}: file is empty; replace or remove it")
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            width, height = image.size
            fmt = image.format
    except Image.DecompressionBombError as exc:
        raise InceValError(f"{path}: cannot decode image ({exc}); replace or remove it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InceValError(f"{path}: not a readable image; replace or remove it") from None
    if fmt not in _DALI_FORMATS:
        raise InceValError(
            f"{path}: {fmt} images are not supported by DALI; convert it to JPEG or PNG"
        )
    return data, width, height


def _first_line(exc: BaseException) -> str:
    """The most telling line of a multi-line DALI error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Failed to" in line or "Could not" in line or "Premature" in line:
            return line.rstrip(" :")
    return lines[-1] if lines else type(exc).__name__


def _dali_decode_error(path: Path) -> str | None:
    """Why a one-image CPU DALI pipeline cannot decode ``path``, or None if it can."""
    from nvidia.dali import fn, pipeline_def, types

    data = np.fromfile(path, dtype=np.uint8)

    @pipeline_def(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def decode_one():  # type: ignore[no-untyped-def]
        encoded = fn.external_source(source=lambda: [data], batch=True, dtype=types.UINT8)
        return fn.decoders.image(encoded, device="cpu", output_type=types.RGB,
                                 adjust_orientation=False)

    pipe = decode_one()
    try:
        pipe.build()
        pipe.run()
    except RuntimeError as exc:
        return _first_line(exc)
    finally:
        del pipe
    return None


def _find_culprit(paths: Sequence[Path]) -> InceValError | None:
    """The one-line error naming the image among ``paths`` that broke the pipeline, if any."""
    for path in paths:
        try:
            decode_rgb(path)  # the reference decoder names what PIL finds wrong
        except InceValError as exc:
            return exc
    for path in paths:
        reason = _dali_decode_error(path)
        if reason is not None:
            return InceValError(
                f"{path}: DALI cannot decode image ({reason}); replace or remove it, "
                f"or use --backend torch"
            )
    return None


# ---------------------------------------------------------------- the DALI graph


def _resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise InceValError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    gpus = cuda_device_count()
    if device == "gpu" and gpus == 0:
        raise InceValError("--device gpu: DALI sees no CUDA GPU; use --device cpu or auto")
    if device == "auto":
        return "gpu" if gpus > 0 else "cpu"
    return device


def _output_dtype(device: str, normalize: EvalConfig | None,
                  dtype: torch.dtype | None) -> torch.dtype:
    if normalize is None:
        if dtype not in (None, torch.uint8):
            raise InceValError(f"dtype {dtype} needs normalisation; pass normalize=<EvalConfig>")
        return torch.uint8
    if dtype is None:
        return torch.float16 if device == "gpu" else torch.float32
    if dtype not in (torch.float16, torch.float32):
        raise InceValError(f"normalised views must be float16 or float32, got {dtype}")
    return dtype


def _build_graph(layout: _Layout, *, decode_device: str, normalize: EvalConfig | None,
                 out_dtype: torch.dtype, source: Any, batch_size: int, num_threads: int,
                 device_id: int | None, prefetch: int) -> Any:
    """The DALI pipeline for one view layout (built, ready to run)."""
    from nvidia.dali import fn, pipeline_def, types

    interp = {"bicubic": types.INTERP_CUBIC, "bilinear": types.INTERP_LINEAR,
              "tf1-bilinear": types.INTERP_LINEAR}
    dali_dtype = {torch.uint8: types.UINT8, torch.float16: types.FLOAT16,
                  torch.float32: types.FLOAT}[out_dtype]
    if normalize is None:
        mean, std = [0.0], [1.0]
    else:
        mean = [255.0 * m for m in normalize.mean]
        std = [255.0 * s for s in normalize.std]

    def resize(image: Any, args: Any, row: int, interpolation: str, antialias: bool) -> Any:
        kwargs: dict[str, Any] = {}
        if interpolation == "tf1-bilinear":
            kwargs = {"roi_start": args[row, 2:4], "roi_end": args[row, 4:6]}
            antialias = False
        return fn.resize(image, size=args[row, 0:2], interp_type=interp[interpolation],
                         antialias=antialias, subpixel_scale=False, **kwargs)

    def cut_out(image: Any, ints: Any, row: int) -> Any:
        return fn.slice(image, start=ints[row, 0:2], shape=ints[row, 2:4], axis_names="HW")

    def finish(image: Any, mirror: bool, window: tuple[Any, Any, Any] | None) -> Any:
        crop: dict[str, Any] = {}
        if window is not None:
            crop = {"crop": window[0], "crop_pos_y": window[1], "crop_pos_x": window[2]}
        return fn.crop_mirror_normalize(image, mirror=int(mirror), mean=mean, std=std,
                                        dtype=dali_dtype, output_layout="CHW", **crop)

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id,
                  prefetch_queue_depth=prefetch)
    def views_pipeline():  # type: ignore[no-untyped-def]
        # The int array exists only when some op slices (DALI warns about unused outputs).
        has_ints = layout.num_boxes > 0
        encoded, floats, *ints = fn.external_source(
            source=source, num_outputs=3 if has_ints else 2, batch=True,
            dtype=[types.UINT8, types.FLOAT, types.INT32][:3 if has_ints else 2],
            ndim=[1, 2, 2][:3 if has_ints else 2],
        )
        ints = ints[0] if has_ints else None
        decoder_args: dict[str, Any] = {}
        if decode_device == "mixed":
            # nvJPEG's default chroma upsampling differs more from libjpeg-turbo's.
            decoder_args["jpeg_fancy_upsampling"] = True
        image = fn.decoders.image(encoded, device=decode_device, output_type=types.RGB,
                                  adjust_orientation=False, **decoder_args)
        stages = []
        for box_row, resize_row, (name, antialias) in zip(
            layout.stage_boxes, layout.stage_resizes, layout.stage_interpolations
        ):
            source_image = image if box_row is None else cut_out(image, ints, box_row)
            stages.append(resize(source_image, floats, resize_row, name, antialias))
        # Per cut: an image to finish and, for windows cropped in the last op, the window.
        pieces: list[tuple[Any, tuple[Any, Any, Any] | None]] = []
        for cut in layout.cuts:
            if cut.crop_row is not None:
                row = cut.crop_row
                window = (floats[row, 0:2], floats[row, 2], floats[row, 3])
                pieces.append((stages[cut.stage], window))
            else:
                name, antialias = layout.stage_interpolations[cut.stage]
                piece = resize(cut_out(stages[cut.stage], ints, cut.box_row), floats,
                               cut.resize_row, name, antialias)
                pieces.append((piece, None))
        views = []
        for cut_id, mirror in zip(layout.view_cuts, layout.mirrors):
            piece, window = pieces[cut_id]
            views.append(finish(piece, mirror, window))
        return fn.stack(*views)

    pipe = views_pipeline()
    pipe.build()
    return pipe


# ---------------------------------------------------------------- the iterator


class _Feeder:
    """The external source: reads, checks and plans the next batch; remembers what is in flight."""

    def __init__(self, paths: Sequence[Path], positions: range, views: tuple[ViewSpec, ...],
                 layout: _Layout, batch_size: int):
        self.paths = paths
        self.positions = positions
        self.views = views
        self.layout = layout
        self.batch_size = batch_size
        self.next_start = 0
        self.in_flight: deque[np.ndarray] = deque()

    def __call__(self) -> tuple[list[np.ndarray], ...]:
        if self.next_start >= len(self.positions):
            raise StopIteration
        stop = min(self.next_start + self.batch_size, len(self.positions))
        indices = np.asarray(self.positions[self.next_start:stop], dtype=np.int64)
        self.next_start = stop
        encoded: list[np.ndarray] = []
        floats: list[np.ndarray] = []
        ints: list[np.ndarray] = []
        for index in indices:
            data, width, height = read_encoded(self.paths[index])
            plan = plan_views(width, height, self.views)
            sample_floats, sample_ints = _sample_args(self.layout, plan, width, height)
            encoded.append(data)
            floats.append(sample_floats)
            ints.append(sample_ints)
        self.in_flight.append(indices)
        return (encoded, floats, ints) if self.layout.num_boxes else (encoded, floats)


def _gpu_index() -> int:
    """The GPU of this process: torch's current device (one process per GPU when sharding)."""
    return torch.cuda.current_device() if torch.cuda.is_available() else 0


def _to_torch(output: Any, dtype: torch.dtype, on_gpu: bool) -> torch.Tensor:
    """Copy a dense DALI batch into a new torch tensor (the one copy; GPU data stays on the GPU)."""
    from nvidia.dali.plugin.pytorch import feed_ndarray

    dense = output.as_tensor()
    shape = tuple(dense.shape())
    if on_gpu:
        tensor = torch.empty(shape, dtype=dtype, device=torch.device("cuda", _gpu_index()))
        feed_ndarray(dense, tensor, cuda_stream=torch.cuda.current_stream())
    else:
        tensor = torch.empty(shape, dtype=dtype)
        feed_ndarray(dense, tensor)
    return tensor


def iter_dali_batches(
    paths: Sequence[str | Path],
    views: Sequence[ViewSpec],
    *,
    batch_size: int,
    device: str = "auto",
    shard_id: int = 0,
    num_shards: int = 1,
    num_threads: int = 2,
    normalize: EvalConfig | None = None,
    dtype: torch.dtype | None = None,
    prefetch: int = 2,
) -> Iterator[ViewBatch]:
    """Yield each image of one shard exactly once, in order, as all of its views, through DALI.

    Args:
        paths: all image files of the run (every shard gets the same list).
        views: the views of each image (e.g. ``protocol.resolve(cfg)`` or a union of protocols).
        batch_size: images per batch; the last batch of the shard may be smaller (no padding).
        device: ``"gpu"`` (nvJPEG decode and GPU ops), ``"cpu"``, or ``"auto"`` (GPU if any).
        shard_id: which shard: images ``[floor(i*N/S), floor((i+1)*N/S))``.
        num_shards: how many shards split ``paths``.
        num_threads: DALI CPU worker threads.
        normalize: None for uint8 views; else the EvalConfig whose mean/std scale the views to
            ``(x / 255 - mean) / std``.
        dtype: dtype of normalised views: default float16 on the GPU, float32 on the CPU.
        prefetch: batches DALI prepares ahead.

    Yields:
        :class:`ViewBatch` with ``indices`` = positions in ``paths`` and ``views`` of shape
        (B, N, 3, size, size), on the GPU when decoding there.

    Raises:
        InceValError: bad settings, or an unreadable image (the message names the file).
    """
    if not dali_available():
        raise InceValError("NVIDIA DALI is not installed here; use --backend torch")
    if batch_size < 1:
        raise InceValError(f"--batch-size must be at least 1, got {batch_size}")
    if num_threads < 1:
        raise InceValError(f"--num-threads must be at least 1, got {num_threads}")
    if prefetch < 1:
        raise InceValError(f"prefetch must be at least 1, got {prefetch}")
    views = tuple(views)
    if not views:
        raise InceValError("no views to render; choose at least one protocol")
    if len({spec.size for spec in views}) != 1:
        raise InceValError("views of one run must share one input size; run models separately")
    device = _resolve_device(device)
    out_dtype = _output_dtype(device, normalize, dtype)
    positions = shard_range(len(paths), shard_id, num_shards)
    if len(positions) == 0:
        return
    file_paths = [Path(p) for p in paths]
    layout = _layout(views)
    feeder = _Feeder(file_paths, positions, views, layout, batch_size)
    on_gpu = device == "gpu"
    pipe = _build_graph(
        layout, decode_device="mixed" if on_gpu else "cpu", normalize=normalize,
        out_dtype=out_dtype, source=feeder, batch_size=batch_size, num_threads=num_threads,
        device_id=_gpu_index() if on_gpu else None, prefetch=prefetch,
    )
    try:
        while True:
            try:
                (output,) = pipe.run()
            except StopIteration:
                return
            except RuntimeError:
                suspects = [file_paths[i] for batch in feeder.in_flight for i in batch]
                culprit = _find_culprit(suspects)
                if culprit is not None:
                    raise culprit from None
                raise
            indices = feeder.in_flight.popleft()
            yield ViewBatch(indices=indices, views=_to_torch(output, out_dtype, on_gpu))
    finally:
        del pipe
