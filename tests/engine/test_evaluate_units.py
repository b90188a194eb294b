"""Units of the engine: option grammar, chunking, and one model's scoring of a batch of views."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from inceval.engine.forward import ModelRunner
from inceval.engine.producer import Chunk, make_chunks
from inceval.engine.runspec import RunRequest, per_model, split_list
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

MODELS = ("v3", "v4", "irv2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {"v3": "pretrained", "v4": "pretrained", "irv2": "pretrained"}),
        ("random", {"v3": "random", "v4": "random", "irv2": "random"}),
        ("v4=/w/v4.pt,irv2=random", {"v3": "pretrained", "v4": "/w/v4.pt", "irv2": "random"}),
        ("random, v4=pretrained", {"v3": "random", "v4": "pretrained", "irv2": "random"}),
        ("v4=pretrained,random", {"v3": "random", "v4": "pretrained", "irv2": "random"}),
    ],
)
def test_per_model_values(text: str | None, expected: dict[str, str]) -> None:
    assert per_model("--weights", text, MODELS, "pretrained") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("random,pretrained", "gives two values for all models"),
        ("v4=random,v4=pretrained", "gives model v4 two values"),
        ("v5=random", "names model v5, which is not in --models (v3,v4,irv2)"),
        ("v4=", "must be MODEL=VALUE"),
        ("random,,v4=pretrained", "has an empty item"),
    ],
)
def test_per_model_errors(text: str, message: str) -> None:
    with pytest.raises(InceValError, match=re.escape(message)):
        per_model("--weights", text, MODELS, "pretrained")


def test_split_list_refuses_repeats_and_blanks() -> None:
    assert split_list("--crops", " 1, 12 ,144") == ("1", "12", "144")
    with pytest.raises(InceValError, match="--crops lists 12 twice"):
        split_list("--crops", "1,12,12")
    with pytest.raises(InceValError, match="empty item"):
        split_list("--models", "")


def test_request_checks_weight_files_and_dataset_options(tmp_path) -> None:
    checkpoint = tmp_path / "v4.safetensors"
    checkpoint.write_bytes(b"")
    request = RunRequest.from_options(models="v3,v4", crops="1", weights=f"random,v4={checkpoint}",
                                      weights_tag="v3=tv_in1k")
    assert request.weights == {"v3": "random", "v4": str(checkpoint)}
    assert request.weights_tags == {"v3": "tv_in1k", "v4": None}
    assert request.random_models == ["v3"]
    with pytest.raises(InceValError, match="--blacklist needs --data"):
        RunRequest.from_options(models="v3", crops="1", weights=None, weights_tag=None,
                                blacklist=tmp_path / "b.txt")


def test_chunks_cover_every_image_once() -> None:
    assert make_chunks(10, 4) == [Chunk(0, 0, 4), Chunk(1, 4, 8), Chunk(2, 8, 10)]
    assert make_chunks(3, 8) == [Chunk(0, 0, 3)]


class _PixelNet(nn.Module):
    """Logits that depend on the pixels of each view, so views differ."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3 * 4 * 4, 7)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        return 20 * self.proj(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


def test_runner_averages_softmax_per_protocol_in_bounded_slices() -> None:
    config = EvalConfig(input_size=8, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    generator = torch.Generator().manual_seed(1)
    views = torch.randint(0, 256, (3, 5, 3, 8, 8), dtype=torch.uint8, generator=generator)
    protocols = [np.array([0]), np.array([1, 2, 3, 4]), np.array([4, 0])]
    net = _PixelNet()
    runner = ModelRunner(net, config, torch.device("cpu"), "float32", max_views_per_forward=4)
    result = runner.protocol_probabilities(views, protocols)
    assert net.calls == [4, 4, 4, 3]  # 15 views in slices of at most 4

    mean = torch.tensor(config.mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 1, 3, 1, 1)
    x = (views.double() / 255 - mean.double()) / std.double()
    with torch.no_grad():
        logits = 20 * net.proj.double()(nn.functional.adaptive_avg_pool2d(
            x.view(15, 3, 8, 8), 4).flatten(1)).view(3, 5, 7)
    probs = logits.softmax(-1)
    for got, index in zip(result, protocols):
        expected = probs[:, torch.as_tensor(index)].mean(1)
        assert got.shape == (3, 7) and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    # Averaging logits would give another answer here: the check above can fail.
    of_mean_logits = logits[:, [1, 2, 3, 4]].mean(1).softmax(-1)
    assert (of_mean_logits - probs[:, [1, 2, 3, 4]].mean(1)).abs().max() > 1e-2


def test_runner_computes_only_the_selected_views() -> None:
    config = EvalConfig(input_size=8, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    generator = torch.Generator().manual_seed(2)
    rendered = torch.randint(0, 256, (3, 6, 3, 8, 8), dtype=torch.uint8, generator=generator)
    # The model's own views, in its own order: rendered views 5, 1, 2 and 3 (not 0 or 4).
    selection = np.array([5, 1, 2, 3])
    protocols = [np.array([0]), np.array([1, 2, 3]), np.array([3, 0])]
    net = _PixelNet()
    runner = ModelRunner(net, config, torch.device("cpu"), "float32", max_views_per_forward=5)
    result = runner.protocol_probabilities(rendered, protocols, selection=selection)
    assert net.calls == [5, 5, 2]  # 3 images x 4 selected views, not 3 x 6

    alone = ModelRunner(_PixelNet(), config, torch.device("cpu"), "float32",
                        max_views_per_forward=5)
    expected = alone.protocol_probabilities(rendered[:, selection].contiguous(), protocols)
    for got, want in zip(result, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    # The views left out would change the answer: the check above can fail.
    unselected = runner.protocol_probabilities(rendered, protocols)
    assert (unselected[0] - result[0]).abs().max() > 1e-3


# --- default batch sizes -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("device", "views_per_image", "input_size", "expected"),
    [
        # CPU: 8 views per forward, 256 MB of uint8 views per batch.
        ("cpu", 1, 299, 8),
        ("cpu", 12, 299, 1),  # one image already fills a forward call
        ("cpu", 144, 299, 1),
        # CUDA: the views per forward of default_views_per_forward, at least 8 images, 1 GB.
        ("cuda", 1, 299, 256),
        ("cuda", 12, 299, 21),  # 252 views per forward = 21 whole images
        ("cuda", 144, 299, 8),  # one image fills a forward call; 8 images = 309 MB
        ("cuda", 1, 107, 256),  # 1024 views per forward, but at most 256 images per batch
        ("cuda", 144, 598, 6),  # 154 MB per image: 6 fit in 1 GB
    ],
)
def test_default_batch_size_fills_one_forward_call(device: str, views_per_image: int,
                                                   input_size: int, expected: int) -> None:
    from inceval.engine.evaluate import default_batch_size

    assert default_batch_size(views_per_image, input_size, torch.device(device)) == expected


def test_explicit_views_per_forward_sizes_the_batch() -> None:
    from inceval.engine.evaluate import default_batch_size

    # 100 views per forward at 12 views per image: ceil(100 / 12) = 9 images (over CUDA's 8).
    assert default_batch_size(12, 299, torch.device("cuda"), 100) == 9
    # 40 at 12 per image is 4 images: CUDA still takes 8, a CPU 4.
    assert default_batch_size(12, 299, torch.device("cuda"), 40) == 8
    assert default_batch_size(12, 299, torch.device("cpu"), 40) == 4
    # The memory budget caps it: 256 MB / (144 x 3 x 299 x 299 B = 38.6 MB) = 6 images.
    assert default_batch_size(144, 299, torch.device("cpu"), 10_000) == 6
