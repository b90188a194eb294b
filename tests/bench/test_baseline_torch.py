"""The classic-loop baseline computes inceval's views (so the comparison is like with like)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.baseline_torch import (
    ViewsDataset,
    protocol_views,
    single_crop,
    to_normalised_tensor,
)
from inceval.data.protocols import get_protocol
from inceval.data.reference import decode_rgb, render_views
from inceval.data.views import plan_views
from inceval.eval_config import EvalConfig
from inceval.sample import SAMPLE_ROOT

PHOTO = SAMPLE_ROOT / "images" / "china.jpg"  # 640x427
CONFIG = EvalConfig(input_size=107)


def _reference(protocol: str) -> np.ndarray:
    image = decode_rgb(PHOTO)
    views = get_protocol(protocol).resolve(CONFIG)
    return render_views(image, plan_views(image.shape[1], image.shape[0], views)).numpy()


def _stack(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(v).transpose(2, 0, 1) for v in images])


@pytest.mark.parametrize("protocol", ["1", "12"])
def test_views_match_inceval_reference_renderer(protocol: str) -> None:
    # PIL and the torch reference resize differently by a few grey levels near edges only.
    with Image.open(PHOTO) as opened:
        image = opened.convert("RGB")
    ours = (_stack([single_crop(image, CONFIG)]) if protocol == "1"
            else _stack(protocol_views(image, get_protocol(protocol).resolve(CONFIG))))
    reference = _reference(protocol)
    assert ours.shape == reference.shape == ((1 if protocol == "1" else 12), 3, 107, 107)
    difference = np.abs(ours.astype(int) - reference.astype(int))
    assert difference.mean() < 0.5 and difference.max() <= 16


def test_normalisation_by_hand_and_dataset_items() -> None:
    # Inception mean/std 0.5: 0 -> (0 - 0.5) / 0.5 = -1, 255 -> 1, 51 -> (0.2 - 0.5) / 0.5 = -0.6.
    pixels = Image.fromarray(np.array([[[0, 255, 51]]], dtype=np.uint8))
    torch.testing.assert_close(to_normalised_tensor(pixels, CONFIG).flatten(),
                               torch.tensor([-1.0, 1.0, -0.6]))
    item = ViewsDataset([PHOTO], "12", CONFIG)[0]
    assert item.shape == (12, 3, 107, 107) and item.dtype == torch.float32
    expected = (torch.from_numpy(_reference("12")).float() / 255 - 0.5) / 0.5
    assert (item - expected).abs().mean() < 0.5 / 127.5 * 2
