"""How DALI's views reach torch: shared through DLPack (no copy), and still intact when kept.

With DALI's default executor an output buffer belongs to whoever holds it, so the long-lived
pipeline hands each batch over through DLPack. These tests check, on the CPU, that the tensors the
iterator yields are DALI's own buffers (same address, nothing copied), that batches kept by a slow
consumer are never overwritten while the pipeline renders more (also across a rebuild after a bad
file), and that the copying fallback gives the same views.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from inceval.data import pipeline
from inceval.data.pipeline import PipelineStats, iter_segment_batches
from inceval.data.protocols import get_protocol
from inceval.eval_config import EvalConfig
from tests.photos import write_photo_set

pytestmark = pytest.mark.dali

CONFIG = EvalConfig(input_size=64)  # small views: the hand-off, not the resize, is under test


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_photo_set(tmp_path_factory.mktemp("photos"))


class _RecordingPipe:
    """A built DALI pipeline whose outputs' buffer addresses are written down as they leave."""

    def __init__(self, pipe: Any, addresses: list[int]) -> None:
        self._pipe = pipe
        self._addresses = addresses
        self.exec_dynamic = pipe.exec_dynamic

    def run(self) -> Any:
        outputs = self._pipe.run()
        self._addresses.append(outputs[0].as_tensor().data_ptr())
        return outputs


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    addresses: list[int] = []
    build = pipeline._build_graph
    monkeypatch.setattr(pipeline, "_build_graph",
                        lambda layout, **kwargs: _RecordingPipe(build(layout, **kwargs), addresses))
    return addresses


def _render(paths: list[Path], protocol: str, stats: PipelineStats,
            batch_size: int = 2) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(positions, views as yielded, a clone taken when yielded) of every batch, all kept."""
    views = get_protocol(protocol).resolve(CONFIG)
    kept = []
    for batch in iter_segment_batches(paths, views, [range(0, len(paths))],
                                      batch_size=batch_size, device="cpu", stats=stats):
        if batch.views is not None:
            kept.append((batch.indices.tolist(), batch.views, batch.views.clone()))
    return kept


def test_views_are_dalis_buffers_not_copies(photos: list[Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    addresses = _recording(monkeypatch)
    stats = PipelineStats()
    kept = _render(photos, "12", stats)
    assert stats.handoff == "dlpack"
    assert len(kept) == len(addresses) == -(-len(photos) // 2)
    assert [views.data_ptr() for _, views, _ in kept] == addresses


def test_kept_batches_are_not_overwritten_by_later_ones(photos: list[Path]) -> None:
    # Every batch is held until the end, as a consumer that falls behind would: DALI must not
    # recycle a buffer that a live tensor still shares.
    paths = photos * 3
    kept = _render(paths, "12", PipelineStats())
    assert sum(len(positions) for positions, _, _ in kept) == len(paths)
    assert len({views.data_ptr() for _, views, _ in kept}) == len(kept)
    for positions, views, snapshot in kept:
        assert torch.equal(views, snapshot), positions


def test_kept_batches_survive_a_pipeline_rebuild(photos: list[Path], tmp_path: Path) -> None:
    # A truncated file makes DALI fail mid-run: the pipeline is torn down and built again while
    # earlier batches are still held.
    truncated = tmp_path / "truncated.JPEG"
    data = photos[1].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    paths = photos[:3] + [truncated] + photos[3:] + photos
    stats = PipelineStats()
    kept = _render(paths, "1", stats)
    assert stats.rebuilds == 1
    assert sorted(p for positions, _, _ in kept for p in positions) == [
        p for p in range(len(paths)) if p != 3]
    for positions, views, snapshot in kept:
        assert torch.equal(views, snapshot), positions


def test_copying_fallback_gives_the_same_views(photos: list[Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shared = _render(photos, "12", PipelineStats())
    original = pipeline._OutputHandoff
    monkeypatch.setattr(pipeline, "_OutputHandoff",
                        lambda dtype, device, zero_copy: original(dtype, device, zero_copy=False))
    addresses = _recording(monkeypatch)
    stats = PipelineStats()
    copied = _render(photos, "12", stats)
    assert stats.handoff == "copy"
    assert not {views.data_ptr() for _, views, _ in copied} & set(addresses)
    assert [p for p, _, _ in copied] == [p for p, _, _ in shared]
    for (_, a, _), (_, b, _) in zip(shared, copied):
        assert torch.equal(a, b)
