"""Inception-ResNet-v1 (Szegedy et al. 2017, Figs. 14, 10, 7, 11, 12, 13).

The paper's smaller residual network, roughly matching Inception-v3's cost. No public ImageNet
weights exist (FaceNet's "Inception-ResNet-v1" is a different, face-embedding network), so the
submodule names are this project's own: ``stem``, ``blocks_a``, ``reduction_a``, ``blocks_b``,
``reduction_b``, ``blocks_c``, ``fc``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from inceval.models.layers import (
    ConvBnAct,
    PaperResidualNet,
    max_pool_3x3_s2,
)


def stem() -> nn.Sequential:
    """Inception-ResNet-v1 stem (Fig. 14): 299x299x3 -> 35x35x256."""
    return nn.Sequential(
        OrderedDict(
            [
                ("conv_1a", ConvBnAct(3, 32, 3, stride=2)),  # N x 32 x 149 x 149
                ("conv_2a", ConvBnAct(32, 32, 3)),  # N x 32 x 147 x 147
                ("conv_2b", ConvBnAct(32, 64, 3, padding="same")),  # N x 64 x 147 x 147
                ("pool_3a", max_pool_3x3_s2()),  # N x 64 x 73 x 73
                ("conv_3b", ConvBnAct(64, 80, 1)),  # N x 80 x 73 x 73
                ("conv_4a", ConvBnAct(80, 192, 3)),  # N x 192 x 71 x 71
                ("conv_4b", ConvBnAct(192, 256, 3, stride=2)),  # N x 256 x 35 x 35
            ]
        )
    )


class InceptionResNetV1(PaperResidualNet):
    """Inception-ResNet-v1: 22,756,328 parameters at 1000 classes.

    Stem -> 5 x A (256) -> Reduction-A (k, l, m, n = 192, 192, 256, 384) -> 10 x B (896)
    -> Reduction-B -> 5 x C (1792). Minimum input size 75x75 (74 leaves no pixel after
    Reduction-B); 299 gives 8x8 features.

    Args:
        num_classes: classifier outputs.
        residual_scales: scales of the A, B and C residual blocks.
        drop_rate: dropout before the classifier (inactive in eval mode).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        residual_scales: tuple[float, float, float] = (0.17, 0.10, 0.20),
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(
            stem=stem(),
            stem_channels=256,
            widths_a=(32, (32, 32), (32, 32, 32)),
            reduction_a={"k": 192, "l": 192, "m": 256, "n": 384},  # -> 896
            widths_b=(128, (128, 128, 128)),
            reduction_b=((256, 384), (256, 256), (256, 256, 256)),  # -> 1792
            widths_c=(192, (192, 192, 192)),
            num_classes=num_classes,
            residual_scales=residual_scales,
            drop_rate=drop_rate,
        )
