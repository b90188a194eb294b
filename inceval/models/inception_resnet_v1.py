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
    ReductionA,
    ResidualReductionB,
    StagedNet,
    init_weights,
    max_pool_3x3_s2,
    residual_block_a,
    residual_block_b,
    residual_block_c,
    stack,
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


class InceptionResNetV1(StagedNet):
    """Inception-ResNet-v1: 22,756,328 parameters at 1000 classes.

    Stem -> 5 x A (256) -> Reduction-A (k, l, m, n = 192, 192, 256, 384) -> 10 x B (896)
    -> Reduction-B -> 5 x C (1792). Minimum input size 75x75 (74 leaves no pixel after
    Reduction-B); 299 gives 8x8 features.

    Args:
        num_classes: classifier outputs.
        residual_scales: scales of the A, B and C residual blocks.
        drop_rate: dropout before the classifier (inactive in eval mode).
    """

    classifier_name = "fc"

    def __init__(
        self,
        num_classes: int = 1000,
        residual_scales: tuple[float, float, float] = (0.17, 0.10, 0.20),
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        scale_a, scale_b, scale_c = residual_scales
        self.stem = stem()
        widths_a = (32, (32, 32), (32, 32, 32))
        self.blocks_a = stack(5, lambda: residual_block_a(256, widths_a, scale_a))
        self.reduction_a = ReductionA(256, k=192, l=192, m=256, n=384)
        width_b = self.reduction_a.out_channels  # 896
        widths_b = (128, (128, 128, 128))
        self.blocks_b = stack(10, lambda: residual_block_b(width_b, widths_b, scale_b))
        self.reduction_b = ResidualReductionB(width_b, (256, 384), (256, 256), (256, 256, 256))
        width_c = self.reduction_b.out_channels  # 1792
        widths_c = (192, (192, 192, 192))
        self.blocks_c = stack(5, lambda: residual_block_c(width_c, widths_c, scale_c))
        self.num_features = width_c
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._set_stages(
            [
                ("35x35", ["stem", "blocks_a"]),  # N x 256 x 35 x 35
                ("17x17", ["reduction_a", "blocks_b"]),  # N x 896 x 17 x 17
                ("8x8", ["reduction_b", "blocks_c"]),  # N x 1792 x 8 x 8
            ]
        )
        init_weights(self)
