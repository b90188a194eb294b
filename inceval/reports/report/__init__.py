"""`inceval report`: stored runs as one self-contained HTML page of tables and plots.

:func:`build_report` reads the runs (no model runs), builds the tables of
:mod:`inceval.reports.tables` with intervals and calibration, extracts what the plots show
(:mod:`.data`), draws them (:mod:`inceval.reports.plots`), finds example images (:mod:`.examples`)
and assembles the page (:mod:`.html`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from inceval import __version__, stats
from inceval.reports.report import data
from inceval.reports.report.examples import Examples, find_examples
from inceval.reports.report.html import Plot, ReportContent, page
from inceval.reports.tables import (PerImageCache, build_differences, build_tables,
                                    describe_runs, run_labels)
from inceval.store import RunReader


@dataclass
class Report:
    """The page and the matplotlib figures of its plots (key -> figure, page order)."""

    html: str
    figures: dict[str, Any]
    content: ReportContent

    def write_pngs(self, folder: Path) -> list[Path]:
        """Write every plot as ``<key>.png`` into ``folder`` (which must exist)."""
        from inceval.reports import plots

        written = []
        for key, fig in self.figures.items():
            path = Path(folder) / f"{key}.png"
            plots.to_png(fig, path)
            written.append(path)
        return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "plot"


def build_report(runs: Sequence[RunReader], *, resamples: int = stats.BOOTSTRAP_RESAMPLES,
                 seed: int = stats.BOOTSTRAP_SEED, allow_incomplete: bool = False,
                 examples: bool = True) -> Report:
    """Build the report of ``runs``.

    Args:
        runs: the runs, in the order their rows appear.
        resamples: bootstrap resamples of the paired differences (ensemble gains).
        seed: seed of that resampling.
        allow_incomplete: score unfinished prediction files on their rows written so far.
        examples: look for example images under the runs' data roots.

    Raises:
        InceValError: as :func:`inceval.reports.tables.build_tables` (no predictions, an
            incomplete file without ``allow_incomplete``, a damaged run).
    """
    from inceval.reports import plots

    labels = run_labels(runs)
    several = len(runs) > 1
    cache = PerImageCache(allow_incomplete)
    tables = build_tables(runs, paper=True, allow_incomplete=allow_incomplete, ci=True,
                          calibration=True, cache=cache)
    differences = build_differences(runs, allow_incomplete=allow_incomplete,
                                    resamples=resamples, seed=seed, cache=cache)
    figures: dict[str, Any] = {}
    captions: dict[str, tuple[str, str]] = {}
    missing: dict[str, str] = {}

    points, paper_points = data.view_points(tables, several)
    if points:
        figures["error-vs-views"] = plots.error_vs_views(points, paper_points)
        captions["error-vs-views"] = (
            "Error vs views per image",
            "Top-1 and top-5 error against views per image (log scale), one line per model "
            "through its 1/10/12/144-crop protocols (open circles: other protocols), the "
            "paper's values dashed. 1-crop points are on the non-blacklisted images (Table 1), "
            "the others on all images, as in the paper.")
    else:
        missing["error-vs-views"] = ("No error-vs-views plot: no single model under a protocol "
                                     "of Tables 1-3.")
    deltas = data.delta_points(tables, several)
    if deltas:
        figures["ours-minus-paper"] = plots.ours_minus_paper(deltas)
        captions["ours-minus-paper"] = (
            "Ours minus paper",
            "Ours - paper (timm for the public checkpoints) per table row, in percentage points, "
            "with the 95% interval (exact interval of our error, shifted by the constant "
            "reference); the black line marks zero.")
    else:
        missing["ours-minus-paper"] = "No ours-minus-paper plot: no row has a paper value."
    gains = data.gain_points(differences, several)
    if gains:
        figures["ensemble-gain"] = plots.ensemble_gain(gains)
        captions["ensemble-gain"] = (
            "Ensemble gain",
            "Each ensemble's error minus that of its best member on the same images (negative: "
            f"the ensemble gains), with the paired bootstrap 95% interval ({resamples:,} "
            f"resamples, seed {seed}); labels: ensemble vs best member error (%).")
    else:
        missing["ensemble-gain"] = ("No ensemble-gain plot: no ensemble whose members could be "
                                    "read and compared (see the differences table's notes).")
    diagrams = data.reliability_diagrams(runs, labels, cache)
    figures["calibration"] = plots.reliability(diagrams)
    captions["calibration"] = (
        "Calibration",
        f"Reliability diagrams: {stats.ECE_BINS} equal-width bins on the top-1 probability, bars "
        "= top-1 accuracy of the bin, red dots = mean confidence of the bin, dashed = perfect "
        "calibration; ECE as in the tables (all images).")

    per_class: list[tuple[data.ClassErrors, Plot | None]] = []
    class_figures: dict[str, Any] = {}
    for classes in data.per_class(runs, labels, allow_incomplete=allow_incomplete):
        if not classes.worst:
            per_class.append((classes, None))
            continue
        key = f"per-class-{_slug(classes.label)}"
        while key in class_figures:
            key += "_"
        fig = plots.class_errors(classes)
        class_figures[key] = fig
        per_class.append((classes, Plot(
            key, f"Classes with the highest error: {classes.label}",
            f"The classes with the highest top-1 error of {classes.label} "
            "(bars; images wrong / images of the class beside each).", plots.to_svg(fig))))

    shown = {key: Plot(key, captions[key][0], captions[key][1], plots.to_svg(fig))
             for key, fig in figures.items()}
    content = ReportContent(
        runs=describe_runs(runs), manifests=[run.manifest for run in runs], tables=tables,
        differences=differences, plots=shown, missing=missing, per_class=per_class,
        examples=find_examples(runs, labels) if examples else None, version=__version__)
    return Report(page(content), {**figures, **class_figures}, content)


__all__ = ["Examples", "Report", "build_report"]
