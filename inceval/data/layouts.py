"""The six ways a validation set is laid out on disk, how one is detected, how each is labelled.

Every layout turns the images found on disk into ImageRecords. A label source that names images
absent from disk is refused for a full run (the accuracy would silently cover fewer images) and
accepted only for a quick run (``partial_ok``: --limit or --subset), which then picks among the
images present. Images on disk without a label are always refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from inceval.data import builtin
from inceval.data.benchmarks import subset_dataset_of
from inceval.data.devkit import GROUND_TRUTH, find_devkits, read_devkit
from inceval.data.kaggle import (
    SEARCH_LEVELS,
    SOLUTION,
    find_solutions,
    is_solution_csv,
    read_kaggle,
)
from inceval.data.listfile import read_list
from inceval.data.records import ImageRecord
from inceval.data.scan import DirScan, image_number, walk_images
from inceval.data.wnids import NUM_CLASSES, is_wnid
from inceval.errors import InceValError

LAYOUTS: Mapping[str, str] = MappingProxyType({
    "valprep": "DIR/<wnid>/*.JPEG: 1000 WNID folders; class = the folder's sorted position",
    "devkit": "flat DIR/ILSVRC2012_val_XXXXXXXX.JPEG labelled by --devkit (ILSVRC2012_devkit_t12 "
              "folder or .tar.gz; found beside DIR if unique)",
    "kaggle": "flat DIR labelled by LOC_val_solution.csv (+ LOC_synset_mapping.txt), found up to "
              "4 folders above DIR or given as --labels",
    "list": "any tree labelled by --labels FILE of 'relative/path label' lines (0..999 or WNID)",
    "imagenetv2": "DIR/<0..999>/*: ImageNetV2, folders named by class index (read as integers)",
    "ilsvrc2012": "flat DIR/ILSVRC2012_val_XXXXXXXX.JPEG labelled by inceval's bundled ILSVRC-2012 "
                  "ground truth (no devkit needed; used when no devkit or CSV is found)",
})

_CLASS_NUMBER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Plan:
    """A chosen layout and its label source.

    Attributes:
        layout: a key of LAYOUTS.
        source: the devkit, CSV or list file; None for layouts labelled by folder names.
        found: whether the source was found by searching rather than given as an option.
    """

    layout: str
    source: Path | None
    found: bool = False

    def source_name(self, option: str) -> str:
        """The source as error messages name it: the option that gave it, or where it was found."""
        return f"{self.source} (auto-detected)" if self.found else f"{option} {self.source}"


@dataclass(frozen=True)
class Labelled:
    """The labelled images of one layout, in no particular order.

    Attributes:
        records: one per image found on disk.
        class_wnids: the 1000 sorted WNIDs when the source names them, else None.
        label_source: a short description of where the labels came from.
    """

    records: list[ImageRecord]
    class_wnids: tuple[str, ...] | None
    label_source: str


def plan_layout(root: Path, scan: DirScan, layout: str, devkit: Path | None,
                labels_file: Path | None) -> Plan:
    """Choose the layout (detecting it for ``layout="auto"``) and its label source.

    Args:
        root: the dataset folder (absolute).
        scan: the images in root and its direct subfolders.
        layout: "auto" or a key of LAYOUTS.
        devkit: the --devkit option, if given.
        labels_file: the --labels option, if given.

    Raises:
        InceValError: for an unknown layout, options the layout does not use, a missing label
            source, or a tree that fits more than one layout.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise InceValError(f"--layout {layout!r} is unknown; choose auto or one of "
                           f"{', '.join(LAYOUTS)}")
    if devkit is not None and labels_file is not None:
        raise InceValError("--devkit and --labels are two label sources; pass only one")
    for option, value in (("--devkit", devkit), ("--labels", labels_file)):
        if value is not None and not value.exists():
            raise InceValError(f"{option} {value} does not exist; check the path")
    if labels_file is not None and not labels_file.is_file():
        raise InceValError(f"--labels {labels_file} is not a file; pass the label file itself")
    if layout == "auto":
        return _detect(root, scan, devkit, labels_file)
    if devkit is not None and layout != "devkit":
        raise InceValError(f"--devkit is used only by --layout devkit, not {layout}; drop it")
    if labels_file is not None and layout not in ("kaggle", "list"):
        raise InceValError(f"--labels is used only by --layout kaggle or list, not {layout}; "
                           "drop it")
    if layout == "devkit":
        if devkit is not None:
            return Plan(layout, devkit)
        return Plan(layout, _one_found(find_devkits(root), root, layout), found=True)
    if layout == "kaggle":
        if labels_file is not None:
            return Plan(layout, labels_file)
        return Plan(layout, _one_found(find_solutions(root), root, layout), found=True)
    if layout == "list":
        if labels_file is None:
            raise InceValError("--layout list needs --labels FILE with 'relative/path label' lines")
        return Plan(layout, labels_file)
    return Plan(layout, None)


