"""Parameter and multiply-accumulate counts, computed without any real arithmetic.

MACs count the convolutions and linear layers only (the convention of the published figures:
BatchNorm, activations, pooling and additions are left out). One MAC is two FLOPs.

The count runs the network once on a batch of *zero* images: every layer still sees its per-image
output shape (which is all a MAC count needs) but computes nothing. Registered models are built on
the meta device (no initialisation), then given uninitialised CPU storage for that pass: a forward
pass on meta tensors would make torch import sympy and torch.fx, seconds of start-up on every
``inceval models``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from inceval.models.factory import build_uninitialised, get_eval_config
from inceval.models.registry import resolve_model


@dataclass(frozen=True)
class Complexity:
    """Size and cost of one network for one input view.

    Attributes:
        params: number of parameters (buffers excluded).
        macs: multiply-accumulates of one forward pass of a single image.
        input_size: side of the square input the MACs were counted at.
    """

    params: int
    macs: int
    input_size: int

    @property
    def gmacs(self) -> float:
        """MACs in units of 1e9."""
        return self.macs / 1e9


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one forward pass of one ``3 x input_size x input_size`` image.

    Args:
        model: the network (left untouched: hooks are removed and the train/eval mode restored).
        input_size: input side in pixels.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.shape[1:].numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.shape[1:].numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    first = next(model.parameters(), None)
    empty_batch = torch.empty(
        0,
        3,
        input_size,
        input_size,
        device=first.device if first is not None else "cpu",
        dtype=first.dtype if first is not None else torch.float32,
    )
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(empty_batch)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


@functools.cache
def model_complexity(name: str, input_size: int | None = None) -> Complexity:
    """Parameters and MACs of a registered model.

    Args:
        name: model name or alias.
        input_size: input side; default the native size of the model's default weights (299).
    """
    spec, _ = resolve_model(name)
    size = input_size or get_eval_config(name).input_size
    model = build_uninitialised(spec.load_class())
    # Uninitialised CPU storage: never read, since the counting pass holds zero images.
    storage = {key: torch.empty(t.shape, dtype=t.dtype) for key, t in model.state_dict().items()}
    model.load_state_dict(storage, assign=True)
    return Complexity(params=count_parameters(model), macs=count_macs(model, size), input_size=size)
