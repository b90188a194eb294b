"""The report in a real headless browser (Chromium): the page and its plots render.

Skips only when no Chromium/Chrome binary is installed (CI installs Debian's ``chromium``, see
.ci/run). Two screenshots:

* the report itself: matplotlib's plot colours (the blue and red of the markers, lines and bars)
  appear in the screenshot only if the embedded SVG plots were drawn, since the page's own
  stylesheet uses neither;
* every plot of the report placed by this test in its own box of known position on a magenta
  ground: each box must be covered (no magenta left: the image loaded and filled it) and hold a
  drawing (dark pixels of axes and text, and coloured pixels of the data), not a blank or a
  broken-image icon.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.factory import FIXTURE_RUNS

pytestmark = pytest.mark.browser
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PLOT_BLUE = (0x1F, 0x77, 0xB4)
PLOT_RED = (0xD6, 0x27, 0x28)
MAGENTA = (255, 0, 255)
BOX_W, BOX_H, COLUMNS = 600, 640, 2  # boxes up to BOX_H tall, each as wide as BOX_W


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        pytest.skip("no Chromium or Chrome installed (apt-get install chromium)")
    return found


def screenshot(browser: str, page: Path, out: Path, width: int, height: int) -> np.ndarray:
    """RGB pixels of ``page`` rendered by the headless browser in a width x height window."""
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--force-device-scale-factor=1",
         f"--user-data-dir={out.parent / 'profile'}", f"--screenshot={out}",
         f"--window-size={width},{height}", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    assert out.exists(), f"no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB")).astype(np.int32)


def near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    """Pixels within ``tolerance`` of ``colour`` in every channel."""
    return (np.abs(pixels - np.array(colour)) <= tolerance).all(axis=-1)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a Report
    pytest.importorskip("matplotlib")
    from inceval.reports.report import build_report
    from inceval.store import RunReader

    built = build_report([RunReader(FIXTURE_RUNS / run) for run in ("tf", "ens2")],
                         resamples=200)
    folder = tmp_path_factory.mktemp("browser")
    (folder / "report.html").write_text(built.html, encoding="utf-8")
    return built, folder


def test_the_report_renders_with_its_plots(browser: str, report) -> None:  # noqa: ANN001
    built, folder = report
    pixels = screenshot(browser, folder / "report.html", folder / "report.png", 1400, 12000)
    rows_with_ink = (pixels.min(axis=-1) < 200).any(axis=1)
    assert rows_with_ink.mean() > 0.3  # text, tables and plots down the page, not a blank page
    # The plots' own colours: thousands of pixels of each, none of which the page's CSS draws.
    assert near(pixels, PLOT_BLUE).sum() > 1500
    assert near(pixels, PLOT_RED).sum() > 1500
    assert len(built.figures) == 8  # 4 summary plots, 4 per-class plots (tf v3/v4/irv2, ens2)


def test_every_plot_fills_its_box_with_a_drawing(browser: str, report) -> None:  # noqa: ANN001
    built, folder = report
    plots = {p.key: p for p in built.content.plots.values()}
    plots.update({p.key: p for _, p in built.content.per_class if p is not None})
    from inceval.reports.report.html import data_uri

    boxes = []
    cells = []
    for i, (key, plot) in enumerate(sorted(plots.items())):
        # The box has the plot's own aspect ratio (an SVG keeps it, letterboxing any other).
        root = ET.fromstring(plot.svg)
        aspect = float(root.get("height").removesuffix("pt")) / float(
            root.get("width").removesuffix("pt"))
        h = round(BOX_W * aspect)
        assert h <= BOX_H, key
        x, y = 20 + (i % COLUMNS) * (BOX_W + 20), 20 + (i // COLUMNS) * (BOX_H + 20)
        boxes.append((key, x, y, h))
        cells.append(f'<img src="{data_uri(plot.svg, "image/svg+xml")}" style="position:absolute;'
                     f'left:{x}px;top:{y}px;width:{BOX_W}px;height:{h}px">')
    height = 40 + ((len(boxes) + 1) // COLUMNS) * (BOX_H + 20)
    layout = folder / "layout.html"
    layout.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
                      '<body style="margin:0;background:#ff00ff">' + "".join(cells)
                      + "</body></html>", encoding="utf-8")
    pixels = screenshot(browser, layout, folder / "layout.png", 2 * BOX_W + 60, height)
    # Outside the boxes the ground stays magenta: the screenshot is of this page.
    assert near(pixels[:10, :10], MAGENTA, 5).all()
    for key, x, y, h in boxes:
        # Skip a 2-pixel rim against scaling at the edges of the box.
        box = pixels[y + 2:y + h - 2, x + 2:x + BOX_W - 2]
        assert near(box, MAGENTA, 30).mean() < 0.001, f"{key}: not drawn over its box"
        assert (box.max(axis=-1) < 100).mean() > 0.002, f"{key}: no axes or text"
        # Data are drawn in colour; axes, text and the ground are grey.
        colourful = (box.max(axis=-1) - box.min(axis=-1)) > 80
        assert colourful.sum() > 30, f"{key}: no data drawn"
