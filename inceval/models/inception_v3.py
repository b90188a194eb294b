"""Inception-v3 (Szegedy et al. 2016) in the torchvision ``Inception3`` / timm ``inception_v3``
layout.

Module names reproduce the checkpoints' keys (``Conv2d_1a_3x3`` .. ``Mixed_7c``, ``fc``, and
``AuxLogits`` when requested). The pool-projection branches average with
``count_include_pad=True``: that is how these weights were evaluated in torchvision and timm.
"""

from __future__ import annotations

import torch
from torch import nn

from inceval.models.layers import ConvBnAct, StagedNet, avg_pool_3x3, init_weights, max_pool_3x3_s2


def _pool_branch(in_channels: int, out_channels: int) -> tuple[nn.AvgPool2d, ConvBnAct]:
    """Average pool (padding counted) and the 1x1 projection of a pool branch."""
    return avg_pool_3x3(count_include_pad=True), ConvBnAct(in_channels, out_channels, 1)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b-5d).

    Towers [1x1(64)] | [1x1(48) -> 5x5(64)] | [1x1(64) -> 3x3(96) -> 3x3(96)] | [avg -> 1x1].

    Args:
        in_channels: input channels.
        pool_features: width of the pool projection (32, 64, 64 for Mixed_5b/5c/5d).
    """

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBnAct(in_channels, 64, 1)
        self.branch5x5_1 = ConvBnAct(in_channels, 48, 1)
        self.branch5x5_2 = ConvBnAct(48, 64, 5, padding="same")
        self.branch3x3dbl_1 = ConvBnAct(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBnAct(64, 96, 3, padding="same")
        self.branch3x3dbl_3 = ConvBnAct(96, 96, 3, padding="same")
        self.pool, self.branch_pool = _pool_branch(in_channels, pool_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x C x 35 x 35 -> N x (64 + 64 + 96 + pool_features) x 35 x 35
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction (Mixed_6a).

    Towers [3x3(384, s2)] | [1x1(64) -> 3x3(96) -> 3x3(96, s2)] | [maxpool s2].
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBnAct(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBnAct(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBnAct(64, 96, 3, padding="same")
        self.branch3x3dbl_3 = ConvBnAct(96, 96, 3, stride=2)
        self.maxpool = max_pool_3x3_s2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 288 x 35 x 35 -> N x (384 + 96 + 288 = 768) x 17 x 17
        b3 = self.branch3x3(x)
        b3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, b3dbl, self.maxpool(x)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 towers of width ``channels_7x7``.

    Args:
        in_channels: input channels (768).
        channels_7x7: inner width of the 1x7 / 7x1 towers (128, 160, 160, 192 for Mixed_6b-6e).
    """

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBnAct(in_channels, 192, 1)
        self.branch7x7_1 = ConvBnAct(in_channels, c7, 1)
        self.branch7x7_2 = ConvBnAct(c7, c7, (1, 7), padding="same")
        self.branch7x7_3 = ConvBnAct(c7, 192, (7, 1), padding="same")
        self.branch7x7dbl_1 = ConvBnAct(in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBnAct(c7, c7, (7, 1), padding="same")
        self.branch7x7dbl_3 = ConvBnAct(c7, c7, (1, 7), padding="same")
        self.branch7x7dbl_4 = ConvBnAct(c7, c7, (7, 1), padding="same")
        self.branch7x7dbl_5 = ConvBnAct(c7, 192, (1, 7), padding="same")
        self.pool, self.branch_pool = _pool_branch(in_channels, 192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 768 x 17 x 17 -> N x 768 x 17 x 17
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = self.branch7x7dbl_1(x)
        b7dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(b7dbl))
        b7dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(b7dbl))
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b7, b7dbl, bp], 1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction (Mixed_7a).

    Towers [1x1 -> 3x3(320, s2)] | [1x1 -> 1x7 -> 7x1 -> 3x3(192, s2)] | [maxpool s2].
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBnAct(in_channels, 192, 1)
        self.branch3x3_2 = ConvBnAct(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBnAct(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBnAct(192, 192, (1, 7), padding="same")
        self.branch7x7x3_3 = ConvBnAct(192, 192, (7, 1), padding="same")
        self.branch7x7x3_4 = ConvBnAct(192, 192, 3, stride=2)
        self.maxpool = max_pool_3x3_s2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 768 x 17 x 17 -> N x (320 + 192 + 768 = 1280) x 8 x 8
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, self.maxpool(x)], 1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, 7c): towers that end in parallel 1x3 / 3x1 convs, concatenated."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBnAct(in_channels, 320, 1)
        self.branch3x3_1 = ConvBnAct(in_channels, 384, 1)
        self.branch3x3_2a = ConvBnAct(384, 384, (1, 3), padding="same")
        self.branch3x3_2b = ConvBnAct(384, 384, (3, 1), padding="same")
        self.branch3x3dbl_1 = ConvBnAct(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBnAct(448, 384, 3, padding="same")
        self.branch3x3dbl_3a = ConvBnAct(384, 384, (1, 3), padding="same")
        self.branch3x3dbl_3b = ConvBnAct(384, 384, (3, 1), padding="same")
        self.pool, self.branch_pool = _pool_branch(in_channels, 192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x C x 8 x 8 -> N x (320 + 768 + 768 + 192 = 2048) x 8 x 8
        b1 = self.branch1x1(x)
        t3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t3), self.branch3x3_2b(t3)], 1)
        t3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3dbl = torch.cat([self.branch3x3dbl_3a(t3dbl), self.branch3x3dbl_3b(t3dbl)], 1)
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b3, b3dbl, bp], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17 grid (training only; kept so ``AuxLogits.*`` loads).

    Args:
        in_channels: input channels (768).
        num_classes: classifier outputs.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = ConvBnAct(in_channels, 128, 1)
        self.conv1 = ConvBnAct(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 768 x 17 x 17
        x = self.conv1(self.conv0(self.pool(x)))  # N x 768 x 1 x 1
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # N x 768
        return self.fc(x)  # N x num_classes


class InceptionV3(StagedNet):
    """Inception-v3: 23,834,568 parameters at 1000 classes without the auxiliary head.

    Minimum input size 75x75 (74 leaves no pixel after Mixed_7a); 299 gives 8x8 features.

    Args:
        num_classes: classifier outputs.
        aux_logits: build the auxiliary head ``AuxLogits`` (never used by ``forward``; it only lets
            checkpoints that carry ``AuxLogits.*`` load strictly).
        drop_rate: dropout before the classifier (inactive in eval mode).
    """

    classifier_name = "fc"

    def __init__(
        self, num_classes: int = 1000, aux_logits: bool = False, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBnAct(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBnAct(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBnAct(32, 64, 3, padding="same")
        self.maxpool1 = max_pool_3x3_s2()
        self.Conv2d_3b_1x1 = ConvBnAct(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBnAct(80, 192, 3)
        self.maxpool2 = max_pool_3x3_s2()
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        # Registered here, between Mixed_6e and Mixed_7a, to keep torchvision's key order.
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.num_features = 2048
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._set_stages(
            [
                (
                    "35x35",
                    [
                        "Conv2d_1a_3x3",  # N x 32 x 149 x 149
                        "Conv2d_2a_3x3",  # N x 32 x 147 x 147
                        "Conv2d_2b_3x3",  # N x 64 x 147 x 147
                        "maxpool1",  # N x 64 x 73 x 73
                        "Conv2d_3b_1x1",  # N x 80 x 73 x 73
                        "Conv2d_4a_3x3",  # N x 192 x 71 x 71
                        "maxpool2",  # N x 192 x 35 x 35
                        "Mixed_5b",  # N x 256 x 35 x 35
                        "Mixed_5c",  # N x 288 x 35 x 35
                        "Mixed_5d",  # N x 288 x 35 x 35
                    ],
                ),
                # N x 768 x 17 x 17 after each block
                ("17x17", ["Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"]),
                # N x 1280 x 8 x 8, then N x 2048 x 8 x 8
                ("8x8", ["Mixed_7a", "Mixed_7b", "Mixed_7c"]),
            ]
        )
        init_weights(self)
