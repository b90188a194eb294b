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
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from inceval.engine.metrics import TIE_RULE
from inceval.errors import InceValError
from inceval.reports import paper as paper_data
from inceval.store import RunReader, Score

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
    "paper_top5", "delta_top1", "delta_top5", "footnote",
)
PAPER_COLUMNS = ("reference", "paper_top1", "paper_top5", "delta_top1", "delta_top5", "footnote")


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
    """A run as the report names it."""

    label: str
    run_dir: str
    fingerprint: str
    images: int
    non_blacklisted: int


def run_labels(runs: Sequence[RunReader]) -> list[str]:
    """Directory names, or the paths as given where two runs share a name."""
    names = [os.path.basename(os.path.normpath(run.run_dir)) for run in runs]
    return [str(run.run_dir) if names.count(name) > 1 else name
            for run, name in zip(runs, names)]


def describe_runs(runs: Sequence[RunReader]) -> list[RunInfo]:
    """Label, path, fingerprint and image counts of each run."""
    return [
        RunInfo(label, str(run.run_dir), run.fingerprint, run.num_images,
                int((~run.blacklisted).sum()))
        for run, label in zip(runs, run_labels(runs))
    ]


def build_tables(runs: Sequence[RunReader], *, paper: bool = True,
                 allow_incomplete: bool = False) -> list[ReportTable]:
    """Score every stored entry of ``runs`` and arrange the scores as the paper's tables.

    Args:
        runs: runs to report, in the order their rows should appear.
        paper: add the paper's values, differences and reference rows.
        allow_incomplete: score unfinished prediction files on their rows written so far
            (marked ``complete`` False) instead of refusing them.

    Raises:
        InceValError: no prediction files in ``runs``, or an incomplete one (unless allowed).
    """
    measured: dict[str, list[dict[str, Any]]] = {k: [] for k in ("1", "2", "3", "4",
                                                                 "checkpoints", "other")}
    for run_index, (run, label) in enumerate(zip(runs, run_labels(runs))):
        for model, protocol in run.entries():
            scores = run.score(model, protocol, allow_incomplete=allow_incomplete)
            for key, row in _place(run, label, model, protocol, scores):
                row["_order"] = (run_index, _protocol_rank(protocol), model)
                measured[key].append(row)
    if not any(measured.values()):
        raise InceValError("the runs hold no prediction files; run `inceval run` first")
    tables = [table for table in (_table(key, rows, paper) for key, rows in measured.items())
              if table is not None]
    unlisted = [label for run, label in zip(runs, run_labels(runs)) if not run.blacklisted.any()]
    for table in tables:
        if table.key == "1" and unlisted:
            table.notes.insert(0, f"Blacklist: run(s) {', '.join(unlisted)} mark no image as "
                                  "blacklisted (was the blacklist file given?), so their rows "
                                  "cover all their images.")
    return tables


def _protocol_rank(protocol: str) -> int:
    return _PROTOCOL_ORDER.index(protocol) if protocol in _PROTOCOL_ORDER else len(_PROTOCOL_ORDER)


def _place(run: RunReader, label: str, model: str, protocol: str,
           scores: tuple[Score, Score]) -> list[tuple[str, dict[str, Any]]]:
    """The tables (and rows) one entry contributes to."""
    info = run.manifest["models"].get(model, {})
    by_subset = {score.subset: score for score in scores}
    record = run.manifest["protocols"].get(protocol, {})
    crops: int | str = record.get("num_views") or len(record.get("views") or []) or protocol
    ensemble = paper_data.is_ensemble(info)
    base = {
        "run": label,
        "model": model,
        "weights": _weights_label(info),
        "network": None if ensemble else paper_data.network_of(model, info),
        "members": paper_data.describe_composition(info) if ensemble else None,
        "protocol": protocol,
        "protocol_version": scores[0].protocol_version,
        "crops": crops,
    }
    placed: list[tuple[str, dict[str, Any]]] = []
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
        footnote=None,
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


def _table(key: str, rows: list[dict[str, Any]], paper: bool) -> ReportTable | None:
    if not rows:
        return None
    values = paper_data.load_paper()
    if key in values.tables:
        spec = values.tables[key]
        title, subset, expected, reference_label = spec.title, spec.subset, spec.images, "paper"
    elif key == "checkpoints":
        title = "Public checkpoints: single crop (protocol 1) beside timm's published figures"
        subset, expected, reference_label = "all", 50000, "timm"
    else:
        title = "Other protocols and ensembles, without paper values"
        subset, expected, reference_label = "all", None, None
    if not paper and key == "checkpoints":
        return None
    if paper:
        rows = rows + _reference_rows(key)
    for row in rows:
        row["expected_images"] = expected
    rows.sort(key=lambda r: (_network_rank(r), r["_order"]))
    # dtype=object keeps ints as ints and missing cells as None (not NaN-filled float columns).
    frame = pd.DataFrame([[r.get(c) for c in COLUMNS] for r in rows], columns=list(COLUMNS),
                         dtype=object)
    if not paper:
        frame = frame.drop(columns=list(PAPER_COLUMNS))
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
            source = "timm's figures" if key == "checkpoints" else "the paper"
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
    if paper:
        for name in dict.fromkeys(f for f in frame["footnote"] if f):
            notes.append(f"({name}) {values.footnotes[name]}")
    if paper and key == "4":
        notes.append("No public checkpoint exists for Inception-ResNet-v1 and only one for "
                     "Inception-ResNet-v2, so the paper's 1 x v4 + 3 x IRv2 ensemble cannot be "
                     "rebuilt from public weights; rows show the members that were evaluated.")
    if paper and key == "checkpoints":
        notes.append(f"Reference: {values.checkpoints_source}.")
    return notes
