"""Render report tables (:mod:`inceval.reports.tables`) as rich, Markdown, CSV, JSON or LaTeX.

Every renderer shows the same cells: errors with 2 decimals, the paper's values as printed
(1 decimal, "N/A" where the paper has none), differences (ours - reference) in signed percentage
points, "-" where a cell does not apply. JSON and CSV carry the unrounded numbers and every
machine column of the frames.

When a table carries intervals (``build_tables(ci=True)``), each error is followed by its 95%
interval "[low, high]" and each reference difference by whether the reference value lies inside
that interval ("yes"/"no"). The differences table (``build_differences``) has columns of its own.

The Images column counts the images scored; a run with unreadable images says how many beside its
name, and the tables' notes say which rows left them out.
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable, Sequence

import pandas as pd
from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from inceval.engine.metrics import TIE_RULE
from inceval.reports.tables import ReportTable, RunInfo

FORMATS = ("rich", "markdown", "csv", "json", "latex")
_REFERENCE_HEADERS = {"paper": "Paper", "timm": "timm"}
_DASH = "-"


def _ours(value: Any) -> str:
    return _DASH if value is None else f"{value:.2f}"


def _theirs(value: Any, reference_row: Any, decimals: int) -> str:
    if value is None:
        return "N/A" if reference_row else _DASH
    return f"{value:.{decimals}f}"


def _delta(value: Any) -> str:
    return _DASH if value is None else f"{value:+.2f}"


def _count(value: Any) -> str:
    return _DASH if value is None else f"{int(value):,}"


def _text(value: Any) -> str:
    return _DASH if value is None or value == "" else str(value)


def _interval(low: Any, high: Any) -> str:
    return _DASH if low is None else f"[{low:.2f}, {high:.2f}]"


def _inside(value: Any) -> str:
    return _DASH if value is None else ("yes" if value else "no")


def _p_value(value: Any) -> str:
    if value is None:
        return _DASH
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _network(row: dict[str, Any]) -> str:
    if row["members"] is not None:
        return row["network"] or "(not in the paper)"
    if row["model"] is None:
        return f"{row['network']} (paper only)"
    return row["network"] or "(not in the paper)"


# (header, cell function) per displayed column; the Run column is added for several runs.
Column = tuple[str, Callable[[dict[str, Any]], str]]


def display_columns(table: ReportTable, several_runs: bool) -> list[Column]:
    """The columns a human-readable rendering of ``table`` shows."""
    if table.key == "differences":
        return _difference_columns()
    ref = table.reference_label
    intervals = "top1_ci_low" in table.frame.columns
    # Print references as their source printed them: the paper 1 decimal, timm 3.
    decimals = 3 if table.reference_label == "timm" else 1
    cols: list[Column] = []
    if several_runs:
        cols.append(("Run", lambda r: _text(r["run"])))
    if table.key == "datasets":
        cols.append(("Dataset", lambda r: _text(r["dataset"])))
    if table.key == "checkpoints":
        cols += [("Model", lambda r: _text(r["model"])), ("Weights", lambda r: _text(r["weights"]))]
    else:
        cols.append(("Network", _network))
        if table.key == "4":
            cols.append(("Members", lambda r: _text(r["members"])))
        cols += [("Model", lambda r: _text(r["model"])),
                 ("Weights", lambda r: _text(r["weights"])),
                 ("Protocol", lambda r: _text(r["protocol"]))]
        if table.key != "1":
            cols.append(("Crops", lambda r: _text(r["crops"])))
    cols.append(("Images", lambda r: _count(r["images"])))
    for k in ("1", "5"):
        cols.append((f"Top-{k}", lambda r, k=k: _ours(r[f"top{k}"])))
        if intervals:
            cols.append((f"95% CI top-{k}",
                         lambda r, k=k: _interval(r[f"top{k}_ci_low"], r[f"top{k}_ci_high"])))
        if ref:
            header = _REFERENCE_HEADERS.get(ref, ref)
            cols.append((f"{header} top-{k}",
                         lambda r, k=k: _theirs(r[f"paper_top{k}"], r["reference"], decimals)))
            cols.append((f"Diff top-{k}", lambda r, k=k: _delta(r[f"delta_top{k}"])))
            if intervals:
                cols.append((f"{header} in CI top-{k}",
                             lambda r, k=k: _inside(r[f"paper_top{k}_inside"])))
    return cols


def _difference_columns() -> list[Column]:
    return [
        ("Run", lambda r: _text(r["run"])),
        ("Model", lambda r: _text(r["model"])),
        ("Protocol", lambda r: _text(r["protocol"])),
        ("Comparison", lambda r: _text(r["comparison"])),
        ("Against", lambda r: _text(r["against"])),
        ("Metric", lambda r: "top-1" if r["metric"] == "top1" else "top-5"),
        ("Images", lambda r: _count(r["images"])),
        ("Error", lambda r: _ours(r["error"])),
        ("Against error", lambda r: _ours(r["against_error"])),
        ("Diff", lambda r: _delta(r["delta"])),
        ("95% CI", lambda r: _interval(r["delta_ci_low"], r["delta_ci_high"])),
        ("Only row wrong", lambda r: _count(r["only_ours_wrong"])),
        ("Only against wrong", lambda r: _count(r["only_against_wrong"])),
        ("p (McNemar)", lambda r: _p_value(r["p_value"])),
    ]


def _caption(table: ReportTable) -> str:
    if table.key == "differences":
        return f"{table.title} (percentage points, {table.subset} images)"
    source = "timm" if table.reference_label == "timm" else "paper"
    images = f"; {source}: {table.expected_images:,} images" if table.expected_images else ""
    exact = "; 95% CI: exact (Clopper-Pearson)" if "top1_ci_low" in table.frame.columns else ""
    return f"{table.title} (top-1/top-5 error %, {table.subset} images{images}{exact})"


def _records(table: ReportTable) -> list[dict[str, Any]]:
    return table.frame.to_dict(orient="records")


def run_heading(run: RunInfo) -> str:
    """"tf (20 images)", or "tf (20 images, 2 unreadable)" for a run with unreadable images."""
    unreadable = f", {run.images_unreadable:,} unreadable" if run.images_unreadable else ""
    return f"{run.label} ({run.images:,} images{unreadable})"


def to_markdown(tables: Sequence[ReportTable], runs: Sequence[RunInfo]) -> str:
    """GitHub-flavoured Markdown: one section per table, notes as a list below it."""
    several = len(runs) > 1
    out = [f"Runs: {', '.join(run_heading(r) for r in runs)}. "
           f"Errors in %, differences in percentage points; ties count as wrong ({TIE_RULE}).",
           ""]
    for table in tables:
        cols = display_columns(table, several)
        out.append(f"### {_caption(table)}")
        out.append("")
        out.append("| " + " | ".join(h for h, _ in cols) + " |")
        out.append("|" + "|".join("---" if i < _first_number(cols) else "---:"
                                  for i in range(len(cols))) + "|")
        for row in _records(table):
            out.append("| " + " | ".join(_md_escape(f(row)) for _, f in cols) + " |")
        if table.notes:
            out.append("")
            out += [f"- {note}" for note in table.notes]
        out.append("")
    return "\n".join(out)


def _first_number(cols: Sequence[Column]) -> int:
    return next(i for i, (h, _) in enumerate(cols) if h == "Images")


def _md_escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def rich_width(renderable: RenderableType, console: Console) -> int:
    """Width that shows every rich Table in ``renderable`` (a Table or a Group of parts)
    unsqueezed, and at least the console's width."""
    parts = renderable.renderables if isinstance(renderable, Group) else [renderable]
    options = console.options.update_width(10_000)
    widths = [Measurement.get(console, options, part).maximum
              for part in parts if isinstance(part, Table)]
    return max([console.width, *widths])


