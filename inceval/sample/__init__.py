"""The bundled sample: eight labelled photographs shipped with inceval (sources in SOURCES.md).

``inceval run`` without ``--data`` evaluates them, so a fresh install works offline. Eight images
demonstrate the pipeline; they cannot measure accuracy.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_ROOT = Path(__file__).resolve().parent
SAMPLE_LABELS = SAMPLE_ROOT / "labels.txt"
SAMPLE_LAYOUT = "list"
