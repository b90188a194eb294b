"""Image size from the file header, without PIL for well-formed JPEG and PNG files.

PIL's ``Image.open`` costs about 50 microseconds per file, most of it Python plumbing; reading the
size of a JPEG or PNG by hand costs about 5. The hand parsers follow PIL's own header walk step
by step (``JpegImagePlugin._open``, ``PngImagePlugin._open``) and give up, returning None, where
PIL would do anything more than skip a segment: EXIF (PIL parses it for the DPI), MPO and Photoshop
segments, junk between markers, truncated segments, unusual PNG chunks, sizes past PIL's
decompression-bomb limit. Files they give up on go through PIL exactly as
``inceval.data.pipeline.read_encoded`` does, so a file is accepted, with the same size, or refused,
with the same reason, whichever path it takes.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from inceval.data.pipeline import _DALI_FORMATS

NOT_READABLE = "not a readable image"
CONVERT_ADVICE = "convert it to JPEG or PNG"

# JPEG markers (the byte after 0xFF) as PIL's MARKER table groups them.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF,
                  0xDE})
_DQT = 0xDB
_SOS = 0xDA
_APP = frozenset(range(0xE0, 0xF0))
# Length-prefixed segments whose contents PIL skips (DHT, DAC, DNL, DRI, EXP, COM).
_SKIPPED = frozenset({0xC4, 0xCC, 0xDC, 0xDD, 0xDF, 0xFE})
# Markers without a length: JPG, RST0-7, SOI, EOI, JPG0-13. PIL steps over them, EOI included.
_STANDALONE = frozenset({0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)})
_SEGMENTS = _SOF | _APP | _SKIPPED | {_DQT, _SOS}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (bit depth, colour type) pairs PIL opens (PngImagePlugin._MODES); others have no mode there.
_PNG_MODES = frozenset({(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (1, 3), (2, 3),
                        (4, 3), (8, 3), (8, 4), (16, 4), (8, 6), (16, 6)})


class UnreadableImage(Exception):
    """An image file inceval refuses, with the path-free reason stored in a run's images.csv.

    Attributes:
        reason: one short deterministic phrase, e.g. ``"not a readable image"``.
        width: the width from the header when one was read, else 0.
        height: the height from the header when one was read, else 0.
    """

    def __init__(self, reason: str, width: int = 0, height: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.width = width
        self.height = height


def _within_bomb_limit(width: int, height: int) -> bool:
    """Whether PIL would open this size without a decompression-bomb warning or error."""
    limit = Image.MAX_IMAGE_PIXELS
    return limit is None or width * height <= limit


def jpeg_size(buf: memoryview) -> tuple[int, int] | None:
    """(width, height) of a well-formed JPEG header, or None where PIL must decide.

    Walks the markers as PIL does, up to the start of scan: fill bytes (0xFF 0xFF), stuffed
    0xFF 0x00, standalone markers (RSTn, SOI, EOI, ...) and length-prefixed segments; the size of
    the last start-of-frame segment (any SOFn, baseline or progressive) wins.

    Args:
        buf: the file bytes (a 1-D unsigned-byte buffer).
    """
    n = len(buf)
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8 or buf[2] != 0xFF:
        return None
    pos = 2  # the 0xFF of the next marker
    size: tuple[int, int] | None = None
    icc: list[bytes] = []
    while True:
        if pos + 1 >= n or buf[pos] != 0xFF:
            return None  # end of file before the scan, or junk between markers
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x00 or marker in _STANDALONE:
            pos += 2
            continue
        if marker not in _SEGMENTS or pos + 4 > n:
            return None  # PIL: "no marker found", or a cut-off length
        start = pos + 4
        end = start + max(((buf[pos + 2] << 8) | buf[pos + 3]) - 2, 0)
        if end > n:
            return None  # truncated segment
        if marker == _SOS:
            break
        if marker in _SOF:
            length = end - start
            if length < 6 or buf[start] != 8 or buf[start + 5] not in (1, 3, 4) \
                    or (length - 6) % 3:
                return None  # PIL refuses these (bit depth, layers, cut-off component)
            if icc:
                # PIL reads byte 13 of the smallest ICC chunk when it meets a frame.
                if len(min(icc)) < 14:
                    return None
                icc = []
            size = ((buf[start + 3] << 8) | buf[start + 4], (buf[start + 1] << 8) | buf[start + 2])
        elif marker == _DQT:
            offset = start
            while offset < end:
                offset += 65 if buf[offset] < 16 else 129  # 8- or 16-bit table of 64 entries
            if offset > end:
                return None
        elif marker in _APP and not _app_is_simple(marker, buf[start:end], icc):
            return None
        pos = end
    if size is None or size[0] == 0 or size[1] == 0 or not _within_bomb_limit(*size):
        return None
    return size


def _app_is_simple(marker: int, segment: memoryview, icc: list[bytes]) -> bool:
    """Whether PIL only stores this APPn segment (it may parse or reject some); collects ICC."""
    head = bytes(segment[:14])
    if marker == 0xE0 and head.startswith(b"JFIF"):
        return len(segment) >= 7  # PIL reads the version at bytes 5-6
    if marker == 0xE1 and head.startswith(b"Exif\0\0"):
        return False  # PIL parses EXIF for the DPI
    if marker == 0xE2 and head.startswith(b"MPF\0"):
        return False  # PIL may open it as MPO
    if marker == 0xE2 and head.startswith(b"ICC_PROFILE\0"):
        icc.append(bytes(segment))
    elif marker == 0xED and head.startswith(b"Photoshop 3.0\0"):
        return False
    elif marker == 0xEE and head.startswith(b"Adobe"):
        return len(segment) >= 7  # PIL reads the version at bytes 5-6
    return True


def png_size(buf: memoryview) -> tuple[int, int] | None:
    """(width, height) of a PNG whose IHDR chunk is followed by IDAT, or None where PIL decides.

    Checks what PIL checks of such a file: the signature, IHDR's length, checksum, filter method
    and bit depth / colour type, a non-zero size and the next chunk's name.

    Args:
        buf: the file bytes (a 1-D unsigned-byte buffer).
    """
    if len(buf) < 41 or bytes(buf[:8]) != _PNG_SIGNATURE:
        return None
    head = bytes(buf[8:41])  # IHDR: length, name, 13 bytes, checksum; then the next length, name
    if head[:8] != b"\x00\x00\x00\x0dIHDR" or head[29:33] != b"IDAT":
        return None
    if zlib.crc32(head[4:21]) != int.from_bytes(head[21:25], "big"):
        return None
    width = int.from_bytes(head[8:12], "big")
    height = int.from_bytes(head[12:16], "big")
    if (head[16], head[17]) not in _PNG_MODES or head[19] != 0 or width == 0 or height == 0:
        return None
    if not _within_bomb_limit(width, height):
        return None
    return width, height


def pil_size(data: np.ndarray) -> tuple[int, int]:
    """(width, height) as ``read_encoded`` finds it with PIL.

    Raises:
        UnreadableImage: PIL cannot identify the file, it is a decompression bomb, or a format
            DALI cannot decode.
    """
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            width, height = image.size
            fmt = image.format
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"cannot decode image ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnreadableImage(NOT_READABLE) from None
    if fmt not in _DALI_FORMATS:
        raise UnreadableImage(f"{fmt} images are not supported by DALI; {CONVERT_ADVICE}",
                              width, height)
    return width, height


def header_size(data: np.ndarray) -> tuple[int, int]:
    """(width, height) of an encoded image: by hand for plain JPEG and PNG, else with PIL.

    Args:
        data: the file bytes, uint8 of shape (N,), N > 0.

    Raises:
        UnreadableImage: as :func:`pil_size`.
    """
    buf = memoryview(data)
    size = jpeg_size(buf) if data[0] == 0xFF else png_size(buf)
    return size if size is not None else pil_size(data)
