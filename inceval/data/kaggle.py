"""Labels from Kaggle's ImageNet Object Localization Challenge files.

``LOC_val_solution.csv`` (header ``ImageId,PredictionString``): the class of an image is the first
token of its PredictionString (the WNID of its first box). ``LOC_synset_mapping.txt`` (``wnid name``
lines), when it sits beside the CSV, defines the 1000 classes and is checked against the CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from inceval.data.wnids import class_order, is_wnid
from inceval.errors import InceValError

SOLUTION = "LOC_val_solution.csv"
SYNSET_MAPPING = "LOC_synset_mapping.txt"
HEADER = ("ImageId", "PredictionString")
# Kaggle's tree puts the CSVs 4 levels above the images: <top>/ILSVRC/Data/CLS-LOC/val/.
SEARCH_LEVELS = 4


@dataclass(frozen=True)
class KaggleLabels:
    """The labels of LOC_val_solution.csv.

    Attributes:
        labels: ImageId (file name without extension) -> standard class index.
        class_wnids: the 1000 WNIDs in standard (sorted) order.
        source: the CSV file.
        mapping: the LOC_synset_mapping.txt used to define the classes, if any.
    """

    labels: dict[str, int]
    class_wnids: tuple[str, ...]
    source: Path
    mapping: Path | None


def is_solution_csv(path: Path) -> bool:
    """Whether a labels file starts with the Kaggle solution header."""
    with open(path, "rb") as handle:
        head = handle.read(64).decode("utf-8-sig", errors="replace")
    return head.startswith(HEADER[0] + ",")


def find_solutions(root: Path) -> list[Path]:
    """LOC_val_solution.csv files in ``root`` and up to SEARCH_LEVELS folders above it."""
    places = [root, *list(root.parents)[:SEARCH_LEVELS]]
    return [place / SOLUTION for place in places if (place / SOLUTION).is_file()]


def read_kaggle(solution: Path, option: str) -> KaggleLabels:
    """Read LOC_val_solution.csv and, when present beside it, LOC_synset_mapping.txt.

    Args:
        solution: the CSV file.
        option: how the error messages name it (``--labels FILE`` or the file found by search).

    Returns:
        Class index per ImageId.

    Raises:
        InceValError: for a wrong header, a malformed or repeated row, a WNID unknown to the
            mapping, or a class count other than 1000.
    """
    rows = _read_rows(solution, option)
    mapping = solution.parent / SYNSET_MAPPING
    if mapping.is_file():
        wnids = _read_mapping(mapping)
        known = set(wnids)
        for line_number, image_id, wnid in rows:
            if wnid not in known:
                raise InceValError(f"{option} line {line_number}: {image_id} has WNID {wnid}, "
                                   f"which is not in {mapping}; use the mapping that came with "
                                   "the CSV")
    else:
        mapping = None
        wnids = class_order((wnid for _, _, wnid in rows), option,
                            f"put {SYNSET_MAPPING} beside it or use the complete CSV")
    index_of = {wnid: i for i, wnid in enumerate(wnids)}
    return KaggleLabels({image_id: index_of[wnid] for _, image_id, wnid in rows}, wnids,
                        solution, mapping)


def _read_rows(solution: Path, option: str) -> list[tuple[int, str, str]]:
    """(line number, ImageId, WNID of the first box) for each row."""
    try:
        text = solution.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InceValError(f"{option} cannot be read ({exc}); pass {SOLUTION}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        raise InceValError(f"{option} does not start with the header {','.join(HEADER)}; pass "
                           f"Kaggle's {SOLUTION} (or use --layout list for a plain list)")
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for row in reader:
        line_number = reader.line_num
        if not row or not "".join(row).strip():
            continue
        tokens = row[1].split() if len(row) == 2 else []
        if len(row) != 2 or not row[0].strip() or not tokens:
            raise InceValError(f"{option} line {line_number} is not 'ImageId,PredictionString' "
                               "with a WNID first; pass an unmodified LOC_val_solution.csv")
        image_id, wnid = row[0].strip(), tokens[0]
        if not is_wnid(wnid):
            raise InceValError(f"{option} line {line_number}: {wnid!r} is not a WNID; pass an "
                               "unmodified LOC_val_solution.csv")
        if image_id in seen:
            raise InceValError(f"{option} line {line_number}: {image_id} is listed twice (first on "
                               f"line {seen[image_id]}); remove the duplicate")
        seen[image_id] = line_number
        rows.append((line_number, image_id, wnid))
    if not rows:
        raise InceValError(f"{option} has no rows; pass Kaggle's complete {SOLUTION}")
    return rows


def _read_mapping(mapping: Path) -> tuple[str, ...]:
    """The WNIDs of LOC_synset_mapping.txt, checked to be 1000 distinct ones in sorted order."""
    wnids: list[str] = []
    for line_number, line in enumerate(mapping.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        wnid = line.split()[0]
        if not is_wnid(wnid):
            raise InceValError(f"{mapping} line {line_number} starts with {wnid[:40]!r}, not a "
                               "WNID; each line must be 'wnid name'")
        if wnids and wnid <= wnids[-1]:
            raise InceValError(f"{mapping} line {line_number}: {wnid} is repeated or out of sorted "
                               "order; the standard class index needs the sorted Kaggle mapping")
        wnids.append(wnid)
    return class_order(wnids, str(mapping), "use Kaggle's complete mapping file")
