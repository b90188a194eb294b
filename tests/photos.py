"""Real photographs for tests: scikit-image's sample images as JPEG files of chosen shapes.

Covers landscape, portrait, square and odd sizes, grayscale, 4:4:4 and progressive encodings,
and original JPEG files shipped by scikit-image (copied byte for byte).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def _skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _load(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


def _resized(img: np.ndarray, width: int, height: int) -> Image.Image:
    pil = Image.fromarray(img)
    return pil.resize((width, height), Image.Resampling.LANCZOS)


def write_photo_set(directory: Path) -> list[Path]:
    """Write the standard test photographs into ``directory`` and return their paths, sorted.

    File names state the pixel size (width x height) so failures are easy to read.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []

    def save(pil: Image.Image, name: str, **kwargs) -> None:
        path = directory / name
        pil.save(path, format="JPEG", **kwargs)
        out.append(path)

    chelsea = _load("chelsea")  # 451x300 cat photo
    coffee = _load("coffee")  # 600x400
    astronaut = _load("astronaut")  # 512x512
    camera = _load("camera")  # 512x512 grayscale

    save(_resized(chelsea, 500, 375), "landscape_500x375.JPEG", quality=90)
    save(_resized(coffee, 375, 500), "portrait_375x500.JPEG", quality=90)
    save(Image.fromarray(astronaut), "square_512x512.JPEG", quality=90)
    save(_resized(coffee, 401, 257), "odd_401x257.JPEG", quality=92, subsampling=0)  # 4:4:4
    save(_resized(astronaut, 263, 411), "odd_portrait_263x411.JPEG", quality=85, progressive=True)
    save(Image.fromarray(camera), "gray_512x512.JPEG", quality=90)

    # Original JPEG files, unmodified.
    src = _skimage_data_dir() / "rocket.jpg"  # 640x427
    dst = directory / "original_rocket_640x427.JPEG"
    shutil.copyfile(src, dst)
    out.append(dst)
    return sorted(out)
