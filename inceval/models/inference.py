"""The inference form of a network: BatchNorm folded into convolutions, channels_last layout.

Folding is exact algebra in eval mode (BN is then a per-channel affine map), so the folded network
computes the same logits up to float rounding while skipping one memory pass per layer.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

from inceval.errors import InceValError
from inceval.models.layers import ConvBnAct

_DTYPES = {
    "float32": None,
    "fp32": None,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def prepare_for_inference(model: nn.Module, *, fold_bn: bool = True, channels_last: bool = True) -> nn.Module:
    """Return an eval-mode copy of ``model`` in inference form; ``model`` is left untouched.

    Args:
        model: a network built from :class:`ConvBnAct` blocks.
        fold_bn: fold each ConvBnAct's BatchNorm into its conv (the conv gains a bias, ``bn``
            becomes ``nn.Identity``).
        channels_last: store 4-D weights in channels_last memory format; feed inputs with
            ``x.contiguous(memory_format=torch.channels_last)`` for full effect.

    Returns:
        The copy, carrying the same ``eval_config``, ``model_name`` and ``weights_info`` attributes
        plus ``inference_form`` (a dict of the two switches).
    """
    prepared = copy.deepcopy(model).eval()
    if fold_bn:
        for module in prepared.modules():
            if isinstance(module, ConvBnAct) and isinstance(module.bn, nn.BatchNorm2d):
                module.conv = fold_batch_norm(module.conv, module.bn)
                module.bn = nn.Identity()
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    prepared.inference_form = {"fold_bn": fold_bn, "channels_last": channels_last}
    return prepared


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv computing ``bn(conv(x))`` with BatchNorm in eval mode.

    Args:
        conv: the convolution (with or without bias).
        bn: the BatchNorm that follows it; must track running statistics.

    Returns:
        A conv with bias whose weight is ``w * g / sqrt(v + eps)`` per output channel and whose bias
        is ``beta + (b - mu) * g / sqrt(v + eps)``.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    # float64 keeps the rescaling exact to float32 precision even for tiny running variances.
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        folded.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
        folded.bias.copy_(bn.bias.double() + (bias - bn.running_mean.double()) * scale)
    return folded


def resolve_autocast_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """Map a precision name to the autocast dtype; None means plain float32.

    Args:
        dtype: ``float32``/``fp32``, ``bfloat16``/``bf16``, ``float16``/``fp16``, a torch dtype,
            or None.

    Raises:
        InceValError: an unknown precision name.
    """
    if dtype is None or dtype == torch.float32:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype in (torch.bfloat16, torch.float16):
            return dtype
        raise InceValError(f"precision {dtype} is not supported; use float32, bfloat16 or float16")
    key = str(dtype).strip().lower()
    if key not in _DTYPES:
        raise InceValError(f"unknown precision {dtype!r}; use float32, bfloat16 or float16")
    return _DTYPES[key]


def default_autocast_dtype(device: str | torch.device) -> torch.dtype:
    """The reduced precision of ``device``: bfloat16 on CPU, float16 on CUDA.

    On CPUs without native bfloat16 (AVX2 only, no AVX512-BF16/AMX) bfloat16 autocast is several
    times slower than float32 (see results/models_cpu.json), so callers should make it opt-in there.
    """
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


@contextlib.contextmanager
def autocast_context(device: str | torch.device, dtype: str | torch.dtype | None) -> Iterator[None]:
    """Autocast for the forward pass on ``device``; a no-op for float32.

    Args:
        device: where the model runs (``cpu``, ``cuda``, ``cuda:0`` ...).
        dtype: see :func:`resolve_autocast_dtype`.

    Raises:
        InceValError: unknown precision, or float16 requested on CPU (slow and poorly supported
            there; use bfloat16).
    """
    device_type = torch.device(device).type
    resolved = resolve_autocast_dtype(dtype)
    if resolved is None:
        yield
        return
    if device_type == "cpu" and resolved == torch.float16:
        raise InceValError("precision float16 is not supported on CPU; use bfloat16 or float32")
    with torch.autocast(device_type=device_type, dtype=resolved):
        yield
