"""Assemble the report as one self-contained HTML page.

Everything is inline: a small stylesheet, the plots as base64 SVG images (each in its own
document, so the ids of two plots never clash), the contact sheets as base64 PNG. No script, no
external resource: the file opens from disk in any browser. Every piece of text goes through
:func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from typing import Any

from inceval.engine.metrics import TIE_RULE
from inceval.reports import render
from inceval.reports.report.data import ClassErrors
from inceval.reports.report.examples import Examples
from inceval.reports.tables import ReportTable, RunInfo

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #222; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .85em; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
table.results td { white-space: nowrap; }
.side { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
th, td { padding: .25em .6em; border-bottom: 1px solid #e4e4e4; text-align: left;
         vertical-align: top; }
th { background: #f3f5f8; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.reference td { color: #777; font-style: italic; }
td.bad { color: #b00020; } td.good { color: #1b7f3b; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { font-size: .85em; color: #555; }
ul.notes { font-size: .85em; color: #555; margin-top: .2em; }
.scroll { overflow-x: auto; }
.omitted { background: #fff8e1; border-left: 4px solid #f0b400; padding: .5em 1em; }
code { font-size: .9em; background: #f5f5f5; padding: 0 .2em; }
"""


@dataclass(frozen=True)
class Plot:
    """One plot of the report: ``key`` names its PNG file, ``svg`` is shown in the page."""

    key: str
    title: str
    caption: str
    svg: str


