"""Shared test configuration: markers that skip without CUDA or DALI, and paths to shared data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NOTES = Path(__file__).resolve().parents[2] / "shared" / "notes"

HAS_DALI = importlib.util.find_spec("nvidia.dali") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_dali = pytest.mark.skip(reason="needs nvidia-dali")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "dali" in item.keywords and not HAS_DALI:
            item.add_marker(skip_dali)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository (third-party files; never copied into the repo)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def notes_dir() -> Path:
    """../shared/notes beside the repository."""
    if not NOTES.is_dir():
        pytest.skip(f"shared notes not found at {NOTES}")
    return NOTES
