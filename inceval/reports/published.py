"""timm's published accuracies of the public weights on ImageNet, ReaL, ImageNetV2, Sketch, -A, -R.

Read from timm_published_results.csv beside this module (copied from timm's results-*.csv files;
source in inceval/reports/SOURCES.md). Single crop with each weights tag's own preprocessing
(inceval protocol "1"), on each set's full image list.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources

from inceval.reports.paper import Checkpoint

FILE = "timm_published_results.csv"
# Dataset keys of the file: imagenet, real, imagenetv2-matched-frequency, sketch, imagenet-a,
# imagenet-r.


@lru_cache(maxsize=1)
def _rows() -> dict[tuple[str, str], Checkpoint]:
    text = resources.files(__package__).joinpath(FILE).read_text()
    return {(row["dataset"], row["model"]): Checkpoint(row["model"], float(row["top1"]),
                                                       float(row["top5"]))
            for row in csv.DictReader(io.StringIO(text))}


def published(dataset: str | None, weights: str | None) -> Checkpoint | None:
    """timm's figure for ``weights`` (an ``arch.tag``) on ``dataset`` (a key of the file), if any."""
    if dataset is None or weights is None:
        return None
    return _rows().get((dataset, weights))