@dataclass
class ReportContent:
    """Everything the page shows, in order."""

    runs: list[RunInfo]
    manifests: list[dict[str, Any]]
    tables: list[ReportTable]
    differences: ReportTable | None
    plots: dict[str, Plot]
    missing: dict[str, str] = field(default_factory=dict)  # plot key -> why it is not drawn
    per_class: list[tuple[ClassErrors, Plot | None]] = field(default_factory=list)
    examples: Examples | None = None
    version: str = ""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(data: bytes | str, mime: str) -> str:
    """``data:`` URI of ``data`` (base64)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def figure(plot: Plot) -> str:
    """A ``<figure>`` holding the plot as an embedded SVG image, with its caption."""
    return (f'<figure class="plot" id="plot-{_e(plot.key)}" data-plot="{_e(plot.key)}">'
            f'<img alt="{_e(plot.title)}" src="{data_uri(plot.svg, "image/svg+xml")}">'
            f"<figcaption>{_e(plot.caption)}</figcaption></figure>")


def _caption(table: ReportTable) -> str:
    if table.key == "differences":
        return f"{table.title} (percentage points, {table.subset} images)"
    source = table.reference_label or "paper"
    images = f"; {source}: {table.expected_images:,} images" if table.expected_images else ""
    return f"{table.title} (top-1/top-5 error %, {table.subset} images{images})"


def _cell_class(header: str, text: str, numeric: bool) -> str:
    classes = ["num"] if numeric else []
    if header.endswith(tuple(f"in CI top-{k}" for k in (1, 5))):
        classes.append({"yes": "good", "no": "bad"}.get(text, ""))
    return " ".join(c for c in classes if c)


def table_html(table: ReportTable, several_runs: bool) -> str:
    """One report table with the cells of :func:`inceval.reports.render.display_columns`, and its
    notes below it."""
    columns = render.display_columns(table, several_runs)
    first_number = next((i for i, (h, _) in enumerate(columns) if h == "Images"), len(columns))
    out = [f'<div class="scroll"><table class="results" data-table="{_e(table.key)}">',
           f"<caption>{_e(_caption(table))}</caption>", "<thead><tr>"]
    out += [f'<th{" class=num" if i >= first_number else ""}>{_e(h)}</th>'
            for i, (h, _) in enumerate(columns)]
    out.append("</tr></thead><tbody>")
    for row in table.frame.to_dict(orient="records"):
        reference_only = table.key != "differences" and row.get("run") is None
        out.append('<tr class="reference">' if reference_only else "<tr>")
        for i, (header, cell) in enumerate(columns):
            text = cell(row)
            css = _cell_class(header, text, i >= first_number)
            out.append(f'<td class="{css}">{_e(text)}</td>' if css else f"<td>{_e(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in table.notes)
                   + "</ul>")
    return "\n".join(out)


def _plot_or_reason(content: ReportContent, key: str) -> str:
    if key in content.plots:
        return figure(content.plots[key])
    return f'<p class="omitted" data-omitted="{_e(key)}">{_e(content.missing.get(key, ""))}</p>'


def _per_class(content: ReportContent) -> str:
    out = ['<section id="per-class"><h2>Per class</h2>',
           "<p class=note>Per model, under its protocol with the most views; all images; "
           f"top-1 errors with ties counted as wrong ({_e(TIE_RULE)}). A confusion is "
           "true class -&gt; the most probable other class.</p>"]
    for classes, plot in content.per_class:
        out.append(f'<div class="per-class" data-model="{_e(classes.label)}">'
                   f"<h3>{_e(classes.label)}</h3>")
        if plot is None:
            out.append("<p class=note>Every image is classified correctly (top-1).</p></div>")
            continue
        out.append(figure(plot))
        out.append('<div class="side"><table class="worst-classes"><caption>Highest top-1 '
                   'error</caption><thead><tr><th>Class</th><th class="num">Images</th>'
                   '<th class="num">Wrong</th><th class="num">Error %</th></tr></thead><tbody>')
        out += [f'<tr><td>{_e(c.name)}</td><td class="num">{c.images}</td>'
                f'<td class="num">{c.wrong}</td><td class="num">{c.error:.2f}</td></tr>'
                for c in classes.worst]
        out.append('</tbody></table><table class="confusions"><caption>Most frequent '
                   'confusions</caption><thead><tr><th>True class</th><th>Predicted</th>'
                   '<th class="num">Images</th></tr></thead><tbody>')
        out += [f'<tr><td>{_e(c.true_name)}</td><td>{_e(c.predicted_name)}</td>'
                f'<td class="num">{c.count}</td></tr>' for c in classes.confusions]
        out.append("</tbody></table></div></div>")
    out.append("</section>")
    return "\n".join(out)


def _examples(examples: Examples | None) -> str:
    out = ['<section id="examples"><h2>Example images</h2>']
    if examples is None:
        out.append('<p class="omitted" data-omitted="examples">Example images were not '
                   "asked for (--no-examples).</p>")
    else:
        if examples.images:
            out.append(f"<p class=note>Run {_e(examples.run)}, model {_e(examples.model)}, "
                       f"the views of protocol {_e(examples.protocol)} as rendered by the "
                       "PIL/torch reference pipeline (thumbnails), with the top-5 predictions "
                       "of that protocol.</p>")
        for image in examples.images:
            out.append(f'<div class="example" data-example="{_e(image.kind)}">'
                       f"<h3>{_e(image.kind.capitalize())} (top-1): {_e(image.path)}, "
                       f"label {_e(image.label)}</h3>"
                       f'<img alt="views of {_e(image.path)}" '
                       f'src="{data_uri(image.sheet_png, "image/png")}">'
                       '<table class="top5"><thead><tr><th>#</th><th>Class</th>'
                       '<th class="num">Probability</th></tr></thead><tbody>')
            out += [f'<tr><td>{i}</td><td>{_e(name)}</td><td class="num">{p:.4f}</td></tr>'
                    for i, (name, p) in enumerate(image.top, start=1)]
            out.append("</tbody></table></div>")
        if examples.reasons:
            head = ("Some example images are omitted:" if examples.images
                    else "Example images omitted: no run's images can be read here.")
            out.append(f'<div class="omitted" data-omitted="examples"><p>{_e(head)}</p><ul>'
                       + "".join(f"<li>{_e(r)}</li>" for r in examples.reasons) + "</ul></div>")
    out.append("</section>")
    return "\n".join(out)


def _command(manifest: dict[str, Any]) -> str:
    command = manifest.get("command")
    if isinstance(command, list):
        return " ".join(str(part) for part in command)
    return str(command) if command else "-"


def _versions(manifest: dict[str, Any]) -> str:
    versions = manifest.get("versions")
    if not isinstance(versions, dict):
        versions = {"inceval": manifest.get("inceval_version"),
                    "torch": manifest.get("torch_version"),
                    "nvidia_dali": manifest.get("dali_version")}
    return ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None) or "-"


def _throughput(manifest: dict[str, Any]) -> str:
    data = manifest.get("throughput") or {}
    parts = []
    if data.get("images_per_s") is not None:
        parts.append(f"{data['images_per_s']:g} images/s")
    views = data.get("model_views_per_s", data.get("views_per_s"))
    if views is not None:
        parts.append(f"{views:g} model views/s")
    if data.get("seconds") is not None:
        parts.append(f"{data['seconds']:g} s in all")
    return ", ".join(parts) or "-"


def _weights(info: dict[str, Any]) -> str:
    if "members" in info or info.get("kind") == "ensemble":
        members = info.get("members") or []
        return "ensemble of " + ", ".join(
            f"{m.get('run')}/{m.get('model')} (weight {float(m.get('weight', 1)):.4g})"
            for m in members)
    source = info.get("weights_tag") or info.get("weights_file") or info.get("weights") or "-"
    seed = (info.get("weights_info") or {}).get("seed")
    if info.get("weights") == "random" and seed is not None:
        source = f"random (seed {seed})"
    sha = info.get("weights_sha256")
    return f"{source}, sha256 {sha}" if sha else str(source)


def _provenance(content: ReportContent) -> str:
    out = ['<section id="provenance"><h2>Provenance</h2>']
    for info, manifest in zip(content.runs, content.manifests):
        settings = manifest.get("settings") or {}
        data = manifest.get("data") or {}
        rows = [
            ("Directory", info.run_dir),
            ("Command", _command(manifest)),
            ("Versions", _versions(manifest)),
            ("Device", settings.get("device") or manifest.get("device") or "-"),
            ("Compute dtype", settings.get("dtype") or manifest.get("dtype") or "-"),
            ("Stored probabilities", manifest.get("prob_dtype") or "-"),
            ("Throughput", _throughput(manifest)),
            ("Started / finished", f"{manifest.get('started_at', '-')} / "
                                   f"{manifest.get('finished_at', '-')}"),
            ("Data", f"{data.get('root', '-')} ({info.images:,} images, "
                     f"{info.non_blacklisted:,} not blacklisted"
                     + (f", {info.images_unreadable:,} unreadable" if info.images_unreadable
                        else "")
                     + f"; fingerprint {info.fingerprint})"),
        ]
        rows += [(f"Weights of {name}", _weights(model))
                 for name, model in (manifest.get("models") or {}).items()]
        out.append(f"<h3>Run {_e(info.label)}</h3><table class=provenance><tbody>")
        out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows]
        out.append("</tbody></table>")
        extra = {k: v for k, v in settings.items() if k not in ("device", "dtype")}
        if extra:
            out.append(f"<p class=note>Settings: {_e(json.dumps(extra, sort_keys=True))}</p>")
    out.append("</section>")
    return "\n".join(out)


def page(content: ReportContent) -> str:
    """The whole HTML document."""
    several = len(content.runs) > 1
    runs = ", ".join(render.run_heading(r) for r in content.runs)
    body = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>inceval report: {_e(runs)}</title>", f"<style>{CSS}</style>", "</head>",
        "<body>", "<h1>inceval report</h1>",
        f"<p>Runs: {_e(runs)}. Built from the stored predictions by inceval "
        f"{_e(content.version)}; no model was run. Errors in %, differences in percentage "
        f"points (ours - reference); ties count as wrong ({_e(TIE_RULE)}).</p>",
        '<nav><a href="#tables">Tables</a> | <a href="#plots">Plots</a> | '
        '<a href="#per-class">Per class</a> | <a href="#examples">Example images</a> | '
        '<a href="#provenance">Provenance</a></nav>',
        '<section id="tables"><h2>Tables 1-4 beside the paper</h2>',
        "<p class=note>95% intervals: exact (Clopper-Pearson) for each error; the paper's value "
        "is a constant, so the interval of ours - paper is ours shifted by it.</p>",
    ]
    shown = content.tables + ([content.differences] if content.differences is not None else [])
    body += [table_html(table, several) for table in shown]
    body.append("</section>")
    body.append('<section id="plots"><h2>Plots</h2>')
    for key, title in (("error-vs-views", "Error vs views per image"),
                       ("ours-minus-paper", "Ours minus paper"),
                       ("ensemble-gain", "Ensemble gain"),
                       ("calibration", "Calibration")):
        body.append(f"<h3>{_e(title)}</h3>")
        body.append(_plot_or_reason(content, key))
    body.append("</section>")
    body.append(_per_class(content))
    body.append(_examples(content.examples))
    body.append(_provenance(content))
    body += ["</body>", "</html>", ""]
    return "\n".join(body)
