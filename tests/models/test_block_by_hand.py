"""Inception-ResNet-v1 and the paper's Inception-ResNet-v2, recomputed by hand from the paper.

These two networks have no public implementation to compare with, so every piece of them is
recomputed here with ``torch.nn.functional`` in float64, straight from the specification below
(written from the paper's figures, Szegedy et al. 2017), using only the module's parameter tensors
(looked up by name; their shapes are checked against the widths of the specification too).

Notation: ``kxk(C)`` = conv (no bias) -> BatchNorm (eval, eps 1e-3) -> ReLU with C outputs,
stride 1 and 'same' padding (k//2 on each side of each axis: a 1x7 pads (0, 3), a 7x1 (3, 0)).
``s2`` = stride 2; ``V`` = 'valid' (no padding). ``pool`` = max pool 3x3, stride 2, valid.
``|`` separates the parallel towers, concatenated along channels in the order written.
A residual block computes ``relu(x + scale * up(concat(towers(x))))`` where ``up`` is a 1x1 conv
WITH bias, no BatchNorm, no ReLU, as wide as the block input; scales are A 0.17, B 0.10, C 0.20.

Inception-ResNet-v1 (Figs. 14, 10, 7, 11, 12, 13), 3 x 299 x 299 -> 1000:

* stem: 3x3(32, s2, V) -> 3x3(32, V) -> 3x3(64) -> pool -> 1x1(80) -> 3x3(192, V)
  -> 3x3(256, s2, V): 35 x 35 x 256
* 5 x A (256): 1x1(32) | 1x1(32) -> 3x3(32) | 1x1(32) -> 3x3(32) -> 3x3(32); up 96 -> 256
* Reduction-A (k, l, m, n = 192, 192, 256, 384): 3x3(n, s2, V) | 1x1(k) -> 3x3(l)
  -> 3x3(m, s2, V) | pool: 17 x 17 x 896
* 10 x B (896): 1x1(128) | 1x1(128) -> 1x7(128) -> 7x1(128); up 256 -> 896
* Reduction-B: 1x1(256) -> 3x3(384, s2, V) | 1x1(256) -> 3x3(256, s2, V)
  | 1x1(256) -> 3x3(256) -> 3x3(256, s2, V) | pool: 8 x 8 x 1792
* 5 x C (1792): 1x1(192) | 1x1(192) -> 1x3(192) -> 3x1(192); up 384 -> 1792
* global average pool -> linear(1792, 1000)

Inception-ResNet-v2 as drawn (Figs. 3, 16, 7, 17, 18, 19):

* stem (the Inception-v4 stem): 3x3(32, s2, V) -> 3x3(32, V) -> 3x3(64)
  -> [pool | 3x3(96, s2, V)] (73 x 73 x 160)
  -> [1x1(64) -> 3x3(96, V) | 1x1(64) -> 1x7(64) -> 7x1(64) -> 3x3(96, V)] (71 x 71 x 192)
  -> [3x3(192, s2, V) | pool]: 35 x 35 x 384
* 5 x A (384): 1x1(32) | 1x1(32) -> 3x3(32) | 1x1(32) -> 3x3(48) -> 3x3(64); up 128 -> 384
* Reduction-A (k, l, m, n = 256, 256, 384, 384), as above: 17 x 17 x 1152
* 10 x B (1152): 1x1(192) | 1x1(128) -> 1x7(160) -> 7x1(192); up 384 -> 1152
* Reduction-B: 1x1(256) -> 3x3(384, s2, V) | 1x1(256) -> 3x3(288, s2, V)
  | 1x1(256) -> 3x3(288) -> 3x3(320, s2, V) | pool: 8 x 8 x 2144
* 5 x C (2144): 1x1(192) | 1x1(192) -> 1x3(224) -> 3x1(256); up 448 -> 2144
* global average pool -> linear(2144, 1000)

The figures print the B and C expansion widths of this network as 1154 and 2048, which cannot be
added to inputs of 1152 and 2144; the expansion is as wide as the block input. The concat orders
of the reductions (and the stem splits) are those of the released Inception-v4 / Inception-ResNet-v2
(towers first, pool last in the reductions), which is what the modules' docstrings promise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from inceval.models import create_model
from tests.models.seeded_weights import load_seeded

EPS = 1e-3
# Explicit (top/bottom, left/right) paddings: 'same' for each odd kernel shape, and 'valid'.
SAME_3x3, SAME_1x7, SAME_7x1 = (1, 1), (0, 3), (3, 0)
SAME_1x3, SAME_3x1, VALID = (0, 1), (1, 0), (0, 0)
SEED = 11
# The hand computation is float64, the module float32, so the difference is the module's rounding:
# measured at most 5.3e-7 of the output's largest magnitude (whole network, ~130 layers). 1e-5
# leaves 20x headroom yet still sees BatchNorm's eps read as 1e-5 instead of 1e-3 (a ~5e-4 change
# per layer), let alone a missing ReLU or a misplaced padding (1e-2 and more).
RTOL = 1e-5

Params = dict[str, Tensor]


def cba(
    p: Params,
    name: str,
    x: Tensor,
    out: int,
    kernel: tuple[int, int],
    stride: int = 1,
    pad: tuple[int, int] = VALID,
) -> Tensor:
    """conv (no bias) -> BatchNorm (eval, eps 1e-3) -> ReLU from ``name.conv.*`` and ``name.bn.*``."""
    weight = p[f"{name}.conv.weight"]
    assert tuple(weight.shape) == (out, x.shape[1], *kernel), name
    assert f"{name}.conv.bias" not in p, name
    y = F.conv2d(x, weight, stride=stride, padding=pad)
    mean, var = p[f"{name}.bn.running_mean"], p[f"{name}.bn.running_var"]
    gamma, beta = p[f"{name}.bn.weight"], p[f"{name}.bn.bias"]
    y = F.batch_norm(y, mean, var, gamma, beta, training=False, eps=EPS)
    return F.relu(y)


def pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=2)


def residual(p: Params, name: str, x: Tensor, towers: list[Tensor], scale: float) -> Tensor:
    """relu(x + scale * up(concat(towers))) with the 1x1 expansion ``name.conv2d`` (with bias)."""
    cat = torch.cat(towers, 1)
    weight, bias = p[f"{name}.conv2d.weight"], p[f"{name}.conv2d.bias"]
    assert tuple(weight.shape) == (x.shape[1], cat.shape[1], 1, 1), name
    return F.relu(x + scale * F.conv2d(cat, weight, bias))


@dataclass(frozen=True)
class Spec:
    """The widths of one network, as in the module docstring."""

    model: str
    stem: Callable[[Params, Tensor], Tensor]
    channels: tuple[int, int, int]  # inputs of the A, B and C blocks
    a: tuple[int, tuple[int, int], tuple[int, int, int]]
    reduction_a: tuple[int, int, int, int]  # k, l, m, n
    b: tuple[int, tuple[int, int, int]]
    reduction_b: tuple[tuple[int, int], tuple[int, int], tuple[int, int, int]]
    c: tuple[int, tuple[int, int, int]]


def stem_v1(p: Params, x: Tensor) -> Tensor:
    x = cba(p, "stem.conv_1a", x, 32, (3, 3), 2)
    x = cba(p, "stem.conv_2a", x, 32, (3, 3))
    x = pool(cba(p, "stem.conv_2b", x, 64, (3, 3), pad=SAME_3x3))
    x = cba(p, "stem.conv_3b", x, 80, (1, 1))
    x = cba(p, "stem.conv_4a", x, 192, (3, 3))
    return cba(p, "stem.conv_4b", x, 256, (3, 3), 2)


def stem_v4(p: Params, x: Tensor) -> Tensor:
    x = cba(p, "stem.conv_1a", x, 32, (3, 3), 2)
    x = cba(p, "stem.conv_2a", x, 32, (3, 3))
    x = cba(p, "stem.conv_2b", x, 64, (3, 3), pad=SAME_3x3)
    x = torch.cat([pool(x), cba(p, "stem.mixed_3a.conv", x, 96, (3, 3), 2)], 1)
    t0 = cba(p, "stem.mixed_4a.branch0.0", x, 64, (1, 1))
    t0 = cba(p, "stem.mixed_4a.branch0.1", t0, 96, (3, 3))
    t1 = cba(p, "stem.mixed_4a.branch1.0", x, 64, (1, 1))
    t1 = cba(p, "stem.mixed_4a.branch1.1", t1, 64, (1, 7), pad=SAME_1x7)
    t1 = cba(p, "stem.mixed_4a.branch1.2", t1, 64, (7, 1), pad=SAME_7x1)
    t1 = cba(p, "stem.mixed_4a.branch1.3", t1, 96, (3, 3))
    x = torch.cat([t0, t1], 1)
    return torch.cat([cba(p, "stem.mixed_5a.conv", x, 192, (3, 3), 2), pool(x)], 1)


SPECS = {
    "irv1": Spec(
        model="irv1",
        stem=stem_v1,
        channels=(256, 896, 1792),
        a=(32, (32, 32), (32, 32, 32)),
        reduction_a=(192, 192, 256, 384),
        b=(128, (128, 128, 128)),
        reduction_b=((256, 384), (256, 256), (256, 256, 256)),
        c=(192, (192, 192, 192)),
    ),
    "irv2-paper": Spec(
        model="irv2-paper",
        stem=stem_v4,
        channels=(384, 1152, 2144),
        a=(32, (32, 32), (32, 48, 64)),
        reduction_a=(256, 256, 384, 384),
        b=(192, (128, 160, 192)),
        reduction_b=((256, 384), (256, 288), (256, 288, 320)),
        c=(192, (192, 224, 256)),
    ),
}
NAMES = list(SPECS)


def block_a(spec: Spec, p: Params, name: str, x: Tensor) -> Tensor:
    w0, (w1a, w1b), (w2a, w2b, w2c) = spec.a
    t0 = cba(p, f"{name}.branch0", x, w0, (1, 1))
    t1 = cba(p, f"{name}.branch1.0", x, w1a, (1, 1))
    t1 = cba(p, f"{name}.branch1.1", t1, w1b, (3, 3), pad=SAME_3x3)
    t2 = cba(p, f"{name}.branch2.0", x, w2a, (1, 1))
    t2 = cba(p, f"{name}.branch2.1", t2, w2b, (3, 3), pad=SAME_3x3)
    t2 = cba(p, f"{name}.branch2.2", t2, w2c, (3, 3), pad=SAME_3x3)
    return residual(p, name, x, [t0, t1, t2], 0.17)


def block_b(spec: Spec, p: Params, name: str, x: Tensor) -> Tensor:
    w0, (w1a, w1b, w1c) = spec.b
    t0 = cba(p, f"{name}.branch0", x, w0, (1, 1))
    t1 = cba(p, f"{name}.branch1.0", x, w1a, (1, 1))
    t1 = cba(p, f"{name}.branch1.1", t1, w1b, (1, 7), pad=SAME_1x7)
    t1 = cba(p, f"{name}.branch1.2", t1, w1c, (7, 1), pad=SAME_7x1)
    return residual(p, name, x, [t0, t1], 0.10)


def block_c(spec: Spec, p: Params, name: str, x: Tensor) -> Tensor:
    w0, (w1a, w1b, w1c) = spec.c
    t0 = cba(p, f"{name}.branch0", x, w0, (1, 1))
    t1 = cba(p, f"{name}.branch1.0", x, w1a, (1, 1))
    t1 = cba(p, f"{name}.branch1.1", t1, w1b, (1, 3), pad=SAME_1x3)
    t1 = cba(p, f"{name}.branch1.2", t1, w1c, (3, 1), pad=SAME_3x1)
    return residual(p, name, x, [t0, t1], 0.20)


def reduction_a(spec: Spec, p: Params, x: Tensor) -> Tensor:
    k, l, m, n = spec.reduction_a  # noqa: E741
    t0 = cba(p, "reduction_a.branch0", x, n, (3, 3), 2)
    t1 = cba(p, "reduction_a.branch1.0", x, k, (1, 1))
    t1 = cba(p, "reduction_a.branch1.1", t1, l, (3, 3), pad=SAME_3x3)
    t1 = cba(p, "reduction_a.branch1.2", t1, m, (3, 3), 2)
    return torch.cat([t0, t1, pool(x)], 1)


def reduction_b(spec: Spec, p: Params, x: Tensor) -> Tensor:
    (a0, a1), (b0, b1), (c0, c1, c2) = spec.reduction_b
    t0 = cba(p, "reduction_b.branch0.0", x, a0, (1, 1))
    t0 = cba(p, "reduction_b.branch0.1", t0, a1, (3, 3), 2)
    t1 = cba(p, "reduction_b.branch1.0", x, b0, (1, 1))
    t1 = cba(p, "reduction_b.branch1.1", t1, b1, (3, 3), 2)
    t2 = cba(p, "reduction_b.branch2.0", x, c0, (1, 1))
    t2 = cba(p, "reduction_b.branch2.1", t2, c1, (3, 3), pad=SAME_3x3)
    t2 = cba(p, "reduction_b.branch2.2", t2, c2, (3, 3), 2)
    return torch.cat([t0, t1, t2, pool(x)], 1)


def network(spec: Spec, p: Params, x: Tensor) -> Tensor:
    """The whole network by hand: logits N x 1000."""
    x = spec.stem(p, x)
    for index in range(5):
        x = block_a(spec, p, f"blocks_a.{index}", x)
    x = reduction_a(spec, p, x)
    for index in range(10):
        x = block_b(spec, p, f"blocks_b.{index}", x)
    x = reduction_b(spec, p, x)
    for index in range(5):
        x = block_c(spec, p, f"blocks_c.{index}", x)
    pooled = x.mean(dim=(2, 3))
    assert pooled.shape[1] == spec.channels[2]
    assert tuple(p["fc.weight"].shape) == (1000, spec.channels[2])
    return F.linear(pooled, p["fc.weight"], p["fc.bias"])


@pytest.fixture(scope="module")
def built() -> Iterator[Callable[[str], tuple[nn.Module, Params]]]:
    """Each network with seeded (non-trivial BatchNorm) weights, and its parameters in float64."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    cache: dict[str, tuple[nn.Module, Params]] = {}

    def get(name: str) -> tuple[nn.Module, Params]:
        if name not in cache:
            model = load_seeded(create_model(name), SEED).eval()
            cache[name] = (model, {k: v.double() for k, v in model.state_dict().items()})
        return cache[name]

    yield get
    torch.set_num_threads(threads)


