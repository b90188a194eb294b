"""Shared test configuration: the CUDA and DALI markers.

``gpu`` tests skip without CUDA (no CI machine has one). ``dali`` tests skip without nvidia-dali
only where DALI is optional (not Linux); on Linux it is a required dependency, so its absence
fails those tests instead of hiding them.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

HAS_DALI = importlib.util.find_spec("nvidia.dali") is not None
DALI_REQUIRED = sys.platform.startswith("linux")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _dali_available(request: pytest.FixtureRequest) -> None:
    """Skip a ``dali`` test off Linux without DALI; fail it on Linux, where DALI is required."""
    if request.node.get_closest_marker("dali") is None or HAS_DALI:
        return
    if DALI_REQUIRED:
        pytest.fail("nvidia-dali is missing, but it is a required dependency on Linux: "
                    "pip install -e . (or nvidia-dali-cuda120 / nvidia-dali-cuda130)")
    pytest.skip("needs nvidia-dali")

