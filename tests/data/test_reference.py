"""The PIL/torch reference pipeline against independent implementations on real photos.

Second implementation: the timm/torchvision eval transform written with PIL only
(``Image.resize(BICUBIC)`` + ``Image.crop`` + ``Image.transpose``). Measured on the 7 test photos
(torch 2.13, Pillow 13):

    protocol "1" (resize 341 + centre crop)       mean |diff| 0.11-0.19   max 1-6
    "12" whole centre square, mirrored (2 resizes) mean |diff| 0.18-0.30   max 2-4
    the same "1" crop shifted by one pixel         mean |diff| 3.4-9.0

The reference keeps a float intermediate between its separable passes, PIL rounds to uint8 after
the horizontal pass (clipping bicubic overshoot); a torch emulation of that two-pass rounding
agrees with PIL to max 1, mean < 0.001 (asserted below), so the remaining difference is that
rounding, not geometry. Bounds: the measured worst case plus a margin, far below a 1-pixel shift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from inceval.data.protocols import get_protocol
from inceval.data.reference import (
    decode_rgb,
    iter_reference_batches,
    normalize,
    num_batches,
    render_views,
    tf1_bilinear,
)
from inceval.data.views import plan_views
from inceval.errors import InceValError
from inceval.eval_config import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, EvalConfig
from tests.photos import write_photo_set

CFG = EvalConfig()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_photo_set(tmp_path_factory.mktemp("photos"))


def _render(path: Path, name: str, cfg: EvalConfig = CFG) -> np.ndarray:
    image = decode_rgb(path)
    plan = plan_views(image.shape[1], image.shape[0], get_protocol(name).resolve(cfg))
    return render_views(image, plan).numpy().astype(np.int64)


def _pil_shorter(image: Image.Image, side: int) -> Image.Image:
    # torchvision.transforms.Resize(int): float division, truncated by int().
    w, h = image.size
    size = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
    return image.resize(size, Image.Resampling.BICUBIC)


def _pil_centre_crop(image: Image.Image, size: int, shift: int = 0) -> Image.Image:
    # torchvision.transforms.functional.center_crop: int(round((dim - size) / 2.0)).
    w, h = image.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0)) + shift
    return image.crop((left, top, left + size, top + size))


def _chw(image: Image.Image) -> np.ndarray:
    return np.asarray(image).transpose(2, 0, 1).astype(np.int64)


def test_single_crop_matches_pil_eval_transform(photos: list[Path]) -> None:
    for path in photos:
        ours = _render(path, "1")[0]
        resized = _pil_shorter(Image.open(path).convert("RGB"), 341)
        diff = np.abs(ours - _chw(_pil_centre_crop(resized, 299)))
        assert diff.mean() < 0.25 and diff.max() <= 8, (path.name, diff.mean(), diff.max())
        # The bound is meaningful: the crop one pixel to the right is far outside it.
        shifted = np.abs(ours - _chw(_pil_centre_crop(resized, 299, shift=1)))
        assert shifted.mean() > 3.0, (path.name, shifted.mean())


def test_twelve_crop_views_match_pil(photos: list[Path]) -> None:
    # All 12 views: corners and centre of the centre square, and the square resized to 299.
    for path in photos:
        ours = _render(path, "12")
        resized = _pil_shorter(Image.open(path).convert("RGB"), 342)
        w, h = resized.size
        if w >= h:
            o = round((w - 342) / 2)
            square = resized.crop((o, 0, o + 342, 342))
        else:
            o = round((h - 342) / 2)
            square = resized.crop((0, o, 342, o + 342))
        d = 342 - 299
        crops = [square.crop((x, y, x + 299, y + 299))
                 for y, x in [(0, 0), (0, d), (d, 0), (d, d), (22, 22)]]
        crops.append(square.resize((299, 299), Image.Resampling.BICUBIC))
        expected = []
        for crop in crops:
            expected += [crop, crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
        for k, view in enumerate(expected):
            diff = np.abs(ours[k] - _chw(view))
            bound = (0.35, 6) if k >= 10 else (0.25, 8)  # two resizes for the whole square
            assert diff.mean() < bound[0] and diff.max() <= bound[1], (path.name, k, diff.mean())


def test_pil_difference_is_its_intermediate_rounding(photos: list[Path]) -> None:
    """Emulate PIL's uint8 rounding between the horizontal and vertical pass with torch."""
    for path in photos:
        image = Image.open(path).convert("RGB")
        resized = _pil_shorter(image, 341)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
        wide = F.interpolate(x, size=(image.height, resized.width), mode="bicubic",
                             antialias=True).round().clamp(0, 255)
        both = F.interpolate(wide, size=(resized.height, resized.width), mode="bicubic",
                             antialias=True).round().clamp(0, 255)
        diff = np.abs(both[0].numpy().astype(np.int64) - _chw(resized))
        assert diff.mean() < 0.001 and diff.max() <= 1, (path.name, diff.mean(), diff.max())


