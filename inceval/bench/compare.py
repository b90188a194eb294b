"""Two bench results compared on normalised throughput: the throughput regression gate.

A row's normalised throughput is its views/s divided by the reference workload's rate measured
in the same bench run. Its ratio ``current / baseline`` says how much faster (> 1) or slower (< 1)
the code got, largely independent of how busy or fast each machine was. A row is a regression
when the ratio falls below ``1 - max_slowdown``: with ``max_slowdown = 0.5`` only a normalised
slowdown beyond 2x fails.

Results measured differently (dtype, backend, batch size, device type, input sizes, reference
workload version ...) are refused: their ratios would not measure the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inceval.bench.result import BenchResult, row_key
from inceval.errors import InceValError

DEFAULT_MAX_SLOWDOWN = 0.2
# Settings that change the work behind one view; results that differ in one are not comparable.
COMPARED_SETTINGS = ("dtype", "backend", "batch_size", "max_views_per_forward", "workers",
                     "threads", "compile", "tf32")

Key = tuple[str, str, str]


@dataclass(frozen=True)
class RowChange:
    """One model/protocol/stage measured in both results.

    Attributes:
        key: (model, protocol, stage).
        baseline_views_per_s: raw rate of the baseline.
        current_views_per_s: raw rate of the current result.
        baseline_normalised: baseline views/s per reference pass/s.
        current_normalised: current views/s per reference pass/s.
        ratio: ``current_normalised / baseline_normalised``.
        regression: the ratio fell below ``1 - max_slowdown``.
    """

    key: Key
    baseline_views_per_s: float
    current_views_per_s: float
    baseline_normalised: float
    current_normalised: float
    ratio: float
    regression: bool

    @property
    def change(self) -> float:
        """Relative change of normalised throughput (-0.25: a quarter slower)."""
        return self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        model, protocol, stage = self.key
        return {"model": model, "protocol": protocol, "stage": stage,
                "baseline_views_per_s": self.baseline_views_per_s,
                "current_views_per_s": self.current_views_per_s,
                "baseline_normalised": self.baseline_normalised,
                "current_normalised": self.current_normalised,
                "ratio": self.ratio, "change": self.change,
                "status": "regression" if self.regression else "ok"}


@dataclass(frozen=True)
class BenchComparison:
    """The outcome of comparing two bench results.

    Attributes:
        baseline: the reference result.
        current: the result under test.
        max_slowdown: the largest allowed fall of normalised throughput (a fraction).
        ignore_missing: rows of the baseline that the current result lacks are not regressions.
        changes: rows in both, in baseline order.
        missing_from_current: baseline rows the current result lacks.
        new_in_current: current rows the baseline lacks (reported only).
        warnings: differences that do not prevent the comparison (data, machine).
    """

    baseline: BenchResult
    current: BenchResult
    max_slowdown: float
    ignore_missing: bool
    changes: list[RowChange]
    missing_from_current: list[Key]
    new_in_current: list[Key]
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        """Slower rows, plus missing rows unless ignored."""
        slower = sum(change.regression for change in self.changes)
        return slower + (0 if self.ignore_missing else len(self.missing_from_current))

    @property
    def exit_status(self) -> int:
        """1 with any regression, else 0."""
        return 1 if self.regressions else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, every number unrounded."""
        return {
            "kind": "bench",
            "baseline": self.baseline.path,
            "current": self.current.path,
            "max_slowdown": self.max_slowdown,
            "baseline_reference_rate": self.baseline.reference_rate,
            "current_reference_rate": self.current.reference_rate,
            "rows": [change.to_dict() for change in self.changes],
            "missing_from_current": ["/".join(key) for key in self.missing_from_current],
            "new_in_current": ["/".join(key) for key in self.new_in_current],
            "ignore_missing": self.ignore_missing,
            "warnings": list(self.warnings),
            "regressions": self.regressions,
            "status": "regression" if self.exit_status else "ok",
            "exit_status": self.exit_status,
        }


def check_max_slowdown(value: float) -> float:
    """``--max-slowdown`` must be a fraction in [0, 1).

    Raises:
        InceValError: naming the option.
    """
    if not 0.0 <= value < 1.0:
        raise InceValError(f"--max-slowdown {value:g} is not a fraction in [0, 1); e.g. 0.2 "
                           "fails when normalised throughput falls by more than 20%")
    return value


def _device_type(result: BenchResult) -> str:
    return str(result.document["settings"].get("device", "")).split(":")[0]


def _mismatch(baseline: BenchResult, current: BenchResult, what: str, old: Any,
              new: Any) -> InceValError:
    return InceValError(f"{baseline.path} and {current.path} were measured with different "
                        f"{what} ({old} vs {new}); compare bench results made with the same "
                        "settings")


def check_comparable(baseline: BenchResult, current: BenchResult) -> list[str]:
    """Refuse results measured differently; return warnings for harmless differences.

    Raises:
        InceValError: one line naming both files and the first difference.
    """
    old_ref, new_ref = baseline.document["reference"], current.document["reference"]
    for key in ("workload", "version"):
        if old_ref.get(key) != new_ref.get(key):
            raise _mismatch(baseline, current, f"reference {key}", old_ref.get(key),
                            new_ref.get(key))
    if _device_type(baseline) != _device_type(current):
        raise _mismatch(baseline, current, "device types", _device_type(baseline),
                        _device_type(current))
    old_settings, new_settings = baseline.document["settings"], current.document["settings"]
    for key in COMPARED_SETTINGS:
        if old_settings.get(key) != new_settings.get(key):
            raise _mismatch(baseline, current, key, old_settings.get(key),
                            new_settings.get(key))
    current_rows = current.keyed_rows()
    for key, row in baseline.keyed_rows().items():
        other = current_rows.get(key)
        if other is None:
            continue
        for field_name in ("input_size", "views_per_image"):
            if row.get(field_name) != other.get(field_name):
                raise _mismatch(baseline, current, f"{field_name} for {'/'.join(key)}",
                                row.get(field_name), other.get(field_name))
    warnings = []
    old_data, new_data = baseline.document.get("data") or {}, current.document.get("data") or {}
    if old_data.get("fingerprint") != new_data.get("fingerprint"):
        warnings.append("the two results were measured on different images; normalised "
                        "rates still compare, decoding costs may differ")
    return warnings


def compare_bench(baseline: BenchResult, current: BenchResult, *,
                  max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
                  ignore_missing: bool = False) -> BenchComparison:
    """Compare normalised throughput row by row.

    Args:
        baseline: the reference result.
        current: the result under test.
        max_slowdown: a row whose normalised throughput falls by more than this fraction is a
            regression (0.2: more than 20% slower).
        ignore_missing: do not count baseline rows that the current result lacks.

    Raises:
        InceValError: a threshold outside [0, 1) or results measured with different settings.
    """
    check_max_slowdown(max_slowdown)
    warnings = check_comparable(baseline, current)
    current_rows = current.keyed_rows()
    baseline_rows = baseline.keyed_rows()
    changes = []
    for key, old in baseline_rows.items():
        new = current_rows.get(key)
        if new is None:
            continue
        ratio = new["normalised"] / old["normalised"]
        changes.append(RowChange(key, old["views_per_s"], new["views_per_s"], old["normalised"],
                                 new["normalised"], ratio, ratio < 1.0 - max_slowdown))
    missing = [key for key in baseline_rows if key not in current_rows]
    new_keys = [row_key(row) for row in current.rows if row_key(row) not in baseline_rows]
    return BenchComparison(baseline, current, max_slowdown, ignore_missing, changes, missing,
                           new_keys, warnings)
