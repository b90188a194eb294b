"""Protocol rules at their edges, and the exact one-line refusals of protocol files.

The messages are the user interface of a protocol file ("one line naming the file and the
offending key"), so each branch is checked word for word; the expected strings are written out
here, not built by the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inceval.data.protocols import Protocol, ScaleRule, get_protocol, load_protocol_file
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

CFG = EvalConfig()  # input 299, crop_pct 0.875
AVAILABLE = "available: 1, 1-slim, 10, 10-full, 12, 12-image, 12-3sq, 12-resized, 144, " \
            "or a .json/.yaml protocol file"


# ---------------------------------------------------------------- scale rules

@pytest.mark.parametrize("value, message", [
    (True, "True is not a scale"),
    (None, "None is not a scale"),
    ([1], "[1] is not a scale"),
    ("abc", "'abc' is not a scale"),
    ("0px", "'0px' is not a positive pixel count"),
    ("-3px", "'-3px' is not a positive pixel count"),
    ("0/224", "'0/224' is not a positive ratio"),
    (-1.5, "-1.5 is not a positive ratio"),
])
def test_scale_rule_refusals(value: Any, message: str) -> None:
    """Each kind of bad scale has its own reason."""
    with pytest.raises(ValueError) as info:
        ScaleRule.parse(value)
    assert str(info.value) == message


@pytest.mark.parametrize("value, text, side", [
    ("1px", "1px", 1),         # the smallest pixel count
    ("342px", "342px", 342),
    ("256/224", "8/7", 342),   # 8/7 * 299 = 341.71 -> 342
    (1.5, "3/2", 448),         # 448.5 -> 448 (half to even)
    ("crop_pct", "crop_pct", 341),  # floor(299 / 0.875) = floor(341.71) = 341
])
def test_scale_rule_text_and_side(value: Any, text: str, side: int) -> None:
    """str() gives the file form back; side() the shorter side at input 299."""
    rule = ScaleRule.parse(value)
    assert (str(rule), rule.side(CFG)) == (text, side)


# ---------------------------------------------------------------- resolve at the edges

def test_scale_of_zero_pixels_is_refused_naming_the_protocol_or_file() -> None:
    """1/1000 of 299 is 0.299 -> 0 px; built-in protocols are named, file protocols by path."""
    tiny = (ScaleRule.parse("1/1000"),)
    builtin = Protocol("p", 1, "", scales=tiny, crops=("whole",))
    with pytest.raises(InceValError) as info:
        builtin.resolve(CFG)
    assert str(info.value) == ("protocol 'p': scale 1/1000 gives a shorter side of 0 px at input "
                               "size 299; use a larger scale")
    from_file = Protocol("p", 1, "", scales=tiny, crops=("whole",), source="/x/p.yaml")
    with pytest.raises(InceValError) as info:
        from_file.resolve(CFG)
    assert str(info.value).startswith("/x/p.yaml: scale 1/1000 gives a shorter side of 0 px")


def test_one_pixel_scale_is_allowed_for_whole_views() -> None:
    """1/299 of 299 is exactly 1 px: allowed when only 'whole' views are cut."""
    views = Protocol("p", 1, "", scales=(ScaleRule.parse("1/299"),), crops=("whole",)) \
        .resolve(CFG)
    assert [(v.stage.side, v.crop, v.size) for v in views] == [(1, "whole", 299)]


def test_crop_larger_than_the_scale_is_refused_naming_the_protocol_or_file() -> None:
    """298 px < 299-pixel crop; 299 px (equal) is fine."""
    builtin = Protocol("q", 1, "", scales=(ScaleRule.parse("298px"),))
    with pytest.raises(InceValError) as info:
        builtin.resolve(CFG)
    assert str(info.value) == ("protocol 'q': scale 298 px is smaller than the 299-pixel crop; "
                               "use larger scales or only the 'whole' crop")
    from_file = Protocol("q", 1, "", scales=(ScaleRule.parse("298px"),), source="/y/q.json")
    with pytest.raises(InceValError) as info:
        from_file.resolve(CFG)
    assert str(info.value).startswith("/y/q.json: scale 298 px is smaller")
    views = Protocol("q", 1, "", scales=(ScaleRule.parse("299px"),)).resolve(CFG)
    assert [(v.stage.side, v.crop) for v in views] == [(299, "centre")]


# ---------------------------------------------------------------- get_protocol suggestions

@pytest.mark.parametrize("name, message", [
    # four names are close to "12-i"; at most three are offered, best first
    ("12-i", "unknown protocol '12-i'; did you mean '12-image', '12', '12-3sq'? " + AVAILABLE),
    ("10-", "unknown protocol '10-'; did you mean '10', '10-full'? " + AVAILABLE),
    ("zzzz", "unknown protocol 'zzzz'; " + AVAILABLE),  # nothing close: no hint at all
])
def test_unknown_protocol_suggestions(name: str, message: str) -> None:
    """Up to three close names, comma-separated; none when nothing is close."""
    with pytest.raises(InceValError) as info:
        get_protocol(name)
    assert str(info.value) == message


# ---------------------------------------------------------------- protocol files

def write(tmp_path: Path, data: Any, name: str = "mine.json") -> Path:
    """Write ``data`` as JSON (or raw text when it is a str) to tmp_path / name."""
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("data, key, message", [
    ({"scales": ["342px"], "description": 5}, "description", "must be text"),
    ({"scales": "342px"}, "scales", "must be a non-empty list"),
    ({"scales": []}, "scales", "must be a non-empty list"),
    ({"scales": {"342px": 1}}, "scales", "must be a non-empty list"),
    ({"scales": 342}, "scales", "must be a non-empty list"),
    ({"scales": ["342px", "342px"]}, "scales", "lists a scale twice; remove the duplicate"),
    ({"central_fraction": 0}, "central_fraction", "must be a number in (0, 1]"),
    ({"central_fraction": "0.5"}, "central_fraction", "must be a number in (0, 1]"),
    ({"central_fraction": True}, "central_fraction", "must be a number in (0, 1]"),
    ({"central_fraction": 1.01}, "central_fraction", "must be a number in (0, 1]"),
    ({"scales": ["342px"], "regions": {"image": 1}}, "regions", "must be a non-empty list"),
    ({"scales": ["342px"], "regions": []}, "regions", "must be a non-empty list"),
    ({"scales": ["342px"], "crops": "centre"}, "crops", "must be a non-empty list"),
])
def test_protocol_file_refusals_name_file_and_key(tmp_path: Path, data: dict, key: str,
                                                  message: str) -> None:
    """'<file>: key '<key>': <reason>', exactly."""
    path = write(tmp_path, data)
    with pytest.raises(InceValError) as info:
        load_protocol_file(path)
    assert str(info.value) == f"{path}: key '{key}': {message}"


def test_central_fraction_of_one_is_the_whole_image(tmp_path: Path) -> None:
    """1 is inside (0, 1]: the whole image, resized."""
    protocol = load_protocol_file(write(tmp_path, {"central_fraction": 1, "crops": ["whole"]}))
    assert protocol.central_fraction == 1.0
    assert isinstance(protocol.central_fraction, float)


def test_wrong_suffix_and_missing_file(tmp_path: Path) -> None:
    """Refusals about the file itself carry no key."""
    path = write(tmp_path, "{}", "mine.txt")
    with pytest.raises(InceValError) as info:
        load_protocol_file(path)
    assert str(info.value) == f"{path}: protocol files must end in .json, .yaml or .yml"
    missing = tmp_path / "absent.yaml"
    with pytest.raises(InceValError) as info:
        load_protocol_file(missing)
    assert str(info.value) == f"{missing}: no such protocol file; check the path"


def test_unreadable_file_names_the_os_reason(tmp_path: Path) -> None:
    """A directory named like a protocol file cannot be read: the OS reason is quoted."""
    folder = tmp_path / "dir.json"
    folder.mkdir()
    with pytest.raises(InceValError) as info:
        load_protocol_file(folder)
    assert str(info.value) == f"{folder}: cannot read protocol file (Is a directory)"


def test_invalid_json_quotes_the_json_parser(tmp_path: Path) -> None:
    """A .json file is parsed as JSON (not YAML), and the parser's first line is quoted."""
    path = write(tmp_path, '{"name": }')
    with pytest.raises(InceValError) as info:
        load_protocol_file(path)
    assert str(info.value) == \
        f"{path}: not valid JSON (Expecting value: line 1 column 10 (char 9))"


def test_upper_case_suffix_is_still_json(tmp_path: Path) -> None:
    """'.JSON' is read as JSON: tab indentation is valid JSON but a YAML scanner error."""
    path = write(tmp_path, '{\n\t"scales": ["342px"]\n}', "TAB.JSON")
    assert load_protocol_file(path).name == "TAB"


def test_invalid_yaml_quotes_the_first_line_of_the_yaml_error(tmp_path: Path) -> None:
    """Multi-line YAML errors are cut to their first line."""
    path = write(tmp_path, "scales: [342px\n", "bad.yaml")
    with pytest.raises(InceValError) as info:
        load_protocol_file(path)
    assert str(info.value) == f"{path}: not valid YAML (while parsing a flow sequence)"


def test_yaml_error_without_text_shows_its_type(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser error with an empty message is named by its type instead."""
    import yaml

    def fail(text: str) -> None:
        raise yaml.YAMLError()

    monkeypatch.setattr(yaml, "safe_load", fail)
    path = write(tmp_path, "scales: [342px]\n", "empty.yaml")
    with pytest.raises(InceValError) as info:
        load_protocol_file(path)
    assert str(info.value) == f"{path}: not valid YAML (YAMLError)"