def label_images(root: Path, scan: DirScan, plan: Plan, partial_ok: bool) -> Labelled:
    """Label the images on disk according to a plan.

    Args:
        root: the dataset folder (absolute).
        scan: the images in root and its direct subfolders.
        plan: from plan_layout.
        partial_ok: whether label entries for images absent from disk are allowed (quick runs).

    Raises:
        InceValError: for anything that would make a label wrong or a full run incomplete.
    """
    if plan.layout == "valprep":
        return _valprep(root, scan)
    if plan.layout == "imagenetv2":
        return _imagenetv2(root, scan)
    if plan.layout == "ilsvrc2012":
        return _ilsvrc2012(root, scan, partial_ok)
    assert plan.source is not None  # plan_layout gives every flat layout a source
    if plan.layout == "list":
        listed = read_list(plan.source)
        records = _join(root, walk_images(root), lambda rel: rel, listed.labels,
                        f"--labels {plan.source}", partial_ok,
                        "add them or move them out of --data")
        return Labelled(records, listed.class_wnids, f"list {plan.source}")
    _require_flat(root, scan, plan.layout)
    if plan.layout == "devkit":
        kit = read_devkit(plan.source, plan.source_name("--devkit"))
        for name in scan.top_images:
            if image_number(name) is None:
                raise InceValError(f"{name} in --data {root} is not named ILSVRC2012_val_%08d; the "
                                   "devkit layout labels images by that number")
        labels = {number: label for number, label in enumerate(kit.labels, start=1)}
        records = _join(root, list(scan.top_images), image_number, labels,
                        f"{plan.source_name('--devkit')} {GROUND_TRUTH}", partial_ok,
                        f"it has {len(labels):,} lines, line N for image N: use the devkit of "
                        "these images")
        return Labelled(records, kit.class_wnids, f"devkit {kit.source}")
    source = plan.source_name("--labels")
    kag = read_kaggle(plan.source, source)
    records = _join(root, list(scan.top_images), _stem, kag.labels, source, partial_ok,
                    "use the CSV that belongs to these images")
    with_mapping = f" + {kag.mapping.name}" if kag.mapping else ""
    return Labelled(records, kag.class_wnids, f"kaggle {plan.source}{with_mapping}")


def _detect(root: Path, scan: DirScan, devkit: Path | None, labels_file: Path | None) -> Plan:
    if devkit is not None:
        return Plan("devkit", devkit)
    if labels_file is not None:
        return Plan("kaggle" if is_solution_csv(labels_file) else "list", labels_file)
    dirs = scan.image_dirs()
    if scan.top_images and dirs:
        raise InceValError(f"cannot detect the layout: --data {root} holds images both directly "
                           f"and in subfolders (e.g. {dirs[0]}/); point --data at one of them or "
                           "pass --layout")
    if dirs:
        if all(is_wnid(d) for d in dirs):
            return Plan("valprep", None)
        if all(_CLASS_NUMBER.fullmatch(d) for d in dirs):
            return Plan("imagenetv2", None)
        odd = next((d for d in dirs if not is_wnid(d) and not _CLASS_NUMBER.fullmatch(d)), None)
        if odd is None:
            raise InceValError(f"cannot detect the layout: --data {root} mixes WNID folders and "
                               "class-number folders; keep one kind or pass --layout")
        raise InceValError(f"cannot detect the layout: folder {odd}/ in --data {root} is neither "
                           "a WNID nor a class number; pass --layout list with --labels FILE")
    if not scan.top_images:
        raise _empty(root)
    found = [Plan("devkit", p, found=True) for p in find_devkits(root)]
    found += [Plan("kaggle", p, found=True) for p in find_solutions(root)]
    if len(found) == 1:
        return found[0]
    if not found and all(_val_number(name) is not None for name in scan.top_images):
        return Plan("ilsvrc2012", None)
    if not found:
        raise InceValError(f"--data {root} holds {len(scan.top_images):,} images in one folder but "
                           "no labels were found beside it; pass --devkit ILSVRC2012_devkit_t12 "
                           "(folder or .tar.gz) or --labels FILE")
    listed = ", ".join(str(p.source) for p in found)
    raise InceValError(f"cannot detect the layout: several label sources found for --data {root} "
                       f"({listed}); pass --devkit or --labels to choose one")


