"""Deterministic, healthy random weights for any Inception state dict, shared by two environments.

The reference-logit fixtures are made by timm's networks in a throwaway environment and checked
against ours here, so both sides must fill their (identically named) tensors identically. This
module therefore imports only numpy and torch, nothing from ``inceval`` or ``timm``: the generator
script loads this very file.

Every value depends on ``(seed, tensor name)`` alone: the numpy PCG64 stream of a tensor is seeded
with ``[seed, crc32(name)]``, so adding, removing or reordering other tensors changes nothing.

Scales (why they are what they are):

* conv weights ~ N(0, 2 / fan_in): He scaling keeps the second moment through conv + ReLU, so
  activations neither vanish nor explode over the ~100 layers of these networks;
* BatchNorm: gamma in [0.6, 1.4], beta ~ N(0, 0.2), running_mean ~ N(0, 0.2), running_var in
  [0.5, 1.5]. Non-trivial statistics make eps (1e-3), the mean subtraction and the folding of
  BatchNorm into the conv all visible in the output; a unit variance / zero mean BN would hide them;
* conv biases (the residual "filter expansion" 1x1s) ~ N(0, 0.1), so a dropped or misplaced bias
  shows;
* linear weights ~ N(0, 1 / fan_in): logits spread about as much as the pooled features, with a
  small N(0, 0.01) bias, so the logits are decided by the features, not by the bias;
* ``num_batches_tracked`` is not generated (it plays no part in eval mode).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import torch

Entry = tuple[str, tuple[int, ...], torch.dtype]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, zlib.crc32(name.encode("utf-8"))]))


def _kind(name: str, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]]) -> str:
    """What a tensor is, from its name, its shape and its siblings' names.

    BatchNorm tensors are recognised by a ``running_var`` sibling, a conv/linear bias by the rank
    of its ``weight`` sibling, so no layout-specific module names are needed.
    """
    prefix, _, leaf = name.rpartition(".")
    sibling = f"{prefix}.{{}}" if prefix else "{}"
    if leaf == "num_batches_tracked":
        return "skip"
    if sibling.format("running_var") in shapes:
        return {"weight": "bn_gamma", "bias": "bn_beta"}.get(leaf, leaf)
    if leaf == "weight" and len(shape) == 4:
        return "conv_weight"
    if leaf == "weight" and len(shape) == 2:
        return "linear_weight"
    if leaf == "bias":
        weight_rank = len(shapes.get(sibling.format("weight"), ()))
        if weight_rank == 4:
            return "conv_bias"
        if weight_rank == 2:
            return "linear_bias"
    raise ValueError(f"do not know how to fill {name} {shape}")


def _values(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    # float32 draws: half the time of float64 for the 56M values of Inception-ResNet-v2, and
    # numpy's float32 Generator streams are as reproducible as its float64 ones.
    f32 = np.float32
    if kind == "conv_weight":
        fan_in = int(np.prod(shape[1:]))
        return rng.standard_normal(shape, dtype=f32) * f32(np.sqrt(2.0 / fan_in))
    if kind == "linear_weight":
        return rng.standard_normal(shape, dtype=f32) * f32(np.sqrt(1.0 / shape[1]))
    if kind == "conv_bias":
        return rng.standard_normal(shape, dtype=f32) * f32(0.1)
    if kind == "linear_bias":
        return rng.standard_normal(shape, dtype=f32) * f32(0.01)
    if kind == "bn_gamma":
        return f32(0.6) + f32(0.8) * rng.random(shape, dtype=f32)
    if kind in ("bn_beta", "running_mean"):
        return rng.standard_normal(shape, dtype=f32) * f32(0.2)
    if kind == "running_var":
        return f32(0.5) + rng.random(shape, dtype=f32)
    raise ValueError(f"unknown tensor kind {kind}")


def seeded_state_dict(seed: int, entries: Iterable[Entry]) -> dict[str, torch.Tensor]:
    """Fill every floating tensor of a state-dict layout deterministically.

    Args:
        seed: the seed shared by all tensors.
        entries: ``(name, shape, dtype)`` of each tensor, e.g. from
            ``[(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()]``.

    Returns:
        name -> CPU tensor of that shape and dtype, for every entry except ``num_batches_tracked``
        (merge the result into the model's own state dict to load it strictly).

    Raises:
        ValueError: a tensor whose role cannot be told from the layout.
    """
    entries = list(entries)
    shapes = {name: tuple(shape) for name, shape, _ in entries}
    filled = {}
    for name, shape, dtype in entries:
        kind = _kind(name, tuple(shape), shapes)
        if kind == "skip":
            continue
        values = _values(kind, tuple(shape), _rng(seed, name))
        filled[name] = torch.from_numpy(np.ascontiguousarray(values)).to(dtype)
    return filled


def load_seeded(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Load :func:`seeded_state_dict` into ``model`` strictly (in place) and return it."""
    own = model.state_dict()
    state = dict(own)
    state.update(seeded_state_dict(seed, [(k, tuple(v.shape), v.dtype) for k, v in own.items()]))
    model.load_state_dict(state, strict=True)
    return model


def uint8_to_input(images: np.ndarray) -> np.ndarray:
    """uint8 images N x 3 x H x W -> float32 network input in [-1, 1] (Inception mean/std 0.5).

    Done in numpy float32 so both environments produce bit-identical inputs.
    """
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
