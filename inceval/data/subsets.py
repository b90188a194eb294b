"""Deterministic quick-run selections: --subset then --limit, over the dataset's fixed order.

Subset forms:
    ``per-class:K``  the first K images of each class (all of a class with fewer), class-balanced.
    ``every:K``      every K-th image: positions 0, K, 2K, ... of the order.
    ``file:PATH``    the images named in PATH, one per line (relative path, file name, or file
                     name without extension; ``#`` comments and blank lines skipped).
The selection keeps the dataset's order whatever the order of the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from inceval.data.records import ImageRecord
from inceval.errors import InceValError

SUBSET_FORMS = ("per-class:K", "every:K", "file:PATH")


def select(records: Sequence[ImageRecord], subset: str | None, limit: int | None) -> np.ndarray:
    """Positions of the records a quick run keeps, in order.

    Args:
        records: the dataset in its fixed order.
        subset: one of SUBSET_FORMS, or None for all images.
        limit: keep at most the first ``limit`` images of the subset; None for no cap.

    Returns:
        Increasing int64 positions into ``records``.

    Raises:
        InceValError: for a malformed subset or limit, or a subset file naming unknown images.
    """
    keep = np.arange(len(records), dtype=np.int64)
    if subset is not None:
        keep = _subset(records, subset)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise InceValError(f"--limit {limit!r} must be a positive number of images")
        keep = keep[:limit]
    return keep


def _subset(records: Sequence[ImageRecord], spec: str) -> np.ndarray:
    form, sep, arg = str(spec).partition(":")
    if form == "file" and sep and arg:
        return _from_file(records, Path(arg).expanduser())
    if form in ("per-class", "every") and sep:
        k = _positive(arg, spec)
        if form == "every":
            return np.arange(0, len(records), k, dtype=np.int64)
        taken: dict[int, int] = {}
        keep = []
        for i, record in enumerate(records):
            if taken.get(record.label, 0) < k:
                taken[record.label] = taken.get(record.label, 0) + 1
                keep.append(i)
        return np.asarray(keep, dtype=np.int64)
    raise InceValError(f"--subset {spec!r} is not understood; use one of {', '.join(SUBSET_FORMS)}")


def _positive(text: str, spec: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InceValError(f"--subset {spec!r}: K must be a positive whole number")
    return int(text)


def _from_file(records: Sequence[ImageRecord], path: Path) -> np.ndarray:
    option = f"--subset file:{path}"
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InceValError(f"{option} cannot be read ({exc}); pass a text file of image names") \
            from None
    # A name may be the relative path, the file name, or the file name without extension.
    positions: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        name = record.path.rsplit("/", 1)[-1]
        for alias in {record.path, name, name.rsplit(".", 1)[0]}:
            positions.setdefault(alias, []).append(i)
    chosen: dict[int, int] = {}
    for line_number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        name = PurePosixPath(name).as_posix()  # "./a/b.JPEG" names the record "a/b.JPEG"
        hits = positions.get(name, [])
        if not hits:
            raise InceValError(f"{option} line {line_number}: {name[:60]!r} is not an image of "
                               "--data; name images by relative path or file name")
        if len(hits) > 1:
            raise InceValError(f"{option} line {line_number}: {name[:60]!r} names "
                               f"{len(hits)} images; give the relative path")
        if hits[0] in chosen:
            raise InceValError(f"{option} line {line_number}: {name[:60]!r} is the image of line "
                               f"{chosen[hits[0]]} again; remove the duplicate")
        chosen[hits[0]] = line_number
    if not chosen:
        raise InceValError(f"{option} names no images; give one image name per line")
    return np.asarray(sorted(chosen), dtype=np.int64)