def _one_found(found: list[Path], root: Path, layout: str) -> Path:
    if len(found) == 1:
        return found[0]
    if layout == "devkit":
        option, where = "--devkit", "ILSVRC2012_devkit_t12* inside or beside"
    else:
        option, where = "--labels", f"{SOLUTION} in or up to {SEARCH_LEVELS} folders above"
    if not found:
        raise InceValError(f"--layout {layout} found no {where} --data {root}; pass {option}")
    listed = ", ".join(str(p) for p in found)
    raise InceValError(f"--layout {layout} found several label sources ({listed}); pass {option} "
                       "to choose one")


def _valprep(root: Path, scan: DirScan) -> Labelled:
    _require_nested(root, scan, "valprep", "root/<wnid>/")
    for name in scan.image_dirs():
        if not is_wnid(name):
            raise InceValError(f"folder {name}/ in --data {root} holds images but is not a WNID "
                               "(n + 8 digits); the valprep layout needs root/<wnid>/ folders only")
    wnids = sorted(d for d in scan.subdirs if is_wnid(d))
    subset = subset_dataset_of(wnids)
    if subset is not None:
        # ImageNet-A/R: labels stay in the 1000-class space of the models' outputs.
        index = builtin.class_index()
        records = [ImageRecord(f"{wnid}/{name}", index[wnid], image_number(name))
                   for wnid in wnids for name in scan.subdirs[wnid]]
        if not records:
            raise _empty(root)
        return Labelled(records, builtin.imagenet_wnids(),
                        f"WNID folder names ({subset}: {len(wnids)} of the 1000 classes)")
    if len(wnids) != NUM_CLASSES:
        raise InceValError(f"--data {root} has {len(wnids)} WNID class folders, not {NUM_CLASSES} "
                           f"(nor the 200 of ImageNet-A or ImageNet-R); the class index is the "
                           "folder's position among all 1000, so copy the complete validation set")
    records = [ImageRecord(f"{wnid}/{name}", label, image_number(name))
               for label, wnid in enumerate(wnids) for name in scan.subdirs[wnid]]
    if not records:
        raise _empty(root)
    return Labelled(records, tuple(wnids), "WNID folder names")


def _val_number(name: str) -> int | None:
    """The ILSVRC-2012 validation image number (1..50,000) of a file name, else None."""
    number = image_number(name)
    return number if number is not None and 1 <= number <= builtin.VAL_IMAGES else None


def _ilsvrc2012(root: Path, scan: DirScan, partial_ok: bool) -> Labelled:
    _require_flat(root, scan, "ilsvrc2012")
    for name in scan.top_images:
        if _val_number(name) is None:
            raise InceValError(f"{name} in --data {root} is not named ILSVRC2012_val_%08d (1..50,000); "
                               "the bundled ground truth labels images by that number: pass "
                               "--labels FILE or --devkit for other images")
    records = _join(root, list(scan.top_images), image_number, builtin.ilsvrc2012_val_labels(),
                    "the bundled ILSVRC-2012 ground truth", partial_ok,
                    "use --labels FILE for images outside the ILSVRC-2012 validation set")
    return Labelled(records, builtin.imagenet_wnids(),
                    "bundled ILSVRC-2012 validation ground truth")


