"""Compare two runs entry by entry and flag error rates that rose past a threshold.

For every (model, protocol) stored in both runs, the top-1 and top-5 errors on all images and on
the non-blacklisted ones are compared as ``current - baseline`` in percentage points. A rise
strictly greater than the threshold is a regression. An entry of the baseline that the current run
lacks counts as a regression too (a check that silently stopped running must not pass) unless
missing entries are ignored; entries new in the current run are listed only.

The default threshold, 0.05 pp (25 of 50,000 images), passes reruns that differ by a few near-tie
images (nondeterministic GPU kernels) and fails on changes to preprocessing or weights, which move
the errors by tenths of a point. Use 0 for bit-exact expectations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inceval.errors import InceValError
from inceval.store import RunReader, Score, images_difference

DEFAULT_MAX_ERROR_DELTA = 0.05
# Deltas come from differences of exact fractions; this only absorbs float rounding.
_EPSILON = 1e-9


@dataclass(frozen=True)
class MetricChange:
    """One error rate in both runs (percent) and its change (percentage points)."""

    baseline: float
    current: float
    delta: float
    regression: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"baseline": self.baseline, "current": self.current, "delta": self.delta,
                "regression": self.regression}


@dataclass(frozen=True)
class EntryChange:
    """Both errors of one (model, protocol, subset)."""

    model: str
    protocol: str
    subset: str
    baseline_protocol_version: int
    current_protocol_version: int
    baseline_images: int
    current_images: int
    top1: MetricChange
    top5: MetricChange

    @property
    def regression(self) -> bool:
        """Whether either error rose past the threshold."""
        return self.top1.regression or self.top5.regression

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return {
            "model": self.model, "protocol": self.protocol, "subset": self.subset,
            "baseline_protocol_version": self.baseline_protocol_version,
            "current_protocol_version": self.current_protocol_version,
            "protocol_version_changed":
                self.baseline_protocol_version != self.current_protocol_version,
            "baseline_images": self.baseline_images, "current_images": self.current_images,
            "top1": self.top1.to_dict(), "top5": self.top5.to_dict(),
            "regression": self.regression,
        }


@dataclass
class Comparison:
    """The outcome of :func:`compare_runs`."""

    baseline: RunReader
    current: RunReader
    max_error_delta: float
    images_difference: str | None
    ignore_missing: bool
    changes: list[EntryChange] = field(default_factory=list)
    missing_from_current: list[tuple[str, str]] = field(default_factory=list)
    new_in_current: list[tuple[str, str]] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        """Regressed rows, plus baseline entries missing from the current run unless ignored."""
        missing = 0 if self.ignore_missing else len(self.missing_from_current)
        return sum(change.regression for change in self.changes) + missing

    @property
    def exit_status(self) -> int:
        """1 when there is any regression, else 0."""
        return 1 if self.regressions else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result. ``throughput`` is reserved for a later speed comparison."""
        return {
            "schema": "inceval-compare",
            "schema_version": 1,
            "baseline": _run_summary(self.baseline),
            "current": _run_summary(self.current),
            "same_images": self.images_difference is None,
            "images_difference": self.images_difference,
            "max_error_delta_pp": self.max_error_delta,
            "accuracy": {
                "units": {"errors": "percent", "delta": "percentage points (current - baseline)"},
                "rows": [change.to_dict() for change in self.changes],
                "missing_from_current": [{"model": m, "protocol": p}
                                         for m, p in self.missing_from_current],
                "missing_counts_as_regression": not self.ignore_missing,
                "new_in_current": [{"model": m, "protocol": p} for m, p in self.new_in_current],
            },
            "throughput": None,
            "regressions": self.regressions,
            "status": "regression" if self.regressions else "ok",
            "exit_status": self.exit_status,
        }


def _run_summary(run: RunReader) -> dict[str, Any]:
    return {
        "run": str(run.run_dir),
        "fingerprint": run.fingerprint,
        "images": run.num_images,
        "non_blacklisted": int((~run.blacklisted).sum()),
        "inceval_version": run.manifest.get("inceval_version"),
    }


def compare_runs(
    baseline: RunReader,
    current: RunReader,
    *,
    max_error_delta: float = DEFAULT_MAX_ERROR_DELTA,
    allow_different_images: bool = False,
    ignore_missing: bool = False,
    allow_incomplete: bool = False,
) -> Comparison:
    """Compare every (model, protocol) the two runs share.

    Args:
        baseline: the reference run.
        current: the run under test.
        max_error_delta: largest allowed rise of any error, in percentage points (>= 0).
        allow_different_images: compare even when the runs' images, labels or blacklist differ.
        ignore_missing: do not count baseline entries absent from ``current`` as regressions.
        allow_incomplete: score unfinished prediction files on the rows written so far.

    Raises:
        InceValError: different images (unless allowed), a negative threshold, or an unreadable
            or incomplete prediction file.
    """
    if not max_error_delta >= 0:
        raise InceValError(f"--max-error-delta must be >= 0 percentage points, got "
                           f"{max_error_delta}")
    how = images_difference(baseline, current)
    if how and not allow_different_images:
        raise InceValError(f"runs {baseline.run_dir} and {current.run_dir} were not made on the "
                           f"same images: {how}; pass --allow-different-images to compare anyway")
    result = Comparison(baseline, current, max_error_delta, how, ignore_missing)
    current_entries = set(current.entries())
    baseline_entries = set(baseline.entries())
    for model, protocol in baseline.entries():
        if (model, protocol) not in current_entries:
            result.missing_from_current.append((model, protocol))
            continue
        old = baseline.score(model, protocol, allow_incomplete=allow_incomplete)
        new = current.score(model, protocol, allow_incomplete=allow_incomplete)
        for before, after in zip(old, new):
            if before.images and after.images:
                result.changes.append(_change(before, after, max_error_delta))
    result.new_in_current = [e for e in current.entries() if e not in baseline_entries]
    return result


def _change(before: Score, after: Score, threshold: float) -> EntryChange:
    def metric(old: float, new: float) -> MetricChange:
        delta = new - old
        return MetricChange(old, new, delta, delta > threshold + _EPSILON)

    return EntryChange(
        before.model, before.protocol, before.subset, before.protocol_version,
        after.protocol_version, before.images, after.images,
        metric(before.top1_error, after.top1_error), metric(before.top5_error, after.top5_error),
    )
