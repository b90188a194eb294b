"""The DALI view pipeline: encoded images in, every view of every image out (GPU or CPU).

This is the only module that imports ``nvidia.dali``, and only inside functions, so the package
imports on machines without DALI (macOS).

Design. The crop geometry is computed in Python, once per image size, by
:func:`~inceval.data.views.plan_views` from the size in the image header (the feeder,
:mod:`inceval.data.feeder`, reads files and headers ahead in a thread pool), and fed to one fixed
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

One pipeline is built per view set and fed for the whole run (:func:`iter_segment_batches`). A
bad image kills a DALI pipeline for good, so headers are checked before an image is queued; when
DALI still fails, the in-flight images are decoded one by one to find the culprit, and a new
pipeline renders the others again: one rebuild per such file.
"""

from __future__ import annotations

import functools
import io
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from inceval.data.reference import decode_rgb_bytes, shard_range
from inceval.data.views import (
    CENTRAL_FRACTION,
    SegmentBatch,
    ViewBatch,
    ViewPlan,
    ViewSpec,
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


def usable_cpus() -> int:
    """The CPUs this process may run on (DALI's default thread count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


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


# ---------------------------------------------------------------- the long-lived iterator


@dataclass
class PipelineStats:
    """What the long-lived iterators did: pipeline builds (first build + rebuilds after bad files)."""

    builds: int = 0
    rebuilds: int = 0
    handoff: str | None = None  # "dlpack" or "copy", once a pipeline was built


@dataclass
class _Planned:
    """One planned DALI batch: the images sent, and those found bad before sending."""

    segment: int
    positions: list[int]
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    errors: dict[int, str]


class _Planner:
    """The external source: plans batches segment by segment from the feeder's prepared images.

    DALI calls it (in the thread that runs the pipeline) for every batch it prefetches; every
    record it hands out is appended to ``order`` so the iterator can pair outputs with images and
    report images that never reach DALI. After a failure, ``replay`` holds the in-flight records
    (without the culprit) that a rebuilt pipeline must render first.
    """

    def __init__(self, feeder: Any, segments: Sequence[range], batch_size: int,
                 known_bad: dict[int, str], has_ints: bool) -> None:
        self._feeder = feeder
        self._segments = segments
        self._batch_size = batch_size
        self._known_bad = known_bad
        self._has_ints = has_ints
        self._records = self._plan()
        self.order: deque[_Planned] = deque()
        self.replay: deque[_Planned] = deque()

    def _plan(self) -> Iterator[_Planned]:
        positions = (p for segment in self._segments for p in segment)
        prepared = self._feeder.iter_prepared(positions)
        try:
            for number, segment in enumerate(self._segments):
                for start in range(segment.start, segment.stop, self._batch_size):
                    stop = min(start + self._batch_size, segment.stop)
                    record = _Planned(number, [], [], {})
                    for _ in range(start, stop):
                        image = next(prepared)
                        reason = self._known_bad.get(image.position) or image.error
                        if reason is not None:
                            record.errors[image.position] = reason
                        else:
                            record.positions.append(image.position)
                            record.samples.append((image.data, image.floats, image.ints))
                    yield record
        finally:
            close = getattr(prepared, "close", None)
            if close is not None:
                close()

    def next_record(self) -> _Planned | None:
        """The next record to hand out (a replayed one first), or None at the end."""
        if self.replay:
            return self.replay.popleft()
        return next(self._records, None)

    def __call__(self) -> tuple[list[np.ndarray], ...]:
        while True:
            record = self.next_record()
            if record is None:
                raise StopIteration
            self.order.append(record)
            if record.samples:
                encoded = [s[0] for s in record.samples]
                floats = [s[1] for s in record.samples]
                if not self._has_ints:
                    return encoded, floats
                return encoded, floats, [s[2] for s in record.samples]

    def close(self) -> None:
        self._records.close()


def _dali_decode_error(path: Path, decode_device: str = "cpu",
                       device_id: int | None = None) -> str | None:
    """Why a one-image DALI pipeline cannot decode ``path`` on ``decode_device``, or None."""
    from nvidia.dali import fn, pipeline_def, types

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"

    @pipeline_def(batch_size=1, num_threads=1, device_id=device_id, prefetch_queue_depth=1)
    def decode_one():  # type: ignore[no-untyped-def]
        encoded = fn.external_source(source=lambda: [data], batch=True, dtype=types.UINT8)
        return fn.decoders.image(encoded, device=decode_device, output_type=types.RGB,
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


def _decode_failure(path: Path, decode_device: str, device_id: int | None) -> str | None:
    """The reason DALI cannot decode ``path``, worded by PIL when PIL fails too; None if it can."""
    dali_reason = _dali_decode_error(path, decode_device, device_id)
    if dali_reason is None:
        return None
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    # The reference decoder words what is wrong better, and as the torch backend stores it.
    pil = decode_rgb_bytes(data)
    return pil if isinstance(pil, str) else f"DALI cannot decode image ({dali_reason})"


def bad_image_message(path: Path, reason: str) -> str:
    """The one-line message for an image that cannot be evaluated (reason as stored)."""
    from inceval.data.feeder import image_error_message

    if reason.startswith("DALI "):
        return f"{path}: {reason}; replace or remove it, or use --backend torch"
    return image_error_message(path, reason)


class _OutputHandoff:
    """Hands dense DALI outputs to torch: shared through DLPack when DALI lets go of them.

    With DALI's default (dynamic) executor an output buffer lives as long as anyone holds it, so
    torch takes it through DLPack without a copy, as DALI's own PyTorch iterator does. With the
    legacy executor (``exec_dynamic=False``) DALI reuses its buffers, so each batch is copied once
    into memory torch owns.

    On a GPU the hand-off is ordered on a side stream: DALI makes that stream wait for its own
    work (DLPack's ``stream`` argument), or the copy runs on it; an event is recorded there and the
    consumer's stream waits for it (:func:`ready`). A shared buffer returns to DALI when its
    tensor is freed, so a consumer must keep the tensor until its kernels have run; the engine
    does, since it reads each batch's probabilities back to the host before letting go.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device | None, *,
                 zero_copy: bool) -> None:
        self._dtype = dtype
        self._device = device
        self.zero_copy = zero_copy
        self._stream = torch.cuda.Stream(device=device) if device is not None else None

    @property
    def mode(self) -> str:
        """``"dlpack"`` (shared buffers) or ``"copy"``."""
        return "dlpack" if self.zero_copy else "copy"

    def _take(self, dense: Any, shape: tuple[int, ...]) -> torch.Tensor:
        if self.zero_copy:
            tensor = torch.from_dlpack(dense)
            if tensor.dtype != self._dtype or tuple(tensor.shape) != shape:
                raise RuntimeError(f"DALI handed over {tensor.dtype} {tuple(tensor.shape)}, "
                                   f"expected {self._dtype} {shape}")
            return tensor
        from nvidia.dali.plugin.pytorch import feed_ndarray

        tensor = torch.empty(shape, dtype=self._dtype, device=self._device or "cpu")
        feed_ndarray(dense, tensor, cuda_stream=self._stream)
        return tensor

    def __call__(self, output: Any) -> torch.Tensor:
        dense = output.as_tensor()
        shape = tuple(dense.shape())
        if self._device is None:
            return self._take(dense, shape)
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            tensor = self._take(dense, shape)
            event = torch.cuda.Event()
            event.record(self._stream)
        tensor._inceval_ready = event  # type: ignore[attr-defined]
        return tensor


def ready(views: torch.Tensor) -> torch.Tensor:
    """Make the current CUDA stream wait until a GPU batch's copy is done (no-op on the CPU)."""
    event = getattr(views, "_inceval_ready", None)
    if event is not None:
        stream = torch.cuda.current_stream(views.device)
        stream.wait_event(event)
        views.record_stream(stream)
    return views


def iter_segment_batches(
    paths: Sequence[str | Path],
    views: Sequence[ViewSpec],
    segments: Sequence[range],
    *,
    batch_size: int,
    device: str = "auto",
    device_id: int | None = None,
    num_threads: int | None = None,
    feeder_threads: int | None = None,
    normalize: EvalConfig | None = None,
    dtype: torch.dtype | None = None,
    prefetch: int = 2,
    known_bad: dict[int, str] | None = None,
    stats: PipelineStats | None = None,
) -> Iterator[SegmentBatch]:
    """Render segments of images through ONE DALI pipeline; isolate images that cannot be decoded.

    The pipeline is built once and fed batch by batch from the feeder
    (:class:`~inceval.data.feeder.ImageFeeder`: files read and headers checked ahead by a thread
    pool). Batches never span two segments. An image whose file cannot be read or whose header is
    bad never reaches DALI; when DALI fails on a batch (the pipeline is then dead), the images in
    flight are decoded one by one to find the culprit(s), and a new pipeline renders the in-flight
    images again without them: one rebuild per failure, and the other images' views are exactly
    what they would be without the bad file.

    Args:
        paths: all image files of the run.
        views: the views of each image (one input size).
        segments: ranges of positions to render, in order (e.g. the chunks of this process).
        batch_size: most images per DALI batch.
        device: ``"gpu"`` (nvJPEG decode and GPU ops), ``"cpu"``, or ``"auto"``.
        device_id: the GPU to decode on (default: torch's current device).
        num_threads: DALI CPU threads (default: the CPUs this process may use).
        feeder_threads: threads reading files ahead (default:
            :func:`inceval.data.feeder.default_threads`).
        normalize: None for uint8 views; else the EvalConfig that normalises them.
        dtype: dtype of normalised views (float16 on the GPU, float32 on the CPU by default).
        prefetch: batches DALI prepares ahead.
        known_bad: position -> reason, shared between iterators of one run: images found bad
            elsewhere are skipped; images found bad here are added.
        stats: counts pipeline builds.

    Yields:
        :class:`SegmentBatch` objects covering every position of every segment.

    Raises:
        InceValError: bad settings, or a DALI failure no single image explains.
    """
    from inceval.data.feeder import ImageFeeder

    if not dali_available():
        raise InceValError("NVIDIA DALI is not installed here; use --backend torch")
    if batch_size < 1:
        raise InceValError(f"--batch-size must be at least 1, got {batch_size}")
    if num_threads is not None and num_threads < 1:
        raise InceValError(f"--workers must be at least 1 for DALI, got {num_threads}")
    if prefetch < 1:
        raise InceValError(f"prefetch must be at least 1, got {prefetch}")
    views = tuple(views)
    if not views:
        raise InceValError("no views to render; choose at least one protocol")
    if len({spec.size for spec in views}) != 1:
        raise InceValError("views of one run must share one input size; run models separately")
    device = _resolve_device(device)
    out_dtype = _output_dtype(device, normalize, dtype)
    if not any(len(segment) for segment in segments):
        return
    on_gpu = device == "gpu"
    if on_gpu and device_id is None:
        device_id = torch.cuda.current_device() if torch.cuda.is_available() else 0
    decode_device = "mixed" if on_gpu else "cpu"
    threads = num_threads or usable_cpus()
    stats = stats if stats is not None else PipelineStats()
    known_bad = known_bad if known_bad is not None else {}
    file_paths = [Path(p) for p in paths]
    feeder = ImageFeeder(file_paths, views, threads=feeder_threads,
                         read_ahead=max(64, batch_size * (prefetch + 1)))
    layout = feeder.layout
    planner = _Planner(feeder, segments, batch_size, known_bad, layout.num_boxes > 0)

    def build() -> Any:
        stats.builds += 1
        return _build_graph(
            layout, decode_device=decode_device, normalize=normalize, out_dtype=out_dtype,
            source=planner, batch_size=batch_size, num_threads=threads,
            device_id=device_id if on_gpu else None, prefetch=prefetch,
        )

    def errors_only(record: _Planned) -> SegmentBatch:
        return SegmentBatch(record.segment, np.zeros(0, dtype=np.int64), None, record.errors)

    pipe = build()
    # The executor is fixed by the graph's settings, so every rebuild hands over the same way.
    handoff = _OutputHandoff(out_dtype, torch.device("cuda", device_id) if on_gpu else None,
                             zero_copy=bool(getattr(pipe, "exec_dynamic", False)))
    stats.handoff = handoff.mode
    try:
        while True:
            while planner.order and not planner.order[0].samples:
                yield errors_only(planner.order.popleft())
            try:
                (output,) = pipe.run()
            except StopIteration:
                while planner.order:
                    yield errors_only(planner.order.popleft())
                return
            except RuntimeError as exc:
                in_flight = list(planner.order)
                planner.order.clear()
                suspects = [p for record in in_flight for p in record.positions]
                found = {}
                for position in suspects:
                    reason = _decode_failure(file_paths[position], decode_device, device_id)
                    if reason is not None:
                        found[position] = reason
                if not found:
                    first, last = (suspects[0], suspects[-1]) if suspects else (0, 0)
                    raise InceValError(
                        f"DALI failed on images {first}..{last} ({file_paths[first]} ...) but "
                        f"decodes each of them alone: {_first_line(exc)}; use --backend torch"
                    ) from None
                known_bad.update(found)
                for record in in_flight:
                    kept = [(p, s) for p, s in zip(record.positions, record.samples)
                            if p not in found]
                    record.errors.update({p: found[p] for p in record.positions if p in found})
                    record.positions = [p for p, _ in kept]
                    record.samples = [s for _, s in kept]
                planner.replay.extendleft(reversed(in_flight))
                del pipe
                stats.rebuilds += 1
                pipe = build()
                continue
            while not planner.order[0].samples:
                yield errors_only(planner.order.popleft())
            record = planner.order.popleft()
            yield SegmentBatch(record.segment, np.asarray(record.positions, dtype=np.int64),
                               handoff(output), record.errors)
    finally:
        del pipe
        planner.close()
        feeder.close()


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

    The strict form of :func:`iter_segment_batches`: the first image that cannot be read or
    decoded raises a one-line error naming it.

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
    if num_threads < 1:
        raise InceValError(f"--num-threads must be at least 1, got {num_threads}")
    positions = shard_range(len(paths), shard_id, num_shards)
    file_paths = [Path(p) for p in paths]
    batches = iter_segment_batches(
        file_paths, views, [positions], batch_size=batch_size, device=device,
        num_threads=num_threads, normalize=normalize, dtype=dtype, prefetch=prefetch,
    )
    try:
        for batch in batches:
            if batch.errors:
                position = min(batch.errors)
                raise InceValError(bad_image_message(file_paths[position],
                                                     batch.errors[position]))
            if batch.indices.size:
                yield ViewBatch(indices=batch.indices, views=ready(batch.views))
    finally:
        batches.close()
