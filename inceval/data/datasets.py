"""ImageNet validation datasets: the images, their labels, and blacklist flags, in a fixed order.

``load_val_dataset`` reads one of six layouts (see LAYOUTS; detected automatically), labels every
image with its standard class index (position of its WNID among the 1000 sorted WNIDs), orders the
images deterministically (by ILSVRC image number when every file name has one, else by path),
flags blacklisted images, then applies the quick-run selections. No image is decoded here.

Rules that keep labels and counts honest:
    * The class order comes from each label source (sorted WNIDs of the valprep folders, of the
      devkit's meta.mat, of LOC_synset_mapping.txt or the CSV, or of a WNID list) and must hold
      exactly 1000 classes; integer labels (list, imagenetv2) are taken as indices 0..999.
    * Every image on disk needs a label. Label entries whose image is absent are an error for a
      full run and allowed with --limit or --subset, which then select among the images present.
    * The blacklist flags images by the number in their file name and never drops them.
    * --subset is applied first, then --limit, both after the blacklist flags are set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inceval.data import builtin
from inceval.data.benchmarks import EVAL_SETS, detect_dataset, scored_classes
from inceval.data.blacklist import read_blacklist
from inceval.data.layouts import LAYOUTS, label_images, plan_layout
from inceval.data.records import ImageRecord
from inceval.data.scan import check_root, scan_two_levels
from inceval.data.subsets import SUBSET_FORMS, select
from inceval.errors import InceValError

__all__ = ["LAYOUTS", "SUBSET_FORMS", "ImageRecord", "ValDataset", "load_val_dataset",
           "read_blacklist"]


@dataclass(frozen=True, eq=False)
class ValDataset:
    """A labelled validation set in a fixed order.

    Blacklisted images are kept and only flagged, so one run reports both the full set and the
    set without the blacklist.

    Attributes:
        root: the dataset folder (absolute); record paths are relative to it.
        layout: the key of LAYOUTS it was read with.
        records: the images in evaluation order.
        blacklisted: bool per record, True when the blacklist names its image number (read-only).
        class_wnids: the 1000 WNIDs in class-index order when the label source names them
            (valprep, devkit, kaggle, WNID lists), else None.
        label_source: where the labels came from, for reports.
        blacklist_source: the blacklist file applied, or None.
        dataset: the evaluation set (a key of inceval.data.benchmarks.EVAL_SETS).
    """

    root: Path
    layout: str
    records: tuple[ImageRecord, ...]
    blacklisted: np.ndarray
    class_wnids: tuple[str, ...] | None
    label_source: str
    blacklist_source: Path | None = field(default=None)
    dataset: str = field(default="imagenet")

    def __post_init__(self) -> None:
        flags = np.array(self.blacklisted, dtype=bool, copy=True).reshape(-1)
        if flags.shape != (len(self.records),):
            raise ValueError(f"blacklisted has {flags.size} flags for {len(self.records)} records")
        flags.setflags(write=False)
        object.__setattr__(self, "blacklisted", flags)
        object.__setattr__(self, "records", tuple(self.records))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def scored_classes(self) -> tuple[int, ...] | None:
        """The classes predictions are restricted to before top-k (ImageNet-A/R), else None."""
        return scored_classes(self.dataset)

    @property
    def has_blacklist(self) -> bool:
        """Whether a blacklist was applied (True even if it flags none of these images)."""
        return self.blacklist_source is not None or bool(self.blacklisted.any())

    def paths(self) -> list[Path]:
        """Absolute image paths in evaluation order."""
        return [self.root / record.path for record in self.records]

    def labels(self) -> np.ndarray:
        """Class indices (int64) in evaluation order."""
        return np.fromiter((r.label for r in self.records), dtype=np.int64, count=len(self.records))

    def fingerprint(self) -> str:
        """SHA-256 hex digest over ``"path\\tlabel\\n"`` lines in order.

        Two runs saw the same images, in the same order, with the same labels exactly when their
        fingerprints agree. The root folder and blacklist flags are not part of it.
        """
        digest = hashlib.sha256()
        for record in self.records:
            digest.update(f"{record.path}\t{record.label}\n".encode())
        return digest.hexdigest()

    def describe(self) -> str:
        """One line for the CLI: layout, image count, label source and blacklist count."""
        n = len(self.records)
        if self.has_blacklist:
            flagged = int(self.blacklisted.sum())
            blacklist = f"blacklist {flagged:,} flagged, {n - flagged:,} kept"
        else:
            blacklist = "no blacklist"
        dataset = "" if self.dataset == "imagenet" else f"{EVAL_SETS[self.dataset].title}, "
        return f"{dataset}{self.layout} layout, {n:,} images in {self.root}; labels: " \
               f"{self.label_source}; {blacklist}"


def load_val_dataset(root: str | Path, *, layout: str = "auto", devkit: str | Path | None = None,
                     labels_file: str | Path | None = None, blacklist: str | Path | None = None,
                     limit: int | None = None, subset: str | None = None,
                     dataset: str = "auto") -> ValDataset:
    """Find, label and order the validation images under ``root``.

    Args:
        root: the image folder (``--data``).
        layout: "auto" (detect) or a key of LAYOUTS (``--layout``).
        devkit: ILSVRC2012_devkit_t12 folder or .tar.gz, for the devkit layout (``--devkit``);
            found inside or beside ``root`` when unique.
        labels_file: LOC_val_solution.csv (kaggle) or a list file (list) (``--labels``).
        blacklist: devkit blacklist file of 1-based image numbers, or ``ilsvrc2014`` for the
            bundled ILSVRC2014 list (``--blacklist``); images are flagged, never dropped.
        limit: keep only the first ``limit`` images, after the subset (``--limit``).
        subset: a quick-run selection, one of SUBSET_FORMS (``--subset``).
        dataset: the evaluation set, or "auto" to detect it (``--dataset``; see
            inceval.data.benchmarks).

    Returns:
        The dataset in its deterministic order.

    Raises:
        InceValError: for anything that would give wrong labels or silently evaluate another set
            of images than asked; the message names the option or file and the fix.
    """
    root = check_root(Path(root))
    scan = scan_two_levels(root)
    plan = plan_layout(root, scan, layout, _path(devkit), _path(labels_file))
    quick = limit is not None or subset is not None
    labelled = label_images(root, scan, plan, partial_ok=quick)
    records = _in_order(root, labelled.records)
    blacklist_path = resolve_blacklist(blacklist)
    flags = _flags(root, records, blacklist_path)
    name = detect_dataset(root, plan.layout, list(scan.subdirs), [r.label for r in records],
                          dataset)
    keep = select(records, subset, limit)
    return ValDataset(root, plan.layout, tuple(records[i] for i in keep), flags[keep],
                      labelled.class_wnids, labelled.label_source, blacklist_path, name)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value).expanduser()


def resolve_blacklist(value: str | Path | None) -> Path | None:
    """The blacklist file of ``--blacklist``: the bundled ILSVRC2014 list for ``ilsvrc2014``.

    The keyword wins over a file of that name in the working directory; write ``./ilsvrc2014``
    for such a file.
    """
    if value is not None and str(value) == builtin.BLACKLIST_KEYWORD:
        return builtin.ilsvrc2014_blacklist_path()
    return _path(value)


def _in_order(root: Path, records: list[ImageRecord]) -> list[ImageRecord]:
    """By image number when every image has one (numbers must be unique), else by path."""
    owner: dict[int, str] = {}
    for record in records:
        if record.image_number is None:
            continue
        if record.image_number in owner:
            raise InceValError(f"{owner[record.image_number]} and {record.path} in --data {root} "
                               f"are both image {record.image_number}; remove the copy")
        owner[record.image_number] = record.path
    if len(owner) == len(records):
        return sorted(records, key=lambda r: r.image_number)
    return sorted(records, key=lambda r: r.path)


def _flags(root: Path, records: list[ImageRecord], blacklist: Path | None) -> np.ndarray:
    if blacklist is None:
        return np.zeros(len(records), dtype=bool)
    numbers = read_blacklist(blacklist)
    unnumbered = next((r for r in records if r.image_number is None), None)
    if unnumbered is not None:
        raise InceValError(f"--blacklist needs ILSVRC2012_val_%08d file names but "
                           f"{unnumbered.path} in --data {root} has no image number; drop "
                           "--blacklist for this set")
    return np.fromiter((r.image_number in numbers for r in records), dtype=bool,
                       count=len(records))
