"""Pure view geometry: which pixels of an image each evaluation view is made of.

A *view* is described twice:

* :class:`ViewSpec` - image-independent and hashable, with concrete integers for one model input
  size ("resize the shorter side to 342, take the centre square, its top-left 299x299 crop,
  mirrored"). Equal ViewSpecs give identical pixels, so the union of several protocols is a dedupe
  of ViewSpecs (:func:`union_views`).
* :class:`ViewPlan` - the same views as integer pixel boxes for one image size
  (:func:`plan_views`), the common input of the DALI graph and the PIL/torch reference.

Pixel convention shared by both backends:

1. Decode to RGB, no EXIF rotation.
2. Each :class:`ResizeStage` resizes the whole image (or its ``roi``) to ``(out_h, out_w)``; its
   output is clamped and rounded to uint8, as PIL and DALI uint8 outputs are.
3. Each :class:`ViewBox` is an integer box in one stage output. When ``(out_h, out_w)`` differs
   from ``(h, w)`` the box is resized again (same interpolation and antialias as its stage, rounded
   to uint8 again): this is the "whole square resized to the input size" view of GoogLeNet.
4. ``mirror`` flips the final view horizontally ("mirror each crop"). The alternative, "crop the
   mirrored image" (torchvision's TenCrop), takes a mirrored centre crop from a position that
   differs by one pixel when the horizontal margin is odd; inceval never does that.

Rounding rules (all exact integer arithmetic):

* Shorter-side resize to S: the long side is ``floor(long * S / short)`` (torchvision's truncation,
  not DALI's rounding).
* Squares of side S along the long side L: offsets ``0``, ``round((L - S) / 2)``, ``L - S``.
* Centre crop of size c in a region of size R: offset ``round((R - c) / 2)`` with Python's round
  (half to even), as torchvision's ``center_crop``; a centre crop inside a square is offset from
  the square, so it can differ by one pixel from a centre crop of the whole image.
* TF-slim central fraction: TF1's ``central_crop`` starts at ``h // k`` rows and ``w // k`` columns
  with ``k = int(1 / ((1 - fraction) / 2))`` (16 for 0.875) and keeps ``h - 2 * (h // k)`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from inceval.errors import InceValError

if TYPE_CHECKING:
    import torch

# Stage kinds.
SHORTER_SIDE = "shorter-side"
CENTRAL_FRACTION = "central-fraction"
STAGE_KINDS = (SHORTER_SIDE, CENTRAL_FRACTION)

INTERPOLATIONS = ("bicubic", "bilinear", "tf1-bilinear")

# Regions of a stage output: the whole resized image, or one of three squares of side = shorter
# side along the long side (start = left or top, end = right or bottom).
REGIONS = ("image", "start", "centre", "end")
# Crops of a region: the four corners and the centre (input size), or the whole region resized.
CROPS = ("top-left", "top-right", "bottom-left", "bottom-right", "centre", "whole")


@dataclass(frozen=True)
class StageSpec:
    """How the whole image is resized before boxes are cut from it (image-independent).

    Attributes:
        kind: ``"shorter-side"`` (shorter side to ``side``, aspect kept) or ``"central-fraction"``
            (TF-slim: the central ``fraction`` box of the image, resized to ``side`` x ``side``).
        side: shorter side (shorter-side) or output side (central-fraction) in pixels.
        interpolation: ``"bicubic"``, ``"bilinear"`` or ``"tf1-bilinear"``.
        antialias: whether downscaling filters with a widened kernel (PIL style).
        fraction: the central fraction (central-fraction only; 1.0 otherwise).
    """

    kind: str
    side: int
    interpolation: str
    antialias: bool
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"unknown stage kind {self.kind!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.side < 1:
            raise ValueError(f"stage side must be positive, got {self.side}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"central fraction must be in (0, 1], got {self.fraction}")

    @property
    def label(self) -> str:
        """Short text such as ``s342`` or ``c87.5%->299``."""
        if self.kind == SHORTER_SIDE:
            text = f"s{self.side}"
        else:
            text = f"c{self.fraction * 100:g}%->{self.side}"
        if self.interpolation != "bicubic":
            text += f" {self.interpolation}"
        if not self.antialias and self.interpolation != "tf1-bilinear":
            text += " no-aa"
        return text


@dataclass(frozen=True)
class ViewSpec:
    """One view, independent of the image: equal ViewSpecs mean identical pixels.

    Attributes:
        stage: how the image is resized first.
        region: ``"image"`` or the ``"start"`` / ``"centre"`` / ``"end"`` square.
        crop: a corner, ``"centre"`` (both of side ``size``) or ``"whole"`` (region resized to
            ``size`` x ``size``).
        size: side of the square view in pixels (the model input size).
        mirror: horizontal flip of the final view.
    """

    stage: StageSpec
    region: str
    crop: str
    size: int
    mirror: bool

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"unknown region {self.region!r}")
        if self.crop not in CROPS:
            raise ValueError(f"unknown crop {self.crop!r}")
        if self.size < 1:
            raise ValueError(f"view size must be positive, got {self.size}")
        if self.crop != "whole" and self.size > self.stage.side:
            raise ValueError(
                f"a {self.size}-pixel crop does not fit a stage of side {self.stage.side}"
            )

    @property
    def label(self) -> str:
        """Short human text, e.g. ``"s342 centre-square top-left mirror"``."""
        region = "image" if self.region == "image" else f"{self.region}-square"
        text = f"{self.stage.label} {region} {self.crop}"
        return text + " mirror" if self.mirror else text


@dataclass(frozen=True)
class ResizeStage:
    """A resize of the decoded image, shared by all views cut from it.

    Attributes:
        out_h: output height in pixels.
        out_w: output width in pixels.
        roi: ``(y0, x0, y1, x1)`` source box in original pixels, or None for the whole image.
        interpolation: ``"bicubic"``, ``"bilinear"`` or ``"tf1-bilinear"``.
        antialias: widen the kernel when downscaling (PIL / torch ``antialias=True``).
    """

    out_h: int
    out_w: int
    roi: tuple[float, float, float, float] | None
    interpolation: str
    antialias: bool


@dataclass(frozen=True)
class ViewBox:
    """One view as an integer box in a stage output.

    Attributes:
        stage: index into :attr:`ViewPlan.stages`.
        y: top row of the box in the stage output.
        x: left column of the box in the stage output.
        h: box height.
        w: box width.
        out_h: final height; the box is resized to (out_h, out_w) when that differs from (h, w),
            with its stage's interpolation and antialias.
        out_w: final width.
        mirror: flip the final view horizontally.
    """

    stage: int
    y: int
    x: int
    h: int
    w: int
    out_h: int
    out_w: int
    mirror: bool


@dataclass(frozen=True)
class ViewPlan:
    """Integer geometry of a list of views for one image size.

    The number of stages and views depends only on the view specs, never on the image size.
    """

    stages: tuple[ResizeStage, ...]
    views: tuple[ViewBox, ...]


@dataclass
class ViewBatch:
    """A batch of images, each as all of its views (the common output of both loaders).

    Attributes:
        indices: positions of the images in the loader's file list, int64 of shape (B,).
        views: view pixels of shape (B, N, 3, H, W); uint8 or normalised float, per loader.
    """

    indices: np.ndarray
    views: "torch.Tensor"


@dataclass
class SegmentBatch:
    """Some images of one segment (a chunk of the run), rendered, plus those that could not be.

    Every position of a segment appears exactly once, in ``indices`` or in ``errors`` of one of
    that segment's batches, and the batches of a segment come in position order.

    Attributes:
        segment: index of the segment in the list the iterator was given.
        indices: positions of the rendered images, int64 (B,); B may be 0.
        views: (B, N, 3, H, W) views of those images, or None when B is 0.
        errors: position -> path-free reason, for images of this batch's range that could not be
            read or decoded (they are not in ``indices``).
    """

    segment: int
    indices: np.ndarray
    views: torch.Tensor | None
    errors: dict[int, str]


def union_views(
    view_lists: Sequence[Sequence[ViewSpec]],
) -> tuple[tuple[ViewSpec, ...], list[np.ndarray]]:
    """Deduplicate several view lists into one, so shared views are rendered once.

    Args:
        view_lists: view lists, e.g. ``protocol.resolve(cfg)`` of several protocols.

    Returns:
        The union in first-seen order, and for each input list the int64 indices of its views in
        the union (``union[idx[k][j]] == view_lists[k][j]``).
    """
    position: dict[ViewSpec, int] = {}
    indices: list[np.ndarray] = []
    for views in view_lists:
        idx = []
        for view in views:
            if view not in position:
                position[view] = len(position)
            idx.append(position[view])
        indices.append(np.asarray(idx, dtype=np.int64))
    return tuple(position), indices


def shorter_side_size(width: int, height: int, side: int) -> tuple[int, int]:
    """Size ``(h, w)`` after resizing the shorter side to ``side`` (long side truncated)."""
    if width <= height:
        return (height * side) // width, side
    return side, (width * side) // height


def tf1_central_box(height: int, width: int, fraction: float) -> tuple[int, int, int, int]:
    """TF1 ``tf.image.central_crop`` box ``(y0, x0, h, w)`` of an image.

    TF 1.x computes an integer divisor ``k = int(1 / ((1 - fraction) / 2))`` and starts the box at
    ``h // k``, ``w // k``; later TF versions use ``int((h - h * fraction) / 2)``, which can differ
    by one pixel. TF-slim's published evaluation ran on TF 1.x.
    """
    if fraction >= 1.0:
        return 0, 0, height, width
    divisor = int(1 / ((1 - fraction) / 2.0))
    y0, x0 = height // divisor, width // divisor
    return y0, x0, height - 2 * y0, width - 2 * x0


def _region_box(spec: ViewSpec, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """Region ``(y, x, h, w)`` of a view in its stage output of size (out_h, out_w)."""
    if spec.region == "image":
        return 0, 0, out_h, out_w
    side = min(out_h, out_w)
    margin = max(out_h, out_w) - side
    offset = {"start": 0, "centre": round(margin / 2), "end": margin}[spec.region]
    if out_w >= out_h:
        return 0, offset, side, side
    return offset, 0, side, side


def _crop_box(spec: ViewSpec, region: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Crop ``(y, x, h, w)`` of a view inside its region."""
    ry, rx, rh, rw = region
    if spec.crop == "whole":
        return region
    c = spec.size
    dy, dx = {
        "top-left": (0, 0),
        "top-right": (0, rw - c),
        "bottom-left": (rh - c, 0),
        "bottom-right": (rh - c, rw - c),
        "centre": (round((rh - c) / 2), round((rw - c) / 2)),
    }[spec.crop]
    return ry + dy, rx + dx, c, c


