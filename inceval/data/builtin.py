"""Label lists shipped inside the package (sources and licences: inceval/labelsets/SOURCES.md).

Everything here is read lazily and cached: importing this module costs nothing.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

_PACKAGE = "inceval.labelsets"
BLACKLIST_2014 = "ILSVRC2014_clsloc_validation_blacklist.txt"
VAL_GROUND_TRUTH = "ILSVRC2012_val_wnid.txt.gz"
WNIDS = "imagenet_wnids.txt"
LEMMAS = "imagenet_wnid_to_lemma.txt"
REAL_LABELS = "imagenet_real_labels.json.gz"
IMAGENET_A_WNIDS = "imagenet_a_synsets.txt"
IMAGENET_R_WNIDS = "imagenet_r_synsets.txt"

# The name `--blacklist` accepts for the bundled ILSVRC2014 list.
BLACKLIST_KEYWORD = "ilsvrc2014"
VAL_IMAGES = 50_000


def labelset_path(name: str) -> Path:
    """The path of a bundled file (the package is installed as files, never zipped)."""
    return Path(str(resources.files(_PACKAGE).joinpath(name)))


def _read(name: str) -> str:
    raw = labelset_path(name).read_bytes()
    return (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8")


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 ILSVRC-2012 WNIDs in class-index order (sorted)."""
    return tuple(_read(WNIDS).split())


@lru_cache(maxsize=1)
def class_index() -> dict[str, int]:
    """WNID -> class index (its position among the 1,000 sorted WNIDs)."""
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """A short name per class index: the first WordNet lemma (e.g. 'tench', 'kit fox').

    Two names occur twice (crane, maillot); identify classes by index or WNID, never by name.
    """
    names = {}
    for line in _read(LEMMAS).splitlines():
        wnid, lemmas = line.split("\t", 1)
        names[wnid] = lemmas.split(",")[0].strip()
    return tuple(names[wnid] for wnid in imagenet_wnids())


def class_label(index: int) -> str:
    """'name (index)' for showing a class to a person, e.g. 'tabby (281)'."""
    return f"{class_names()[index]} ({index})"


def ilsvrc2014_blacklist_path() -> Path:
    """The ILSVRC2014 validation blacklist in the devkit's format (one image number per line)."""
    return labelset_path(BLACKLIST_2014)


@lru_cache(maxsize=1)
def ilsvrc2012_val_wnids() -> tuple[tuple[str, str], ...]:
    """(file name, WNID) of the 50,000 ILSVRC-2012 validation images, in image-number order."""
    return tuple((name, wnid) for name, wnid in (line.split() for line in _read(VAL_GROUND_TRUTH).splitlines()))


@lru_cache(maxsize=1)
def ilsvrc2012_val_labels() -> dict[int, int]:
    """Image number (1..50,000) -> class index, from the bundled ground truth."""
    index = class_index()
    return {number: index[wnid] for number, (_, wnid) in enumerate(ilsvrc2012_val_wnids(), start=1)}


@lru_cache(maxsize=1)
def real_labels() -> tuple[frozenset[int], ...]:
    """ReaL label sets of images 1..50,000 (entry i = image i+1); an empty set = no valid label."""
    return tuple(frozenset(int(c) for c in entry) for entry in json.loads(_read(REAL_LABELS)))


@lru_cache(maxsize=2)
def dataset_wnids(name: str) -> tuple[str, ...]:
    """The 200 WNIDs of ImageNet-A (``imagenet-a``) or ImageNet-R (``imagenet-r``), sorted."""
    files = {"imagenet-a": IMAGENET_A_WNIDS, "imagenet-r": IMAGENET_R_WNIDS}
    return tuple(sorted(_read(files[name]).split()))