def print_unsqueezed(console: Console, renderable: RenderableType) -> None:
    """Print through a console as wide as the tables need: numbers must never be cut into
    ellipses (wide lines may wrap in a narrow terminal instead)."""
    wide = Console(file=console.file, width=rich_width(renderable, console),
                   force_terminal=console.is_terminal, no_color=console.no_color,
                   highlight=False, emoji=False)
    wide.print(renderable)


def to_rich(tables: Sequence[ReportTable], runs: Sequence[RunInfo]) -> Group:
    """rich Tables with the notes below each."""
    several = len(runs) > 1
    parts: list[RenderableType] = []
    for table in tables:
        cols = display_columns(table, several)
        grid = Table(title=_caption(table), box=box.SIMPLE_HEAD, title_justify="left")
        for i, (header, _) in enumerate(cols):
            grid.add_column(header, justify="right" if i >= _first_number(cols) else "left")
        for row in _records(table):
            grid.add_row(*(f(row) for _, f in cols))
        parts.append(grid)
        parts += [Text(note, style="dim") for note in table.notes]
        parts.append(Text(""))
    return Group(*parts)


def to_json(tables: Sequence[ReportTable], runs: Sequence[RunInfo],
            paper_source: str | None, differences: ReportTable | None = None,
            settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plain data: runs, tie rule, paper source, and every table with all machine columns.

    ``differences`` (the table of :func:`inceval.reports.tables.build_differences`) goes under
    its own key, and ``settings`` (interval and calibration settings) under "statistics".
    """
    data: dict[str, Any] = {
        "tie_rule": TIE_RULE,
        "units": {"errors": "percent", "differences": "percentage points (ours - reference)",
                  "nll": "nats per image", "ece": "percent"},
        "paper": paper_source,
        "runs": [vars(r) for r in runs],
        "tables": [
            {
                "key": t.key,
                "title": t.title,
                "subset": t.subset,
                "expected_images": t.expected_images,
                "reference": t.reference_label,
                "rows": [_clean(row) for row in _records(t)],
                "notes": t.notes,
            }
            for t in tables
        ],
    }
    if settings is not None:
        data["statistics"] = settings
    if differences is not None:
        data["differences"] = {"title": differences.title, "subset": differences.subset,
                               "rows": [_clean(row) for row in _records(differences)],
                               "notes": differences.notes}
    return data


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()  # numpy scalar -> Python
        if isinstance(value, float) and math.isnan(value):
            value = None
        out[key] = value
    return out


def to_csv(tables: Sequence[ReportTable]) -> str:
    """One CSV of all tables (long format): a ``table`` column, then the frames' columns (their
    union, when a differences table is among them; cells a table lacks are empty)."""
    frames = [t.frame.assign(table=t.key) for t in tables]
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[["table", *[c for c in frame.columns if c != "table"]]]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n", float_format="%.6f")
    return buffer.getvalue()


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(tables: Sequence[ReportTable], runs: Sequence[RunInfo]) -> str:
    """One ``table`` environment per report table (needs ``\\usepackage{booktabs}``)."""
    several = len(runs) > 1
    out = ["% inceval tables; requires \\usepackage{booktabs}"]
    for table in tables:
        cols = display_columns(table, several)
        first = _first_number(cols)
        spec = "".join("l" if i < first else "r" for i in range(len(cols)))
        caption = _latex_escape(_caption(table))
        out += ["\\begin{table}[t]", "\\centering", f"\\caption{{{caption}}}",
                f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                " & ".join(_latex_escape(h) for h, _ in cols) + " \\\\", "\\midrule"]
        for row in _records(table):
            out.append(" & ".join(_latex_escape(f(row)) for _, f in cols) + " \\\\")
        out.append("\\bottomrule")
        out.append("\\end{tabular}")
        for note in table.notes:
            out.append(f"\\par\\footnotesize {_latex_escape(note)}")
        out += ["\\end{table}", ""]
    return "\n".join(out)
