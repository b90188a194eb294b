"""What the report's plots show, extracted from the tables and the stored predictions.

Plain dataclasses, no drawing (:mod:`inceval.reports.plots` draws them). Errors are percentages,
differences percentage points; top-1 correctness follows the pessimistic tie rule of
:mod:`inceval.engine.metrics` throughout. Unreadable images (images.csv ``error`` column) are
left out of every count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from inceval import stats
from inceval.data import builtin
from inceval.engine.metrics import topk_correct
from inceval.reports import paper as paper_data
from inceval.reports.tables import PerImageCache, ReportTable
from inceval.scoring import restrict_to_classes
from inceval.store import RunReader

# Protocols joined by the line of a model in the error-vs-views plot (the paper's own).
LINE_PROTOCOLS = ("1", "10", "12", "144")
# Tables whose rows go on the error-vs-views plot.
VIEW_TABLES = ("1", "2", "3")
WORST_CLASSES = 20
TOP_CONFUSIONS = 15


@dataclass(frozen=True)
class ViewPoint:
    """One measured table row: error at a number of views per image."""

    series: str
    network: str | None
    protocol: str
    views: int
    top1: float
    top5: float
    on_line: bool


@dataclass(frozen=True)
class PaperPoint:
    """One of the paper's single-model values at a number of views."""

    network: str
    views: int
    top1: float
    top5: float


def _measured(frame: Any) -> list[dict[str, Any]]:
    return [row for row in frame.to_dict(orient="records") if row.get("run") is not None]


def series_label(run: str, model: str, several_runs: bool) -> str:
    """"run/model" when several runs are shown, else the model name."""
    return f"{run}/{model}" if several_runs else model


def view_points(tables: Sequence[ReportTable],
                several_runs: bool) -> tuple[list[ViewPoint], list[PaperPoint]]:
    """Rows of Tables 1-3 with an integer view count, and the paper's points of their networks.

    The 1-crop rows are those of Table 1 (non-blacklisted images), the others cover all images,
    as in the paper.
    """
    points: list[ViewPoint] = []
    for table in tables:
        if table.key not in VIEW_TABLES:
            continue
        for row in _measured(table.frame):
            if not isinstance(row["crops"], (int, np.integer)) or row["top1"] is None:
                continue
            points.append(ViewPoint(series_label(row["run"], row["model"], several_runs),
                                    row["network"], str(row["protocol"]), int(row["crops"]),
                                    float(row["top1"]), float(row["top5"]),
                                    row["protocol"] in LINE_PROTOCOLS))
    networks = list(dict.fromkeys(p.network for p in points if p.network))
    values = paper_data.load_paper()
    paper: list[PaperPoint] = []
    for network in networks:
        for key in VIEW_TABLES:
            for ref in values.tables[key].rows:
                if (ref.network == network and ref.models is None and ref.composition is None
                        and isinstance(ref.crops, int) and ref.top1 is not None
                        and ref.top5 is not None):
                    paper.append(PaperPoint(network, ref.crops, ref.top1, ref.top5))
    return points, paper


@dataclass(frozen=True)
class DeltaPoint:
    """Ours - reference of one table row and one metric, with the interval of the difference."""

    label: str
    metric: str
    delta: float
    low: float | None
    high: float | None


def _reference_name(table: ReportTable, row: dict[str, Any]) -> str:
    """Short name of a row's table and reference: "T1".."T4", "timm", "timm imagenetv2", ..."""
    if table.key in ("1", "2", "3", "4"):
        return f"T{table.key}"
    if table.key == "datasets":
        return f"{table.reference_label} {row.get('dataset')}"
    if table.key == "real":
        return f"{table.reference_label} ReaL"
    return str(table.reference_label)


def delta_points(tables: Sequence[ReportTable], several_runs: bool) -> list[DeltaPoint]:
    """Every table row with a reference value (the paper's, or timm's published figures)."""
    points: list[DeltaPoint] = []
    for table in tables:
        if table.reference_label is None or "delta_top1" not in table.frame.columns:
            continue
        for row in _measured(table.frame):
            label = (f"{_reference_name(table, row)} "
                     f"{series_label(row['run'], row['model'], several_runs)} {row['protocol']}")
            for metric in ("top1", "top5"):
                delta = row.get(f"delta_{metric}")
                if delta is None:
                    continue
                points.append(DeltaPoint(label, metric, float(delta),
                                         row.get(f"delta_{metric}_ci_low"),
                                         row.get(f"delta_{metric}_ci_high")))
    return points


@dataclass(frozen=True)
class GainPoint:
    """An ensemble's error minus its best member's, with the paired bootstrap interval."""

    label: str
    metric: str
    against: str
    error: float
    against_error: float
    delta: float
    low: float
    high: float


def gain_points(differences: ReportTable | None, several_runs: bool) -> list[GainPoint]:
    """The "ensemble - best member" rows of the differences table."""
    if differences is None:
        return []
    return [GainPoint(f"{series_label(r['run'], r['model'], several_runs)} {r['protocol']}",
                      r["metric"], str(r["against"]), float(r["error"]),
                      float(r["against_error"]), float(r["delta"]), float(r["delta_ci_low"]),
                      float(r["delta_ci_high"]))
            for r in differences.frame.to_dict(orient="records")
            if r["comparison"] == "ensemble - best member"]


@dataclass(frozen=True)
class Reliability:
    """Reliability diagram of one prediction file (all images).

    ``counts``, ``accuracy`` (fraction top-1 correct) and ``confidence`` (mean top-1 probability)
    per bin; bins are :data:`inceval.stats.ECE_BINS` equal-width bins on the top-1 probability,
    the last one closed. Empty bins hold 0.
    """

    label: str
    images: int
    ece: float
    counts: tuple[int, ...]
    accuracy: tuple[float, ...]
    confidence: tuple[float, ...]


