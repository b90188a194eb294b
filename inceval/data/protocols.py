"""Crop protocols as data: named recipes that resolve to view lists for any model input size.

A protocol is a product ``scales x regions x crops x (mirror)``, enumerated in that order with the
mirrored view right after its unmirrored twin. Scales are rules, not pixels, so one protocol works
for 299-, 224- and 139-pixel models:

* ``crop_pct`` - the weights' own single-crop size, ``floor(input_size / crop_pct)``;
* a ratio ``a/b`` of the input size - shorter side ``round(a * input_size / b)`` (exact rational,
  half to even): GoogLeNet's 256/288/320/352 for 224 become 342/384/427/470 for 299;
* ``<n>px`` - an absolute shorter side.

TF-slim's rule is a ``central_fraction`` instead of scales: the central box of the image, resized
to input_size x input_size ignoring aspect.

Multi-crop resizes use the weights' interpolation (bicubic with antialias for the Inception
weights): the network was trained and calibrated on images produced that way, and the same resize
then serves the single-crop rule. See :mod:`inceval.data.views` for the rounding rules.

User protocols are JSON or YAML files (:func:`load_protocol_file`); their schema is in
:data:`FILE_SCHEMA_HELP`.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from inceval.data.views import (
    CENTRAL_FRACTION,
    CROPS,
    INTERPOLATIONS,
    REGIONS,
    SHORTER_SIDE,
    StageSpec,
    ViewSpec,
    tf1_central_box,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
_SQUARES = ("start", "centre", "end")
_GOOGLENET_SCALES = ("256/224", "288/224", "320/224", "352/224")


@dataclass(frozen=True)
class ScaleRule:
    """How a shorter side follows from the model's :class:`EvalConfig`.

    Attributes:
        kind: ``"crop_pct"``, ``"ratio"`` or ``"pixels"``.
        ratio: the ratio of the input size (``"ratio"`` only).
        pixels: the absolute side (``"pixels"`` only).
    """

    kind: str
    ratio: Fraction = Fraction(0)
    pixels: int = 0

    @classmethod
    def parse(cls, value: Any) -> "ScaleRule":
        """Read ``"crop_pct"``, ``"342px"``, ``"256/224"``, ``1.5`` or ``"1.5"``.

        Raises:
            ValueError: with a short reason when ``value`` is none of these.
        """
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a scale")
        if isinstance(value, str):
            text = value.strip()
            if text == "crop_pct":
                return cls("crop_pct")
            if text.endswith("px"):
                digits = text[:-2].strip()
                if not digits.isdigit() or int(digits) < 1:
                    raise ValueError(f"{value!r} is not a positive pixel count")
                return cls("pixels", pixels=int(digits))
            try:
                ratio = Fraction(text)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"{value!r} is not a scale") from None
        elif isinstance(value, (int, float)):
            ratio = Fraction(str(value))
        else:
            raise ValueError(f"{value!r} is not a scale")
        if ratio <= 0:
            raise ValueError(f"{value!r} is not a positive ratio")
        return cls("ratio", ratio=ratio)

    def side(self, eval_config: EvalConfig) -> int:
        """The shorter side in pixels for a model with this ``eval_config``."""
        if self.kind == "crop_pct":
            return eval_config.resize_size
        if self.kind == "pixels":
            return self.pixels
        return round(self.ratio * eval_config.input_size)

    def __str__(self) -> str:
        if self.kind == "crop_pct":
            return "crop_pct"
        if self.kind == "pixels":
            return f"{self.pixels}px"
        return f"{self.ratio.numerator}/{self.ratio.denominator}"


@dataclass(frozen=True)
class Protocol:
    """A named, versioned crop recipe.

    Attributes:
        name: what users type (``"144"``).
        version: bumped whenever the views it resolves to change, so stored predictions of an old
            definition are never mixed with new ones.
        description: one or two sentences, shown by ``inceval protocols``.
        scales: shorter-side rules (empty when ``central_fraction`` is set).
        regions: ``"image"`` or the ``"start"`` (left/top), ``"centre"``, ``"end"`` squares.
        crops: corners, ``"centre"`` and/or ``"whole"`` (region resized to the input size).
        mirror: add the horizontal mirror of every view.
        interpolation: None for the weights' own, else ``"bicubic"``, ``"bilinear"`` or
            ``"tf1-bilinear"`` (no antialias, no half-pixel centres).
        central_fraction: TF-slim rule instead of scales: this central fraction of the image,
            resized to input_size x input_size ignoring aspect.
        source: ``"built-in"`` or the file the protocol was read from.
    """

    name: str
    version: int
    description: str
    scales: tuple[ScaleRule, ...] = ()
    regions: tuple[str, ...] = ("image",)
    crops: tuple[str, ...] = ("centre",)
    mirror: bool = False
    interpolation: str | None = None
    central_fraction: float | None = None
    source: str = field(default="built-in", compare=False)

    @property
    def num_views(self) -> int:
        """Views per image (before any image-dependent coincidence, e.g. square images)."""
        n_scales = 1 if self.central_fraction is not None else len(self.scales)
        return n_scales * len(self.regions) * len(self.crops) * (2 if self.mirror else 1)

    def stages(self, eval_config: EvalConfig) -> tuple[StageSpec, ...]:
        """The resize stages of this protocol for a model, in scale order."""
        interpolation = self.interpolation or eval_config.interpolation
        antialias = interpolation != "tf1-bilinear"
        if self.central_fraction is not None:
            side = eval_config.input_size
            return (StageSpec(CENTRAL_FRACTION, side, interpolation, antialias,
                              self.central_fraction),)
        return tuple(
            StageSpec(SHORTER_SIDE, rule.side(eval_config), interpolation, antialias)
            for rule in self.scales
        )

    def resolve(self, eval_config: EvalConfig) -> tuple[ViewSpec, ...]:
        """The views of this protocol for a model, with concrete integers.

        Raises:
            InceValError: if a scale is smaller than the input size but a crop of the input size
                is asked for, or the model's interpolation is unknown.
        """
        size = eval_config.input_size
        if (self.interpolation or eval_config.interpolation) not in INTERPOLATIONS:
            raise InceValError(
                f"model interpolation {eval_config.interpolation!r} is not supported by protocol "
                f"{self.name!r}; use weights with one of {', '.join(INTERPOLATIONS)}"
            )
        for rule in self.scales:
            if rule.side(eval_config) < 1:
                where = self.source if self.source != "built-in" else f"protocol {self.name!r}"
                raise InceValError(f"{where}: scale {rule} gives a shorter side of 0 px at input "
                                   f"size {size}; use a larger scale")
        views: list[ViewSpec] = []
        for stage in self.stages(eval_config):
            needs_crop = any(crop != "whole" for crop in self.crops)
            if needs_crop and stage.side < size:
                where = self.source if self.source != "built-in" else f"protocol {self.name!r}"
                raise InceValError(
                    f"{where}: scale {stage.side} px is smaller than the {size}-pixel crop; "
                    f"use larger scales or only the 'whole' crop"
                )
            for region in self.regions:
                for crop in self.crops:
                    for mirror in (False, True) if self.mirror else (False,):
                        views.append(ViewSpec(stage, region, crop, size, mirror))
        return tuple(views)


# What `inceval protocols` prints for each built-in protocol. Free text kept out of the
# definitions below, which are pure data (and mutation-tested; see docs/testing.md).
_DESCRIPTIONS: dict[str, str] = {
    "1": (
        "The weights' own single crop (timm/torchvision): shorter side to "
        "floor(input/crop_pct), long side truncated, centre crop with round-half-even offsets."
    ),
    "1-slim": (
        "TF-slim single crop: TF1 central_crop of 87.5% (start floor(h/16), floor(w/16)), "
        "resized to input x input ignoring aspect, TF1 bilinear without antialias."
    ),
    "10": (
        "AlexNet 10-crop (the 'standard 10-crop' the ResNet paper cites): shorter side "
        "256/224 x input, centre square, 4 corners + centre, each mirrored."
    ),
    "10-full": (
        "torchvision TenCrop-style 10-crop: shorter side 256/224 x input, 4 corners + centre "
        "of the whole resized image, each crop mirrored."
    ),
    "12": (
        "The 144-crop scheme at one scale (256/224 x input) and the centre square: 4 corners "
        "+ centre + whole square resized, each mirrored; a subset of '144'."
    ),
    "12-image": (
        "12-crop alternative: one scale (256/224 x input), 4 corners + centre of the whole "
        "resized image + the whole image squashed to input x input, each mirrored."
    ),
    "12-3sq": (
        "12-crop alternative: one scale (256/224 x input), 3 squares x {centre crop, whole "
        "square resized}, each mirrored."
    ),
    "12-resized": (
        "12-crop alternative: 4 scales (256..352/224 x input) x 3 squares, each square "
        "resized to input x input, no mirror."
    ),
    "144": (
        "GoogLeNet 144-crop: shorter side 256/288/320/352 per 224 of input x 3 squares "
        "(left/top, centre, right/bottom) x {4 corners, centre, whole square resized} "
        "x mirror."
    ),
}


def _builtin() -> tuple[Protocol, ...]:
    corners_centre = (*_CORNERS, "centre")
    googlenet_crops = (*_CORNERS, "centre", "whole")
    one_scale = (ScaleRule.parse("256/224"),)
    four_scales = tuple(ScaleRule.parse(s) for s in _GOOGLENET_SCALES)
    return (
        Protocol(
            "1", 1, _DESCRIPTIONS["1"],
            scales=(ScaleRule("crop_pct"),),
        ),
        Protocol(
            "1-slim", 1, _DESCRIPTIONS["1-slim"],
            central_fraction=0.875, crops=("whole",), interpolation="tf1-bilinear",
        ),
        Protocol(
            "10", 1, _DESCRIPTIONS["10"],
            scales=one_scale, regions=("centre",), crops=corners_centre, mirror=True,
        ),
        Protocol(
            "10-full", 1, _DESCRIPTIONS["10-full"],
            scales=one_scale, regions=("image",), crops=corners_centre, mirror=True,
        ),
        Protocol(
            "12", 1, _DESCRIPTIONS["12"],
            scales=one_scale, regions=("centre",), crops=googlenet_crops, mirror=True,
        ),
        Protocol(
            "12-image", 1, _DESCRIPTIONS["12-image"],
            scales=one_scale, regions=("image",), crops=googlenet_crops, mirror=True,
        ),
        Protocol(
            "12-3sq", 1, _DESCRIPTIONS["12-3sq"],
            scales=one_scale, regions=_SQUARES, crops=("centre", "whole"), mirror=True,
        ),
        Protocol(
            "12-resized", 1, _DESCRIPTIONS["12-resized"],
            scales=four_scales, regions=_SQUARES, crops=("whole",),
        ),
        Protocol(
            "144", 1, _DESCRIPTIONS["144"],
            scales=four_scales, regions=_SQUARES, crops=googlenet_crops, mirror=True,
        ),
    )


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in _builtin()}


def list_protocols() -> list[Protocol]:
    """The built-in protocols in a fixed order (1, 1-slim, 10, ... 144)."""
    return list(PROTOCOLS.values())


def get_protocol(name_or_path: str | Path) -> Protocol:
    """A built-in protocol by name, or a user protocol from a ``.json`` / ``.yaml`` file.

    Raises:
        InceValError: for an unknown name (with close matches) or an invalid file.
    """
    text = str(name_or_path)
    if text in PROTOCOLS:
        return PROTOCOLS[text]
    path = Path(text)
    if path.suffix.lower() in _FILE_SUFFIXES or path.exists():
        return load_protocol_file(path)
    close = difflib.get_close_matches(text, list(PROTOCOLS), n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise InceValError(
        f"unknown protocol {text!r}; {hint}available: {', '.join(PROTOCOLS)}, "
        f"or a .json/.yaml protocol file"
    )


# ---------------------------------------------------------------- user protocol files

_FILE_SUFFIXES = (".json", ".yaml", ".yml")
_FILE_KEYS = ("name", "version", "description", "scales", "central_fraction", "regions", "crops",
              "mirror", "interpolation")

FILE_SCHEMA_HELP = """\
A protocol file is a JSON or YAML mapping with these keys:
  name              protocol name (letters, digits, . _ -); default: the file name without suffix
  version           integer >= 1; default 1. Bump it whenever the views change
  description       free text; default ""
  scales            list of shorter-side rules: "crop_pct" (floor(input/crop_pct)), a ratio of the
                    input size ("256/224", 1.5), or absolute pixels ("342px")
  central_fraction  instead of scales: TF1 central_crop of this fraction, resized to input x input
  regions           list of "image", "start" (left/top square), "centre", "end"; default ["image"]
  crops             list of "top-left", "top-right", "bottom-left", "bottom-right", "centre",
                    "whole" (region resized to input x input); default ["centre"]
  mirror            true adds the horizontal mirror of every view; default false
  interpolation     "model" (the weights' own, default), "bicubic", "bilinear", "tf1-bilinear"
"""


def _fail(path: Path, key: str | None, message: str) -> InceValError:
    where = f"{path}: key '{key}'" if key else str(path)
    return InceValError(f"{where}: {message}")


def _string_list(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise _fail(path, key, "must be a non-empty list")
    for item in value:
        if item not in allowed:
            raise _fail(path, key, f"unknown value {item!r}; use one of {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise _fail(path, key, "lists a value twice; remove the duplicate")
    return tuple(value)


def _read_mapping(path: Path) -> dict[str, Any]:
    if path.suffix.lower() not in _FILE_SUFFIXES:
        raise _fail(path, None, "protocol files must end in .json, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(path, None, "no such protocol file; check the path") from None
    except OSError as exc:
        raise _fail(path, None, f"cannot read protocol file ({exc.strerror})") from None
    import yaml

    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(path, None, f"not valid {path.suffix[1:].upper()} ({first})") from None
    if not isinstance(data, dict):
        raise _fail(path, None,
                    "must contain a mapping of protocol keys (see inceval protocols -h)")
    return data


def load_protocol_file(path: str | Path) -> Protocol:
    """Read and validate a user protocol (schema: :data:`FILE_SCHEMA_HELP`).

    Raises:
        InceValError: one line naming the file and the offending key.
    """
    path = Path(path)
    data = _read_mapping(path)
    for key in data:
        if key not in _FILE_KEYS:
            raise _fail(path, str(key), f"unknown key; use {', '.join(_FILE_KEYS)}")

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(path, "name", "must be letters, digits, '.', '_' or '-'")
    if name in PROTOCOLS:
        raise _fail(path, "name", f"{name!r} is a built-in protocol; choose another name")

    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(path, "version", "must be an integer >= 1")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(path, "description", "must be text")

    has_scales, has_fraction = "scales" in data, "central_fraction" in data
    if has_scales == has_fraction:
        raise _fail(path, None, "give exactly one of the keys 'scales' and 'central_fraction'")
    scales: tuple[ScaleRule, ...] = ()
    fraction: float | None = None
    if has_scales:
        raw = data["scales"]
        if isinstance(raw, str) or not isinstance(raw, list) or not raw:
            raise _fail(path, "scales", "must be a non-empty list")
        try:
            scales = tuple(ScaleRule.parse(item) for item in raw)
        except ValueError as exc:
            raise _fail(path, "scales", f"{exc}; use 'crop_pct', a ratio like '256/224' "
                                        f"or pixels like '342px'") from None
        if len(set(scales)) != len(scales):
            raise _fail(path, "scales", "lists a scale twice; remove the duplicate")
    else:
        fraction = data["central_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
                or not 0 < fraction <= 1:
            raise _fail(path, "central_fraction", "must be a number in (0, 1]")
        fraction = float(fraction)
        if tf1_central_box(2, 2, fraction)[2] == 0:
            # TF1's divisor rule (tf1_central_box) is then 2: nothing is left of an even side.
            raise _fail(path, "central_fraction", "must be above 1/3: TF1's central_crop keeps "
                                                  "no pixels of even-sized images below it")

    regions = _string_list(path, "regions", data.get("regions", ["image"]), REGIONS)
    crops = _string_list(path, "crops", data.get("crops", ["centre"]), CROPS)
    mirror = data.get("mirror", False)
    if not isinstance(mirror, bool):
        raise _fail(path, "mirror", "must be true or false")
    interpolation = data.get("interpolation", "model")
    if interpolation not in ("model", *INTERPOLATIONS):
        raise _fail(path, "interpolation",
                    f"unknown value {interpolation!r}; use model, {', '.join(INTERPOLATIONS)}")

    return Protocol(
        name=name, version=version, description=description, scales=scales, regions=regions,
        crops=crops, mirror=mirror,
        interpolation=None if interpolation == "model" else interpolation,
        central_fraction=fraction, source=str(path),
    )


def protocol_to_dict(protocol: Protocol) -> dict[str, Any]:
    """The protocol in file schema (what :func:`load_protocol_file` reads back)."""
    data: dict[str, Any] = {
        "name": protocol.name,
        "version": protocol.version,
        "description": protocol.description,
    }
    if protocol.central_fraction is not None:
        data["central_fraction"] = protocol.central_fraction
    else:
        data["scales"] = [str(rule) for rule in protocol.scales]
    data["regions"] = list(protocol.regions)
    data["crops"] = list(protocol.crops)
    data["mirror"] = protocol.mirror
    data["interpolation"] = protocol.interpolation or "model"
    return data
