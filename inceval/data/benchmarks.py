"""Which evaluation set a run measures: ImageNet itself, ImageNetV2, ImageNet-Sketch, -A or -R.

The set decides how a run is scored and where it is reported: ImageNet-A and ImageNet-R cover
200 of the 1000 classes, and the standard protocol (Hendrycks et al.) restricts the predictions to
those 200 classes before top-k; every set other than ImageNet is reported in its own table beside
timm's published figures, never in the paper's Tables 1-4.

Detection (``--dataset auto``): 200 WNID folders that are exactly ImageNet-A's or ImageNet-R's
classes; 1000 WNID folders in a ``--data`` folder whose name contains "sketch" (ImageNet-Sketch);
class-number folders (imagenetv2 layout) with the variant read from the ``--data`` folder's name
("matched-frequency", "threshold0.7", "top-images"); anything else is ImageNet. ``--dataset NAME``
states it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

from inceval.data import builtin
from inceval.data.wnids import is_wnid
from inceval.errors import InceValError


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set.

    Attributes:
        name: the key (``--dataset`` value, manifest ``data.dataset``).
        title: for tables.
        timm_key: the dataset column of timm's published results, or None when timm has none.
        class_subset: ``imagenet-a``/``imagenet-r`` when predictions are restricted to that
            dataset's 200 classes before top-k, else None.
    """

    name: str
    title: str
    timm_key: str | None = None
    class_subset: str | None = None


EVAL_SETS: Mapping[str, EvalSet] = MappingProxyType({s.name: s for s in (
    EvalSet("imagenet", "ImageNet (ILSVRC-2012 validation)", "imagenet"),
    EvalSet("imagenetv2-matched-frequency", "ImageNetV2 matched-frequency",
            "imagenetv2-matched-frequency"),
    EvalSet("imagenetv2-threshold0.7", "ImageNetV2 threshold-0.7"),
    EvalSet("imagenetv2-top-images", "ImageNetV2 top-images"),
    EvalSet("imagenetv2", "ImageNetV2 (variant unknown: pass --dataset)"),
    EvalSet("imagenet-sketch", "ImageNet-Sketch", "sketch"),
    EvalSet("imagenet-a", "ImageNet-A (200 classes)", "imagenet-a", "imagenet-a"),
    EvalSet("imagenet-r", "ImageNet-R (200 classes)", "imagenet-r", "imagenet-r"),
)})
DATASET_CHOICES = ("auto", *EVAL_SETS)
# Class-folder sets other than the 1000 classes: ImageNet-A and ImageNet-R (200 WNIDs each).
SUBSET_DATASETS = ("imagenet-a", "imagenet-r")
_V2_VARIANTS = ("matched-frequency", "threshold0.7", "top-images")


def eval_set(name: str | None) -> EvalSet:
    """The set of a manifest's ``data.dataset`` (None, from runs before it was recorded: ImageNet)."""
    if name is None:
        return EVAL_SETS["imagenet"]
    if name not in EVAL_SETS:
        raise InceValError(f"unknown dataset {name!r}; known: {', '.join(EVAL_SETS)}")
    return EVAL_SETS[name]


def scored_classes(name: str | None) -> tuple[int, ...] | None:
    """The class indices predictions are restricted to before top-k, or None for all 1000."""
    subset = eval_set(name).class_subset
    if subset is None:
        return None
    index = builtin.class_index()
    return tuple(sorted(index[wnid] for wnid in builtin.dataset_wnids(subset)))


def subset_dataset_of(wnids: Sequence[str]) -> str | None:
    """``imagenet-a`` or ``imagenet-r`` when the WNIDs are exactly that dataset's 200, else None."""
    given = set(wnids)
    for name in SUBSET_DATASETS:
        if given == set(builtin.dataset_wnids(name)):
            return name
    return None


def detect_dataset(root: Path, layout: str, folders: Sequence[str], labels: Sequence[int],
                   requested: str = "auto") -> str:
    """The evaluation set of a labelled folder (see the module docstring for the rules).

    Args:
        root: the data folder (its name tells Sketch and the ImageNetV2 variant).
        layout: the layout it was read with.
        folders: the names of its subfolders, as scanned.
        labels: the class index of every image.
        requested: ``--dataset`` (``auto`` to detect).

    Raises:
        InceValError: an unknown name, or a named set the labels cannot belong to.
    """
    if requested != "auto" and requested not in EVAL_SETS:
        raise InceValError(f"--dataset {requested!r} is unknown; choose auto or one of "
                           f"{', '.join(EVAL_SETS)}")
    if requested == "auto":
        return _detect(root.name.lower(), layout, folders)
    allowed = scored_classes(requested)
    outside = sorted(set(int(label) for label in labels) - set(allowed)) if allowed else []
    if outside:
        raise InceValError(f"--dataset {requested}: class {outside[0]} of --data {root} is not one "
                           f"of the 200 classes of {requested}; check --data or --dataset")
    return requested


def _detect(name: str, layout: str, folders: Sequence[str]) -> str:
    if layout == "imagenetv2":
        variant = next((v for v in _V2_VARIANTS if v in name), None)
        return f"imagenetv2-{variant}" if variant else "imagenetv2"
    if layout == "valprep":
        subset = subset_dataset_of([f for f in folders if is_wnid(f)])
        if subset is not None:
            return subset
        if "sketch" in name:
            return "imagenet-sketch"
    return "imagenet"
