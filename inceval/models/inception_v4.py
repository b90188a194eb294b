"""Inception-v4 (Szegedy et al. 2017, Figs. 3-9) in the TF-slim / timm ``inception_v4`` layout.

The module tree reproduces timm's key names (``features.0`` .. ``features.21``, ``last_linear``) so
that ``timm/inception_v4.tf_in1k`` loads strictly. Asymmetric convolutions follow the released
(slim) orientation order, which differs from some of the paper's drawings.
"""

from __future__ import annotations

import torch
from torch import nn

from inceval.models.layers import (
    ConvBnAct,
    ReductionA,
    StagedNet,
    avg_pool_3x3,
    conv_chain,
    init_weights,
    max_pool_3x3_s2,
)

STEM_CHANNELS = 384
STEM_NAMES = ("conv_1a", "conv_2a", "conv_2b", "mixed_3a", "mixed_4a", "mixed_5a")


class Mixed3a(nn.Module):
    """Stem split 1: [maxpool s2] | [3x3(96, s2)], 147x147x64 -> 73x73x160."""

    def __init__(self) -> None:
        super().__init__()
        self.maxpool = max_pool_3x3_s2()
        self.conv = ConvBnAct(64, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 64 x 147 x 147 -> N x 160 x 73 x 73
        return torch.cat([self.maxpool(x), self.conv(x)], 1)


class Mixed4a(nn.Module):
    """Stem split 2: [1x1(64) -> 3x3(96)] | [1x1(64) -> 1x7 -> 7x1 -> 3x3(96)], 'valid' 3x3s."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(ConvBnAct(160, 64, 1), ConvBnAct(64, 96, 3))
        self.branch1 = nn.Sequential(
            ConvBnAct(160, 64, 1),
            ConvBnAct(64, 64, (1, 7), padding="same"),
            ConvBnAct(64, 64, (7, 1), padding="same"),
            ConvBnAct(64, 96, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 160 x 73 x 73 -> N x 192 x 71 x 71
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


class Mixed5a(nn.Module):
    """Stem split 3: [3x3(192, s2)] | [maxpool s2], 71x71x192 -> 35x35x384."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = ConvBnAct(192, 192, 3, stride=2)
        self.maxpool = max_pool_3x3_s2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 192 x 71 x 71 -> N x 384 x 35 x 35
        return torch.cat([self.conv(x), self.maxpool(x)], 1)


def stem_modules() -> list[nn.Module]:
    """The Inception-v4 stem (paper Fig. 3), also used by the paper's Inception-ResNet-v2.

    Returns:
        Six modules, in order (names in ``STEM_NAMES``): 299x299x3 -> 35x35x384.
    """
    return [
        ConvBnAct(3, 32, 3, stride=2),  # 149 x 149 x 32
        ConvBnAct(32, 32, 3),  # 147 x 147 x 32
        ConvBnAct(32, 64, 3, padding="same"),  # 147 x 147 x 64
        Mixed3a(),  # 73 x 73 x 160
        Mixed4a(),  # 71 x 71 x 192
        Mixed5a(),  # 35 x 35 x 384
    ]


class InceptionA(nn.Module):
    """35x35 block (Fig. 4).

    Towers [1x1(96)] | [1x1(64) -> 3x3(96)] | [1x1(64) -> 3x3(96) -> 3x3(96)] | [avg -> 1x1(96)].
    """

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(384, 96, 1)
        self.branch1 = conv_chain(384, [(64, 1, 1), (96, 3, 1)])
        self.branch2 = conv_chain(384, [(64, 1, 1), (96, 3, 1), (96, 3, 1)])
        self.branch3 = nn.Sequential(avg_pool_3x3(count_include_pad=False), ConvBnAct(384, 96, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 384 x 35 x 35 -> N x 384 x 35 x 35
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionB(nn.Module):
    """17x17 block (Fig. 5), towers of 1x7/7x1 convs in the released order."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(1024, 384, 1)
        self.branch1 = conv_chain(1024, [(192, 1, 1), (224, (1, 7), 1), (256, (7, 1), 1)])
        self.branch2 = conv_chain(
            1024,
            [(192, 1, 1), (192, (7, 1), 1), (224, (1, 7), 1), (224, (7, 1), 1), (256, (1, 7), 1)],
        )
        self.branch3 = nn.Sequential(avg_pool_3x3(count_include_pad=False), ConvBnAct(1024, 128, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 1024 x 17 x 17 -> N x (384 + 256 + 256 + 128 = 1024) x 17 x 17
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ReductionB(nn.Module):
    """17x17 -> 8x8 reduction (Fig. 8).

    Towers [1x1(192) -> 3x3(192, s2)] | [1x1(256) -> 1x7(256) -> 7x1(320) -> 3x3(320, s2)]
    | [maxpool s2].
    """

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = conv_chain(1024, [(192, 1, 1), (192, 3, 2)])
        self.branch1 = conv_chain(
            1024, [(256, 1, 1), (256, (1, 7), 1), (320, (7, 1), 1), (320, 3, 2)]
        )
        self.branch2 = max_pool_3x3_s2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 1024 x 17 x 17 -> N x (192 + 320 + 1024 = 1536) x 8 x 8
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class InceptionC(nn.Module):
    """8x8 block (Fig. 6): towers that end in parallel 1x3 / 3x1 convs, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(1536, 256, 1)
        self.branch1_0 = ConvBnAct(1536, 384, 1)
        self.branch1_1a = ConvBnAct(384, 256, (1, 3), padding="same")
        self.branch1_1b = ConvBnAct(384, 256, (3, 1), padding="same")
        self.branch2_0 = ConvBnAct(1536, 384, 1)
        self.branch2_1 = ConvBnAct(384, 448, (3, 1), padding="same")
        self.branch2_2 = ConvBnAct(448, 512, (1, 3), padding="same")
        self.branch2_3a = ConvBnAct(512, 256, (1, 3), padding="same")
        self.branch2_3b = ConvBnAct(512, 256, (3, 1), padding="same")
        self.branch3 = nn.Sequential(avg_pool_3x3(count_include_pad=False), ConvBnAct(1536, 256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 1536 x 8 x 8
        x0 = self.branch0(x)  # N x 256 x 8 x 8
        t1 = self.branch1_0(x)  # N x 384 x 8 x 8
        x1 = torch.cat([self.branch1_1a(t1), self.branch1_1b(t1)], 1)  # N x 512 x 8 x 8
        t2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))  # N x 512 x 8 x 8
        x2 = torch.cat([self.branch2_3a(t2), self.branch2_3b(t2)], 1)  # N x 512 x 8 x 8
        x3 = self.branch3(x)  # N x 256 x 8 x 8
        return torch.cat([x0, x1, x2, x3], 1)  # N x 1536 x 8 x 8


class InceptionV4(StagedNet):
    """Inception-v4: 42,679,816 parameters at 1000 classes.

    Minimum input size 75x75 (74 leaves no pixel after Reduction-B); 299 gives 8x8 features.

    Args:
        num_classes: classifier outputs.
        drop_rate: dropout before the classifier (inactive in eval mode).
    """

    classifier_name = "last_linear"

    def __init__(self, num_classes: int = 1000, drop_rate: float = 0.0) -> None:
        super().__init__()
        blocks = [
            *stem_modules(),  # 0-5: N x 384 x 35 x 35
            *(InceptionA() for _ in range(4)),  # 6-9: N x 384 x 35 x 35
            ReductionA(384, k=192, l=224, m=256, n=384),  # 10: N x 1024 x 17 x 17
            *(InceptionB() for _ in range(7)),  # 11-17: N x 1024 x 17 x 17
            ReductionB(),  # 18: N x 1536 x 8 x 8
            *(InceptionC() for _ in range(3)),  # 19-21: N x 1536 x 8 x 8
        ]
        self.features = nn.Sequential(*blocks)
        self.num_features = 1536
        self.head_drop = nn.Dropout(drop_rate)
        self.last_linear = nn.Linear(self.num_features, num_classes)
        self._set_stages(
            [
                ("35x35", [f"features.{i}" for i in range(0, 10)]),
                ("17x17", [f"features.{i}" for i in range(10, 18)]),
                ("8x8", [f"features.{i}" for i in range(18, 22)]),
            ]
        )
        init_weights(self)
