"""The paper's Tables 1-4 as pandas DataFrames, built from stored runs.

Which stored predictions go where (each row beside the paper's value and ours - paper):

* Table 1 (non-blacklisted images): single models under protocols "1" and "1-slim".
* Table 2 (all images): single models under the 10- and 12-crop protocols ("10", "10-full",
  "12", "12-image", "12-3sq", "12-resized"); a paper value is shown only when the crop counts
  match (the paper's Inception rows are 12-crop).
* Table 3 (all images): single models under "144".
* Table 4 (all images): ensembles under "144"; the paper's rows are matched by the members'
  architectures and require equal member weights.
* "checkpoints" (all images, protocol "1" only): single models whose weights tag has a published
  timm accuracy, beside that figure (converted to error).
* "other" (all images): every remaining entry (custom protocols, ensembles under other protocols),
  so nothing stored is silently dropped.

Rows the runs do not cover are omitted; a table with no measured row is left out. With
``paper=True`` the paper's rows for networks inceval cannot evaluate (BN-Inception, ResNet) are
added as reference rows, and the paper/delta columns are filled; with ``paper=False`` those columns
and the checkpoint table are dropped. Errors are percentages; deltas are percentage points.

Uncertainty (``ci=True``, :data:`CI_COLUMNS` and :data:`PAPER_CI_COLUMNS`): every measured error
gets its exact 95% (Clopper-Pearson) interval. The paper's value is a constant, so the interval of
ours - paper is our interval minus it, and ``paper_top1_inside`` says whether the paper's value
lies in our interval. Differences between two measurements on the same images (a model's 10/12/144
crops against its 1 crop, an ensemble against its best member) are in a separate table,
:func:`build_differences`, with paired bootstrap intervals. ``calibration=True`` adds the
negative log-likelihood and expected calibration error of each row (:mod:`inceval.stats`).

Unreadable images (a run's images.csv ``error`` column) are left out of every row and every
difference; ``images`` counts the scored ones. When any row left some out, every frame gets
:data:`UNREADABLE_COLUMNS` and each table a note such as "49,998 scored, 2 unreadable"; runs whose
every image was read give the same tables as before unreadable images were recorded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from inceval import stats
from inceval.engine.metrics import TIE_RULE
from inceval.errors import InceValError
from inceval.reports import paper as paper_data
from inceval.store import ERROR_COLUMN, IMAGES, RunReader, Score, images_difference

TABLE_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "1": ("1", "1-slim"),
    "2": ("10", "10-full", "12", "12-image", "12-3sq", "12-resized"),
    "3": ("144",),
    "4": ("144",),
}
_PROTOCOL_ORDER = [p for key in ("1", "2", "3") for p in TABLE_PROTOCOLS[key]]

# Machine-readable columns of every table frame, in order.
COLUMNS = (
    "run", "model", "weights", "network", "members", "protocol", "protocol_version", "crops",
    "subset", "images", "expected_images", "top1", "top5", "top1_wrong", "top5_wrong",
    "top1_tie_dependent", "top5_tie_dependent", "complete", "reference", "paper_top1",
    "paper_top5", "delta_top1", "delta_top5", "footnote", "dataset",
)
PAPER_COLUMNS = ("reference", "paper_top1", "paper_top5", "delta_top1", "delta_top5", "footnote")
# Added with ``ci=True``: exact interval of each error (percent) ...
CI_COLUMNS = ("top1_ci_low", "top1_ci_high", "top5_ci_low", "top5_ci_high")
# ... and, beside a reference value, the interval of ours - reference and whether it is inside.
PAPER_CI_COLUMNS = ("delta_top1_ci_low", "delta_top1_ci_high", "delta_top5_ci_low",
                    "delta_top5_ci_high", "paper_top1_inside", "paper_top5_inside")
# Added with ``calibration=True``: NLL (nats per image) and ECE (percent).
CALIBRATION_COLUMNS = ("nll", "ece")
# Added when a row left out unreadable images: images scored (= ``images``) and left out.
UNREADABLE_COLUMNS = ("images_scored", "images_unreadable")
# Columns of the differences table (:func:`build_differences`), one row per metric.
DIFFERENCE_COLUMNS = (
    "run", "model", "protocol", "comparison", "against", "subset", "metric", "images", "error",
    "against_error", "delta", "delta_ci_low", "delta_ci_high", "only_ours_wrong",
    "only_against_wrong", "p_value", "resamples", "seed",
)
# Multi-crop protocols compared with protocol "1" of the same model and run.
_CROP_DIFFERENCE_PROTOCOLS = TABLE_PROTOCOLS["2"] + TABLE_PROTOCOLS["3"]


@dataclass
class ReportTable:
    """One table of the report.

    Attributes:
        key: "1".."4", "checkpoints" or "other".
        title: caption.
        subset: "all" or "non-blacklisted".
        expected_images: the image count of the paper's table (None for "other").
        reference_label: what the reference columns hold ("paper", "timm"), or None.
        frame: one row per measured (or reference) entry, columns :data:`COLUMNS` (without
            :data:`PAPER_COLUMNS` when the paper is not shown).
        notes: footnotes and warnings, one line each.
    """

    key: str
    title: str
    subset: str
    expected_images: int | None
    reference_label: str | None
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunInfo:
    """A run as the report names it.

    Attributes:
        label: the run's name in the tables.
        run_dir: its directory.
        fingerprint: ``data.fingerprint``.
        images: images in the run, unreadable ones included.
        non_blacklisted: of those, the images not blacklisted.
        images_scored: images that could be read (scored).
        images_unreadable: images that could not be read (never scored).
    """

    label: str
    run_dir: str
    fingerprint: str
    images: int
    non_blacklisted: int
    images_scored: int
    images_unreadable: int


def run_labels(runs: Sequence[RunReader]) -> list[str]:
    """Directory names, or the paths as given where two runs share a name."""
    names = [os.path.basename(os.path.normpath(run.run_dir)) for run in runs]
    return [str(run.run_dir) if names.count(name) > 1 else name
            for run, name in zip(runs, names)]


def describe_runs(runs: Sequence[RunReader]) -> list[RunInfo]:
    """Label, path, fingerprint and image counts of each run."""
    return [
        RunInfo(label, str(run.run_dir), run.fingerprint, run.num_images,
                int((~run.blacklisted).sum()), run.num_images - run.num_unreadable,
                run.num_unreadable)
        for run, label in zip(runs, run_labels(runs))
    ]


class PerImageCache:
    """Per-image vectors (:class:`inceval.stats.PerImage`) of prediction files, read once each."""

    def __init__(self, allow_incomplete: bool = False) -> None:
        self._allow_incomplete = allow_incomplete
        self._store: dict[tuple[str, str, str], stats.PerImage] = {}

    def get(self, run: RunReader, model: str, protocol: str) -> stats.PerImage:
        """The vectors of ``model``/``protocol`` in ``run`` (rows written so far if allowed)."""
        key = (os.path.abspath(run.run_dir), model, protocol)
        if key not in self._store:
            self._store[key] = stats.per_image(run, model, protocol,
                                               allow_incomplete=self._allow_incomplete)
        return self._store[key]


def build_tables(runs: Sequence[RunReader], *, paper: bool = True,
                 allow_incomplete: bool = False, ci: bool = False, calibration: bool = False,
                 confidence: float = stats.CONFIDENCE,
                 cache: PerImageCache | None = None, real: bool = False) -> list[ReportTable]:
    """Score every stored entry of ``runs`` and arrange the scores as the paper's tables.

    Args:
        runs: runs to report, in the order their rows should appear.
        paper: add the paper's values, differences and reference rows.
        allow_incomplete: score unfinished prediction files on their rows written so far
            (marked ``complete`` False) instead of refusing them.
        ci: add exact intervals of every error (:data:`CI_COLUMNS`, and with ``paper``
            :data:`PAPER_CI_COLUMNS`).
        calibration: add :data:`CALIBRATION_COLUMNS` (reads every prediction file once more).
        confidence: coverage of the intervals.
        cache: per-image vectors shared with :func:`build_differences`.
        real: add the "real" table: every entry of the ImageNet runs rescored against the ReaL
            labels (:mod:`inceval.reports.real`), beside timm's published ReaL figures.

    Runs of other evaluation sets (ImageNetV2, -Sketch, -A, -R; the manifest's ``data.dataset``)
    go to the "datasets" table beside timm's figures for that set, never to Tables 1-4.

    Raises:
        InceValError: no prediction files in ``runs``, or an incomplete one (unless allowed);
            with ``real``, no run of ILSVRC-2012 validation images.
    """
    cache = cache or PerImageCache(allow_incomplete)
    measured: dict[str, list[dict[str, Any]]] = {k: [] for k in ("1", "2", "3", "4",
                                                                 "checkpoints", "other",
                                                                 "datasets", "real")}
    for run_index, (run, label) in enumerate(zip(runs, run_labels(runs))):
        for model, protocol in run.entries():
            scores = run.score(model, protocol, allow_incomplete=allow_incomplete)
            for key, row in _place(run, label, model, protocol, scores):
                row["_order"] = (run_index, _protocol_rank(protocol), model)
                if ci:
                    _add_intervals(row, confidence)
                if calibration:
                    vectors = cache.get(run, model, protocol)
                    if row["subset"] == "non-blacklisted":
                        vectors = vectors.subset(~run.blacklisted[: len(vectors.top1_correct)])
                    result = vectors.calibration()
                    row.update(nll=result.nll, ece=result.ece)
                measured[key].append(row)
    if not any(measured.values()):
        raise InceValError("the runs hold no prediction files; run `inceval run` first")
    real_notes: list[str] = []
    if real:
        measured["real"], real_notes = _real_rows(runs, ci, confidence, allow_incomplete)
    columns = list(COLUMNS)
    if ci:
        columns += [*CI_COLUMNS, *PAPER_CI_COLUMNS]
    if calibration:
        columns += list(CALIBRATION_COLUMNS)
    if any(row["images_unreadable"] for rows in measured.values() for row in rows):
        columns += list(UNREADABLE_COLUMNS)
    tables = [table for table in (_table(key, rows, paper, columns)
                                  for key, rows in measured.items())
              if table is not None]
    for table in tables:
        if table.key == "1":
            table.notes[:0] = _blacklist_notes(runs)
        if table.key == "real":
            table.notes[:0] = real_notes
    return tables


def _blacklist_notes(runs: Sequence[RunReader]) -> list[str]:
    """Why a run's Table 1 rows cover all its images: no blacklist given, or none selected."""
    notes = []
    for run, label in zip(runs, run_labels(runs)):
        if run.blacklisted.any() or run.dataset != "imagenet":
            continue
        given = run.manifest["data"].get("blacklist")
        if given:
            notes.append(f"Blacklist: run {label} applied {given}, but none of its "
                         f"{run.num_images:,} images is on it, so its rows cover all its images.")
        else:
            notes.append(f"Blacklist: run {label} was made without --blacklist (e.g. "
                         "--blacklist ilsvrc2014), so its rows cover all its images.")
    return notes


def _real_rows(runs: Sequence[RunReader], ci: bool, confidence: float,
               allow_incomplete: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the "real" table, and notes on the runs that have none."""
    from inceval.reports.published import published
    from inceval.reports.real import score_run_real

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for run_index, (run, label) in enumerate(zip(runs, run_labels(runs))):
        try:
            scores = score_run_real(run, allow_incomplete=allow_incomplete)
        except InceValError as exc:
            notes.append(f"ReaL: no rows for run {label}: {exc}")
            continue
        for score in scores:
            info = run.manifest["models"].get(score.model, {})
            tag = None if paper_data.is_ensemble(info) else info.get("weights_tag")
            reference = published("real", tag) if score.protocol == "1" else None
            version = run.status(score.model, score.protocol).protocol_version
            base = _base_row(run, label, score.model, score.protocol, version)
            base["dataset"] = "imagenet-real"
            row = _row(base, Score(score.model, score.protocol, version, "all", score.images,
                                   score.top1_error, score.top5_error, score.top1_wrong,
                                   score.top5_wrong, score.top1_tie_dependent,
                                   score.top5_tie_dependent, unreadable=score.unreadable),
                       reference)
            row["_order"] = (run_index, _protocol_rank(score.protocol), score.model)
            if ci:
                _add_intervals(row, confidence)
            rows.append(row)
            if score.excluded:
                notes.append(f"ReaL: {label} {score.model} {score.protocol}: {score.images:,} "
                             f"images scored, {score.excluded:,} excluded (empty ReaL set).")
    if not rows:
        raise InceValError("--real: no run holds ILSVRC-2012 validation images with ReaL labels ("
                           + "; ".join(notes) + ")")
    return rows, notes


def _add_intervals(row: dict[str, Any], confidence: float) -> None:
    """Clopper-Pearson interval of each error of ``row``, and where the reference value lies."""
    for k in ("1", "5"):
        low, high = stats.error_interval_pp(int(row[f"top{k}_wrong"]), int(row["images"]),
                                            confidence)
        row[f"top{k}_ci_low"], row[f"top{k}_ci_high"] = low, high
        reference = row.get(f"paper_top{k}")
        if reference is None:
            row[f"delta_top{k}_ci_low"] = row[f"delta_top{k}_ci_high"] = None
            row[f"paper_top{k}_inside"] = None
        else:
            row[f"delta_top{k}_ci_low"] = low - reference
            row[f"delta_top{k}_ci_high"] = high - reference
            row[f"paper_top{k}_inside"] = bool(low <= reference <= high)


def build_differences(runs: Sequence[RunReader], *, allow_incomplete: bool = False,
                      resamples: int = stats.BOOTSTRAP_RESAMPLES,
                      seed: int = stats.BOOTSTRAP_SEED, confidence: float = stats.CONFIDENCE,
                      cache: PerImageCache | None = None,
                      keep_empty: bool = False) -> ReportTable | None:
    """Paired differences of errors on the same images, with bootstrap intervals.

    Rows (all images, top-1 and top-5 each):

    * every model of a run stored under protocol "1" and a 10/12/144-crop protocol: that
      protocol's error minus the 1-crop error (``comparison`` "144 - 1 crop");
    * every ensemble: its error minus that of its best member (lowest error of that metric,
      first in member order on a tie), the member runs being read from the paths recorded in
      the ensemble's manifest. A member that cannot be read, lacks the protocol or was run on
      other images is named in a note instead.

    The interval is :func:`inceval.stats.paired_bootstrap` (``resamples`` resamples of the images,
    numpy generator seeded with ``seed``); ``p_value`` is the exact McNemar test of the images
    only one side gets wrong. Pairs cover the images every side could read: an image unreadable
    on either side is left out of the row (its ``images`` count says how many remain).

    Returns:
        A table with key "differences" and columns :data:`DIFFERENCE_COLUMNS`, or None when no
        difference applies and there is nothing to note (an empty table with ``keep_empty``).
    """
    cache = cache or PerImageCache(allow_incomplete)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for run, label in zip(runs, run_labels(runs)):
        entries = run.entries()
        for model, protocol in entries:
            if protocol in _CROP_DIFFERENCE_PROTOCOLS and (model, "1") in entries:
                ours, base = cache.get(run, model, protocol), cache.get(run, model, "1")
                if len(ours.top1_correct) != len(base.top1_correct):
                    notes.append(f"{label} {model}: {protocol} and 1 crop cover different rows "
                                 "(unfinished file); no difference computed.")
                    continue
                rows += _difference_rows(label, model, protocol, f"{protocol} - 1 crop",
                                         f"{model}/1", ours, {f"{model}/1": base}, resamples,
                                         seed, confidence)
            info = run.manifest["models"].get(model, {})
            if paper_data.is_ensemble(info) and info.get("members"):
                members, problems = _member_vectors(run, info["members"], protocol, cache)
                notes += [f"{label} {model} {protocol}: {problem}" for problem in problems]
                if members and not problems:
                    rows += _difference_rows(label, model, protocol, "ensemble - best member",
                                             None, cache.get(run, model, protocol), members,
                                             resamples, seed, confidence)
                elif problems:
                    notes.append(f"{label} {model} {protocol}: no ensemble - best member row, "
                                 "since not every member could be compared.")
    if rows and any(run.num_unreadable for run in runs):
        notes.append(f"Unreadable images (listed in {IMAGES}, column {ERROR_COLUMN}) are left "
                     "out: each row pairs the images both sides could read.")
    if not rows and not notes and not keep_empty:
        return None
    frame = pd.DataFrame([[r.get(c) for c in DIFFERENCE_COLUMNS] for r in rows],
                         columns=list(DIFFERENCE_COLUMNS), dtype=object)
    level = f"{100 * confidence:g}%"
    notes.insert(0, f"Intervals: paired bootstrap over images ({resamples:,} resamples, seed "
                    f"{seed}, {level} percentile interval); p: exact McNemar test of the images "
                    "only one side gets wrong.")
    title = "Differences on the same images: error of the row minus the error it is set against"
    return ReportTable("differences", title, "all", None, None, frame, notes)


def _member_vectors(run: RunReader, members: Sequence[dict[str, Any]], protocol: str,
                    cache: PerImageCache) -> tuple[dict[str, stats.PerImage], list[str]]:
    """Per-image vectors of each member of an ensemble, and why any member is unusable."""
    found: dict[str, stats.PerImage] = {}
    problems: list[str] = []
    for member in members:
        path, model = str(member.get("run")), str(member.get("model"))
        name = f"{os.path.basename(os.path.normpath(path))}/{model}"
        try:
            source = RunReader(path)
            how = images_difference(run, source)
            if how:
                problems.append(f"member {name} ({path}) was run on other images ({how}).")
                continue
            if name in found:  # two member runs share a directory name
                name = f"{path}/{model}"
            found[name] = cache.get(source, model, protocol)
        except InceValError as exc:
            problems.append(f"member {name} cannot be read here ({exc}).")
    return found, problems


def _difference_rows(label: str, model: str, protocol: str, comparison: str,
                     against: str | None, ours: stats.PerImage,
                     others: dict[str, stats.PerImage], resamples: int, seed: int,
                     confidence: float) -> list[dict[str, Any]]:
    rows = []
    if any(len(v.top1_correct) != len(ours.top1_correct) for v in others.values()):
        return rows
    # Pairs need both sides: only images every side could read are compared.
    keep = ours.scored_mask.copy()
    for vectors in others.values():
        keep &= vectors.scored_mask
    if not keep.any():
        return rows
    if not keep.all():
        ours = ours.subset(keep)
        others = {name: vectors.subset(keep) for name, vectors in others.items()}
    for k in (1, 5):
        wrong = ~ours.correct(k)
        if against is None:  # the best member of this metric
            name = min(others, key=lambda m: int((~others[m].correct(k)).sum()))
        else:
            name = against
        other_wrong = ~others[name].correct(k)
        result = stats.paired_bootstrap(wrong, other_wrong, resamples=resamples, seed=seed,
                                        confidence=confidence)
        rows.append({
            "run": label, "model": model, "protocol": protocol, "comparison": comparison,
            "against": name, "subset": "all", "metric": f"top{k}", "images": result.images,
            "error": 100.0 * result.a_wrong / result.images,
            "against_error": 100.0 * result.b_wrong / result.images,
            "delta": result.delta, "delta_ci_low": result.low, "delta_ci_high": result.high,
            "only_ours_wrong": result.only_a_wrong, "only_against_wrong": result.only_b_wrong,
            "p_value": result.p_value, "resamples": result.resamples, "seed": result.seed,
        })
    return rows


def _protocol_rank(protocol: str) -> int:
    return _PROTOCOL_ORDER.index(protocol) if protocol in _PROTOCOL_ORDER else len(_PROTOCOL_ORDER)


def _place(run: RunReader, label: str, model: str, protocol: str,
           scores: tuple[Score, Score]) -> list[tuple[str, dict[str, Any]]]:
    """The tables (and rows) one entry contributes to."""
    info = run.manifest["models"].get(model, {})
    by_subset = {score.subset: score for score in scores}
    ensemble = paper_data.is_ensemble(info)
    base = _base_row(run, label, model, protocol, scores[0].protocol_version)
    crops = base["crops"]
    placed: list[tuple[str, dict[str, Any]]] = []
    if run.dataset != "imagenet":
        from inceval.data.benchmarks import eval_set
        from inceval.reports.published import published

        tag = None if ensemble else info.get("weights_tag")
        reference = published(eval_set(run.dataset).timm_key, tag) if protocol == "1" else None
        placed.append(("datasets", _row(base, by_subset["all"], reference)))
        return placed
    if ensemble:
        key = "4" if protocol in TABLE_PROTOCOLS["4"] else "other"
        reference = paper_data.ensemble_paper_row(info, crops) if key == "4" else None
        placed.append((key, _row(base, by_subset["all"], reference)))
    else:
        key = next((k for k in ("1", "2", "3") if protocol in TABLE_PROTOCOLS[k]), "other")
        subset = "non-blacklisted" if key == "1" else "all"
        if by_subset[subset].images:  # e.g. a run whose every image is blacklisted
            reference = (paper_data.paper_row(key, base["network"], crops)
                         if key != "other" else None)
            placed.append((key, _row(base, by_subset[subset], reference)))
        published = paper_data.checkpoint(info.get("weights_tag"))
        if protocol == paper_data.load_paper().raw["checkpoints"]["protocol"] and published:
            placed.append(("checkpoints", _row(base, by_subset["all"], published)))
    return placed


def _base_row(run: RunReader, label: str, model: str, protocol: str,
              protocol_version: int) -> dict[str, Any]:
    """The cells of a row that describe the entry itself (no scores, no reference)."""
    info = run.manifest["models"].get(model, {})
    ensemble = paper_data.is_ensemble(info)
    return {
        "run": label,
        "model": model,
        "weights": _weights_label(info),
        "network": None if ensemble else paper_data.network_of(model, info),
        "members": paper_data.describe_composition(info) if ensemble else None,
        "protocol": protocol,
        "protocol_version": protocol_version,
        "crops": run.views_per_image(protocol) or protocol,
        "dataset": run.dataset,
    }


def _weights_label(info: dict[str, Any]) -> str | None:
    """The weights tag; a file's name (with the tag whose settings it used); or "random"."""
    source, tag, path = info.get("weights"), info.get("weights_tag"), info.get("weights_file")
    if source == "random":
        return "random"
    if source == "file" and path:
        name = os.path.basename(str(path))
        return f"{name} ({tag})" if tag else name
    return tag or (os.path.basename(str(path)) if path else None)


def _row(base: dict[str, Any], score: Score,
         reference: paper_data.PaperRow | paper_data.Checkpoint | None) -> dict[str, Any]:
    row = dict(base)
    row.update(
        subset=score.subset, images=score.images, top1=score.top1_error, top5=score.top5_error,
        top1_wrong=score.top1_wrong, top5_wrong=score.top5_wrong,
        top1_tie_dependent=score.top1_tie_dependent, top5_tie_dependent=score.top5_tie_dependent,
        complete=score.complete, reference=None, paper_top1=None, paper_top5=None,
        footnote=None, images_scored=score.images, images_unreadable=score.unreadable,
    )
    if isinstance(reference, paper_data.Checkpoint):
        row.update(reference=reference.weights, paper_top1=reference.top1_error,
                   paper_top5=reference.top5_error)
    elif reference is not None:
        row.update(reference=reference.network, paper_top1=reference.top1,
                   paper_top5=reference.top5, footnote=reference.footnote)
        if base["members"] is not None:
            row["network"] = reference.network
    row["delta_top1"] = _delta(row["top1"], row["paper_top1"])
    row["delta_top5"] = _delta(row["top5"], row["paper_top5"])
    return row


def _delta(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or math.isnan(ours):
        return None
    return ours - theirs


def _unreadable_notes(measured: pd.DataFrame) -> list[str]:
    """One note per run (and distinct count) whose rows left out unreadable images."""
    if "images_unreadable" not in measured.columns:
        return []
    seen = dict.fromkeys((row["run"], int(row["images"]), int(row["images_unreadable"]))
                         for _, row in measured.iterrows() if row["images_unreadable"])
    return [f"Unreadable: run {run}: {scored:,} scored, {unreadable:,} unreadable (listed in "
            f"{IMAGES}, column {ERROR_COLUMN}); they are neither right nor wrong."
            for run, scored, unreadable in seen]


def _reference_rows(key: str) -> list[dict[str, Any]]:
    """The paper's rows of networks inceval cannot evaluate, as rows without measurements."""
    if key not in ("1", "2", "3", "4"):
        return []
    table = paper_data.load_paper().tables[key]
    rows = []
    for ref in table.rows:
        if ref.evaluable:
            continue
        rows.append({
            "run": None, "model": None, "weights": None, "network": ref.network,
            "members": None, "protocol": None, "protocol_version": None, "crops": ref.crops,
            "subset": table.subset, "images": None, "top1": None, "top5": None,
            "top1_wrong": None, "top5_wrong": None, "top1_tie_dependent": None,
            "top5_tie_dependent": None, "complete": None, "reference": ref.network,
            "paper_top1": ref.top1, "paper_top5": ref.top5, "delta_top1": None,
            "delta_top5": None, "footnote": ref.footnote,
            "_order": (-1, 0, ""),
        })
    return rows


def _network_rank(row: dict[str, Any]) -> int:
    order = paper_data.load_paper().raw["networks"]
    name = row["reference"] if row.get("reference") in order else row["network"]
    if row["members"] is not None and row.get("reference") is None:
        return len(order) + 1  # ensembles the paper does not have, after its rows
    return order.index(name) if name in order else len(order)


def _table(key: str, rows: list[dict[str, Any]], paper: bool,
           columns: Sequence[str] = COLUMNS) -> ReportTable | None:
    if not rows:
        return None
    values = paper_data.load_paper()
    if key in values.tables:
        spec = values.tables[key]
        title, subset, expected, reference_label = spec.title, spec.subset, spec.images, "paper"
    elif key == "checkpoints":
        title = "Public checkpoints: single crop (protocol 1) beside timm's published figures"
        subset, expected, reference_label = "all", 50000, "timm"
    elif key == "datasets":
        title = ("Other evaluation sets (ImageNetV2, ImageNet-Sketch, ImageNet-A/-R) beside timm's "
                 "published figures (protocol 1)")
        subset, expected, reference_label = "all", None, "timm"
    elif key == "real":
        title = "ReaL labels (Beyer et al. 2020) beside timm's published ReaL figures (protocol 1)"
        subset, expected, reference_label = "all", 46837, "timm"
    else:
        title = "Other protocols and ensembles, without paper values"
        subset, expected, reference_label = "all", None, None
    if not paper and key == "checkpoints":
        return None
    if not paper and key in ("datasets", "real"):
        reference_label = None
    if paper:
        rows = rows + _reference_rows(key)
    for row in rows:
        row["expected_images"] = expected
    rows.sort(key=lambda r: (_network_rank(r), r["_order"]))
    # dtype=object keeps ints as ints and missing cells as None (not NaN-filled float columns).
    frame = pd.DataFrame([[r.get(c) for c in columns] for r in rows], columns=list(columns),
                         dtype=object)
    if not paper:
        frame = frame.drop(columns=[c for c in (*PAPER_COLUMNS, *PAPER_CI_COLUMNS)
                                    if c in frame.columns])
        reference_label = None
    notes = _notes(key, frame, expected, subset, paper)
    return ReportTable(key, title, subset, expected, reference_label, frame, notes)


def _notes(key: str, frame: pd.DataFrame, expected: int | None, subset: str,
           paper: bool) -> list[str]:
    notes: list[str] = []
    values = paper_data.load_paper()
    measured = frame[frame["images"].notna()]
    if expected is not None:
        off = measured[measured["images"] != expected]
        if len(off):
            counts = ", ".join(f"{int(n):,}" for n in sorted(set(off["images"])))
            source = "timm's figures" if key in ("checkpoints", "real") else "the paper"
            notes.append(f"Images: {source} used {expected:,} ({subset}); {len(off)} row(s) "
                         f"here scored {counts}.")
    ties = measured[(measured["top1_tie_dependent"] > 0) | (measured["top5_tie_dependent"] > 0)]
    for _, row in ties.iterrows():
        notes.append(f"Ties: {row['run']} {row['model']} {row['protocol']}: "
                     f"{int(row['top1_tie_dependent'])} top-1 and "
                     f"{int(row['top5_tie_dependent'])} top-5 "
                     f"error(s) come from tied probabilities ({TIE_RULE} rule: a tie counts "
                     "as wrong).")
    partial = measured[measured["complete"] == False]  # noqa: E712 - object column
    if len(partial):
        notes.append(f"Partial: {len(partial)} row(s) were scored on an unfinished prediction "
                     "file (only the rows written so far).")
    notes += _unreadable_notes(measured)
    if paper:
        for name in dict.fromkeys(f for f in frame["footnote"] if f):
            notes.append(f"({name}) {values.footnotes[name]}")
    if paper and key == "4":
        notes.append("No public checkpoint exists for Inception-ResNet-v1 and only one for "
                     "Inception-ResNet-v2, so the paper's 1 x v4 + 3 x IRv2 ensemble cannot be "
                     "rebuilt from public weights; rows show the members that were evaluated.")
    if paper and key == "checkpoints":
        notes.append(f"Reference: {values.checkpoints_source}.")
    if paper and key == "datasets":
        notes.append("Reference: timm's results-imagenetv2-matched-frequency.csv, results-sketch.csv, "
                     "results-imagenet-a.csv and results-imagenet-r.csv (single crop, each weights "
                     "tag's own preprocessing, the whole set). ImageNet-A/-R: top-k among their "
                     "200 classes.")
    if paper and key == "real":
        notes.append("Reference: timm's results-imagenet-real.csv (single crop, all 46,837 images "
                     "with a ReaL label). An image is right when its top k holds one of its ReaL "
                     "classes; ties count as wrong.")
    return notes
