"""Compare two runs entry by entry and flag error rates that rose past a threshold.

For every (model, protocol) stored in both runs, the top-1 and top-5 errors on all images and on
the non-blacklisted ones are compared as ``current - baseline`` in percentage points. A rise
strictly greater than the threshold is a regression. An entry of the baseline that the current run
lacks counts as a regression too (a check that silently stopped running must not pass) unless
missing entries are ignored; entries new in the current run are listed only.

The default threshold, 0.05 pp (25 of 50,000 images), passes reruns that differ by a few near-tie
images (nondeterministic GPU kernels) and fails on changes to preprocessing or weights, which move
the errors by tenths of a point. Use 0 for bit-exact expectations.

Paired change: when both runs hold the same images, each error's change is also counted image by
image: ``turned_wrong`` images were right in the baseline and are wrong now, ``turned_right`` the
reverse (so delta = 100 (turned_wrong - turned_right) / images), and ``p_value`` is the exact
McNemar test of these discordant images (:func:`inceval.stats.mcnemar_exact`). With ``alpha``, a
rise is a regression only when it exceeds the threshold **and** ``p_value < alpha``; on a small
subset a handful of flips then does not fail a CI gate, while a real change does.

Calibration: each row also carries the negative log-likelihood and expected calibration error of
both runs (:func:`inceval.stats.calibration`); they are reported, never gated on.

Unreadable images (images.csv ``error`` column) are never scored. Two runs of the same images
that could not read the same ones are refused unless different images are allowed; then both are
scored, and paired, on the images both could read (``scored_difference`` says how they differ).

CI outputs: :func:`to_junit` (JUnit XML, one test case per model/protocol/subset/metric) and
:func:`to_markdown` (a summary for ``$GITHUB_STEP_SUMMARY``); docs/ci.md has the recipe.
"""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from inceval import stats
from inceval.errors import InceValError
from inceval.store import RunReader, Score, images_difference, scored_difference

DEFAULT_MAX_ERROR_DELTA = 0.05
# Deltas come from differences of exact fractions; this only absorbs float rounding.
_EPSILON = 1e-9
_METRICS = (("top1", 1, "top-1"), ("top5", 5, "top-5"))


@dataclass(frozen=True)
class MetricChange:
    """One error rate in both runs (percent) and its change (percentage points).

    Attributes:
        baseline: error of the baseline run.
        current: error of the current run.
        delta: current - baseline.
        regression: the verdict: ``exceeds_threshold`` and, when an alpha is set, ``significant``.
        exceeds_threshold: delta > the threshold.
        turned_wrong: images right in the baseline and wrong now (None when not paired).
        turned_right: images wrong in the baseline and right now (None when not paired).
        p_value: exact McNemar p-value of the discordant images (None when not paired).
        significant: p_value < alpha (None without an alpha).
    """

    baseline: float
    current: float
    delta: float
    regression: bool
    exceeds_threshold: bool = False
    turned_wrong: int | None = None
    turned_right: int | None = None
    p_value: float | None = None
    significant: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"baseline": self.baseline, "current": self.current, "delta": self.delta,
                "regression": self.regression, "exceeds_threshold": self.exceeds_threshold,
                "turned_wrong": self.turned_wrong, "turned_right": self.turned_right,
                "p_value": self.p_value, "significant": self.significant}


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
    baseline_calibration: stats.Calibration | None = None
    current_calibration: stats.Calibration | None = None

    @property
    def regression(self) -> bool:
        """Whether either error regressed (see :class:`MetricChange`)."""
        return self.top1.regression or self.top5.regression

    def calibration_dict(self) -> dict[str, Any] | None:
        """NLL and ECE of both runs and their changes (current - baseline), or None."""
        old, new = self.baseline_calibration, self.current_calibration
        if old is None or new is None:
            return None
        return {"baseline": old.to_dict(), "current": new.to_dict(),
                "nll_delta": new.nll - old.nll, "ece_delta": new.ece - old.ece}

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
            "calibration": self.calibration_dict(),
        }


