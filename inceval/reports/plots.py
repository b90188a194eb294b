"""The report's plots, drawn with matplotlib from plain data (:mod:`inceval.reports.report.data`).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state,
Agg canvas); :func:`to_svg` and :func:`to_png` serialise one reproducibly: fixed sizes, glyphs as
paths (no font needed where the SVG is shown), a fixed SVG id salt and no dates in the metadata, so
the same runs give byte-identical files.

matplotlib is the optional extra ``inceval[report]``: importing this module without it raises
:class:`inceval.errors.InceValError` with the install command.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from inceval.errors import InceValError

try:
    import matplotlib
    from matplotlib.figure import Figure
except ImportError:  # pragma: no cover - depends on the environment
    raise InceValError("`inceval report` needs matplotlib: pip install 'inceval[report]' "
                       "(or pip install 'matplotlib>=3.7')") from None

if TYPE_CHECKING:
    from inceval.reports.report.data import (ClassErrors, DeltaPoint, GainPoint, PaperPoint,
                                             Reliability, ViewPoint)

# Style shared by every plot: fixed so the output does not depend on a user's matplotlibrc.
STYLE: dict[str, Any] = {
    "svg.hashsalt": "inceval-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
PNG_DPI = 150
WIDTH_IN = 9.0
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_METRICS = (("top1", "Top-1"), ("top5", "Top-5"))


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def to_svg(figure: Figure) -> str:
    """The figure as a standalone SVG document (deterministic bytes for the same figure)."""
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def to_png(figure: Figure, path: Path | None = None) -> bytes:
    """The figure as PNG bytes at :data:`PNG_DPI` (also written to ``path`` when given)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def error_vs_views(points: Sequence["ViewPoint"], paper: Sequence["PaperPoint"]) -> Figure:
    """Top-1 and top-5 error against views per image (log x), one line per run/model, the
    paper's points as dashed lines with open markers.

    The line of a series joins its built-in 1/10/12/144 protocols; other protocols with a
    known view count are open markers off the line.
    """
    with matplotlib.rc_context(STYLE):
        fig = _figure(WIDTH_IN, 3.8)
        axes = fig.subplots(1, 2)
        series = list(dict.fromkeys(p.series for p in points))
        networks = list(dict.fromkeys(p.network for p in paper))
        colour_of_network: dict[str, str] = {}
        for i, name in enumerate(series):
            network = next((p.network for p in points if p.series == name), None)
            if network is not None:
                colour_of_network.setdefault(network, _colour(i))
        ticks = sorted({p.views for p in points} | {p.views for p in paper})
        for ax, (metric, title) in zip(axes, _METRICS):
            for i, name in enumerate(series):
                mine = sorted((p for p in points if p.series == name), key=lambda p: p.views)
                line = [p for p in mine if p.on_line]
                off = [p for p in mine if not p.on_line]
                if line:
                    ax.plot([p.views for p in line], [getattr(p, metric) for p in line],
                            marker="o", color=_colour(i), label=name)
                if off:
                    ax.plot([p.views for p in off], [getattr(p, metric) for p in off],
                            linestyle="none", marker="o", markerfacecolor="none",
                            color=_colour(i), label=None if line else name)
            for j, network in enumerate(networks):
                mine = sorted((p for p in paper if p.network == network), key=lambda p: p.views)
                colour = colour_of_network.get(network, _colour(len(series) + j))
                ax.plot([p.views for p in mine], [getattr(p, metric) for p in mine],
                        linestyle="--", marker="D", markerfacecolor="white", color=colour,
                        label=f"paper: {network}")
            ax.set_xscale("log")
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            if {10, 12} <= set(ticks):  # neighbours on a log axis: push their labels apart
                for tick in ax.get_xticklabels():
                    tick.set_horizontalalignment({"10": "right", "12": "left"}.get(
                        tick.get_text(), "center"))
            ax.set_xlabel("views per image (log scale)")
            ax.set_ylabel(f"{title} error (%)")
            ax.set_title(f"{title} error vs views per image")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels) or 1),
                   fontsize=8, frameon=False)
    return fig


def _interval_dots(ax: Any, labels: Sequence[str], values: Sequence[float],
                   lows: Sequence[float | None], highs: Sequence[float | None],
                   colour: str) -> None:
    """Horizontal dot plot with interval whiskers, the first label at the top, zero marked."""
    y = list(range(len(labels)))[::-1]
    for yi, value, low, high in zip(y, values, lows, highs):
        if low is not None and high is not None:
            ax.plot([low, high], [yi, yi], color=colour, linewidth=2, alpha=0.5,
                    solid_capstyle="butt")
        ax.plot([value], [yi], marker="o", color=colour)
    ax.axvline(0.0, color="black", linewidth=1)
    ax.set_yticks(y, list(labels))
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.grid(axis="y", visible=False)