def _imagenetv2(root: Path, scan: DirScan) -> Labelled:
    _require_nested(root, scan, "imagenetv2", "root/<class number>/")
    for name in scan.image_dirs():
        if not _CLASS_NUMBER.fullmatch(name):
            raise InceValError(f"folder {name}/ in --data {root} holds images but is not a class "
                               "number; the imagenetv2 layout needs folders named 0..999")
    folders: dict[int, str] = {}
    for name in sorted(d for d in scan.subdirs if _CLASS_NUMBER.fullmatch(d)):
        label = int(name)
        if not 0 <= label < NUM_CLASSES:
            raise InceValError(f"folder {name}/ in --data {root} is class {label}, outside "
                               f"0..{NUM_CLASSES - 1}; the imagenetv2 layout needs folders 0..999")
        if label in folders:
            raise InceValError(f"folders {folders[label]}/ and {name}/ in --data {root} are both "
                               f"class {label}; keep one")
        folders[label] = name
    if len(folders) != NUM_CLASSES:
        raise InceValError(f"--data {root} has {len(folders)} class folders, not {NUM_CLASSES}; "
                           "the imagenetv2 layout needs folders 0..999, so copy the complete set")
    records = [ImageRecord(f"{name}/{file}", label, image_number(file))
               for label, name in sorted(folders.items()) for file in scan.subdirs[name]]
    if not records:
        raise _empty(root)
    return Labelled(records, None, "class-number folder names")


def _require_nested(root: Path, scan: DirScan, layout: str, shape: str) -> None:
    if scan.top_images:
        raise InceValError(f"--data {root} holds {len(scan.top_images):,} images directly (e.g. "
                           f"{scan.top_images[0]}); the {layout} layout keeps them in {shape} "
                           "folders")


def _require_flat(root: Path, scan: DirScan, layout: str) -> None:
    dirs = scan.image_dirs()
    if dirs:
        raise InceValError(f"--data {root} has images in subfolder {dirs[0]}/; the {layout} "
                           "layout needs every image directly in --data")
    if not scan.top_images:
        raise _empty(root)


def _empty(root: Path) -> InceValError:
    return InceValError(f"--data {root} holds no images (.JPEG, .jpg, .jpeg, .png); pass the "
                        "validation image folder")


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _join(root: Path, disk: list[str], key: Callable[[str], Hashable | None],
          labels: Mapping[Hashable, int], source: str, partial_ok: bool,
          unlabelled_fix: str) -> list[ImageRecord]:
    """Match the images on disk with the entries of a label source, one to one.

    Args:
        root: the dataset folder, for messages.
        disk: relative POSIX paths of the images found.
        key: how an image is named in the label source.
        labels: key -> class index.
        source: the label source as messages should name it.
        partial_ok: allow entries whose images are absent (quick runs).
        unlabelled_fix: what to do when some images have no entry.
    """
    records: list[ImageRecord] = []
    owner: dict[Hashable, str] = {}
    unlabelled: list[str] = []
    for rel in disk:
        k = key(rel)
        if k not in labels:
            unlabelled.append(rel)
            continue
        if k in owner:
            raise InceValError(f"{owner[k]} and {rel} in --data {root} are the same entry of "
                               f"{source}; remove one")
        owner[k] = rel
        records.append(ImageRecord(rel, labels[k], image_number(rel)))
    if unlabelled:
        raise InceValError(f"{len(unlabelled):,} of the {len(disk):,} images in --data {root} have "
                           f"no label in {source} (first: {unlabelled[0]}); {unlabelled_fix}")
    if len(owner) < len(labels) and not partial_ok:
        absent = next(k for k in labels if k not in owner)
        shown = f"image {absent}" if isinstance(absent, int) else absent
        absent_count = len(labels) - len(owner)
        raise InceValError(f"{source} labels {len(labels):,} images but {absent_count:,} are "
                           f"missing from --data {root} (first: {shown}); copy the complete set, "
                           "or pass --limit/--subset to evaluate the images present")
    return records
