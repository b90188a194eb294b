"""The bench result file: a versioned JSON document, its rows, and reading it back checked.

Shape (schema version 1)::

    {"format": "inceval-bench", "schema_version": 1, "created_at": ..., "inceval": ...,
     "command": ..., "machine": {...}, "settings": {...}, "data": {...}, "models": {...},
     "reference": {"workload": "conv-stack", "version": 1, "rate": R, ...},
     "gemm": {"dtype": ..., "tflop_per_s": G, ...}, "feeder": {"available": bool, ...},
     "rows": [{"model", "protocol", "stage", "views_per_s", "reference_rate", "normalised",
               ...}, ...]}

A row is one model x protocol x stage; ``normalised = views_per_s / reference_rate``, the rate of
the reference workload measured around that row in the same run (``reference.rate`` is the
median over the run). Files are recognised by their content (``"format": "inceval-bench"``),
never by their name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inceval.errors import InceValError

FORMAT = "inceval-bench"
SCHEMA_VERSION = 1
# Larger files are not bench results (a few hundred rows are a few hundred KB).
_MAX_BYTES = 64 * 1024 * 1024
_ROW_TEXT = ("model", "protocol", "stage")
_ROW_NUMBERS = ("views_per_s", "images_per_s", "views_per_image", "images", "seconds")


@dataclass(frozen=True)
class BenchResult:
    """A checked bench document.

    Attributes:
        path: the file it was read from (or ``"<memory>"``).
        document: the whole JSON document.
    """

    path: str
    document: dict[str, Any]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The measured rows, in file order."""
        return self.document["rows"]

    @property
    def reference_rate(self) -> float:
        """The reference workload's rate of this run (passes/s)."""
        return float(self.document["reference"]["rate"])

    def keyed_rows(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """(model, protocol, stage) -> row."""
        return {row_key(row): row for row in self.rows}


def row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """The identity of a row: (model, protocol, stage)."""
    return (row["model"], row["protocol"], row["stage"])


def normalise(views_per_s: float, reference_rate: float) -> float:
    """Throughput in views per reference pass: the machine-independent part of a rate."""
    return views_per_s / reference_rate


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _fail(source: str, what: str) -> InceValError:
    return InceValError(f"{source}: {what}; regenerate it with `inceval bench --json FILE`")


def validate(document: Any, source: str = "<memory>") -> BenchResult:
    """Check the keys and types ``inceval compare`` relies on.

    Args:
        document: the parsed JSON.
        source: the file name, for messages.

    Raises:
        InceValError: one line naming the file and the first problem.
    """
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InceValError(f"{source} is not an inceval bench result (no \"format\": "
                           f"\"{FORMAT}\"); give a file written by `inceval bench --json`")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InceValError(f"{source}: bench schema_version {version!r} is not supported by "
                           f"this inceval (reads {SCHEMA_VERSION}); regenerate it with this "
                           "version's `inceval bench --json FILE`")
    reference = document.get("reference")
    if not isinstance(reference, dict) or not _is_number(reference.get("rate")) \
            or reference["rate"] <= 0:
        raise _fail(source, "reference.rate is missing or not a positive number")
    for key in ("workload", "version"):
        if key not in reference:
            raise _fail(source, f"reference.{key} is missing")
    for key in ("settings", "machine"):
        if not isinstance(document.get(key), dict):
            raise _fail(source, f"\"{key}\" is missing or not an object")
    rows = document.get("rows")
    if not isinstance(rows, list):
        raise _fail(source, "\"rows\" is missing or not a list")
    seen: set[tuple[str, str, str]] = set()
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise _fail(source, f"row {number} is not an object")
        for key in _ROW_TEXT:
            if not isinstance(row.get(key), str) or not row[key]:
                raise _fail(source, f"row {number}: \"{key}\" is missing or not a string")
        for key in _ROW_NUMBERS:
            if not _is_number(row.get(key)) or row[key] < 0:
                raise _fail(source, f"row {number} ({'/'.join(row_key(row))}): \"{key}\" is "
                                    "missing or not a number >= 0")
        for key in ("views_per_s", "normalised"):
            if not _is_number(row.get(key)) or row[key] <= 0:
                raise _fail(source, f"row {number} ({'/'.join(row_key(row))}): \"{key}\" is "
                                    "missing or not a number > 0")
        if row_key(row) in seen:
            raise _fail(source, f"row {number}: {'/'.join(row_key(row))} appears twice")
        seen.add(row_key(row))
    return BenchResult(source, document)


def is_bench_file(path: str | Path) -> bool:
    """Whether ``path`` is a file whose JSON says it is a bench result (it may still be invalid)."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > _MAX_BYTES:
            return False
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(document, dict) and document.get("format") == FORMAT


def read_bench(path: str | Path) -> BenchResult:
    """Read and check a bench result file.

    Raises:
        InceValError: unreadable, not JSON, not a bench result, or malformed (one line).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InceValError(f"{source}: cannot read the bench result ({reason}); give the file "
                           "written by `inceval bench --json`") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InceValError(f"{source}: not valid JSON ({exc}); give the file written by "
                           "`inceval bench --json`") from None
    return validate(document, source)


def write_bench(path: str | Path, document: dict[str, Any]) -> None:
    """Write a bench document (checked first) as indented JSON.

    Raises:
        InceValError: the file cannot be written.
    """
    validate(document)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InceValError(f"--json {path}: cannot write ({exc.strerror or exc}); give a "
                           "writable file path") from None