def _dot_height(rows: int) -> float:
    return 1.6 + 0.28 * rows


def ours_minus_paper(points: Sequence["DeltaPoint"]) -> Figure:
    """Ours - reference per table row (percentage points) with the interval of the difference."""
    with matplotlib.rc_context(STYLE):
        labels = list(dict.fromkeys(p.label for p in points))
        fig = _figure(WIDTH_IN, _dot_height(len(labels)))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (metric, title), colour in zip(axes, _METRICS, COLOURS):
            rows = {p.label: p for p in points if p.metric == metric}
            shown = [label for label in labels if label in rows]
            _interval_dots(ax, shown, [rows[s].delta for s in shown],
                           [rows[s].low for s in shown], [rows[s].high for s in shown], colour)
            ax.set_xlabel(f"{title}: ours - reference (percentage points)")
            ax.set_title(f"{title} error, ours - paper (or timm)")
    return fig


def ensemble_gain(points: Sequence["GainPoint"]) -> Figure:
    """Each ensemble's error minus its best member's (negative: the ensemble gains), with the
    paired bootstrap interval."""
    with matplotlib.rc_context(STYLE):
        labels = list(dict.fromkeys(p.label for p in points))
        fig = _figure(WIDTH_IN, _dot_height(len(labels)) + 0.3)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, (metric, title), colour in zip(axes, _METRICS, COLOURS[2:]):
            rows = {p.label: p for p in points if p.metric == metric}
            shown = [label for label in labels if label in rows]
            _interval_dots(ax, shown, [rows[s].delta for s in shown],
                           [rows[s].low for s in shown], [rows[s].high for s in shown], colour)
            for yi, label in zip(range(len(shown))[::-1], shown):
                p = rows[label]
                ax.annotate(f"{p.error:.2f} vs {p.against_error:.2f} ({p.against})",
                            (p.delta, yi), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=7)
            ax.set_xlabel(f"{title}: ensemble - best member (percentage points)")
            ax.set_title(f"{title} error, ensemble vs its best member")
    return fig


def reliability(diagrams: Sequence["Reliability"], columns: int = 4) -> Figure:
    """One reliability diagram per run/model/protocol: accuracy of each confidence bin (bars,
    width = bin) against the diagonal, with the mean confidence of each bin as dots."""
    with matplotlib.rc_context(STYLE):
        cols = max(1, min(columns, len(diagrams)))
        rows = math.ceil(len(diagrams) / cols)
        fig = _figure(WIDTH_IN, 2.3 * rows + 0.3)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, diagram in zip(axes.flat, diagrams):
            bins = len(diagram.counts)
            width = 1.0 / bins
            left = [i * width for i in range(bins)]
            filled = [i for i in range(bins) if diagram.counts[i]]
            ax.bar([left[i] for i in filled], [diagram.accuracy[i] for i in filled],
                   width=width, align="edge", color=COLOURS[0], alpha=0.75, edgecolor="white")
            ax.plot([diagram.confidence[i] for i in filled], [diagram.accuracy[i] for i in filled],
                    linestyle="none", marker=".", color=COLOURS[1])
            ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.set_title(f"{diagram.label}\nECE {diagram.ece:.2f}%, {diagram.images:,} images",
                         fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in axes.flat[len(diagrams):]:
            ax.set_visible(False)
        fig.supxlabel("top-1 probability (confidence)")
        fig.supylabel("top-1 accuracy of the bin")
    return fig


def class_errors(classes: "ClassErrors") -> Figure:
    """Horizontal bars of the classes with the highest top-1 error of one model, worst on top."""
    with matplotlib.rc_context(STYLE):
        worst = classes.worst
        fig = _figure(WIDTH_IN * 0.7, _dot_height(max(1, len(worst))))
        ax = fig.subplots()
        y = list(range(len(worst)))[::-1]
        ax.barh(y, [c.error for c in worst], color=COLOURS[1], alpha=0.8)
        for yi, c in zip(y, worst):
            ax.annotate(f"{c.wrong}/{c.images}", (c.error, yi), textcoords="offset points",
                        xytext=(3, 0), va="center", fontsize=7)
        ax.set_yticks(y, [c.name for c in worst])
        ax.set_xlim(0, 112)
        ax.set_xlabel("top-1 error of the class (%)")
        ax.grid(axis="y", visible=False)
        count = f"{len(worst)} class" if len(worst) == 1 else f"{len(worst)} classes"
        ax.set_title(f"{classes.label}: {count} with the highest top-1 error")
    return fig
