"""Preprocessing settings that belong to a set of weights (shared by models and data)."""

from __future__ import annotations

import math
from dataclasses import dataclass

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
IMAGENET_INCEPTION_MEAN = (0.5, 0.5, 0.5)
IMAGENET_INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class EvalConfig:
    """How images must be prepared for a model's weights.

    Attributes:
        input_size: side of the square model input in pixels (299 for the Inception weights).
        crop_pct: single-crop rule; the shorter side is resized to floor(input_size / crop_pct)
            before a centre crop of input_size.
        interpolation: "bicubic" or "bilinear" (resizes use antialiasing when downscaling).
        mean: per-channel mean for pixels scaled to [0, 1].
        std: per-channel standard deviation for pixels scaled to [0, 1].
    """

    input_size: int = 299
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_INCEPTION_MEAN
    std: tuple[float, float, float] = IMAGENET_INCEPTION_STD

    @property
    def resize_size(self) -> int:
        """Shorter side before the single centre crop: floor(input_size / crop_pct)."""
        # A tiny epsilon guards against 299/0.875 landing a hair below an integer in binary.
        return int(math.floor(self.input_size / self.crop_pct + 1e-9))

    def with_input_size(self, input_size: int) -> "EvalConfig":
        """The same rule at another input size (used by tests at reduced resolution)."""
        return EvalConfig(input_size, self.crop_pct, self.interpolation, self.mean, self.std)
