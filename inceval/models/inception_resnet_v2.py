"""Inception-ResNet-v2: the released network and the paper's figure network.

``InceptionResNetV2`` is what the public weights are (TF-slim / Keras / timm
``inception_resnet_v2``): an Inception-v3-like stem, 10/20/9 residual blocks plus a final unscaled
block without ReLU, and a 1x1 conv to 1536 channels. Its module names reproduce timm's keys.

``InceptionResNetV2Paper`` follows the paper's Figs. 3, 16, 7, 17, 18 and 19: the Inception-v4
stem and 5/10/5 blocks. The figures print the 17x17 and 8x8 expansion widths as 1154 and 2048,
which cannot be added to block inputs of 1152 and 2144; as is standard, the expansion width here is
the block input width. No public weights exist for it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from inceval.models.inception_v4 import STEM_CHANNELS, STEM_NAMES, stem_modules
from inceval.models.layers import (
    ConvBnAct,
    PaperResidualNet,
    ReductionA,
    ResidualReductionB,
    StagedNet,
    avg_pool_3x3,
    conv_chain,
    init_weights,
    max_pool_3x3_s2,
    residual_block_a,
    residual_block_b,
    residual_block_c,
    stack,
)

# Tower widths shared by both versions (paper Figs. 16-19 = the released blocks).
BLOCK_A_WIDTHS = (32, (32, 32), (32, 48, 64))
BLOCK_B_WIDTHS = (192, (128, 160, 192))
BLOCK_C_WIDTHS = (192, (192, 224, 256))
REDUCTION_A = {"k": 256, "l": 256, "m": 384, "n": 384}
REDUCTION_B_TOWERS = ((256, 384), (256, 288), (256, 288, 320))


class Mixed5b(nn.Module):
    """Last block of the released stem, 35x35x192 -> 35x35x320.

    Towers [1x1(96)] | [1x1(48) -> 5x5(64)] | [1x1(64) -> 3x3(96) -> 3x3(96)] | [avg -> 1x1(64)].
    """

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = ConvBnAct(192, 96, 1)
        self.branch1 = conv_chain(192, [(48, 1, 1), (64, 5, 1)])
        self.branch2 = conv_chain(192, [(64, 1, 1), (96, 3, 1), (96, 3, 1)])
        self.branch3 = nn.Sequential(avg_pool_3x3(count_include_pad=False), ConvBnAct(192, 64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 192 x 35 x 35 -> N x 320 x 35 x 35
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionResNetV2(StagedNet):
    """Inception-ResNet-v2 as released: 55,843,464 parameters at 1000 classes.

    Minimum input size 75x75 (74 leaves no pixel after ``mixed_7a``); 299 gives 8x8 features.

    Args:
        num_classes: classifier outputs.
        residual_scales: scales of the 35x35, 17x17 and 8x8 residual blocks. The final ``block8``
            always keeps scale 1.0 and no ReLU, as released.
        drop_rate: dropout before the classifier (inactive in eval mode).
    """

    classifier_name = "classif"

    def __init__(
        self,
        num_classes: int = 1000,
        residual_scales: tuple[float, float, float] = (0.17, 0.10, 0.20),
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        scale_a, scale_b, scale_c = residual_scales
        self.conv2d_1a = ConvBnAct(3, 32, 3, stride=2)
        self.conv2d_2a = ConvBnAct(32, 32, 3)
        self.conv2d_2b = ConvBnAct(32, 64, 3, padding="same")
        self.maxpool_3a = max_pool_3x3_s2()
        self.conv2d_3b = ConvBnAct(64, 80, 1)
        self.conv2d_4a = ConvBnAct(80, 192, 3)
        self.maxpool_5a = max_pool_3x3_s2()
        self.mixed_5b = Mixed5b()
        self.repeat = stack(10, lambda: residual_block_a(320, BLOCK_A_WIDTHS, scale_a))
        self.mixed_6a = ReductionA(320, **REDUCTION_A)
        self.repeat_1 = stack(20, lambda: residual_block_b(1088, BLOCK_B_WIDTHS, scale_b))
        self.mixed_7a = ResidualReductionB(1088, *REDUCTION_B_TOWERS)
        self.repeat_2 = stack(9, lambda: residual_block_c(2080, BLOCK_C_WIDTHS, scale_c))
        self.block8 = residual_block_c(2080, BLOCK_C_WIDTHS, scale=1.0, activate=False)
        self.conv2d_7b = ConvBnAct(2080, 1536, 1)
        self.num_features = 1536
        self.head_drop = nn.Dropout(drop_rate)
        self.classif = nn.Linear(self.num_features, num_classes)
        self._set_stages(
            [
                (
                    "35x35",
                    [
                        "conv2d_1a",  # N x 32 x 149 x 149
                        "conv2d_2a",  # N x 32 x 147 x 147
                        "conv2d_2b",  # N x 64 x 147 x 147
                        "maxpool_3a",  # N x 64 x 73 x 73
                        "conv2d_3b",  # N x 80 x 73 x 73
                        "conv2d_4a",  # N x 192 x 71 x 71
                        "maxpool_5a",  # N x 192 x 35 x 35
                        "mixed_5b",  # N x 320 x 35 x 35
                        "repeat",  # N x 320 x 35 x 35
                    ],
                ),
                ("17x17", ["mixed_6a", "repeat_1"]),  # N x 1088 x 17 x 17
                ("8x8", ["mixed_7a", "repeat_2", "block8"]),  # N x 2080 x 8 x 8
                (None, ["conv2d_7b"]),  # N x 1536 x 8 x 8
            ]
        )
        init_weights(self)


class InceptionResNetV2Paper(PaperResidualNet):
    """Inception-ResNet-v2 as drawn in the paper: 32,433,928 parameters at 1000 classes.

    Inception-v4 stem -> 5 x A (384) -> Reduction-A -> 10 x B (1152) -> Reduction-B -> 5 x C (2144).
    Minimum input size 75x75 (74 leaves no pixel after Reduction-B); 299 gives 8x8 features.

    Args:
        num_classes: classifier outputs.
        residual_scales: scales of the A, B and C residual blocks (the paper gives only the range
            0.1-0.3; the defaults are the released network's).
        drop_rate: dropout before the classifier (inactive in eval mode).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        residual_scales: tuple[float, float, float] = (0.17, 0.10, 0.20),
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(
            stem=nn.Sequential(OrderedDict(zip(STEM_NAMES, stem_modules()))),
            stem_channels=STEM_CHANNELS,  # 384
            widths_a=BLOCK_A_WIDTHS,
            reduction_a=REDUCTION_A,  # -> 1152
            widths_b=BLOCK_B_WIDTHS,
            reduction_b=REDUCTION_B_TOWERS,  # -> 2144
            widths_c=BLOCK_C_WIDTHS,
            num_classes=num_classes,
            residual_scales=residual_scales,
            drop_rate=drop_rate,
        )
