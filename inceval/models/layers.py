"""Building blocks shared by every Inception family."""

from __future__ import annotations

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
