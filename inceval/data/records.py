"""One labelled validation image: the unit every dataset layout produces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """A validation image and its class.

    Attributes:
        path: POSIX path of the image file relative to the dataset root.
        label: class index 0..999, the position of the class's WNID in the sorted list of WNIDs.
        image_number: the 1-based ILSVRC image number parsed from the file name
            (``ILSVRC2012_val_00000001.JPEG`` -> 1), or None when the name carries none.
    """

    path: str
    label: int
    image_number: int | None
