"""View geometry with odd margins, every number worked out by hand in the comments.

README: "long side truncated, offsets round half to even, each crop mirrored". The hand tables of
test_views.py all have even margins, so half-to-even is checked here directly: a margin of 1, 3,
5 or 7 pixels puts the centre square at 0.5, 1.5, 2.5 or 3.5 pixels, which rounds to 0, 2, 2, 4
(down, up, down, up); round-half-up would give 1, 2, 3, 4 and truncation 0, 1, 2, 3, so each
direction catches one of the wrong rules. Nothing here calls the geometry code to make an
expected value.
"""

from __future__ import annotations

import numpy as np
import pytest

from inceval.data.views import (
    CENTRAL_FRACTION,
    SHORTER_SIDE,
    StageSpec,
    ViewBox,
    ViewSpec,
    plan_views,
    shorter_side_size,
    tf1_central_box,
    union_views,
)

S342 = StageSpec(SHORTER_SIDE, 342, "bicubic", True)
S344 = StageSpec(SHORTER_SIDE, 344, "bicubic", True)


def box(spec: ViewSpec, width: int, height: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) of one view on a width x height image."""
    view = plan_views(width, height, [spec]).views[0]
    return view.y, view.x, view.h, view.w


# (width, height) -> (out_h, out_w) after "shorter side to 342", long side floor()ed:
#   1005 x 1000: 1005 * 342 / 1000 = 343.71  -> 343 (rounding would give 344), margin 1
#   1011 x 1000: 1011 * 342 / 1000 = 345.762 -> 345 (rounding: 346),           margin 3
#   1000 x 1017: 1017 * 342 / 1000 = 347.814 -> 347 (rounding: 348),           margin 5
#   1000 x 1022: 1022 * 342 / 1000 = 349.524 -> 349 (rounding: 350),           margin 7
#   1001 x 1000: 1001 * 342 / 1000 = 342.342 -> 342: a square output,          margin 0
@pytest.mark.parametrize("width, height, size", [
    (1005, 1000, (342, 343)),
    (1011, 1000, (342, 345)),
    (1000, 1017, (347, 342)),
    (1000, 1022, (349, 342)),
    (1001, 1000, (342, 342)),
    (1000, 1000, (342, 342)),
])
def test_long_side_is_truncated(width: int, height: int, size: tuple[int, int]) -> None:
    """The shorter side becomes 342 and the long side is floor(long * 342 / short)."""
    assert shorter_side_size(width, height, 342) == size
    stage = plan_views(width, height, [ViewSpec(S342, "image", "whole", 299, False)]).stages[0]
    assert (stage.out_h, stage.out_w) == size


# Centre square of side 342 in an output with the given margin: offset round(margin / 2).
#   margin 1: 0.5 -> 0 (half to even, down)     margin 3: 1.5 -> 2 (up)
#   margin 5: 2.5 -> 2 (down)                   margin 7: 3.5 -> 4 (up)
# Landscape outputs offset x, portrait outputs offset y.
@pytest.mark.parametrize("width, height, expected", [
    (1005, 1000, (0, 0, 342, 342)),
    (1011, 1000, (0, 2, 342, 342)),
    (1000, 1017, (2, 0, 342, 342)),
    (1000, 1022, (4, 0, 342, 342)),
])
def test_centre_square_offset_rounds_half_to_even(
        width: int, height: int, expected: tuple[int, int, int, int]) -> None:
    """The centre square of an odd margin sits at the even neighbour of margin / 2."""
    assert box(ViewSpec(S342, "centre", "whole", 299, False), width, height) == expected


@pytest.mark.parametrize("width, height, start, end", [
    # start square at 0; end square at the whole margin (1, 3 on x; 5, 7 on y)
    (1005, 1000, (0, 0, 342, 342), (0, 1, 342, 342)),
    (1011, 1000, (0, 0, 342, 342), (0, 3, 342, 342)),
    (1000, 1017, (0, 0, 342, 342), (5, 0, 342, 342)),
    (1000, 1022, (0, 0, 342, 342), (7, 0, 342, 342)),
])
def test_start_and_end_squares_with_odd_margins(
        width: int, height: int, start: tuple[int, ...], end: tuple[int, ...]) -> None:
    """The start square begins at 0 and the end square at the full margin."""
    assert box(ViewSpec(S342, "start", "whole", 299, False), width, height) == start
    assert box(ViewSpec(S342, "end", "whole", 299, False), width, height) == end


def test_square_output_has_one_square() -> None:
    """A square output (1001 x 1000 -> 342 x 342) has all three squares at (0, 0)."""
    for region in ("start", "centre", "end"):
        assert box(ViewSpec(S342, region, "whole", 299, False), 1001, 1000) == (0, 0, 342, 342)


# Centre crop of 299 in a region of R pixels: offset round((R - 299) / 2).
#   R = 342: 43 / 2 = 21.5 -> 22 (half to even, up)
#   R = 343: 44 / 2 = 22                R = 345: 46 / 2 = 23
#   R = 344: 45 / 2 = 22.5 -> 22 (half to even, down)
#   R = 347: 48 / 2 = 24                R = 349: 50 / 2 = 25
@pytest.mark.parametrize("stage, width, height, expected", [
    (S342, 1005, 1000, (22, 22, 299, 299)),   # out 342 x 343
    (S342, 1011, 1000, (22, 23, 299, 299)),   # out 342 x 345
    (S342, 1000, 1017, (24, 22, 299, 299)),   # out 347 x 342
    (S342, 1000, 1022, (25, 22, 299, 299)),   # out 349 x 342
    # shorter side 344: 1000 x 1000 -> 344 x 344; (344 - 299) / 2 = 22.5 -> 22 on both axes
    (S344, 1000, 1000, (22, 22, 299, 299)),
])
def test_centre_crop_of_the_whole_image_rounds_half_to_even(
        stage: StageSpec, width: int, height: int, expected: tuple[int, ...]) -> None:
    """Centre crops of the resized image: x.5 offsets go to the even neighbour."""
    assert box(ViewSpec(stage, "image", "centre", 299, False), width, height) == expected


@pytest.mark.parametrize("width, height, expected", [
    # 1011 x 1000 -> 342 x 345; centre square x = 2; crop in the square: round(21.5) = 22 both
    # axes, so (22, 2 + 22). The centre crop of the whole image is at x = 23 (above): one pixel
    # apart, as the views module docstring warns.
    (1011, 1000, (22, 24, 299, 299)),
    # 1000 x 1022 -> 349 x 342; centre square y = 4; crop (4 + 22, 22). Whole image: y = 25.
    (1000, 1022, (26, 22, 299, 299)),
    # 1005 x 1000 -> 342 x 343; centre square x = 0; crop (22, 0 + 22). Whole image: x = 22.
    (1005, 1000, (22, 22, 299, 299)),
])
def test_centre_crop_inside_the_centre_square(
        width: int, height: int, expected: tuple[int, ...]) -> None:
    """A centre crop of the centre square is offset from the square, each offset rounded alone."""
    assert box(ViewSpec(S342, "centre", "centre", 299, False), width, height) == expected


def test_corners_of_the_end_square_with_an_odd_margin() -> None:
    """1011 x 1000 -> 342 x 345: end square at x = 3; corners at 0 and 342 - 299 = 43."""
    expected = {
        "top-left": (0, 3, 299, 299),
        "top-right": (0, 3 + 43, 299, 299),
        "bottom-left": (43, 3, 299, 299),
        "bottom-right": (43, 46, 299, 299),
    }
    for crop, want in expected.items():
        assert box(ViewSpec(S342, "end", crop, 299, False), 1011, 1000) == want


@pytest.mark.parametrize("region, crop", [
    ("image", "centre"), ("centre", "centre"), ("image", "top-right"), ("end", "bottom-right"),
])
def test_mirror_flips_the_crop_not_the_image(region: str, crop: str) -> None:
    """'Each crop mirrored': the mirrored view keeps the box of its unmirrored twin.

    Only the flag differs. Flipping the image first and cropping it (torchvision TenCrop) would
    take another box when a margin is odd, as in these outputs (342 x 345 and 342 x 343, where
    342 - 299 = 43 rows is odd too).
    """
    for width in (1011, 1005):
        plain, mirrored = plan_views(width, 1000, [ViewSpec(S342, region, crop, 299, False),
                                                   ViewSpec(S342, region, crop, 299, True)]).views
        assert (mirrored.y, mirrored.x, mirrored.h, mirrored.w) == \
            (plain.y, plain.x, plain.h, plain.w)
        assert (plain.mirror, mirrored.mirror) == (False, True)


def test_plan_of_two_stages_with_odd_margins() -> None:
    """Full plan, by hand: 1011 x 1000 at shorter sides 342 and 344, centre square and crops.

    Stage 0: 342 x 345 (1011 * 342 / 1000 = 345.762). Stage 1: 344 x 347 (1011 * 344 / 1000 =
    347.784), margin 3 -> centre square x = round(1.5) = 2; centre crop inside it
    round((344 - 299) / 2) = round(22.5) = 22, so (22, 24); whole square resized to 299.
    """
    specs = [ViewSpec(S342, "centre", "whole", 299, False),
             ViewSpec(S344, "centre", "centre", 299, True),
             ViewSpec(S344, "centre", "whole", 299, False)]
    plan = plan_views(1011, 1000, specs)
    assert [(s.out_h, s.out_w, s.roi) for s in plan.stages] == [(342, 345, None),
                                                                 (344, 347, None)]
    assert plan.views == (
        ViewBox(0, 0, 2, 342, 342, 299, 299, False),
        ViewBox(1, 22, 24, 299, 299, 299, 299, True),
        ViewBox(1, 0, 2, 344, 344, 299, 299, False),
    )


@pytest.mark.parametrize("height, width, fraction, expected", [
    # k = int(1 / ((1 - 0.875) / 2)) = int(16.0) = 16; 333 // 16 = 20, 500 // 16 = 31;
    # kept 333 - 40 = 293 rows, 500 - 62 = 438 columns.
    (333, 500, 0.875, (20, 31, 293, 438)),
    # 0.5: k = int(1 / 0.25) = 4; 375 // 4 = 93, 499 // 4 = 124; 375 - 186 = 189, 499 - 248 = 251
    (375, 499, 0.5, (93, 124, 189, 251)),
    # fraction 1: the whole image (the divisor rule would divide by zero)
    (333, 500, 1.0, (0, 0, 333, 500)),
])
def test_tf1_central_box_by_hand(height: int, width: int, fraction: float,
                                 expected: tuple[int, int, int, int]) -> None:
    """TF1 central_crop: start at h // k, w // k; keep h - 2 (h // k) rows."""
    assert tf1_central_box(height, width, fraction) == expected