@dataclass
class Comparison:
    """The outcome of :func:`compare_runs`."""

    baseline: RunReader
    current: RunReader
    max_error_delta: float
    images_difference: str | None
    ignore_missing: bool
    alpha: float | None = None
    scored_difference: str | None = None
    changes: list[EntryChange] = field(default_factory=list)
    missing_from_current: list[tuple[str, str]] = field(default_factory=list)
    new_in_current: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    finished_at: str = ""

    @property
    def rule(self) -> str:
        """The regression rule in words."""
        rule = f"an error rises by more than {self.max_error_delta:g} pp"
        if self.alpha is not None:
            rule += f" and the rise is significant (exact McNemar p < {self.alpha:g})"
        return rule

    @property
    def scored_on(self) -> str:
        """Which images each run was scored on, in words."""
        if self.images_difference is not None:
            return "each run's own readable images (different image lists)"
        if self.scored_difference is not None:
            return "the images both runs could read"
        return "the same images"

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
            "scored_difference": self.scored_difference,
            "scored_on": self.scored_on,
            "max_error_delta_pp": self.max_error_delta,
            "alpha": self.alpha,
            "rule": f"regression when {self.rule}",
            "accuracy": {
                "units": {"errors": "percent", "delta": "percentage points (current - baseline)",
                          "p_value": "exact McNemar test of turned_wrong vs turned_right",
                          "nll": "nats per image", "ece": "percent"},
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
        "images_unreadable": run.num_unreadable,
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
    alpha: float | None = None,
) -> Comparison:
    """Compare every (model, protocol) the two runs share.

    Args:
        baseline: the reference run.
        current: the run under test.
        max_error_delta: largest allowed rise of any error, in percentage points (>= 0).
        allow_different_images: compare even when the runs' images, labels or blacklist differ,
            or when runs of the same images could not read the same ones (both are then scored
            on the images both could read).
        ignore_missing: do not count baseline entries absent from ``current`` as regressions.
        allow_incomplete: score unfinished prediction files on the rows written so far.
        alpha: significance level in (0, 1); a rise past the threshold is then a regression only
            when its exact McNemar p-value is below ``alpha``. None: the threshold alone.

    Raises:
        InceValError: different images or different unreadable images (unless allowed), a
            negative threshold, an alpha outside (0, 1) or without paired images, or an
            unreadable, damaged or incomplete prediction file.
    """
    started = time.monotonic()
    if not max_error_delta >= 0:
        raise InceValError(f"--max-error-delta must be >= 0 percentage points, got "
                           f"{max_error_delta}")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise InceValError(f"--alpha must lie strictly between 0 and 1 (e.g. 0.01), got {alpha}")
    how = images_difference(baseline, current)
    if how and not allow_different_images:
        raise InceValError(f"runs {baseline.run_dir} and {current.run_dir} were not made on the "
                           f"same images: {how}; pass --allow-different-images to compare anyway")
    if how and alpha is not None:
        raise InceValError(f"--alpha needs both runs on the same images to pair them, but {how}; "
                           "drop --alpha to compare by threshold only")
    scored_how = None if how else scored_difference(baseline, current)
    if scored_how and not allow_different_images:
        raise InceValError(f"runs {baseline.run_dir} and {current.run_dir} did not score the same "
                           f"images: {scored_how}; pass --allow-different-images to compare them "
                           "on the images both could read")
    # Same images: each run leaves out what either could not read. Different lists: its own.
    both = (baseline.unreadable | current.unreadable) if how is None else None
    result = Comparison(baseline, current, max_error_delta, how, ignore_missing, alpha,
                        scored_difference=scored_how)
    current_entries = set(current.entries())
    baseline_entries = set(baseline.entries())
    for model, protocol in baseline.entries():
        if (model, protocol) not in current_entries:
            result.missing_from_current.append((model, protocol))
            continue
        old = baseline.score(model, protocol, allow_incomplete=allow_incomplete,
                             unreadable=both)
        new = current.score(model, protocol, allow_incomplete=allow_incomplete,
                            unreadable=both)
        old_images = stats.per_image(baseline, model, protocol, allow_incomplete=allow_incomplete)
        new_images = stats.per_image(current, model, protocol, allow_incomplete=allow_incomplete)
        paired = how is None and len(old_images.top1_correct) == len(new_images.top1_correct)
        if alpha is not None and not paired:
            raise InceValError(f"--alpha needs both {model}/{protocol} files scored on the same "
                               "images, but an unfinished file has fewer rows; finish the runs "
                               "or drop --alpha")
        for before, after in zip(old, new):
            if not (before.images and after.images):
                continue
            old_keep = _kept(old_images, before.subset, baseline, both)
            new_keep = _kept(new_images, after.subset, current, both)
            if paired:  # both on the images both scored
                old_keep = new_keep = old_keep & new_keep
            result.changes.append(_change(before, after, max_error_delta, alpha,
                                          old_images.subset(old_keep),
                                          new_images.subset(new_keep), paired))
    result.new_in_current = [e for e in current.entries() if e not in baseline_entries]
    result.elapsed_s = time.monotonic() - started
    # The JUnit schema's timestamp has no zone designator; this is UTC.
    result.finished_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return result