def _plan_stage(stage: StageSpec, width: int, height: int) -> ResizeStage:
    if stage.kind == SHORTER_SIDE:
        out_h, out_w = shorter_side_size(width, height, stage.side)
        return ResizeStage(out_h, out_w, None, stage.interpolation, stage.antialias)
    y0, x0, h, w = tf1_central_box(height, width, stage.fraction)
    roi = (float(y0), float(x0), float(y0 + h), float(x0 + w))
    return ResizeStage(stage.side, stage.side, roi, stage.interpolation, stage.antialias)


def plan_views(width: int, height: int, views: Iterable[ViewSpec]) -> ViewPlan:
    """Integer boxes of ``views`` on an image of ``width`` x ``height`` pixels.

    Views whose :class:`StageSpec` is equal share one :class:`ResizeStage`; stages appear in the
    order their first view appears.

    Args:
        width: decoded image width in pixels.
        height: decoded image height in pixels.
        views: the views, e.g. ``protocol.resolve(cfg)``.

    Returns:
        The plan; ``plan.views[i]`` is ``views[i]``.

    Raises:
        InceValError: if the image has no pixels.
    """
    if width < 1 or height < 1:
        raise InceValError(f"cannot cut views from an image of {width}x{height} pixels")
    stage_index: dict[StageSpec, int] = {}
    stages: list[ResizeStage] = []
    boxes: list[ViewBox] = []
    for spec in views:
        if spec.stage not in stage_index:
            stage_index[spec.stage] = len(stages)
            stages.append(_plan_stage(spec.stage, width, height))
        index = stage_index[spec.stage]
        stage = stages[index]
        y, x, h, w = _crop_box(spec, _region_box(spec, stage.out_h, stage.out_w))
        boxes.append(ViewBox(index, y, x, h, w, spec.size, spec.size, spec.mirror))
    return ViewPlan(tuple(stages), tuple(boxes))
