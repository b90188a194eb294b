"""Example images for the report: the views of one correctly and one wrongly classified image.

The views are rendered from the image files under the run's recorded data root by the PIL/torch
reference pipeline (:mod:`inceval.data.reference`; no DALI, no model), shrunk to thumbnails and
laid out by :func:`inceval.cli.views.contact_sheet`. A run whose data root (or image file) is not
readable here is skipped, and the reason is kept for the report to say.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inceval.data import builtin
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from inceval.reports import paper as paper_data
from inceval.reports.predictions import ImagePrediction, image_predictions
from inceval.store import RunReader

THUMBNAIL = 128
SMALL_THUMBNAIL = 64  # for protocols with more than MAX_LARGE_VIEWS views
MAX_LARGE_VIEWS = 12


@dataclass(frozen=True)
class ExampleImage:
    """One image of the run with its contact sheet and top-5 predictions."""

    kind: str  # "correct" or "wrong" (top-1)
    path: str
    label: str
    top: list[tuple[str, float]]
    sheet_png: bytes


@dataclass
class Examples:
    """The example images found, or why none are shown (``reasons``, one line per run)."""

    run: str | None = None
    model: str | None = None
    protocol: str | None = None
    images: list[ExampleImage] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def eval_config_of(info: dict[str, Any]) -> EvalConfig | None:
    """The preprocessing a run recorded for a model (None for runs that did not record it)."""
    record = info.get("eval_config")
    if not isinstance(record, dict):
        return None
    try:
        return EvalConfig(int(record["input_size"]), float(record["crop_pct"]),
                          str(record["interpolation"]), tuple(record["mean"]),
                          tuple(record["std"]))
    except (KeyError, TypeError, ValueError):
        return None


def example_protocol(run: RunReader, model: str) -> str:
    """The protocol whose views are shown: the most views up to :data:`MAX_LARGE_VIEWS`, else the
    fewest (first stored on a tie)."""
    protocols = [p for m, p in run.entries() if m == model]

    views = run.views_per_image
    small = [p for p in protocols if views(p) <= MAX_LARGE_VIEWS]
    if small:
        return max(small, key=lambda p: (views(p), -protocols.index(p)))
    return min(protocols, key=lambda p: (views(p), protocols.index(p)))


def _sheet(image_path: Path, views: Sequence[Any]) -> bytes:
    """PNG bytes of the labelled contact sheet of one image's views, as thumbnails."""
    from PIL import Image

    from inceval.cli.views import contact_sheet
    from inceval.data.reference import decode_rgb, render_views
    from inceval.data.views import plan_views

    image = decode_rgb(image_path)
    pixels = render_views(image, plan_views(image.shape[1], image.shape[0], views)).numpy()
    size = THUMBNAIL if len(views) <= MAX_LARGE_VIEWS else SMALL_THUMBNAIL
    thumbs = np.stack([
        np.asarray(Image.fromarray(view.transpose(1, 2, 0)).resize((size, size),
                                                                   Image.Resampling.LANCZOS))
        .transpose(2, 0, 1) for view in pixels])
    buffer = io.BytesIO()
    contact_sheet(thumbs, [spec.label for spec in views]).save(buffer, format="PNG")
    return buffer.getvalue()


def _example(kind: str, root: Path, row: ImagePrediction, views: Sequence[Any]) -> ExampleImage:
    return ExampleImage(kind, row.path, builtin.class_label(row.label),
                        [(builtin.class_label(c), p) for c, p in row.top],
                        _sheet(root / row.path, views))


def _from_run(run: RunReader, label: str) -> Examples:
    """Examples from one run, or Examples with the reason it has none."""
    from inceval.data.protocols import get_protocol

    root_text = (run.manifest.get("data") or {}).get("root")
    root = Path(str(root_text)) if root_text else None
    if root is None or not root.is_dir() or not os.access(root, os.R_OK):
        return Examples(reasons=[f"run {label}: its data root {root_text or '(not recorded)'} "
                                 "is not readable here"])
    models = run.manifest.get("models", {})
    candidates = [m for m in dict.fromkeys(m for m, _ in run.entries())
                  if not paper_data.is_ensemble(models.get(m, {}))]
    configs = {m: eval_config_of(models.get(m, {})) for m in candidates}
    model = next((m for m in candidates if configs[m] is not None), None)
    if model is None:
        return Examples(reasons=[f"run {label}: no single model with recorded preprocessing "
                                 "(manifest models.<name>.eval_config)"])
    protocol = example_protocol(run, model)
    try:
        views = get_protocol(protocol).resolve(configs[model])  # type: ignore[arg-type]
    except InceValError as exc:
        return Examples(reasons=[f"run {label}: cannot rebuild the views of protocol "
                                 f"{protocol} ({exc})"])
    recorded = run.manifest["protocols"].get(protocol, {}).get("views")
    if recorded and list(recorded) != [spec.label for spec in views]:
        return Examples(reasons=[f"run {label}: protocol {protocol} now has other views than the "
                                 "run recorded"])
    rows = image_predictions(run, model, protocol, top=5)
    found = Examples(run=label, model=model, protocol=protocol)
    for kind, want in (("correct", True), ("wrong", False)):
        row = next((r for r in rows if r.correct_top1 == want), None)
        if row is None:
            found.reasons.append(f"run {label}: no image is classified {kind}ly (top-1) by "
                                 f"{model} under protocol {protocol}")
            continue
        try:
            found.images.append(_example(kind, root, row, views))
        except InceValError as exc:
            found.reasons.append(f"run {label}: {exc}")
    if not found.images:
        return Examples(reasons=found.reasons)
    return found


def find_examples(runs: Sequence[RunReader], run_labels: Sequence[str]) -> Examples:
    """Examples from the first run that yields any, with the reasons the runs before it did not
    (all reasons when none does)."""
    reasons: list[str] = []
    for run, label in zip(runs, run_labels):
        found = _from_run(run, label)
        if found.images:
            found.reasons = reasons + found.reasons
            return found
        reasons += found.reasons
    return Examples(reasons=reasons)