def test_central_fraction_stage_roi_with_odd_sides() -> None:
    """The 87.5 % box of 333 x 500 (h x w) is rows 20..313, columns 31..469, resized to 299."""
    stage = StageSpec(CENTRAL_FRACTION, 299, "tf1-bilinear", False, 0.875)
    plan = plan_views(500, 333, [ViewSpec(stage, "image", "whole", 299, False)])
    assert (plan.stages[0].out_h, plan.stages[0].out_w) == (299, 299)
    assert plan.stages[0].roi == (20.0, 31.0, 313.0, 469.0)
    assert plan.views[0] == ViewBox(0, 0, 0, 299, 299, 299, 299, False)


def test_union_of_empty_view_lists_has_int64_indices() -> None:
    """Empty lists still give int64 index arrays (numpy's default for [] would be float64)."""
    union, indices = union_views([[], [ViewSpec(S342, "image", "centre", 299, False)], []])
    assert len(union) == 1
    assert [idx.dtype for idx in indices] == [np.dtype(np.int64)] * 3
    assert [idx.tolist() for idx in indices] == [[], [0], []]


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "longer-side"}, "unknown stage kind 'longer-side'"),
    ({"interpolation": "nearest"}, "unknown interpolation 'nearest'"),
    ({"side": 0}, "stage side must be positive, got 0"),
    ({"fraction": 0.0}, "central fraction must be in (0, 1], got 0.0"),
    ({"fraction": 1.5}, "central fraction must be in (0, 1], got 1.5"),
])
def test_stage_spec_refusals_name_the_value(kwargs: dict, message: str) -> None:
    """Each refused StageSpec field gives its own exact message."""
    fields = {"kind": SHORTER_SIDE, "side": 342, "interpolation": "bicubic", "antialias": True,
              "fraction": 1.0, **kwargs}
    with pytest.raises(ValueError) as info:
        StageSpec(**fields)
    assert str(info.value) == message