def test_tf1_bilinear_hand_computed() -> None:
    # Input 2x3: rows [0, 100, 200] and [40, 140, 240]; output 3x4.
    # Columns: scale 3/4, sample at 0, .75, 1.5, 2.25 -> [0, 75, 150, 200] (last clamps to col 2).
    # Rows: scale 2/3, sample at 0, .667, 1.333 -> row0, row0 + 2/3 * 40, row1 (clamped).
    x = torch.tensor([[[0.0, 100.0, 200.0], [40.0, 140.0, 240.0]]])
    out = tf1_bilinear(x, 3, 4)
    expected = torch.tensor([[
        [0.0, 75.0, 150.0, 200.0],
        [80 / 3, 75 + 80 / 3, 150 + 80 / 3, 200 + 80 / 3],
        [40.0, 115.0, 190.0, 240.0],
    ]])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)
    # torch's half-pixel bilinear gives other numbers (so this test tells the two apart).
    half_pixel = F.interpolate(x[None], size=(3, 4), mode="bilinear", align_corners=False)[0]
    assert (half_pixel - expected).abs().max() > 10
    # Downscale: 4 -> 2 samples at 0 and 2 (no averaging).
    row = torch.tensor([[[10.0, 20.0, 30.0, 40.0]]])
    torch.testing.assert_close(tf1_bilinear(row, 1, 2), torch.tensor([[[10.0, 30.0]]]))


def _tf1_bilinear_loops(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """A second TF1 bilinear, pixel by pixel in float64 (HWC)."""
    in_h, in_w = image.shape[:2]
    out = np.zeros((out_h, out_w, image.shape[2]))
    for i in range(out_h):
        sy = i * in_h / out_h
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, in_h - 1), sy - y0
        for j in range(out_w):
            sx = j * in_w / out_w
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, in_w - 1), sx - x0
            top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
            bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def test_slim_view_matches_loop_implementation(photos: list[Path]) -> None:
    # 64-pixel model keeps the Python loops fast; TF1 central_crop box 375 // 16, 500 // 16.
    cfg = CFG.with_input_size(64)
    path = next(p for p in photos if p.name.startswith("landscape"))
    ours = _render(path, "1-slim", cfg)[0]
    image = decode_rgb(path).astype(np.float64)
    box = image[23:375 - 23, 31:500 - 31]
    expected = np.clip(np.round(_tf1_bilinear_loops(box, 64, 64)), 0, 255).transpose(2, 0, 1)
    diff = np.abs(ours - expected)
    # float32 vs float64 positions may flip a rounding at x.5: at most 1 level, rarely.
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_decode_rgb_grayscale_cmyk_and_no_exif_rotation(tmp_path: Path, photos: list[Path]) -> None:
    gray = decode_rgb(next(p for p in photos if p.name.startswith("gray")))
    assert gray.shape == (512, 512, 3) and gray.dtype == np.uint8
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()

    cyan = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (40, 30), (255, 0, 0, 0)).save(cyan, quality=95)
    rgb = decode_rgb(cyan)
    assert rgb.shape == (30, 40, 3)
    assert np.abs(rgb.astype(int) - [0, 255, 255]).max() <= 3

    rotated = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    Image.new("RGB", (40, 30), (10, 20, 30)).save(rotated, exif=exif)
    assert decode_rgb(rotated).shape == (30, 40, 3)


def test_decode_rgb_scales_16_bit_grayscale_png_to_8_bits(tmp_path: Path) -> None:
    # PIL's convert("RGB") clips 16-bit values above 255 to white; the decoded image must be the
    # picture itself, scaled as DALI's decoder does: round(v / 257).
    values = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I;16")
    rgb = decode_rgb(path)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    expected = np.round(values / 257.0).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)


def test_decode_rgb_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(InceValError) as info:
        decode_rgb(broken)
    message = str(info.value)
    assert message.startswith(f"{broken}: cannot decode image (") and "\n" not in message
    with pytest.raises(InceValError, match="image file not found"):
        decode_rgb(tmp_path / "missing.JPEG")


