"""Building blocks shared by every Inception family."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

BN_EPS = 1e-3  # TF-slim's BatchNorm epsilon; every released Inception checkpoint was trained with it.


class ConvBnAct(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3), ReLU.

    The submodule names ``conv`` and ``bn`` match the public (timm) checkpoint layout.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: int or (kh, kw).
        stride: convolution stride.
        padding: int, (ph, pw), or "same" for symmetric k//2 padding of odd kernels
            (the TF 'same' of these stride-1 layers); 0 means TF 'valid'.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] | str = 0,
    ) -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if padding == "same":
            padding = (kh // 2, kw // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, (kh, kw), stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def conv_chain(
    in_channels: int, specs: Sequence[tuple[int, int | tuple[int, int], int]]
) -> nn.Sequential:
    """A ``nn.Sequential`` of ConvBnAct layers, one per ``(out_channels, kernel, stride)`` spec.

    Stride-1 layers use symmetric 'same' padding and stride-2 layers 'valid' padding, which is the
    rule of every Inception tower; the children are indexed 0, 1, ... as in the checkpoints.

    Args:
        in_channels: channels entering the first layer.
        specs: one ``(out_channels, kernel_size, stride)`` tuple per layer.
    """
    layers = []
    for out_channels, kernel_size, stride in specs:
        padding: str | int = "same" if stride == 1 else 0
        layers.append(ConvBnAct(in_channels, out_channels, kernel_size, stride, padding))
        in_channels = out_channels
    return nn.Sequential(*layers)


def stack(count: int, build: Callable[[], nn.Module]) -> nn.Sequential:
    """``count`` freshly built modules in a ``nn.Sequential`` (children indexed 0 .. count-1).

    Args:
        count: number of repeats.
        build: makes one module; called ``count`` times so no weights are shared.
    """
    return nn.Sequential(*(build() for _ in range(count)))


def avg_pool_3x3(count_include_pad: bool) -> nn.AvgPool2d:
    """The 3x3 stride-1 'same' average pool of the pool-projection branches.

    Args:
        count_include_pad: whether border averages divide by 9 (Inception-v3 as its weights were
            evaluated) or only by the in-image taps (TF 'SAME' pooling: v4 and the residual nets).
    """
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)


def max_pool_3x3_s2() -> nn.MaxPool2d:
    """The 3x3 stride-2 'valid' max pool of stems and reduction blocks."""
    return nn.MaxPool2d(3, stride=2)


class ReductionA(nn.Module):
    """35x35 -> 17x17 reduction of Inception-v4 and the residual nets (paper Fig. 7).

    Concatenates [3x3(n, s2)] | [1x1(k) -> 3x3(l) -> 3x3(m, s2)] | [maxpool s2], in this (released)
    channel order. Output channels: ``n + m + in_channels``.

    Args:
        in_channels: input channels.
        k: width of the tower's 1x1 conv.
        l: width of the tower's middle 3x3 conv.
        m: width of the tower's stride-2 conv.
        n: width of the single stride-2 conv.
    """

    def __init__(self, in_channels: int, k: int, l: int, m: int, n: int) -> None:  # noqa: E741
        super().__init__()
        self.branch0 = ConvBnAct(in_channels, n, 3, stride=2)
        self.branch1 = conv_chain(in_channels, [(k, 1, 1), (l, 3, 1), (m, 3, 2)])
        self.branch2 = max_pool_3x3_s2()
        self.out_channels = n + m + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x C x 35 x 35 -> N x (n + m + C) x 17 x 17
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class ResidualReductionB(nn.Module):
    """17x17 -> 8x8 reduction of the residual nets (paper Figs. 12 and 18; IRv2's ``mixed_7a``).

    Concatenates [1x1 -> 3x3(s2)] | [1x1 -> 3x3(s2)] | [1x1 -> 3x3 -> 3x3(s2)] | [maxpool s2].

    Args:
        in_channels: input channels.
        tower0: widths (1x1, 3x3 s2) of the first tower.
        tower1: widths (1x1, 3x3 s2) of the second tower.
        tower2: widths (1x1, 3x3, 3x3 s2) of the third tower.
    """

    def __init__(
        self,
        in_channels: int,
        tower0: tuple[int, int],
        tower1: tuple[int, int],
        tower2: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.branch0 = conv_chain(in_channels, [(tower0[0], 1, 1), (tower0[1], 3, 2)])
        self.branch1 = conv_chain(in_channels, [(tower1[0], 1, 1), (tower1[1], 3, 2)])
        self.branch2 = conv_chain(
            in_channels, [(tower2[0], 1, 1), (tower2[1], 3, 1), (tower2[2], 3, 2)]
        )
        self.branch3 = max_pool_3x3_s2()
        self.out_channels = tower0[1] + tower1[1] + tower2[2] + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x C x 17 x 17 -> N x out_channels x 8 x 8
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ResidualInceptionBlock(nn.Module):
    """Residual Inception block: ``act(x + scale * up(concat(branches(x))))``.

    ``up`` is the 1x1 "filter expansion" conv (``conv2d``: bias, no BatchNorm, no activation) that
    brings the concatenated branches back to the input width so the sum is defined.

    Args:
        branches: the parallel towers, registered as ``branch0``, ``branch1``, ... (the checkpoint
            names).
        branch_channels: total channels of the concatenated towers.
        channels: block input (and output) channels.
        scale: residual scale (paper section 3.3).
        activate: apply ReLU after the sum (False only for the released IRv2's final block).
    """

    def __init__(
        self,
        branches: Sequence[nn.Module],
        branch_channels: int,
        channels: int,
        scale: float,
        activate: bool = True,
    ) -> None:
        super().__init__()
        self.num_branches = len(branches)
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        self.conv2d = nn.Conv2d(branch_channels, channels, 1, bias=True)
        self.scale = scale
        self.act: nn.Module = nn.ReLU(inplace=True) if activate else nn.Identity()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The unscaled residual ``up(concat(branches(x)))``, same shape as ``x``."""
        towers = [getattr(self, f"branch{index}")(x) for index in range(self.num_branches)]
        return self.conv2d(torch.cat(towers, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x C x H x W -> N x C x H x W
        return self.act(x + self.scale * self.residual(x))


def residual_block_a(
    channels: int,
    widths: tuple[int, tuple[int, int], tuple[int, int, int]],
    scale: float,
) -> ResidualInceptionBlock:
    """35x35 residual block (paper Figs. 10 and 16; IRv2's ``block35``).

    Towers [1x1] | [1x1 -> 3x3] | [1x1 -> 3x3 -> 3x3].

    Args:
        channels: block input and output channels.
        widths: ``(w0, (w1a, w1b), (w2a, w2b, w2c))`` of the three towers.
        scale: residual scale.
    """
    w0, (w1a, w1b), (w2a, w2b, w2c) = widths
    branches = [
        ConvBnAct(channels, w0, 1),
        conv_chain(channels, [(w1a, 1, 1), (w1b, 3, 1)]),
        conv_chain(channels, [(w2a, 1, 1), (w2b, 3, 1), (w2c, 3, 1)]),
    ]
    return ResidualInceptionBlock(branches, w0 + w1b + w2c, channels, scale)


def residual_block_b(
    channels: int, widths: tuple[int, tuple[int, int, int]], scale: float
) -> ResidualInceptionBlock:
    """17x17 residual block (paper Figs. 11 and 17; IRv2's ``block17``).

    Towers [1x1] | [1x1 -> 1x7 -> 7x1].

    Args:
        channels: block input and output channels.
        widths: ``(w0, (w1a, w1b, w1c))`` of the two towers.
        scale: residual scale.
    """
    w0, (w1a, w1b, w1c) = widths
    branches = [
        ConvBnAct(channels, w0, 1),
        conv_chain(channels, [(w1a, 1, 1), (w1b, (1, 7), 1), (w1c, (7, 1), 1)]),
    ]
    return ResidualInceptionBlock(branches, w0 + w1c, channels, scale)


def residual_block_c(
    channels: int,
    widths: tuple[int, tuple[int, int, int]],
    scale: float,
    activate: bool = True,
) -> ResidualInceptionBlock:
    """8x8 residual block (paper Figs. 13 and 19; IRv2's ``block8``).

    Towers [1x1] | [1x1 -> 1x3 -> 3x1].

    Args:
        channels: block input and output channels.
        widths: ``(w0, (w1a, w1b, w1c))`` of the two towers.
        scale: residual scale.
        activate: apply ReLU after the sum.
    """
    w0, (w1a, w1b, w1c) = widths
    branches = [
        ConvBnAct(channels, w0, 1),
        conv_chain(channels, [(w1a, 1, 1), (w1b, (1, 3), 1), (w1c, (3, 1), 1)]),
    ]
    return ResidualInceptionBlock(branches, w0 + w1c, channels, scale, activate)


Stage = tuple[str | None, tuple[str, ...]]  # (label or None, submodule paths run in order)


class StagedNet(nn.Module):
    """Base class of the Inception networks: a chain of submodules grouped into grid stages.

    A subclass registers its submodules, a ``head_drop`` dropout and its classifier (named by the
    class attribute ``classifier_name``), sets ``num_features``, and calls ``_set_stages`` with the
    submodule paths in execution order. ``forward_features``, ``stage_outputs`` and ``forward``
    all run that one list, so the grids reported by ``stage_outputs`` are the ones ``forward`` uses.
    Paths (not module references) are stored so that replacing a submodule (e.g. BatchNorm folding)
    takes effect in the forward pass.
    """

    classifier_name: str = "fc"
    num_features: int

    def _set_stages(self, stages: Sequence[Stage]) -> None:
        """Set the execution plan: ``(label, paths)`` pairs; labelled stages are recorded."""
        self._stages: tuple[Stage, ...] = tuple((label, tuple(paths)) for label, paths in stages)

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the feature extractor once.

        Args:
            x: images, N x 3 x H x W.

        Returns:
            The last feature map (N x num_features x h x w) and the output of each labelled stage.
        """
        outputs: dict[str, torch.Tensor] = {}
        for label, paths in self._stages:
            for path in paths:
                x = self.get_submodule(path)(x)
            if label is not None:
                outputs[label] = x
        return x, outputs

    def stage_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs at the end of each grid, keyed "35x35", "17x17", "8x8" (sizes at a 299 input)."""
        return self.forward_stages(x)[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, N x num_features x 8 x 8 at a 299 input."""
        return self.forward_stages(x)[0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pool -> dropout -> linear: N x num_features x h x w -> N x num_classes."""
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)  # N x features
        return getattr(self, self.classifier_name)(self.head_drop(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, N x num_classes."""
        return self.forward_head(self.forward_features(x))


class PaperResidualNet(StagedNet):
    """The residual networks as drawn in the paper (IRv1, paper IRv2): one skeleton, two widths.

    stem -> 5 x A -> Reduction-A -> 10 x B -> Reduction-B -> 5 x C -> pool -> ``fc``, with each
    block's 1x1 expansion as wide as its input. Submodules: ``stem``, ``blocks_a``,
    ``reduction_a``, ``blocks_b``, ``reduction_b``, ``blocks_c``, ``fc``.

    Args:
        stem: module mapping N x 3 x 299 x 299 to N x stem_channels x 35 x 35.
        stem_channels: channels the stem outputs.
        widths_a: tower widths of the A blocks (see ``residual_block_a``).
        reduction_a: ``k``, ``l``, ``m``, ``n`` of Reduction-A.
        widths_b: tower widths of the B blocks.
        reduction_b: tower widths of Reduction-B (see ``ResidualReductionB``).
        widths_c: tower widths of the C blocks.
        num_classes: classifier outputs.
        residual_scales: scales of the A, B and C residual blocks.
        drop_rate: dropout before the classifier (inactive in eval mode).
    """

    classifier_name = "fc"

    def __init__(
        self,
        *,
        stem: nn.Module,
        stem_channels: int,
        widths_a: tuple,
        reduction_a: dict[str, int],
        widths_b: tuple,
        reduction_b: tuple,
        widths_c: tuple,
        num_classes: int,
        residual_scales: tuple[float, float, float],
        drop_rate: float,
    ) -> None:
        super().__init__()
        scale_a, scale_b, scale_c = residual_scales
        self.stem = stem
        self.blocks_a = stack(5, lambda: residual_block_a(stem_channels, widths_a, scale_a))
        self.reduction_a = ReductionA(stem_channels, **reduction_a)
        width_b = self.reduction_a.out_channels
        self.blocks_b = stack(10, lambda: residual_block_b(width_b, widths_b, scale_b))
        self.reduction_b = ResidualReductionB(width_b, *reduction_b)
        width_c = self.reduction_b.out_channels
        self.blocks_c = stack(5, lambda: residual_block_c(width_c, widths_c, scale_c))
        self.num_features = width_c
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._set_stages(
            [
                ("35x35", ["stem", "blocks_a"]),  # N x stem_channels x 35 x 35
                ("17x17", ["reduction_a", "blocks_b"]),  # N x width_b x 17 x 17
                ("8x8", ["reduction_b", "blocks_c"]),  # N x width_c x 8 x 8
            ]
        )
        init_weights(self)


def init_weights(model: nn.Module) -> None:
    """Deterministic random initialisation from torch's global RNG.

    Convolutions: He normal (fan-in, ReLU gain), so activations keep their scale through the
    BatchNorm layers, whose fresh running statistics make them near-identities in eval mode.
    Linear layers: truncated normal, std 0.01. Biases zero; BatchNorm keeps PyTorch's defaults.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.01, a=-0.02, b=0.02)
            nn.init.zeros_(module.bias)