def _kept(vectors: stats.PerImage, subset: str, run: RunReader,
          left_out: np.ndarray | None) -> np.ndarray:
    """(n,) bool: the scored images of ``subset`` ("all" or "non-blacklisted", by the run's own
    blacklist) among the rows ``vectors`` cover, less those in ``left_out``."""
    keep = vectors.scored_mask.copy()
    if subset != "all":
        keep &= ~run.blacklisted[: len(keep)]
    if left_out is not None:
        keep &= ~left_out[: len(keep)]
    return keep


def _change(before: Score, after: Score, threshold: float, alpha: float | None,
            old: stats.PerImage, new: stats.PerImage, paired: bool) -> EntryChange:
    def metric(old_error: float, new_error: float, k: int) -> MetricChange:
        delta = new_error - old_error
        exceeds = delta > threshold + _EPSILON
        if not paired:
            return MetricChange(old_error, new_error, delta, exceeds, exceeds)
        was_right, is_right = old.correct(k), new.correct(k)
        turned_wrong = int((was_right & ~is_right).sum())
        turned_right = int((~was_right & is_right).sum())
        p_value = stats.mcnemar_exact(turned_wrong, turned_right)
        significant = None if alpha is None else p_value < alpha
        regression = exceeds and (alpha is None or bool(significant))
        return MetricChange(old_error, new_error, delta, regression, exceeds, turned_wrong,
                            turned_right, p_value, significant)

    return EntryChange(
        before.model, before.protocol, before.subset, before.protocol_version,
        after.protocol_version, before.images, after.images,
        metric(before.top1_error, after.top1_error, 1),
        metric(before.top5_error, after.top5_error, 5),
        old.calibration(), new.calibration(),
    )


# ----------------------------------------------------------------------------------------------
# CI outputs


def _cases(result: Comparison) -> list[tuple[str, str, str | None, bool]]:
    """(name, classname, failure message or None, skipped) of every JUnit test case."""
    cases = []
    for change in result.changes:
        subset = "all images" if change.subset == "all" else "non-blacklisted images"
        for key, _, label in _METRICS:
            metric: MetricChange = getattr(change, key)
            name = f"{change.model}/{change.protocol} {label} error, {subset}"
            message = None
            if metric.regression:
                message = (f"{label} error rose {metric.delta:+.4f} pp ({metric.baseline:.4f}% -> "
                           f"{metric.current:.4f}%, {change.current_images} images"
                           f"{_flips(metric)}); regression when {result.rule}")
            cases.append((name, "inceval.compare", message, False))
    for model, protocol in result.missing_from_current:
        name = f"{model}/{protocol} present in the current run"
        message = f"{model}/{protocol} is in the baseline but not in the current run"
        cases.append((name, "inceval.compare", None if result.ignore_missing else message,
                      result.ignore_missing))
    return cases


def _flips(metric: MetricChange) -> str:
    if metric.turned_wrong is None:
        return ""
    return (f"; {metric.turned_wrong} turned wrong, {metric.turned_right} turned right, "
            f"McNemar p = {metric.p_value:.4g}")