def test_stage_spec_edges_are_accepted() -> None:
    """side 1 and fraction 1.0 are the smallest side and the largest fraction allowed."""
    assert StageSpec(SHORTER_SIDE, 1, "bicubic", True).side == 1
    assert StageSpec(CENTRAL_FRACTION, 2, "bilinear", True, 1.0).fraction == 1.0
    assert StageSpec(CENTRAL_FRACTION, 2, "bilinear", True, 1e-9).fraction == 1e-9


@pytest.mark.parametrize("kwargs, message", [
    ({"region": "middle"}, "unknown region 'middle'"),
    ({"crop": "left"}, "unknown crop 'left'"),
    ({"size": 0}, "view size must be positive, got 0"),
    ({"size": 343}, "a 343-pixel crop does not fit a stage of side 342"),
])
def test_view_spec_refusals_name_the_value(kwargs: dict, message: str) -> None:
    """Each refused ViewSpec field gives its own exact message."""
    fields = {"stage": S342, "region": "image", "crop": "centre", "size": 299, "mirror": False,
              **kwargs}
    with pytest.raises(ValueError) as info:
        ViewSpec(**fields)
    assert str(info.value) == message


def test_view_spec_edges_are_accepted() -> None:
    """A crop as large as the stage side, a 1-pixel view and a 'whole' view larger than the side."""
    assert ViewSpec(S342, "image", "centre", 342, False).size == 342
    assert ViewSpec(S342, "image", "centre", 1, False).size == 1
    assert ViewSpec(S342, "image", "whole", 500, False).size == 500
