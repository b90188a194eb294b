"""Labels from a plain list file: one ``relative/path label`` per line.

The label is the last whitespace-separated token, so paths may contain spaces. It is either an
integer class index 0..999 on every line, or a WNID on every line; WNID labels need all 1000 WNIDs
in the file, because the class index is the position of the WNID among them, sorted. The valprep
ground truth ``ILSVRC2012_val_XXXXXXXX.JPEG <wnid>`` (50,000 lines) is such a file. Blank lines and
lines starting with ``#`` are skipped; paths are relative to the dataset root, with ``/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from inceval.data.wnids import NUM_CLASSES, class_order, is_wnid
from inceval.errors import InceValError

_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class ListLabels:
    """The labels of a list file.

    Attributes:
        labels: relative POSIX path -> standard class index.
        class_wnids: the 1000 sorted WNIDs when the file labels by WNID, else None.
        source: the list file.
    """

    labels: dict[str, int]
    class_wnids: tuple[str, ...] | None
    source: Path


def read_list(path: Path) -> ListLabels:
    """Read a list file (see the module docstring for the format).

    Args:
        path: the file given as ``--labels``.

    Returns:
        Class index per relative path.

    Raises:
        InceValError: for a malformed line, a bad path, a repeated path, a label outside 0..999,
            integer and WNID labels mixed, or WNID labels that do not cover the 1000 classes.
    """
    option = f"--labels {path}"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InceValError(f"{option} cannot be read ({exc}); pass a text file of "
                           "'relative/path label' lines") from None
    raw: dict[str, str] = {}
    first_line: dict[str, int] = {}
    kind: str | None = None
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise InceValError(f"{option} line {line_number} is {stripped[:60]!r}, not "
                               "'relative/path label'; give one image and its label per line")
        rel = _relative_path(parts[0].strip(), option, line_number)
        label = parts[1]
        line_kind = _label_kind(label, option, line_number)
        if kind is None:
            kind = line_kind
        elif line_kind != kind:
            raise InceValError(f"{option} line {line_number} has a {line_kind} label but earlier "
                               f"lines have {kind} labels; use one kind throughout")
        if rel in raw:
            raise InceValError(f"{option} line {line_number}: {rel} is listed twice (first on line "
                               f"{first_line[rel]}); remove the duplicate")
        raw[rel] = label
        first_line[rel] = line_number
    if not raw:
        raise InceValError(f"{option} lists no images; give one 'relative/path label' per line")
    if kind == "integer":
        return ListLabels({rel: int(label) for rel, label in raw.items()}, None, path)
    wnids = class_order(raw.values(), option, "WNID labels need every class present; use integer "
                        "labels 0..999 for a partial list")
    index_of = {wnid: i for i, wnid in enumerate(wnids)}
    return ListLabels({rel: index_of[label] for rel, label in raw.items()}, wnids, path)


def _label_kind(label: str, option: str, line_number: int) -> str:
    if is_wnid(label):
        return "WNID"
    if _INTEGER.fullmatch(label):
        if not 0 <= int(label) < NUM_CLASSES:
            raise InceValError(f"{option} line {line_number} has label {label}, outside "
                               f"0..{NUM_CLASSES - 1}; labels are sorted-WNID class indices")
        return "integer"
    raise InceValError(f"{option} line {line_number} has label {label[:40]!r}, neither a class "
                       f"index 0..{NUM_CLASSES - 1} nor a WNID; fix the line")


def _relative_path(text: str, option: str, line_number: int) -> str:
    parts = text.split("/")
    if "\\" not in text and parts[0] and all(p and p != "." and p != ".." for p in parts):
        return text  # already normal; PurePosixPath is slow for 50,000 lines
    pure = PurePosixPath(text)
    if "\\" in text or pure.is_absolute() or ".." in pure.parts:
        raise InceValError(f"{option} line {line_number}: {text[:60]!r} must be a path relative to "
                           "--data, with / separators and no '..'")
    return pure.as_posix()
