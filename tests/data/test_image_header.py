"""Image sizes from headers: the hand parsers against PIL, the independent reference.

Every file here is also opened by PIL (``Image.open``) or by ``pipeline.read_encoded``; the hand
parsers must give PIL's size where they answer at all, and ``header_size`` (hand parser, else
PIL) must accept and refuse exactly the files ``read_encoded`` accepts and refuses.
"""

from __future__ import annotations

import io
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inceval.data.image_header import (
    _PNG_MODES,
    UnreadableImage,
    header_size,
    jpeg_size,
    png_size,
)
from inceval.data.feeder import image_error_message
from inceval.data.pipeline import read_encoded
from inceval.errors import InceValError

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "inceval" / "sample" / "images"


def _photo(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Smooth random content of the given size and mode."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    return image.convert(mode)


def _encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _buf(data: bytes) -> memoryview:
    return memoryview(np.frombuffer(data, dtype=np.uint8))


def _pil_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "inceval"  # Make
    exif[0x0112] = 6  # Orientation: rotated; sizes stay those of the stored pixels
    return exif


def _icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# Files the JPEG hand parser must read itself, with PIL's size.
JPEG_CASES = {
    "rgb": lambda: _encode(_photo(500, 375), quality=90),
    "grey L": lambda: _encode(_photo(375, 500, "L")),
    "cmyk": lambda: _encode(_photo(333, 500, "CMYK")),
    "progressive": lambda: _encode(_photo(500, 333), progressive=True),
    "4:4:4": lambda: _encode(_photo(301, 199), subsampling=0),
    "4:2:0": lambda: _encode(_photo(301, 199), subsampling=2),
    "1x1": lambda: _encode(_photo(1, 1)),
    "4000x3000": lambda: _encode(_photo(4000, 3000), quality=50),
    "icc profile": lambda: _encode(_photo(64, 48), icc_profile=_icc_profile()),
    "comment": lambda: _encode(_photo(64, 48), comment=b"made by inceval"),
    "restart markers": lambda: _encode(_photo(64, 48), restart_marker_rows=1),
}


@pytest.mark.parametrize("name", sorted(JPEG_CASES))
def test_jpeg_parser_gives_pils_size(name: str) -> None:
    data = JPEG_CASES[name]()
    assert jpeg_size(_buf(data)) == _pil_size(data)


def test_restart_case_has_a_restart_interval_segment() -> None:
    # The case above is only a test of DRI if PIL wrote one (0xFFDD before the scan).
    data = JPEG_CASES["restart markers"]()
    assert b"\xff\xdd" in data[: data.index(b"\xff\xda")]


def test_exif_is_left_to_pil_with_the_same_size() -> None:
    # PIL parses EXIF for the DPI and may refuse a broken one: the hand parser does not answer.
    data = _encode(_photo(500, 375), exif=_exif())
    assert jpeg_size(_buf(data)) is None
    assert header_size(np.frombuffer(data, dtype=np.uint8)) == (500, 375)


def test_exif_pil_refuses_is_refused(tmp_path: Path) -> None:
    # XResolution (tag 0x011A) retyped from RATIONAL (5) to BYTE (1): PIL's DPI lookup fails
    # with an error it does not catch and refuses the file, so the hand parser must not answer.
    exif = Image.Exif()
    exif[0x0128] = 2  # ResolutionUnit: inch
    exif[0x011A] = 72.0  # XResolution
    data = bytearray(_encode(_photo(40, 30), exif=exif))
    # "Exif\0\0", TIFF header (8), entry count (2), then the entry: tag (2), type (2).
    type_at = data.index(b"Exif\0\0") + 6 + 8 + 2 + 2
    assert data[type_at:type_at + 2] == b"\x00\x05"
    data[type_at + 1] = 1
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(bytes(data))
    expected = f"{path}: not a readable image; replace or remove it"
    assert _outcome_old(path) == expected
    assert _outcome_new(path) == expected


def _segments(data: bytes) -> list[bytes]:
    """A JPEG split into SOI, its header segments, and the rest from the start of scan."""
    parts, pos = [data[:2]], 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        parts.append(data[pos:end])
        pos = end
    parts.append(data[pos:])
    return parts


def _header_only_jpeg(width: int, height: int) -> bytes:
    """SOI, a baseline SOF of three components, an empty scan header and EOI."""
    sof = b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") \
        + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    sos = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return b"\xff\xd8" + sof + sos + b"\xff\xd9"


def _edited(edit) -> bytes:
    return b"".join(edit(_segments(_encode(_photo(40, 30)))))


# Hand-made marker sequences PIL reads; the expected size is what PIL says.
MARKER_CASES = {
    # 0xFF fill bytes before a marker (allowed by the standard).
    "fill bytes": lambda: _edited(lambda s: [s[0], b"\xff\xff\xff" + s[1], *s[2:]]),
    # standalone markers between segments: RST0, RST7, a second SOI, TEM-like JPG0.
    "standalone markers": lambda: _edited(
        lambda s: [s[0], b"\xff\xd0\xff\xd7", s[1], b"\xff\xd8\xff\xf0", *s[2:]]),
    # PIL steps over an EOI before the scan.
    "early EOI": lambda: _edited(lambda s: [s[0], b"\xff\xd9", *s[1:]]),
    # a stuffed 0xFF 0x00 pair between segments.
    "stuffed zero": lambda: _edited(lambda s: [s[0], b"\xff\x00", *s[1:]]),
    # APP segments of every number, an empty one and a zero length.
    "many APPn": lambda: _edited(lambda s: [
        s[0], *(bytes([0xFF, 0xE0 + k, 0, 6]) + b"abcd" for k in range(3, 16)),
        b"\xff\xe5\x00\x02", b"\xff\xe6\x00\x00", *s[1:]]),
    # two frames: PIL keeps the last.
    "two SOF": lambda: b"\xff\xd8" + _header_only_jpeg(70, 20)[2:-16]
    + _header_only_jpeg(50, 60)[2:],
    "header only": lambda: _header_only_jpeg(65535, 3),
    "SOF1 extended": lambda: _header_only_jpeg(30, 40).replace(b"\xff\xc0", b"\xff\xc1"),
    "SOF10 arithmetic progressive": lambda: _header_only_jpeg(30, 40).replace(
        b"\xff\xc0", b"\xff\xca"),
}


@pytest.mark.parametrize("name", sorted(MARKER_CASES))
def test_marker_walk_matches_pil(name: str) -> None:
    data = MARKER_CASES[name]()
    assert jpeg_size(_buf(data)) == _pil_size(data)


def test_two_frames_give_the_last() -> None:
    assert jpeg_size(_buf(MARKER_CASES["two SOF"]())) == (50, 60)


@pytest.mark.parametrize("name", ["camera", "chelsea", "china", "clock", "coffee",
                                  "grace_hopper", "rocket", "shuttle"])
def test_bundled_photos(name: str) -> None:
    data = (SAMPLE_DIR / f"{name}.jpg").read_bytes()
    assert jpeg_size(_buf(data)) == _pil_size(data)


def test_scikit_image_samples() -> None:
    skimage = pytest.importorskip("skimage")
    folder = Path(skimage.__file__).parent / "data"
    checked = answered = 0
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in {".jpg", ".jpeg", ".png"}:
            continue
        data = path.read_bytes()
        expected = _pil_size(data)
        fast = jpeg_size(_buf(data)) or png_size(_buf(data))
        assert fast in (None, expected), path.name
        assert header_size(np.frombuffer(data, dtype=np.uint8)) == expected, path.name
        checked += 1
        answered += fast is not None
    assert checked >= 10 and answered >= 3  # the hand parsers did read some themselves


PNG_CASES = {
    "rgb": lambda: _encode(_photo(375, 500), "PNG"),
    "rgba": lambda: _encode(_photo(20, 10, "RGBA"), "PNG"),
    "grey 16-bit": lambda: _encode(
        Image.fromarray(np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000), "PNG"),
    "1-bit": lambda: _encode(_photo(9, 7, "1"), "PNG"),
}


@pytest.mark.parametrize("name", sorted(PNG_CASES))
def test_png_parser_gives_pils_size(name: str) -> None:
    data = PNG_CASES[name]()
    assert png_size(_buf(data)) == _pil_size(data)


def test_png_modes_are_pils() -> None:
    from PIL import PngImagePlugin

    assert _PNG_MODES == set(PngImagePlugin._MODES)


def test_png_with_more_chunks_is_left_to_pil() -> None:
    # A palette PNG has a PLTE chunk before IDAT: PIL checks it, so the hand parser steps back.
    data = _encode(_photo(33, 17).quantize(16), "PNG", bits=4)
    assert png_size(_buf(data)) is None
    assert header_size(np.frombuffer(data, dtype=np.uint8)) == (33, 17)


def test_png_named_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "n02105855_2933.JPEG"  # ImageNet's famous PNG in disguise
    path.write_bytes(_encode(_photo(30, 20), "PNG"))
    data = np.fromfile(path, dtype=np.uint8)
    assert header_size(data) == read_encoded(path)[1:] == (30, 20)


def test_other_formats_go_through_pil() -> None:
    bmp = _encode(_photo(13, 11), "BMP")
    assert header_size(np.frombuffer(bmp, dtype=np.uint8)) == (13, 11)
    gif = _encode(_photo(13, 11), "GIF")
    with pytest.raises(UnreadableImage) as caught:
        header_size(np.frombuffer(gif, dtype=np.uint8))
    assert caught.value.reason == "GIF images are not supported by DALI; convert it to JPEG or PNG"
    assert (caught.value.width, caught.value.height) == (13, 11)


def _outcome_old(path: Path) -> object:
    """read_encoded's verdict: the size, or its message."""
    try:
        return read_encoded(path)[1:]
    except InceValError as exc:
        return str(exc)


def _outcome_new(path: Path) -> object:
    """header_size's verdict in the same terms."""
    try:
        return header_size(np.fromfile(path, dtype=np.uint8))
    except UnreadableImage as bad:
        return image_error_message(path, bad.reason)


def _mutants(data: bytes, count: int, seed: int, span: int) -> list[bytes]:
    """Copies of ``data`` with a few header bytes changed, cut short, or bytes inserted."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        mutant = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:  # cut short
            mutant = mutant[:rng.randrange(1, span)]
        elif kind == 1:  # insert junk, fill bytes or a marker
            at = rng.randrange(2, span)
            mutant[at:at] = rng.choice([b"\xff", b"\xff\xff", b"\x00", b"\xff\x00", b"\xab",
                                        bytes([0xFF, rng.randrange(256)])])
        else:
            for _ in range(1 + kind):
                mutant[rng.randrange(span)] = rng.choice(
                    [0, 1, 2, 8, 12, 0xFF, 0xD8, 0xDA, 0xC0, 0xC2, rng.randrange(256)])
        out.append(bytes(mutant))
    return out


def test_fuzzed_jpeg_headers_agree_with_read_encoded(tmp_path: Path) -> None:
    # Mutants of a JPEG with JFIF, ICC and comment segments; every verdict must match, size or
    # message. At least a quarter must still be readable, or the test checks refusals only.
    base = _encode(_photo(40, 30), icc_profile=_icc_profile()[:200], comment=b"x" * 20)
    scan = base.index(b"\xff\xda") + 14
    readable = 0
    for index, mutant in enumerate(_mutants(base, 400, seed=7, span=scan)):
        path = tmp_path / f"m{index}.jpg"
        path.write_bytes(mutant)
        old = _outcome_old(path)
        assert _outcome_new(path) == old, (index, mutant[:scan])
        readable += isinstance(old, tuple)
    assert readable >= 100


def _ihdr_mutants(data: bytes, count: int, seed: int) -> list[bytes]:
    """Copies of a PNG with IHDR fields changed and its checksum made right again."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        mutant = bytearray(data)
        for _ in range(rng.randrange(1, 3)):
            # width/height bytes 16-23, bit depth 24, colour type 25, compression, filter,
            # interlace 26-28
            at = rng.randrange(16, 29)
            mutant[at] = rng.choice([0, 1, 2, 3, 4, 6, 8, 16, 0xFF, rng.randrange(256)])
        mutant[29:33] = zlib.crc32(bytes(mutant[12:29])).to_bytes(4, "big")
        out.append(bytes(mutant))
    return out


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_fuzzed_png_headers_agree_with_read_encoded(tmp_path: Path) -> None:
    base = _encode(_photo(12, 9), "PNG")
    readable = 0
    mutants = _mutants(base, 150, seed=11, span=45) + _ihdr_mutants(base, 150, seed=12)
    for index, mutant in enumerate(mutants):
        path = tmp_path / f"m{index}.png"
        path.write_bytes(mutant)
        old = _outcome_old(path)
        assert _outcome_new(path) == old, (index, mutant[:45])
        readable += isinstance(old, tuple)
    assert readable >= 50


def _with_segment(segment: bytes, width: int = 30, height: int = 40) -> bytes:
    """A header-only JPEG with ``segment`` before its frame."""
    return b"\xff\xd8" + segment + _header_only_jpeg(width, height)[2:]


_SOF_12_BIT = _header_only_jpeg(30, 40).replace(b"\x00\x11\x08", b"\x00\x11\x0c", 1)
_HEADER = _header_only_jpeg(30, 40)
# Headers PIL refuses though every segment is in place; the hand parser must refuse them too.
REFUSED_CASES = {
    "frame with a cut-off component": _HEADER.replace(b"\xff\xc0\x00\x11", b"\xff\xc0\x00\x12")
    .replace(b"\xff\xda", b"\x00\xff\xda"),
    "frame of 2 components": _HEADER.replace(b"\x00\x1e\x03", b"\x00\x1e\x02"),
    "12-bit frame": _SOF_12_BIT,
    "short ICC chunk": _with_segment(b"\xff\xe2\x00\x0e" + b"ICC_PROFILE\x00"),
    "short JFIF": _with_segment(b"\xff\xe0\x00\x08JFIF\x00\x01"),
    "short Adobe": _with_segment(b"\xff\xee\x00\x08Adobe\x00"),
    "quantisation table cut short": _with_segment(b"\xff\xdb\x00\x42" + bytes(64)),
    "16-bit table cut short": _with_segment(b"\xff\xdb\x00\x43\x10" + bytes(64)),
    "scan header cut short": _HEADER[:-3],
    "unknown marker": _with_segment(b"\xff\x01"),
    "no frame": b"\xff\xd8" + _HEADER[_HEADER.index(b"\xff\xda"):],
    "zero height": _header_only_jpeg(30, 0),
}


@pytest.mark.parametrize("name", sorted(REFUSED_CASES))
def test_headers_pil_refuses_are_refused(name: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(REFUSED_CASES[name])
    expected = f"{path}: not a readable image; replace or remove it"
    assert _outcome_old(path) == expected  # the reference agrees the file is bad
    assert _outcome_new(path) == expected


def test_segments_just_long_enough_are_read(tmp_path: Path) -> None:
    # The boundaries of the refusals above: exactly 7 bytes of JFIF and Adobe, ICC of 14 bytes,
    # a whole 8-bit and 16-bit table.
    data = _with_segment(b"\xff\xe0\x00\x09JFIF\x00\x01\x02"
                         + b"\xff\xee\x00\x09Adobe\x00\x64"
                         + b"\xff\xe2\x00\x10ICC_PROFILE\x00\x01\x01"
                         + b"\xff\xdb\x00\x43" + bytes(65)
                         + b"\xff\xdb\x00\x83\x10" + bytes(128), 31, 41)
    assert _pil_size(data) == (31, 41)
    assert jpeg_size(_buf(data)) == (31, 41)


def test_mpo_is_left_to_pil() -> None:
    # PIL opens a JPEG with an MPF segment as MPO and may refuse a broken one.
    frames = [_photo(40, 30, seed=1), _photo(40, 30, seed=2)]
    data = _encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert b"MPF\x00" in data[:200]
    assert jpeg_size(_buf(data)) is None
    assert header_size(np.frombuffer(data, dtype=np.uint8)) == (40, 30)


def test_decompression_bomb_is_left_to_pil() -> None:
    # 20000 x 10000 = 200,000,000 pixels, above PIL's error limit of 2 x 89,478,485.
    data = _header_only_jpeg(20000, 10000)
    assert jpeg_size(_buf(data)) is None
    with pytest.raises(UnreadableImage) as caught:
        header_size(np.frombuffer(data, dtype=np.uint8))
    assert caught.value.reason == (
        "cannot decode image (Image size (200000000 pixels) exceeds limit of 178956970 "
        "pixels, could be decompression bomb DOS attack.)")
