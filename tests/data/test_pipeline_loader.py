"""Backend choice of the view loader: DALI and the reference yield the same batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inceval.data import loader
from inceval.data.loader import iter_view_batches, resolve_backend
from inceval.data.protocols import get_protocol
from inceval.eval_config import EvalConfig
from inceval.errors import InceValError
from tests.photos import write_photo_set

CONFIG = EvalConfig().with_input_size(96)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_photo_set(tmp_path_factory.mktemp("photos"))


def test_unknown_backend_is_a_one_line_error() -> None:
    with pytest.raises(InceValError, match=r"^--backend must be one of auto, dali, torch, "
                                           r"got 'tf'$"):
        resolve_backend("tf")


def test_auto_falls_back_to_torch_without_dali(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "dali_available", lambda: False)
    assert resolve_backend("auto") == "torch"
    with pytest.raises(InceValError, match="use --backend torch$"):
        resolve_backend("dali")


@pytest.mark.dali
def test_auto_picks_dali_when_it_imports() -> None:
    assert resolve_backend("auto") == "dali"


@pytest.mark.dali
def test_backends_agree_batch_for_batch(photos: list[Path]) -> None:
    # The single centre crop stays clear of the image borders, where the two resizers differ
    # (see test_pipeline.py), so the backends agree to one grey level of rounding.
    views = get_protocol("1").resolve(CONFIG)
    kwargs = dict(batch_size=3, shard_id=1, num_shards=2, normalize=CONFIG)
    dali = list(iter_view_batches(photos, views, backend="dali", device="cpu", **kwargs))
    torch_batches = list(iter_view_batches(photos, views, backend="torch", num_workers=0,
                                           **kwargs))
    assert [b.indices.tolist() for b in dali] == [[3, 4, 5], [6]]
    assert [b.indices.tolist() for b in torch_batches] == [[3, 4, 5], [6]]
    for a, b in zip(dali, torch_batches):
        assert a.views.dtype == b.views.dtype == torch.float32
        assert a.views.shape == b.views.shape == (len(a.indices), 1, 3, 96, 96)
        # Inception mean/std 0.5: one grey level is 1/127.5.
        assert (a.views - b.views).abs().max() <= 1 / 127.5 + 1e-6


def test_torch_backend_gives_uint8_without_normalisation(photos: list[Path]) -> None:
    views = get_protocol("1").resolve(CONFIG)
    batches = list(iter_view_batches(photos, views, backend="torch", batch_size=4,
                                     num_workers=0))
    assert np.concatenate([b.indices for b in batches]).tolist() == list(range(len(photos)))
    assert all(b.views.dtype == torch.uint8 for b in batches)
