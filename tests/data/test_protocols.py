"""Protocols as data: built-ins at several input sizes, user protocol files and their errors."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from inceval.data.protocols import (
    ScaleRule,
    get_protocol,
    list_protocols,
    load_protocol_file,
    protocol_to_dict,
)
from inceval.data.views import plan_views
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

CFG = EvalConfig()


def _sides(name: str, cfg: EvalConfig) -> list[int]:
    return [stage.side for stage in get_protocol(name).stages(cfg)]


def test_builtin_protocols() -> None:
    names = [p.name for p in list_protocols()]
    assert names == ["1", "1-slim", "10", "10-full", "12", "12-image", "12-3sq", "12-resized",
                     "144"]
    for protocol in list_protocols():
        assert isinstance(protocol.version, int) and protocol.version >= 1
        assert protocol.description and "\n" not in protocol.description
        assert get_protocol(protocol.name) is protocol


@pytest.mark.parametrize(
    "input_size, crop_pct, single, scales",
    [
        # 299 * {256, 288, 320, 352} / 224 = 341.7, 384.4, 427.1, 469.9
        (299, 0.875, 341, [342, 384, 427, 470]),
        # IRv2 weights: floor(299 / 0.8975) = floor(333.15) = 333; multi-crop scales unchanged.
        (299, 0.8975, 333, [342, 384, 427, 470]),
        (224, 0.875, 256, [256, 288, 320, 352]),
        # 139 * {256, 288, 320, 352} / 224 = 158.86, 178.71, 198.57, 218.43; 139 / 0.875 = 158.86
        (139, 0.875, 158, [159, 179, 199, 218]),
    ],
)
def test_scales_follow_the_input_size(input_size: int, crop_pct: float, single: int,
                                      scales: list[int]) -> None:
    cfg = EvalConfig(input_size=input_size, crop_pct=crop_pct)
    assert _sides("1", cfg) == [single]
    assert _sides("144", cfg) == scales
    assert _sides("12-resized", cfg) == scales
    for name in ("10", "10-full", "12", "12-image", "12-3sq"):
        assert _sides(name, cfg) == scales[:1]
    assert _sides("1-slim", cfg) == [input_size]
    assert {v.size for v in get_protocol("144").resolve(cfg)} == {input_size}


def test_144_boxes_at_224() -> None:
    # 500x375 at S=256: long floor(128000/375) = 341, margin 85, squares 0, round(42.5) = 42, 85;
    # d = 256 - 224 = 32, centre 16. Centre square's centre crop at (16, 58), its right corner x 74.
    cfg = CFG.with_input_size(224)
    views = get_protocol("144").resolve(cfg)
    plan = plan_views(500, 375, views)
    assert (plan.stages[0].out_h, plan.stages[0].out_w) == (256, 341)
    got = {v.label: (b.y, b.x, b.h, b.w) for v, b in zip(views, plan.views)}
    assert got["s256 centre-square centre"] == (16, 58, 224, 224)
    assert got["s256 centre-square top-right"] == (0, 74, 224, 224)
    assert got["s256 end-square bottom-right"] == (32, 117, 224, 224)
    assert got["s256 end-square whole"] == (0, 85, 256, 256)
    # S=352: long floor(176000/375) = 469, margin 117, squares 0, round(58.5) = 58, 117; d = 128.
    assert got["s352 centre-square centre"] == (64, 122, 224, 224)


def test_bilinear_weights_change_the_stage_interpolation() -> None:
    cfg = EvalConfig(interpolation="bilinear")
    stages = get_protocol("144").stages(cfg)
    assert {(s.interpolation, s.antialias) for s in stages} == {("bilinear", True)}
    # TF-slim keeps its own resize whatever the weights say.
    assert get_protocol("1-slim").stages(cfg)[0].interpolation == "tf1-bilinear"
    assert get_protocol("1-slim").stages(cfg)[0].antialias is False


@pytest.mark.parametrize(
    "text, rule, side_at_299",
    [
        ("crop_pct", ScaleRule("crop_pct"), 341),
        ("256/224", ScaleRule("ratio", ratio=Fraction(8, 7)), 342),
        (1.5, ScaleRule("ratio", ratio=Fraction(3, 2)), 448),  # 448.5 -> 448 (half to even)
        ("1.5", ScaleRule("ratio", ratio=Fraction(3, 2)), 448),
        (2, ScaleRule("ratio", ratio=Fraction(2)), 598),
        ("400px", ScaleRule("pixels", pixels=400), 400),
    ],
)
def test_scale_rule_parse(text: object, rule: ScaleRule, side_at_299: int) -> None:
    assert ScaleRule.parse(text) == rule
    assert rule.side(CFG) == side_at_299


@pytest.mark.parametrize("bad", ["abc", "0px", "-1", "1/0", True, None, [1], "0"])
def test_scale_rule_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        ScaleRule.parse(bad)


CUSTOM = {
    "name": "my-6",
    "version": 3,
    "description": "three scales, centre square, centre crop and whole square, mirrored",
    "scales": ["256/224", "400px", "crop_pct"],
    "regions": ["centre"],
    "crops": ["centre", "whole"],
    "mirror": True,
}


def _write(path: Path, data: object) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_custom_protocol_file(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"p{suffix}", CUSTOM)
    protocol = get_protocol(str(path))
    assert (protocol.name, protocol.version, protocol.source) == ("my-6", 3, str(path))
    views = protocol.resolve(CFG)
    assert len(views) == 12 == protocol.num_views
    assert [v.stage.side for v in views[::4]] == [342, 400, 341]
    assert [v.label for v in views[:4]] == [
        "s342 centre-square centre", "s342 centre-square centre mirror",
        "s342 centre-square whole", "s342 centre-square whole mirror",
    ]
    # The s342 views are the same pixels as the built-in 12's centre and whole views.
    assert set(views[:4]) <= set(get_protocol("12").resolve(CFG))


def test_custom_protocol_defaults_and_yaml_text(tmp_path: Path) -> None:
    path = tmp_path / "tiny-slim.yaml"
    path.write_text("central_fraction: 0.5\ncrops: [whole]\ninterpolation: tf1-bilinear\n")
    protocol = load_protocol_file(path)
    assert (protocol.name, protocol.version, protocol.description) == ("tiny-slim", 1, "")
    plan = plan_views(500, 375, protocol.resolve(CFG))
    # k = int(1 / 0.25) = 4: 375 // 4 = 93 rows, 500 // 4 = 125 columns.
    assert plan.stages[0].roi == (93.0, 125.0, 282.0, 375.0)


@pytest.mark.parametrize("builtin", [p.name for p in list_protocols()])
def test_builtin_round_trips_through_a_file(tmp_path: Path, builtin: str) -> None:
    original = get_protocol(builtin)
    data = protocol_to_dict(original)
    data["name"] = "copy-of-" + builtin
    for suffix in (".json", ".yaml"):
        loaded = load_protocol_file(_write(tmp_path / f"p{suffix}", data))
        for cfg in (CFG, CFG.with_input_size(224)):
            assert loaded.resolve(cfg) == original.resolve(cfg)
        assert protocol_to_dict(loaded) == data


def _error(tmp_path: Path, data: object, suffix: str = ".json") -> str:
    path = tmp_path / f"bad{suffix}"
    if isinstance(data, str):
        path.write_text(data)
    else:
        _write(path, data)
    with pytest.raises(InceValError) as info:
        get_protocol(str(path)).resolve(CFG)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message[len(str(path)):]


def test_custom_protocol_errors(tmp_path: Path) -> None:
    assert _error(tmp_path, {**CUSTOM, "crop": ["centre"]}) == (
        ": key 'crop': unknown key; use name, version, description, scales, central_fraction, "
        "regions, crops, mirror, interpolation")
    assert _error(tmp_path, {**CUSTOM, "crops": ["middle"]}) == (
        ": key 'crops': unknown value 'middle'; use one of top-left, top-right, bottom-left, "
        "bottom-right, centre, whole")
    assert _error(tmp_path, {**CUSTOM, "regions": "centre"}) == (
        ": key 'regions': must be a non-empty list")
    assert _error(tmp_path, {**CUSTOM, "crops": ["centre", "centre"]}) == (
        ": key 'crops': lists a value twice; remove the duplicate")
    assert _error(tmp_path, {**CUSTOM, "scales": ["big"]}) == (
        ": key 'scales': 'big' is not a scale; use 'crop_pct', a ratio like '256/224' or pixels "
        "like '342px'")
    assert _error(tmp_path, {**CUSTOM, "central_fraction": 0.875}) == (
        ": give exactly one of the keys 'scales' and 'central_fraction'")
    assert _error(tmp_path, {"crops": ["centre"]}) == (
        ": give exactly one of the keys 'scales' and 'central_fraction'")
    assert _error(tmp_path, {"central_fraction": 1.5}) == (
        ": key 'central_fraction': must be a number in (0, 1]")
    assert _error(tmp_path, {"central_fraction": 0.2}) == (
        ": key 'central_fraction': must be above 1/3: TF1's central_crop keeps no pixels of "
        "even-sized images below it")
    assert _error(tmp_path, {**CUSTOM, "name": "144"}) == (
        ": key 'name': '144' is a built-in protocol; choose another name")
    assert _error(tmp_path, {**CUSTOM, "name": "a b"}) == (
        ": key 'name': must be letters, digits, '.', '_' or '-'")
    assert _error(tmp_path, {**CUSTOM, "version": "2"}) == (
        ": key 'version': must be an integer >= 1")
    assert _error(tmp_path, {**CUSTOM, "mirror": "yes"}) == ": key 'mirror': must be true or false"
    assert _error(tmp_path, {**CUSTOM, "interpolation": "nearest"}) == (
        ": key 'interpolation': unknown value 'nearest'; use model, bicubic, bilinear, "
        "tf1-bilinear")
    assert _error(tmp_path, [1, 2]) == (
        ": must contain a mapping of protocol keys (see inceval protocols -h)")
    assert _error(tmp_path, '{"scales": [') .startswith(": not valid JSON (")
    assert _error(tmp_path, "scales: [a\n  b: c", ".yaml").startswith(": not valid YAML (")


def test_scale_smaller_than_crop_is_refused_on_resolve(tmp_path: Path) -> None:
    message = _error(tmp_path, {"name": "small", "scales": ["200px"]})
    assert message == (
        ": scale 200 px is smaller than the 299-pixel crop; use larger scales or only the "
        "'whole' crop")
    # Only whole-region resizes: a small scale is fine (the region is upscaled to 299).
    path = _write(tmp_path / "ok.json", {"scales": ["200px"], "crops": ["whole"]})
    assert len(get_protocol(str(path)).resolve(CFG)) == 1


def test_scale_of_zero_pixels_is_refused_on_resolve(tmp_path: Path) -> None:
    # 1/1000 of 299 pixels rounds to a shorter side of 0, which nothing can be resized to.
    message = _error(tmp_path, {"name": "tiny", "scales": ["1/1000"], "crops": ["whole"]})
    assert message == ": scale 1/1000 gives a shorter side of 0 px at input size 299; use a " \
                      "larger scale"


def test_smallest_central_fraction_keeps_pixels_of_every_image(tmp_path: Path) -> None:
    path = _write(tmp_path / "slim.json", {"central_fraction": 0.34, "crops": ["whole"]})
    views = get_protocol(str(path)).resolve(CFG)
    for width, height in ((1, 1), (2, 2), (2, 3), (500, 375)):
        (box,) = plan_views(width, height, views).stages
        y0, x0, y1, x1 = box.roi
        assert y1 > y0 and x1 > x0


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InceValError) as info:
        get_protocol(str(missing))
    assert str(info.value) == f"{missing}: no such protocol file; check the path"
    with pytest.raises(InceValError) as info:
        get_protocol("145")
    assert str(info.value) == (
        "unknown protocol '145'; did you mean '144'? available: 1, 1-slim, 10, "
        "10-full, 12, 12-image, 12-3sq, 12-resized, 144, or a .json/.yaml protocol file")


def test_unsupported_model_interpolation() -> None:
    with pytest.raises(InceValError) as info:
        get_protocol("144").resolve(EvalConfig(interpolation="lanczos"))
    assert str(info.value) == (
        "model interpolation 'lanczos' is not supported by protocol '144'; use weights with one of "
        "bicubic, bilinear, tf1-bilinear")
    # TF-slim brings its own interpolation, so it still resolves.
    assert len(get_protocol("1-slim").resolve(EvalConfig(interpolation="lanczos"))) == 1
