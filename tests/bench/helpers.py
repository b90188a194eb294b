"""Hand-made bench documents and a tiny stand-in network for the bench tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inceval.eval_config import EvalConfig


def row(model: str, protocol: str, stage: str, views_per_s: float, reference_rate: float,
        **extra: Any) -> dict[str, Any]:
    """A result row with the numbers the comparison reads; normalised computed by hand."""
    base = {"model": model, "protocol": protocol, "stage": stage, "input_size": 299,
            "views_per_image": 1 if protocol == "1" else 12, "batch_size": 8, "images": 32,
            "views": 32, "passes": 1, "seconds": 1.0, "images_per_s": views_per_s,
            "views_per_s": views_per_s, "reference_rate": reference_rate,
            "normalised": views_per_s / reference_rate}
    base.update(extra)
    return base


def document(rows: list[dict[str, Any]], *, reference_rate: float = 10.0,
             **settings: Any) -> dict[str, Any]:
    """A schema-1 bench document around ``rows``."""
    return {
        "format": "inceval-bench",
        "schema_version": 1,
        "machine": {"cpu": "test", "torch_threads": 1},
        "settings": {"device": "cpu", "dtype": "float32", "backend": "dali", "batch_size": None,
                     "max_views_per_forward": 32, "workers": 1, "compile": False, **settings},
        "data": {"source": "synthetic", "fingerprint": "abc"},
        "reference": {"workload": "conv-stack", "version": 1, "rate": reference_rate,
                      "gflop_per_s": 1.0, "bursts": [reference_rate]},
        "gemm": {"size": 1024, "dtype": "float32", "tflop_per_s": 0.1},
        "feeder": {"available": True, "reason": None},
        "rows": rows,
    }


def write(path: Path, doc: dict[str, Any]) -> str:
    """Write ``doc`` as JSON and return the path as a string."""
    path.write_text(json.dumps(doc))
    return str(path)


def changed(doc: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A deep copy with ``section__key=value`` items replaced (e.g. settings__dtype)."""
    out = copy.deepcopy(doc)
    for dotted, value in paths.items():
        section, key = dotted.split("__")
        out[section][key] = value
    return out


class TinyNet(nn.Module):
    """Two convolutions and a classifier: a real network, small enough for unit tests."""

    def __init__(self, input_size: int = 32) -> None:
        super().__init__()
        self.model_name = "tiny"
        self.eval_config = EvalConfig(input_size=input_size)
        self.weights_info = {"source": "stand-in"}
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(16, 1000)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
