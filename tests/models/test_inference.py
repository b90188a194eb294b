"""The inference form (BatchNorm folded, channels_last) computes what the plain network computes.

Fresh BatchNorm layers are near-identities, which would make folding trivially right, so every
BatchNorm gets random statistics and affine parameters first.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inceval.errors import InceValError
from inceval.models import autocast_context, create_model, prepare_for_inference
from inceval.models.inference import default_autocast_dtype, fold_batch_norm
from inceval.models.layers import ConvBnAct

SIZE = 107  # small, yet the 8x8 grid is 2x2 so the 3x3 / 1x3 / 3x1 convs still see padding
TOLERANCE = 1e-4


def _randomise_batch_norms(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            n = bn.num_features
            bn.weight.copy_(torch.rand(n, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            bn.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.25)


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["v3", "v4", "irv2", "irv2-paper", "irv1"])
def test_inference_form_matches_plain_model(name: str, batch: torch.Tensor) -> None:
    model = create_model(name, seed=3)
    _randomise_batch_norms(model, seed=4)
    with torch.no_grad():
        expected = model(batch)
    prepared = prepare_for_inference(model)
    with torch.no_grad():
        actual = prepared(batch.contiguous(memory_format=torch.channels_last))

    assert expected.std() > 0  # not a degenerate network whose logits agree trivially
    assert _relative_error(actual, expected) < TOLERANCE

    convs = [m for m in prepared.modules() if isinstance(m, ConvBnAct)]
    assert convs and all(isinstance(m.bn, nn.Identity) and m.conv.bias is not None for m in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    assert all(
        p.is_contiguous(memory_format=torch.channels_last) for p in prepared.parameters() if p.dim() == 4
    )
    assert (prepared.model_name, prepared.eval_config, prepared.weights_info) == (
        model.model_name,
        model.eval_config,
        model.weights_info,
    )
    assert prepared.inference_form == {"fold_bn": True, "channels_last": True}
    assert not prepared.training

    # The original is untouched: still its BatchNorms, still its logits.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(convs)
    with torch.no_grad():
        assert torch.equal(model(batch), expected)


@pytest.mark.parametrize(("fold_bn", "channels_last"), [(True, False), (False, True)])
def test_each_switch_alone_matches(fold_bn: bool, channels_last: bool, batch: torch.Tensor) -> None:
    model = create_model("irv1", seed=5)
    _randomise_batch_norms(model, seed=6)
    prepared = prepare_for_inference(model, fold_bn=fold_bn, channels_last=channels_last)
    with torch.no_grad():
        assert _relative_error(prepared(batch), model(batch)) < TOLERANCE
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    assert has_bn is not fold_bn
    stem = next(m for m in prepared.modules() if isinstance(m, ConvBnAct))
    assert stem.conv.weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    assert prepared.inference_form == {"fold_bn": fold_bn, "channels_last": channels_last}


def test_prepared_model_in_training_mode_is_returned_in_eval_mode() -> None:
    model = create_model("irv1").train()
    assert not prepare_for_inference(model).training
    assert model.training


@pytest.mark.parametrize("conv_bias", [False, True])
def test_fold_batch_norm_equals_conv_then_batch_norm(conv_bias: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, (1, 3), stride=(2, 1), padding=(0, 1), bias=conv_bias)
    bn = nn.BatchNorm2d(8, eps=1e-3)
    _randomise_batch_norms(nn.Sequential(bn), seed=1)
    bn.eval()
    x = torch.randn(3, 6, 9, 9)
    folded = fold_batch_norm(conv, bn)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
    assert (folded.stride, folded.padding, folded.bias is not None) == (conv.stride, conv.padding, True)


def test_autocast_context_on_cpu() -> None:
    layer = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast_context("cpu", "bfloat16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast_context("cpu", torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    for plain in (None, "float32", "fp32", torch.float32):
        with autocast_context("cpu", plain):
            assert layer(x).dtype == torch.float32
    assert default_autocast_dtype("cpu") == torch.bfloat16
    assert default_autocast_dtype("cuda:0") == torch.float16


def test_autocast_context_refuses_bad_precisions() -> None:
    with pytest.raises(
        InceValError, match=r"^precision float16 is not supported on CPU; use bfloat16 or float32$"
    ):
        with autocast_context("cpu", "float16"):
            pass
    with pytest.raises(InceValError, match=r"^unknown precision 'fp8'; use float32, bfloat16 or float16$"):
        with autocast_context("cpu", "fp8"):
            pass
