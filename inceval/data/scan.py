"""Finding image files on disk and reading ILSVRC image numbers from their names.

Nothing here decodes an image: a file is an image when its suffix says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inceval.errors import InceValError

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png"})

# The file name without its extension must be exactly ILSVRC2012_val_ and 8 digits.
_IMAGE_NUMBER = re.compile(r"ILSVRC2012_val_(\d{8})(?:\.[^.]*)?")


def is_image_name(name: str) -> bool:
    """Whether a file name is a visible image file (.JPEG, .jpg, .jpeg, .png in any case)."""
    dot = name.rfind(".")
    return dot > 0 and name[0] != "." and name[dot:].lower() in IMAGE_SUFFIXES


def image_number(name: str) -> int | None:
    """The 1-based ILSVRC validation number in a file name, or None.

    Args:
        name: a file name or POSIX path; only its last component is read.

    Returns:
        N for ``ILSVRC2012_val_%08d.<ext>`` with N >= 1, else None.
    """
    match = _IMAGE_NUMBER.fullmatch(name, name.rfind("/") + 1)
    if match is None:
        return None
    number = int(match.group(1))
    return number if number >= 1 else None


@dataclass(frozen=True)
class DirScan:
    """The images of a root folder and of its direct subfolders.

    Attributes:
        top_images: image file names directly in the root, sorted.
        subdirs: every visible subfolder name -> the image file names directly in it, sorted.
    """

    top_images: tuple[str, ...]
    subdirs: dict[str, tuple[str, ...]]

    def image_dirs(self) -> list[str]:
        """Subfolders holding at least one image, sorted."""
        return sorted(name for name, images in self.subdirs.items() if images)


def check_root(root: Path) -> Path:
    """Return ``root`` as an absolute path, or raise if it is not an existing folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise InceValError(f"--data {root} does not exist; pass the ImageNet validation folder")
    if not root.is_dir():
        raise InceValError(f"--data {root} is not a folder; pass the folder holding the images")
    return root.resolve()


def scan_two_levels(root: Path) -> DirScan:
    """List the images in ``root`` and in each of its direct subfolders (hidden entries skipped)."""
    top: list[str] = []
    subdirs: dict[str, tuple[str, ...]] = {}
    with _scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if _is(entry, "dir"):
                subdirs[entry.name] = _images_in(Path(entry.path))
            elif is_image_name(entry.name) and _is(entry, "file"):
                top.append(entry.name)
    return DirScan(tuple(sorted(top)), subdirs)


def walk_images(root: Path) -> list[str]:
    """Every image below ``root`` at any depth, as sorted POSIX paths relative to it."""
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        found.extend(prefix + name for name in filenames if is_image_name(name))
    return sorted(found)


def _images_in(folder: Path) -> tuple[str, ...]:
    with _scandir(folder) as entries:
        return tuple(sorted(e.name for e in entries if is_image_name(e.name) and _is(e, "file")))


def _scandir(folder: Path) -> Any:
    """``os.scandir(folder)``; an unreadable folder is an error naming it."""
    try:
        return os.scandir(folder)
    except OSError as exc:
        raise InceValError(f"{folder}: cannot list the folder ({exc.strerror or exc}); fix its "
                           "permissions or remove it") from None


def _is(entry: os.DirEntry[str], kind: str) -> bool:
    """``entry.is_dir()`` or ``entry.is_file()``; a symlink loop or an unreadable entry is an
    error naming it, not a traceback."""
    try:
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError as exc:
        raise InceValError(f"{entry.path}: cannot be read ({exc.strerror or exc}); fix or remove "
                           "it") from None