def _block_input(channels: int, side: int, seed: int) -> Tensor:
    """A non-negative input (blocks follow a ReLU), float64."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, channels, side, side, generator=generator, dtype=torch.float64).relu()


def _assert_close(module: nn.Module, x: Tensor, expected: Tensor, what: str) -> None:
    with torch.no_grad():
        ours = module(x.float()).double()
    assert ours.shape == expected.shape, what
    scale = expected.abs().max().item()
    assert scale > 0.1, what  # a non-degenerate output
    error = (ours - expected).abs().max().item() / scale
    assert error < RTOL, f"{what}: max error {error:.3g} of the largest output"


@pytest.mark.parametrize("name", NAMES)
def test_stem_by_hand(built: Callable, name: str) -> None:
    spec = SPECS[name]
    model, p = built(name)
    x = torch.randn(2, 3, 83, 83, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = spec.stem(p, x)
    assert expected.shape == (2, spec.channels[0], 8, 8)  # 83 -> 41 -> 39 -> 19 -> 17 -> 8
    _assert_close(model.stem, x, expected, f"{name} stem")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("which", "index", "side"), [("a", 3, 11), ("b", 6, 9), ("c", 4, 5)])
def test_residual_block_by_hand(
    built: Callable, name: str, which: str, index: int, side: int
) -> None:
    spec = SPECS[name]
    model, p = built(name)
    channels = spec.channels["abc".index(which)]
    x = _block_input(channels, side, seed=index)
    compute = {"a": block_a, "b": block_b, "c": block_c}[which]
    expected = compute(spec, p, f"blocks_{which}.{index}", x)
    _assert_close(getattr(model, f"blocks_{which}")[index], x, expected, f"{name} block {which}")


@pytest.mark.parametrize("name", NAMES)
def test_reductions_by_hand(built: Callable, name: str) -> None:
    spec = SPECS[name]
    model, p = built(name)
    x = _block_input(spec.channels[0], 9, seed=3)
    expected = reduction_a(spec, p, x)
    assert expected.shape == (2, spec.channels[1], 4, 4)
    _assert_close(model.reduction_a, x, expected, f"{name} reduction A")
    x = _block_input(spec.channels[1], 9, seed=4)
    expected = reduction_b(spec, p, x)
    assert expected.shape == (2, spec.channels[2], 4, 4)
    _assert_close(model.reduction_b, x, expected, f"{name} reduction B")


@pytest.mark.parametrize("name", NAMES)
def test_whole_network_by_hand(built: Callable, name: str) -> None:
    # Also pins the number of blocks of each kind and the head; 107 px leaves a 2 x 2 C grid.
    spec = SPECS[name]
    model, p = built(name)
    x = torch.randn(1, 3, 107, 107, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = network(spec, p, x)
    assert expected.std().item() > 1.0  # healthy logits, not a near-constant vector
    _assert_close(model, x, expected, f"{name} logits")