def reliability_bins(vectors: stats.PerImage, label: str,
                     bins: int = stats.ECE_BINS) -> Reliability:
    """Bin the images of ``vectors`` as :func:`inceval.stats.calibration` does for its ECE (the
    scored ones)."""
    vectors = vectors.scored_only()
    conf = np.asarray(vectors.confidence, dtype=np.float64)
    hit = np.asarray(vectors.top1_correct, dtype=np.float64)
    index = np.clip(np.floor(conf * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    hits = np.bincount(index, weights=hit, minlength=bins)
    sums = np.bincount(index, weights=conf, minlength=bins)
    filled = np.maximum(counts, 1)
    return Reliability(label, int(conf.size), vectors.calibration().ece,
                       tuple(int(c) for c in counts),
                       tuple(float(v) for v in np.where(counts > 0, hits / filled, 0.0)),
                       tuple(float(v) for v in np.where(counts > 0, sums / filled, 0.0)))


def reliability_diagrams(runs: Sequence[RunReader], run_labels: Sequence[str],
                         cache: PerImageCache) -> list[Reliability]:
    """One diagram per stored prediction file, in run and entry order."""
    several = len(runs) > 1
    return [reliability_bins(cache.get(run, model, protocol),
                             f"{series_label(label, model, several)} {protocol}")
            for run, label in zip(runs, run_labels) for model, protocol in run.entries()]


@dataclass(frozen=True)
class ClassError:
    """Top-1 error of one class."""

    index: int
    name: str
    images: int
    wrong: int

    @property
    def error(self) -> float:
        """Percent of the class's images whose top-1 prediction is wrong."""
        return 100.0 * self.wrong / self.images


@dataclass(frozen=True)
class Confusion:
    """Images of class ``true`` whose top-1 prediction is ``predicted``."""

    true: int
    true_name: str
    predicted: int
    predicted_name: str
    count: int


@dataclass(frozen=True)
class ClassErrors:
    """The worst classes and most frequent confusions of one prediction file (all images)."""

    label: str
    protocol: str
    worst: list[ClassError]
    confusions: list[Confusion]


def _class_name(index: int) -> str:
    names = builtin.class_names()
    return builtin.class_label(index) if 0 <= index < len(names) else f"class {index}"


def class_errors(run: RunReader, model: str, protocol: str, label: str, *,
                 worst: int = WORST_CLASSES, confusions: int = TOP_CONFUSIONS,
                 allow_incomplete: bool = False) -> ClassErrors:
    """Per-class top-1 errors and confusions of one prediction file.

    Classes are ranked by error, then by wrong images, then by index; only classes with at least
    one error are listed. A wrong image's predicted class is the most probable class other than
    its label (the tie-breaking rival when the label ties for first), lowest index on a tie.
    Runs restricted to a class subset (ImageNet-A/R) are scored among those classes. Unreadable
    images are not counted.
    """
    labels = run.labels
    unreadable = run.unreadable
    chunks = run.iter_chunks(model, protocol, allow_incomplete=allow_incomplete)
    classes = run.scored_classes
    if classes is not None:
        chunks, positions = restrict_to_classes(chunks, labels, classes, run.run_dir)
    else:
        positions = labels
    images: dict[int, int] = {}
    wrong: dict[int, int] = {}
    pairs: dict[tuple[int, int], int] = {}
    for start, block in chunks:
        rows = np.arange(start, start + block.shape[0])
        readable = ~unreadable[rows]
        block, rows = block[readable], rows[readable]
        y = positions[rows]
        right = topk_correct(block, y, 1)
        rival = block.copy()
        rival[np.arange(block.shape[0]), y] = -np.inf
        predicted = np.argmax(rival, axis=1)
        for offset in range(block.shape[0]):
            true = int(labels[rows[offset]])
            images[true] = images.get(true, 0) + 1
            if right[offset]:
                continue
            wrong[true] = wrong.get(true, 0) + 1
            guess = int(predicted[offset])
            guess = int(classes[guess]) if classes is not None else guess
            pairs[(true, guess)] = pairs.get((true, guess), 0) + 1
    ranked = sorted(wrong, key=lambda c: (-wrong[c] / images[c], -wrong[c], c))[:worst]
    top_pairs = sorted(pairs, key=lambda p: (-pairs[p], p))[:confusions]
    return ClassErrors(
        label, protocol,
        [ClassError(c, _class_name(c), images[c], wrong[c]) for c in ranked],
        [Confusion(t, _class_name(t), p, _class_name(p), pairs[(t, p)]) for t, p in top_pairs])


def main_protocol(run: RunReader, model: str) -> str:
    """The protocol of ``model`` with the most views (first stored on a tie): the model's
    headline result, used for its per-class analysis."""
    protocols = [p for m, p in run.entries() if m == model]

    views = run.views_per_image
    return max(protocols, key=lambda p: (views(p), -protocols.index(p)))


def per_class(runs: Sequence[RunReader], run_labels: Sequence[str], *,
              allow_incomplete: bool = False) -> list[ClassErrors]:
    """:func:`class_errors` of every model of every run, under its :func:`main_protocol`."""
    several = len(runs) > 1
    out = []
    for run, label in zip(runs, run_labels):
        for model in dict.fromkeys(m for m, _ in run.entries()):
            protocol = main_protocol(run, model)
            out.append(class_errors(run, model, protocol,
                                    f"{series_label(label, model, several)} {protocol}",
                                    allow_incomplete=allow_incomplete))
    return out
