"""The threaded feeder: arguments, order, bad images, elongated images, the size cache, closing.

References: the view arguments are compared with the uncached
``_sample_args(layout, plan_views(w, h, views), w, h)``, sizes with the ones written into the
files, bytes with the files, and error messages with ``pipeline.read_encoded``'s.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inceval.data.feeder import (
    MAX_STAGE_PIXELS,
    ImageFeeder,
    PreparedImage,
    default_threads,
    image_error_message,
    read_bytes,
)
from inceval.data.pipeline import _layout, _sample_args, read_encoded
from inceval.data.protocols import get_protocol
from inceval.data.views import plan_views
from inceval.errors import InceValError
from inceval.models import get_eval_config

CONFIG = get_eval_config("v3")
VIEWS = {name: get_protocol(name).resolve(CONFIG) for name in ("1", "1-slim", "10", "12", "144")}


def _header_jpeg(width: int, height: int) -> bytes:
    """A JPEG of SOI, frame and scan headers only: any size for free (nothing is decoded)."""
    sof = b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") \
        + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + sof + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00\xff\xd9"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _real_jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(out, format="JPEG")
    return out.getvalue()


def _reference_args(views, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    return _sample_args(_layout(views), plan_views(width, height, views), width, height)


# Landscape, portrait, square, odd, tiny, ImageNet's common sizes and long thin ones.
SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 500), (1, 1), (2, 3), (299, 299),
         (341, 340), (340, 341), (1023, 767), (640, 427), (4000, 3000), (3, 400), (577, 1),
         (17, 2999), (800, 1), (12345, 678)]


@pytest.mark.parametrize("protocol", sorted(VIEWS))
def test_arguments_equal_the_uncached_reference(protocol: str, tmp_path: Path) -> None:
    views = VIEWS[protocol]
    paths = [_write(tmp_path / f"{w}x{h}.jpg", _header_jpeg(w, h)) for w, h in SIZES]
    feeder = ImageFeeder(paths + paths, views, threads=0)  # each size twice: miss, then hit
    for item in feeder.iter_prepared(range(2 * len(paths))):
        width, height = SIZES[item.position % len(SIZES)]
        limit_hit = any(s.out_h * s.out_w > MAX_STAGE_PIXELS
                        for s in plan_views(width, height, views).stages)
        if limit_hit:
            assert item.error is not None and "too elongated" in item.error
            continue
        floats, ints = _reference_args(views, width, height)
        assert item.error is None
        assert (item.width, item.height) == (width, height)
        assert item.floats.dtype == np.float32 and item.ints.dtype == np.int32
        np.testing.assert_array_equal(item.floats, floats)
        np.testing.assert_array_equal(item.ints, ints)
        assert item.data.tobytes() == paths[item.position % len(SIZES)].read_bytes()
    assert feeder.geometry_cache_info().misses == len(SIZES)


def test_order_is_kept_with_threads_and_a_short_read_ahead(tmp_path: Path) -> None:
    sizes = [(20 + 7 * i, 10 + 3 * (i % 5)) for i in range(40)]
    paths = [_write(tmp_path / f"{i}.jpg", _header_jpeg(w, h)) for i, (w, h) in enumerate(sizes)]
    order = [5, 3, 3, 39, 0, *range(40), 7, *range(39, -1, -3)]
    feeder = ImageFeeder(paths, VIEWS["12"], threads=3, read_ahead=5)
    items = list(feeder.iter_prepared(order))
    assert [item.position for item in items] == order
    assert [(item.width, item.height) for item in items] == [sizes[i] for i in order]
    for item in items:
        reference = _reference_args(VIEWS["12"], *sizes[item.position])
        np.testing.assert_array_equal(item.floats, reference[0])
        np.testing.assert_array_equal(item.ints, reference[1])


@pytest.mark.parametrize(("threads", "read_ahead"), [(2, 6), (1, 7)])
def test_in_flight_images_stay_within_read_ahead(threads: int, read_ahead: int, tmp_path: Path,
                                                 monkeypatch) -> None:
    # Count images handed to the workers but not yet yielded; it must never pass read_ahead.
    # (1, 7) hands out tasks of 3 images, so a last task must be cut to fit.
    paths = [_write(tmp_path / f"{i}.jpg", _header_jpeg(30 + i, 20)) for i in range(50)]
    feeder = ImageFeeder(paths, VIEWS["1"], threads=threads, read_ahead=read_ahead)
    started: list[int] = []
    prepare = feeder.prepare
    lock = threading.Lock()

    def counting_prepare(position: int) -> PreparedImage:
        with lock:
            started.append(position)
        return prepare(position)

    monkeypatch.setattr(feeder, "prepare", counting_prepare)
    consumed = 0
    for item in feeder.iter_prepared(range(50)):
        consumed += 1
        with lock:
            assert len(started) - consumed < read_ahead  # this item is out of flight now
    assert consumed == 50 and sorted(started) == list(range(50))


def _make_bad_files(folder: Path) -> dict[str, Path]:
    """One file of every bad kind, by name."""
    gif = io.BytesIO()
    Image.new("RGB", (8, 6)).save(gif, format="GIF")
    files = {
        "missing": folder / "missing.jpg",
        "empty": _write(folder / "empty.jpg", b""),
        "text": _write(folder / "notes.JPEG", b"this is not an image\n"),
        "gif": _write(folder / "anim.JPEG", gif.getvalue()),
        # 20000 x 10000 = 200,000,000 pixels: above PIL's limit of 2 x 89,478,485.
        "bomb": _write(folder / "bomb.jpg", _header_jpeg(20000, 10000)),
        "directory": folder / "a_directory.jpg",
        "dangling": folder / "dangling.jpg",
    }
    files["directory"].mkdir()
    os.symlink(folder / "nowhere.jpg", files["dangling"])
    return files


EXPECTED_REASONS = {
    "missing": "image file not found",
    "empty": "file is empty",
    "text": "not a readable image",
    "gif": "GIF images are not supported by DALI; convert it to JPEG or PNG",
    "bomb": "cannot decode image (Image size (200000000 pixels) exceeds limit of 178956970 "
            "pixels, could be decompression bomb DOS attack.)",
    "directory": "cannot read file (Is a directory)",
    "dangling": "image file not found",
}


def test_bad_images_give_reasons_and_their_neighbours_are_prepared(tmp_path: Path) -> None:
    bad = _make_bad_files(tmp_path)
    good = [_write(tmp_path / f"good{i}.jpg", _real_jpeg(40 + i, 30)) for i in range(len(bad) + 1)]
    names = sorted(bad)
    paths = [good[0]]
    for index, name in enumerate(names):
        paths += [bad[name], good[index + 1]]
    items = list(ImageFeeder(paths, VIEWS["1"], threads=2, read_ahead=3).iter_prepared(
        range(len(paths))))
    assert [item.position for item in items] == list(range(len(paths)))
    for index, name in enumerate(names):
        item = items[2 * index + 1]
        assert item.error == EXPECTED_REASONS[name], name
        assert item.data is None and item.floats is None and item.ints is None
        # The message is worded as read_encoded words it.
        with pytest.raises(InceValError) as caught:
            read_encoded(paths[item.position])
        assert image_error_message(paths[item.position], item.error) == str(caught.value)
    for item in items[::2]:
        assert item.error is None
        assert item.data.tobytes() == paths[item.position].read_bytes()
        assert (item.width, item.height) == Image.open(paths[item.position]).size


def test_gif_keeps_its_size_from_the_header(tmp_path: Path) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (8, 6)).save(gif, format="GIF")
    item = ImageFeeder([_write(tmp_path / "a.gif", gif.getvalue())], VIEWS["1"]).prepare(0)
    assert (item.width, item.height, item.data) == (8, 6, None)


def test_unreadable_file(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "locked.jpg", _real_jpeg(10, 10))
    if os.geteuid() == 0:  # root reads any file: make the open fail as it would for a user
        real_open = os.open

        def locked_open(name, flags, *args, **kwargs):
            if Path(name) == path:
                raise PermissionError(13, "Permission denied", str(name))
            return real_open(name, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", locked_open)
    else:
        path.chmod(0)
    item = ImageFeeder([path], VIEWS["1"], threads=0).prepare(0)
    assert item.error == "cannot read file (Permission denied)"
    assert image_error_message(path, item.error) == \
        f"{path}: cannot read file (Permission denied); check permissions"


def test_too_elongated_images(tmp_path: Path) -> None:
    # Protocol "1" of v3 resizes the shorter side to 341 (floor(299 / 0.875)).
    # 3000x2: the long side becomes floor(3000 * 341 / 2) = 511,500; 511,500 * 341 =
    # 174,421,500 pixels > 2**26 = 67,108,864.
    # 577x1: 577 * 341 = 196,757 wide, 196,757 * 341 = 67,094,137 <= 2**26: accepted.
    # 578x1: 578 * 341 = 197,098 wide, 197,098 * 341 = 67,210,418 > 2**26: refused.
    # 2x3000 is the portrait twin of 3000x2.
    cases = {(3000, 2): "image is 3000x2: too elongated (a 341-pixel shorter side would need "
                        "511,500x341 pixels)",
             (2, 3000): "image is 2x3000: too elongated (a 341-pixel shorter side would need "
                        "341x511,500 pixels)",
             (577, 1): None,
             (578, 1): "image is 578x1: too elongated (a 341-pixel shorter side would need "
                       "197,098x341 pixels)"}
    assert MAX_STAGE_PIXELS == 2**26
    paths = [_write(tmp_path / f"{w}x{h}.jpg", _header_jpeg(w, h)) for w, h in cases]
    items = list(ImageFeeder(paths, VIEWS["1"], threads=0).iter_prepared(range(len(paths))))
    for item, ((width, height), reason) in zip(items, cases.items()):
        assert item.error == reason
        assert (item.width, item.height) == (width, height)
    assert image_error_message(paths[0], items[0].error) == f"{paths[0]}: {cases[(3000, 2)]}; " \
        "replace or remove it"


def test_elongation_uses_the_largest_stage_of_144_crops(tmp_path: Path) -> None:
    # 144 crops resize the shorter side to 342, 384, 427 and 470. For 300x1 only the last fails:
    # 470: 300 * 470 = 141,000 wide, * 470 = 66,270,000 <= 2**26 (accepted);
    # for 320x1: 342 -> 109,440 * 342 = 37,428,480; 384 -> 122,880 * 384 = 47,185,920;
    # 427 -> 136,640 * 427 = 58,345,280; 470 -> 150,400 * 470 = 70,688,000 > 2**26.
    paths = [_write(tmp_path / "a.jpg", _header_jpeg(300, 1)),
             _write(tmp_path / "b.jpg", _header_jpeg(320, 1))]
    feeder = ImageFeeder(paths, VIEWS["144"], threads=0)
    assert feeder.prepare(0).error is None
    assert feeder.prepare(1).error == ("image is 320x1: too elongated (a 470-pixel shorter side "
                                       "would need 150,400x470 pixels)")


def test_cached_arrays_are_read_only_and_stay_right(tmp_path: Path) -> None:
    # The arrays are shared by every image of a size, so they are read-only, and their
    # WRITEABLE flag cannot be set again.
    paths = [_write(tmp_path / f"{i}.jpg", _header_jpeg(500, 375)) for i in range(2)]
    feeder = ImageFeeder(paths, VIEWS["144"], threads=0)
    first = feeder.prepare(0)
    for array in (first.floats, first.ints):
        with pytest.raises(ValueError):
            array[0, 0] = 123
        with pytest.raises(ValueError):
            array.setflags(write=True)
        with pytest.raises(ValueError):
            np.copyto(array, 0)
    second = feeder.prepare(1)
    floats, ints = _reference_args(VIEWS["144"], 500, 375)
    np.testing.assert_array_equal(second.floats, floats)
    np.testing.assert_array_equal(second.ints, ints)
    assert feeder.geometry_cache_info().hits == 1


def _feeder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("inceval-feeder")]


def test_closing_the_iterator_early_stops_the_pool(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"{i}.jpg", _header_jpeg(30 + i, 20)) for i in range(300)]
    feeder = ImageFeeder(paths, VIEWS["1"], threads=2, read_ahead=8)
    iterator = feeder.iter_prepared(range(300))
    assert [next(iterator).position for _ in range(3)] == [0, 1, 2]
    assert _feeder_threads()
    iterator.close()
    assert _feeder_threads() == []
    # The feeder still serves a new iteration.
    assert [item.position for item in feeder.iter_prepared([7, 8])] == [7, 8]


def test_close_ends_open_iterations(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"{i}.jpg", _header_jpeg(30 + i, 20)) for i in range(300)]
    with ImageFeeder(paths, VIEWS["1"], threads=2, read_ahead=8) as feeder:
        iterator = feeder.iter_prepared(range(300))
        next(iterator)
    assert _feeder_threads() == []
    rest = list(iterator)  # ends after what was already read: no hang, no error
    assert len(rest) < 8
    with pytest.raises(RuntimeError, match="closed"):
        next(feeder.iter_prepared([0]))


def test_other_errors_reach_the_consumer_at_their_image(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"{i}.jpg", _header_jpeg(30 + i, 20)) for i in range(10)]
    feeder = ImageFeeder(paths, VIEWS["1"], threads=2, read_ahead=4)
    seen = []
    with pytest.raises(IndexError, match="position 10"):
        for item in feeder.iter_prepared([0, 1, 2, 10, 3]):
            seen.append(item.position)
    assert seen == [0, 1, 2]
    assert _feeder_threads() == []
    with pytest.raises(IndexError, match="position -1"):
        feeder.prepare(-1)


def test_a_file_that_shrinks_while_read(tmp_path: Path, monkeypatch) -> None:
    # fstat reports 10 bytes more than the file holds (it shrank in between): the bytes read
    # are the file's, without a tail of uninitialised memory.
    path = _write(tmp_path / "a.jpg", _real_jpeg(12, 8))
    real_fstat = os.fstat

    class Grown:
        def __init__(self, result: os.stat_result) -> None:
            self.st_size = result.st_size + 10

    monkeypatch.setattr(os, "fstat", lambda fd: Grown(real_fstat(fd)))
    assert read_bytes(path).tobytes() == path.read_bytes()


def test_default_threads(monkeypatch) -> None:
    for cpus, expected in ((1, 2), (2, 2), (3, 3), (4, 4), (64, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)))
        assert default_threads() == expected
    assert ImageFeeder([], VIEWS["1"]).threads == default_threads()


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="read_ahead"):
        ImageFeeder([], VIEWS["1"], read_ahead=0)
    with pytest.raises(ValueError, match="threads"):
        ImageFeeder([], VIEWS["1"], threads=-1)
    with pytest.raises(ValueError, match="view"):
        ImageFeeder([], [])

