"""The built-in protocol table, written out by hand from the README and the papers.

``_builtin()`` is called directly: the module builds ``PROTOCOLS`` from it once, at import, so a
test that only reads ``PROTOCOLS`` cannot see a change to the definitions made after import (which
is how mutmut switches mutants on).
"""

from __future__ import annotations

from typing import Any

from inceval.data.protocols import PROTOCOLS, Protocol, _builtin, list_protocols
from inceval.eval_config import EvalConfig

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
SQUARES = ("start", "centre", "end")
ONE_SCALE = ("8/7",)                    # 256/224 in lowest terms
FOUR_SCALES = ("8/7", "9/7", "10/7", "11/7")  # 256, 288, 320, 352 per 224

# name: (version, scales, central_fraction, regions, crops, mirror, interpolation, views)
TABLE: dict[str, tuple[Any, ...]] = {
    "1": (1, ("crop_pct",), None, ("image",), ("centre",), False, None, 1),
    "1-slim": (1, (), 0.875, ("image",), ("whole",), False, "tf1-bilinear", 1),
    "10": (1, ONE_SCALE, None, ("centre",), (*CORNERS, "centre"), True, None, 10),
    "10-full": (1, ONE_SCALE, None, ("image",), (*CORNERS, "centre"), True, None, 10),
    "12": (1, ONE_SCALE, None, ("centre",), (*CORNERS, "centre", "whole"), True, None, 12),
    "12-image": (1, ONE_SCALE, None, ("image",), (*CORNERS, "centre", "whole"), True, None, 12),
    "12-3sq": (1, ONE_SCALE, None, SQUARES, ("centre", "whole"), True, None, 12),
    "12-resized": (1, FOUR_SCALES, None, SQUARES, ("whole",), False, None, 12),
    # GoogLeNet: 4 scales x 3 squares x (4 corners + centre + whole square) x 2 mirrors = 144
    "144": (1, FOUR_SCALES, None, SQUARES, (*CORNERS, "centre", "whole"), True, None, 144),
}


def row(protocol: Protocol) -> tuple[Any, ...]:
    """The protocol as a TABLE row."""
    return (protocol.version, tuple(str(s) for s in protocol.scales), protocol.central_fraction,
            protocol.regions, protocol.crops, protocol.mirror, protocol.interpolation,
            protocol.num_views)


def test_builtin_definitions_match_the_hand_table() -> None:
    """Every field of every built-in protocol, in the documented order."""
    built = _builtin()
    assert [p.name for p in built] == list(TABLE)
    for protocol in built:
        assert row(protocol) == TABLE[protocol.name], protocol.name
        assert type(protocol.mirror) is bool
        assert protocol.source == "built-in"
        assert protocol.description  # shown by `inceval protocols`


def test_registry_is_the_builtin_table() -> None:
    """PROTOCOLS and list_protocols() hold exactly these definitions, in this order."""
    assert tuple(PROTOCOLS.values()) == _builtin()
    assert [p.name for p in list_protocols()] == list(TABLE)


def test_googlenet_scales_at_input_299() -> None:
    """256/288/320/352 per 224 at 299: 341.71 -> 342, 384.43 -> 384, 427.14 -> 427,
    469.86 -> 470; crop_pct 0.875: floor(341.71) = 341."""
    cfg = EvalConfig()
    table = {p.name: p for p in _builtin()}
    assert [s.side for s in table["144"].stages(cfg)] == [342, 384, 427, 470]
    assert [s.side for s in table["10"].stages(cfg)] == [342]
    assert [s.side for s in table["1"].stages(cfg)] == [341]
    slim = table["1-slim"].stages(cfg)
    assert [(s.kind, s.side, s.fraction, s.interpolation, s.antialias) for s in slim] == \
        [("central-fraction", 299, 0.875, "tf1-bilinear", False)]
