"""`inceval views`: both output formats against the reference, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inceval.cli import main
from inceval.cli.views import sheet_geometry
from inceval.data.protocols import get_protocol
from inceval.data.reference import iter_reference_batches, normalize
from inceval.models import get_eval_config
from tests.photos import write_photo_set

@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    photos = write_photo_set(tmp_path_factory.mktemp("photos"))
    return next(p for p in photos if p.name.startswith("odd_401"))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def _reference(photo: Path, protocol: str, model: str, input_size: int | None = None):
    config = get_eval_config(model)
    if input_size is not None:
        config = config.with_input_size(input_size)
    views = get_protocol(protocol).resolve(config)
    (batch,) = list(iter_reference_batches([photo], views, batch_size=1))
    return config, views, batch.views[0]


@pytest.mark.parametrize("backend", [pytest.param("dali", marks=pytest.mark.dali), "torch"])
def test_npy_is_normalised_views_as_fed_to_the_model(photo: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     backend: str) -> None:
    out = tmp_path / "views.npy"
    code, stdout, err = _run(["views", str(photo), "--crops", "10", "--model", "v4",
                              "--out", str(out), "--backend", backend], capsys)
    assert (code, err) == (0, "")
    assert stdout == f"wrote 10 views of 299x299 from {photo} to {out} (backend {backend})\n"
    array = np.load(out)
    assert array.shape == (10, 3, 299, 299)
    assert array.dtype == np.float32
    config, _, pixels = _reference(photo, "10", "v4")
    expected = normalize(pixels, config).numpy()
    # The Inception mean/std (0.5/0.5): one grey level is 1/127.5.
    assert np.abs(array - expected).max() <= 4 / 127.5
    assert np.abs(array - expected).mean() <= 0.004 / 127.5  # the README: mean below 0.004 levels
    assert array.min() >= -1.0 and array.max() <= 1.0


@pytest.mark.parametrize(("backend", "size", "mean_limit", "max_limit"), [
    # DALI vs the reference at 299: the README's claim (mean below 0.004, at most 4 levels).
    pytest.param("dali", 299, 0.004, 4, marks=pytest.mark.dali),
    # The torch backend is the reference itself: the tiles must be its views exactly.
    ("torch", 139, 0.0, 0),
])
def test_png_is_a_labelled_grid_of_the_views(photo: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], backend: str,
                                             size: int, mean_limit: float, max_limit: int) -> None:
    out = tmp_path / "sheet.png"
    code, _, err = _run(["views", str(photo), "--crops", "12", "--model", "v3",
                         "--out", str(out), "--input-size", str(size), "--backend", backend],
                        capsys)
    assert (code, err) == (0, "")
    _, views, pixels = _reference(photo, "12", "v3", input_size=size)
    width, height, corners = sheet_geometry(12, size)
    with Image.open(out) as sheet:
        assert sheet.format == "PNG"
        assert sheet.size == (width, height)
        grid = np.asarray(sheet.convert("RGB"))
    tiles = torch.stack([torch.from_numpy(grid[y:y + size, x:x + size].transpose(2, 0, 1).copy())
                         for x, y in corners])
    diff = (tiles.to(torch.int16) - pixels.to(torch.int16)).abs().float()
    # Per image, over all its views, as the README states the claim.
    assert diff.mean() <= mean_limit and diff.max() <= max_limit
    # A label band is drawn under the first tile: dark text pixels on the white background.
    x, y = corners[0]
    band = grid[y + size:y + size + 24, x:x + size]
    assert (band < 128).any()
    assert len(views) == 12


def test_sheet_geometry_is_a_near_square_grid() -> None:
    width, height, corners = sheet_geometry(10, 299)
    assert len(corners) == 10
    assert len({x for x, _ in corners}) == 4  # ceil(sqrt(10)) columns
    assert len({y for _, y in corners}) == 3
    assert width > 4 * 299 and height > 3 * 299


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "{tmp}/views.jpg"], "error: --out {tmp}/views.jpg: unknown extension '.jpg'; "
                                       "use .png (contact sheet) or .npy (array)\n"),
        (["--crops", "14"], "error: unknown protocol '14'; did you mean"),
        (["--model", "v9"], "error: unknown model 'v9'"),
        (["--image", "{tmp}/missing.JPEG"],
         "error: {tmp}/missing.JPEG: image file not found; check the data directory\n"),
        (["--image", "{tmp}/garbage.JPEG"],
         "error: {tmp}/garbage.JPEG: not a readable image; replace or remove it\n"),
    ],
)
@pytest.mark.dali
def test_errors_are_one_line(photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             args: list[str], message: str) -> None:
    (tmp_path / "garbage.JPEG").write_bytes(b"garbage" * 20)
    options = {"--crops": "10", "--model": "v4", "--out": str(tmp_path / "v.png"),
               "--image": str(photo)}
    for key, value in zip(args[::2], args[1::2]):
        options[key] = value.format(tmp=tmp_path)
    argv = ["views", options.pop("--image")]
    for key, value in options.items():
        argv += [key, value]
    code, stdout, err = _run(argv + ["--backend", "dali"], capsys)
    assert code == 2
    assert stdout == ""
    assert err.startswith(message.format(tmp=tmp_path))
    assert err.count("\n") == 1
    assert not (tmp_path / "v.png").exists()