def to_junit(result: Comparison) -> str:
    """JUnit XML of a comparison: one test case per model/protocol/subset/metric (a failure when
    it regressed) and one per baseline entry missing from the current run (a failure, or skipped
    with ``ignore_missing``). Read by GitHub Actions reporters, GitLab and Jenkins."""
    cases = _cases(result)
    failures = sum(message is not None for _, _, message, _ in cases)
    skipped = sum(skip for *_, skip in cases)
    elapsed = f"{result.elapsed_s:.3f}"
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0",
              "skipped": str(skipped), "time": elapsed}
    root = ET.Element("testsuites", {"name": "inceval compare", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": f"inceval compare {result.baseline.run_dir} -> {result.current.run_dir}",
        **counts, "timestamp": result.finished_at or "", "hostname": socket.gethostname(),
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("baseline", str(result.baseline.run_dir)),
                        ("current", str(result.current.run_dir)),
                        ("max_error_delta_pp", f"{result.max_error_delta:g}"),
                        ("alpha", "" if result.alpha is None else f"{result.alpha:g}"),
                        ("rule", f"regression when {result.rule}")):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for name, classname, message, skip in cases:
        case = ET.SubElement(suite, "testcase", {"name": name, "classname": classname,
                                                 "time": "0"})
        if message is not None:
            failure = ET.SubElement(case, "failure", {"message": message, "type": "regression"})
            failure.text = message
        elif skip:
            ET.SubElement(case, "skipped", {"message": "ignored (--ignore-missing)"})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def to_markdown(result: Comparison) -> str:
    """A Markdown summary (for ``$GITHUB_STEP_SUMMARY``): verdict, rule, one row per metric,
    missing and new entries, calibration."""
    status = "REGRESSION" if result.regressions else "OK"
    out = [f"## inceval compare: {status}", "",
           f"Baseline `{result.baseline.run_dir}`, current `{result.current.run_dir}`. "
           f"Regression when {result.rule}.", ""]
    if result.images_difference:
        out += [f"Warning: {result.images_difference}; compared anyway (no paired counts).", ""]
    if result.scored_difference:
        out += [f"Note: {result.scored_difference}; both runs scored on the images both could "
                "read.", ""]
    out += ["| Model | Protocol | Subset | Metric | Images | Baseline % | Current % | Change pp "
            "| Turned wrong | Turned right | p (McNemar) | Status |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for change in result.changes:
        for key, _, label in _METRICS:
            metric: MetricChange = getattr(change, key)
            counts = ["-" if metric.turned_wrong is None else f"{metric.turned_wrong:,}",
                      "-" if metric.turned_right is None else f"{metric.turned_right:,}"]
            out.append("| " + " | ".join([
                change.model, change.protocol, change.subset, label, f"{change.current_images:,}",
                f"{metric.baseline:.2f}", f"{metric.current:.2f}", f"{metric.delta:+.2f}",
                *counts, _p(metric.p_value), _status(metric, result.alpha),
            ]) + " |")
    for model, protocol in result.missing_from_current:
        label = "missing (ignored)" if result.ignore_missing else "**REGRESSION**: missing"
        out.append(f"\n- {label}: `{model}/{protocol}` is in the baseline but not in the "
                   "current run")
    for model, protocol in result.new_in_current:
        out.append(f"\n- new: `{model}/{protocol}` is only in the current run")
    calibrated = [c for c in result.changes if c.calibration_dict() is not None]
    if calibrated:
        out += ["", "Calibration (NLL in nats per image, ECE in %, 15 bins; not gated):", "",
                "| Model | Protocol | Subset | NLL base | NLL now | ECE base | ECE now |",
                "|---|---|---|---:|---:|---:|---:|"]
        for change in calibrated:
            old, new = change.baseline_calibration, change.current_calibration
            out.append(f"| {change.model} | {change.protocol} | {change.subset} | {old.nll:.4f} "
                       f"| {new.nll:.4f} | {old.ece:.2f} | {new.ece:.2f} |")
    verdict = (f"**{result.regressions} regression(s)**" if result.regressions
               else "No regression.")
    out += ["", verdict, ""]
    return "\n".join(out)


def _status(metric: MetricChange, alpha: float | None) -> str:
    if metric.regression:
        return "**REGRESSION**"
    if metric.exceeds_threshold and alpha is not None:
        return "rise not significant"
    return "ok"
