"""Generated photograph-like JPEGs, so that a bench needs no dataset.

Random tensors would skip the JPEG decoder, the part of the pipeline that costs most; random
pixels would make files several times larger than photographs and slow the entropy decoder down.
These images are smooth colour fields with a few hard-edged shapes and fine grain, saved at the
size and quality of a typical ImageNet validation image (500x375, quality 90), which gives files
of about 110 KB like the originals. The same seed gives the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_SIZE = (500, 375)  # width, height: the most common ImageNet validation shape
DEFAULT_QUALITY = 90
# Amplitudes (grey levels) of the two grain layers; together they set the file size to that of
# a real photograph (measured: about 110 KB at 500x375, quality 90).
_COARSE_GRAIN = 24.0
_FINE_GRAIN = 4.0


def synthetic_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One photograph-like RGB image, uint8 of shape (height, width, 3).

    Args:
        rng: the source of randomness (the image is a function of its state).
        width: pixels.
        height: pixels.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    for channel in range(3):
        field = np.full((height, width), rng.uniform(60, 190), np.float32)
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 6.0, 2) * 2 * np.pi / np.array([width, height])
            field += rng.uniform(20, 50) * np.cos(fx * x + fy * y + rng.uniform(0, 2 * np.pi))
        image[..., channel] = field
    for _ in range(12):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(width / 50, width / 4), rng.uniform(height / 50, height / 4)
        inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        image[inside] = image[inside] * 0.4 + rng.uniform(0, 255, 3).astype(np.float32) * 0.6
    coarse = rng.normal(0, 1, (height // 2 + 1, width // 2 + 1, 3)).astype(np.float32)
    image += np.kron(coarse, np.ones((2, 2, 1), np.float32))[:height, :width] * _COARSE_GRAIN
    image += rng.normal(0, _FINE_GRAIN, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_synthetic_jpegs(directory: str | Path, count: int, *,
                          size: tuple[int, int] = DEFAULT_SIZE, quality: int = DEFAULT_QUALITY,
                          seed: int = 0) -> list[Path]:
    """Write ``count`` generated JPEGs into ``directory`` and return their paths, in order.

    Args:
        directory: created if missing.
        count: number of images (at least 1).
        size: (width, height) in pixels.
        quality: JPEG quality (PIL's scale, 4:2:0 subsampling as most photographs).
        seed: the images depend on it only.

    Raises:
        ValueError: count below 1.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    paths = []
    for index in range(count):
        path = directory / f"synthetic_{index:05d}.JPEG"
        Image.fromarray(synthetic_image(rng, width, height)).save(path, format="JPEG",
                                                                  quality=quality)
        paths.append(path)
    return paths