def test_image_over_pils_size_limit_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    # PIL raises DecompressionBombError (no OSError) above twice MAX_IMAGE_PIXELS; lowered here so
    # that a small file stands for a huge one.
    large = tmp_path / "large.JPEG"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(large)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InceValError) as info:
        decode_rgb(large)
    message = str(info.value)
    assert message.startswith(f"{large}: cannot decode image (Image size (1200 pixels) exceeds")
    assert "\n" not in message


def test_mirror_is_mirror_of_each_crop(photos: list[Path]) -> None:
    for name in ("10-full", "144"):
        views = _render(photos[1], name, CFG.with_input_size(64))
        assert (views[1::2] == views[0::2][..., ::-1]).all()


def test_normalize() -> None:
    views = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 1, 2)
    inception = normalize(views, CFG)
    assert inception.dtype == torch.float32 and inception.shape == (2, 3, 1, 2)
    torch.testing.assert_close(inception[0, :, 0, 0], torch.tensor([-1.0, -0.6, 1.0]))
    imagenet = normalize(views, EvalConfig(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD))
    expected = torch.tensor([(0 - 0.485) / 0.229, (0.2 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    torch.testing.assert_close(imagenet[1, :, 0, 1], expected)


# ------------------------------------------------------------------ exact epoch and sharding

SMALL = CFG.with_input_size(32)  # "1" -> shorter side 36, crop 32: fast


@pytest.mark.parametrize(
    "num_shards, expected",
    # 7 images: shard i gets [floor(7i/S), floor(7(i+1)/S)).
    [(1, [[0, 1, 2, 3, 4, 5, 6]]), (3, [[0, 1], [2, 3], [4, 5, 6]]),
     (4, [[0], [1, 2], [3, 4], [5, 6]]), (8, [[], [0], [1], [2], [3], [4], [5], [6]])],
)
def test_shards_split_one_exact_epoch(photos: list[Path], num_shards: int,
                                      expected: list[list[int]]) -> None:
    views = get_protocol("1").resolve(SMALL)
    got = []
    for shard in range(num_shards):
        batches = list(iter_reference_batches(photos, views, batch_size=2, shard_id=shard,
                                              num_shards=num_shards))
        assert len(batches) == num_batches(len(photos), 2, shard, num_shards)
        assert all(len(b.indices) <= 2 for b in batches)
        got.append([int(i) for b in batches for i in b.indices])
    assert got == expected


def test_batches_hold_the_rendered_views(photos: list[Path]) -> None:
    views = get_protocol("10").resolve(SMALL)
    batches = list(iter_reference_batches(photos, views, batch_size=3))
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    first = batches[0]
    assert first.indices.dtype == np.int64
    assert first.views.shape == (3, 10, 3, 32, 32) and first.views.dtype == torch.uint8
    image = decode_rgb(photos[1])
    expected = render_views(image, plan_views(image.shape[1], image.shape[0], views))
    assert torch.equal(first.views[1], expected)


def test_worker_processes_give_the_same_batches(photos: list[Path]) -> None:
    views = get_protocol("1").resolve(SMALL)
    inline = list(iter_reference_batches(photos, views, batch_size=2, shard_id=1, num_shards=2))
    workers = list(iter_reference_batches(photos, views, batch_size=2, shard_id=1, num_shards=2,
                                          num_workers=2))
    assert [b.indices.tolist() for b in workers] == [[3, 4], [5, 6]]
    assert [b.indices.tolist() for b in inline] == [[3, 4], [5, 6]]
    assert all(torch.equal(a.views, b.views) for a, b in zip(inline, workers))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_bad_image_stops_with_one_line(tmp_path: Path, photos: list[Path],
                                       num_workers: int) -> None:
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(b"\xff\xd8 truncated")
    views = get_protocol("1").resolve(SMALL)
    with pytest.raises(InceValError) as info:
        list(iter_reference_batches([photos[0], broken], views, batch_size=1,
                                    num_workers=num_workers))
    assert str(info.value).startswith(f"{broken}: cannot decode image")
    assert "\n" not in str(info.value)


def test_bad_loader_settings() -> None:
    views = get_protocol("1").resolve(SMALL)
    cases = [
        (dict(batch_size=0), "--batch-size must be at least 1, got 0"),
        (dict(batch_size=1, num_shards=0), "--num-shards must be at least 1, got 0"),
        (dict(batch_size=1, shard_id=2, num_shards=2),
         "--shard-id must be in 0..1 for 2 shards, got 2"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InceValError) as info:
            list(iter_reference_batches(["a.JPEG"], views, **kwargs))
        assert str(info.value) == message
