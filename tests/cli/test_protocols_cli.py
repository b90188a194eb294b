"""``inceval protocols``: listing, per-view boxes, JSON output and one-line errors.

(The CLI test of the ``protocols`` command; it lives beside the geometry tests it reuses.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inceval.cli import main
from tests.data.test_views import PORTRAIT_375x500


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["protocols", *args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = _run(capsys, *args, "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


def test_list_at_299(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys)
    assert data["input_size"] == 299
    got = [(p["name"], p["version"], p["views"], p["scales"]) for p in data["protocols"]]
    assert got == [
        ("1", 1, 1, "s341"),
        ("1-slim", 1, 1, "c87.5%->299"),
        ("10", 1, 10, "s342"),
        ("10-full", 1, 10, "s342"),
        ("12", 1, 12, "s342"),
        ("12-image", 1, 12, "s342"),
        ("12-3sq", 1, 12, "s342"),
        ("12-resized", 1, 12, "s342, s384, s427, s470"),
        ("144", 1, 144, "s342, s384, s427, s470"),
    ]
    assert all(p["description"] for p in data["protocols"])


def test_list_follows_input_size_and_model(capsys: pytest.CaptureFixture[str]) -> None:
    scales = {p["name"]: p["scales"] for p in _json(capsys, "--input-size", "224")["protocols"]}
    assert scales["144"] == "s256, s288, s320, s352" and scales["1"] == "s256"
    # IRv2 weights: crop_pct 0.8975 -> floor(299 / 0.8975) = 333.
    scales = {p["name"]: p["scales"] for p in _json(capsys, "--model", "irv2")["protocols"]}
    assert scales["1"] == "s333" and scales["144"] == "s342, s384, s427, s470"


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys)
    assert code == 0 and err == ""
    assert "Crop protocols at input size 299" in out and "12-resized" in out


def test_views_with_image_size(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "144", "--image-size", "375x500")
    assert (data["name"], data["input_size"], data["image_size"]) == ("144", 299, [375, 500])
    views = data["views"]
    assert len(views) == 144
    expected = [
        (list(stage), list(box))
        for stage, squares in PORTRAIT_375x500 for boxes in squares for box in boxes
        for _ in range(2)
    ]
    assert [(v["stage_size"], v["box"]) for v in views] == expected
    assert [v["mirror"] for v in views[:4]] == [False, True, False, True]
    assert views[0]["label"] == "s342 start-square top-left"
    first = views[0]
    assert (first["scale"], first["square"], first["crop"]) == ("s342", "start", "top-left")


def test_views_without_image_size_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "1-slim", "--input-size", "139")
    assert [v["label"] for v in data["views"]] == ["c87.5%->139 tf1-bilinear image whole"]
    assert "box" not in data["views"][0]
    code, out, _ = _run(capsys, "1-slim", "--image-size", "500x375")
    assert code == 0 and "23, 31, 352, 469" in out and "0, 0, 299, 299" in out


def test_custom_protocol_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("scales: ['256/224']\nregions: [start, end]\ncrops: [centre]\n")
    data = _json(capsys, str(path), "--image-size", "500x375")
    assert (data["name"], data["source"]) == ("two", str(path))
    assert [v["box"] for v in data["views"]] == [[22, 22, 299, 299], [22, 136, 299, 299]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["145"], "error: unknown protocol '145'; did you mean '144'? available: 1, 1-slim, 10, "
                  "10-full, 12, 12-image, 12-3sq, 12-resized, 144, or a .json/.yaml protocol file"),
        (["144", "--model", "v4", "--input-size", "224"],
         "error: give --model or --input-size, not both"),
        (["144", "--image-size", "500"],
         "error: --image-size must be WIDTHxHEIGHT like 500x375, got '500'"),
        (["144", "--image-size", "0x10"],
         "error: --image-size must be WIDTHxHEIGHT like 500x375, got '0x10'"),
        (["--image-size", "500x375"],
         "error: --image-size needs a protocol NAME, e.g. inceval protocols 144 --image-size "
         "500x375"),
        (["144", "--input-size", "0"], "error: --input-size must be a positive number of pixels, "
                                       "got 0"),
    ],
)
def test_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                                    message: str) -> None:
    code, out, err = _run(capsys, *args)
    assert (code, out, err) == (2, "", message + "\n")
