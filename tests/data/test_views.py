"""View geometry against boxes computed by hand.

The expected numbers below were worked out on paper from the rules in protocols.md, not with
inceval's helpers. For a 500x375 image and input size 299:

    S     long side floor(500*S/375)   margin m   squares 0, round(m/2), m   d = S-299   round(d/2)
    342   171000/375 = 456             114        0, 57, 114                 43          21.5 -> 22
    384   192000/375 = 512             128        0, 64, 128                 85          42.5 -> 42
    427   213500/375 = 569.33 -> 569   142        0, 71, 142                 128         64
    470   235000/375 = 626.67 -> 626   156        0, 78, 156                 171         85.5 -> 86

(half to even: 21.5 -> 22, 42.5 -> 42, 85.5 -> 86). Crops inside a square at offset o along x:
top-left (0, o), top-right (0, o+d), bottom-left (d, o), bottom-right (d, o+d),
centre (c, o+c), whole (0, o, S, S) resized to 299. A 375x500 image is the transpose.
"""

from __future__ import annotations

import numpy as np
import pytest

from inceval.data.protocols import get_protocol
from inceval.data.views import (
    ResizeStage,
    StageSpec,
    ViewBox,
    ViewSpec,
    plan_views,
    union_views,
)
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

CFG = EvalConfig()  # 299, crop_pct 0.875, bicubic

# (stage h, stage w) and, per square, the 6 boxes (y, x, h, w) in the order
# top-left, top-right, bottom-left, bottom-right, centre, whole.
LANDSCAPE_500x375 = [
    ((342, 456), [
        [(0, 0, 299, 299), (0, 43, 299, 299), (43, 0, 299, 299), (43, 43, 299, 299),
         (22, 22, 299, 299), (0, 0, 342, 342)],
        [(0, 57, 299, 299), (0, 100, 299, 299), (43, 57, 299, 299), (43, 100, 299, 299),
         (22, 79, 299, 299), (0, 57, 342, 342)],
        [(0, 114, 299, 299), (0, 157, 299, 299), (43, 114, 299, 299), (43, 157, 299, 299),
         (22, 136, 299, 299), (0, 114, 342, 342)],
    ]),
    ((384, 512), [
        [(0, 0, 299, 299), (0, 85, 299, 299), (85, 0, 299, 299), (85, 85, 299, 299),
         (42, 42, 299, 299), (0, 0, 384, 384)],
        [(0, 64, 299, 299), (0, 149, 299, 299), (85, 64, 299, 299), (85, 149, 299, 299),
         (42, 106, 299, 299), (0, 64, 384, 384)],
        [(0, 128, 299, 299), (0, 213, 299, 299), (85, 128, 299, 299), (85, 213, 299, 299),
         (42, 170, 299, 299), (0, 128, 384, 384)],
    ]),
    ((427, 569), [
        [(0, 0, 299, 299), (0, 128, 299, 299), (128, 0, 299, 299), (128, 128, 299, 299),
         (64, 64, 299, 299), (0, 0, 427, 427)],
        [(0, 71, 299, 299), (0, 199, 299, 299), (128, 71, 299, 299), (128, 199, 299, 299),
         (64, 135, 299, 299), (0, 71, 427, 427)],
        [(0, 142, 299, 299), (0, 270, 299, 299), (128, 142, 299, 299), (128, 270, 299, 299),
         (64, 206, 299, 299), (0, 142, 427, 427)],
    ]),
    ((470, 626), [
        [(0, 0, 299, 299), (0, 171, 299, 299), (171, 0, 299, 299), (171, 171, 299, 299),
         (86, 86, 299, 299), (0, 0, 470, 470)],
        [(0, 78, 299, 299), (0, 249, 299, 299), (171, 78, 299, 299), (171, 249, 299, 299),
         (86, 164, 299, 299), (0, 78, 470, 470)],
        [(0, 156, 299, 299), (0, 327, 299, 299), (171, 156, 299, 299), (171, 327, 299, 299),
         (86, 242, 299, 299), (0, 156, 470, 470)],
    ]),
]

PORTRAIT_375x500 = [
    ((456, 342), [
        [(0, 0, 299, 299), (0, 43, 299, 299), (43, 0, 299, 299), (43, 43, 299, 299),
         (22, 22, 299, 299), (0, 0, 342, 342)],
        [(57, 0, 299, 299), (57, 43, 299, 299), (100, 0, 299, 299), (100, 43, 299, 299),
         (79, 22, 299, 299), (57, 0, 342, 342)],
        [(114, 0, 299, 299), (114, 43, 299, 299), (157, 0, 299, 299), (157, 43, 299, 299),
         (136, 22, 299, 299), (114, 0, 342, 342)],
    ]),
    ((512, 384), [
        [(0, 0, 299, 299), (0, 85, 299, 299), (85, 0, 299, 299), (85, 85, 299, 299),
         (42, 42, 299, 299), (0, 0, 384, 384)],
        [(64, 0, 299, 299), (64, 85, 299, 299), (149, 0, 299, 299), (149, 85, 299, 299),
         (106, 42, 299, 299), (64, 0, 384, 384)],
        [(128, 0, 299, 299), (128, 85, 299, 299), (213, 0, 299, 299), (213, 85, 299, 299),
         (170, 42, 299, 299), (128, 0, 384, 384)],
    ]),
    ((569, 427), [
        [(0, 0, 299, 299), (0, 128, 299, 299), (128, 0, 299, 299), (128, 128, 299, 299),
         (64, 64, 299, 299), (0, 0, 427, 427)],
        [(71, 0, 299, 299), (71, 128, 299, 299), (199, 0, 299, 299), (199, 128, 299, 299),
         (135, 64, 299, 299), (71, 0, 427, 427)],
        [(142, 0, 299, 299), (142, 128, 299, 299), (270, 0, 299, 299), (270, 128, 299, 299),
         (206, 64, 299, 299), (142, 0, 427, 427)],
    ]),
    ((626, 470), [
        [(0, 0, 299, 299), (0, 171, 299, 299), (171, 0, 299, 299), (171, 171, 299, 299),
         (86, 86, 299, 299), (0, 0, 470, 470)],
        [(78, 0, 299, 299), (78, 171, 299, 299), (249, 0, 299, 299), (249, 171, 299, 299),
         (164, 86, 299, 299), (78, 0, 470, 470)],
        [(156, 0, 299, 299), (156, 171, 299, 299), (327, 0, 299, 299), (327, 171, 299, 299),
         (242, 86, 299, 299), (156, 0, 470, 470)],
    ]),
]


def _union(*names: str) -> tuple[ViewSpec, ...]:
    return union_views([get_protocol(n).resolve(CFG) for n in names])[0]


def _plan_rows(width: int, height: int, name: str) -> list[tuple]:
    """(stage h, stage w, y, x, h, w, out_h, out_w, mirror) for every view of a protocol."""
    plan = plan_views(width, height, get_protocol(name).resolve(CFG))
    rows = []
    for box in plan.views:
        stage = plan.stages[box.stage]
        rows.append((stage.out_h, stage.out_w, box.y, box.x, box.h, box.w, box.out_h, box.out_w,
                     box.mirror))
    return rows


def _expected_rows(table: list) -> list[tuple]:
    # Protocol order: scale, square, crop, then unmirrored before mirrored.
    rows = []
    for (sh, sw), squares in table:
        for boxes in squares:
            for y, x, h, w in boxes:
                for mirror in (False, True):
                    rows.append((sh, sw, y, x, h, w, 299, 299, mirror))
    return rows


@pytest.mark.parametrize(
    "width, height, table",
    [(500, 375, LANDSCAPE_500x375), (375, 500, PORTRAIT_375x500)],
    ids=["landscape", "portrait"],
)
def test_144_boxes_match_hand_table(width: int, height: int, table: list) -> None:
    expected = _expected_rows(table)
    assert len(expected) == 144
    assert _plan_rows(width, height, "144") == expected


def test_144_stages_shared_per_scale_and_unrotated() -> None:
    plan = plan_views(500, 375, get_protocol("144").resolve(CFG))
    assert plan.stages == (
        ResizeStage(342, 456, None, "bicubic", True),
        ResizeStage(384, 512, None, "bicubic", True),
        ResizeStage(427, 569, None, "bicubic", True),
        ResizeStage(470, 626, None, "bicubic", True),
    )
    assert [box.stage for box in plan.views] == [0] * 36 + [1] * 36 + [2] * 36 + [3] * 36


def test_square_image_144_views_with_coinciding_squares() -> None:
    # 512x512 at S=342: all three squares are the whole 342x342 image; 144 views remain.
    rows = _plan_rows(512, 512, "144")
    assert len(rows) == 144
    first_scale = rows[:36]
    per_square = [first_scale[i * 12:(i + 1) * 12] for i in range(3)]
    assert per_square[0] == per_square[1] == per_square[2]
    assert per_square[0][::2] == [
        (342, 342, 0, 0, 299, 299, 299, 299, False),
        (342, 342, 0, 43, 299, 299, 299, 299, False),
        (342, 342, 43, 0, 299, 299, 299, 299, False),
        (342, 342, 43, 43, 299, 299, 299, 299, False),
        (342, 342, 22, 22, 299, 299, 299, 299, False),
        (342, 342, 0, 0, 342, 342, 299, 299, False),
    ]


def test_single_crop_rounds_half_to_even_and_truncates_long_side() -> None:
    # 401x257 at 341: long = floor(401*341/257) = floor(532.07) = 532;
    # offsets round(42/2) = 21 rows, round(233/2) = round(116.5) = 116 columns (DALI would say 117).
    assert _plan_rows(401, 257, "1") == [(341, 532, 21, 116, 299, 299, 299, 299, False)]
    # 640x427 at 341: floor(218240/427) = floor(511.1) = 511; offsets 21, 106.
    assert _plan_rows(640, 427, "1") == [(341, 511, 21, 106, 299, 299, 299, 299, False)]
    # Portrait 263x411: floor(411*341/263) = floor(532.88) = 532 rows (rounding would give 533).
    assert _plan_rows(263, 411, "1") == [(532, 341, 116, 21, 299, 299, 299, 299, False)]


def test_torchvision_truncation_example_from_notes() -> None:
    # 427x640 (portrait) to shorter side 256: 640*256/427 = 383.7 -> 383, not DALI's 384.
    cfg224 = CFG.with_input_size(224)
    plan = plan_views(427, 640, get_protocol("10").resolve(cfg224))
    assert (plan.stages[0].out_h, plan.stages[0].out_w) == (383, 256)


def test_slim_central_fraction_box() -> None:
    # TF1 central_crop(0.875): k = int(1 / 0.0625) = 16; 375 // 16 = 23 rows, 500 // 16 = 31 cols,
    # kept 375 - 46 = 329 rows and 500 - 62 = 438 cols; then squashed to 299x299 by TF1 bilinear.
    plan = plan_views(500, 375, get_protocol("1-slim").resolve(CFG))
    roi = (23.0, 31.0, 352.0, 469.0)
    assert plan.stages == (ResizeStage(299, 299, roi, "tf1-bilinear", False),)
    assert plan.views == (ViewBox(0, 0, 0, 299, 299, 299, 299, False),)


def test_ten_crop_variants() -> None:
    # "10" (AlexNet): centre square of the 342x456 image (x offset 57), corners + centre.
    assert _plan_rows(500, 375, "10")[::2] == [
        (342, 456, 0, 57, 299, 299, 299, 299, False),
        (342, 456, 0, 100, 299, 299, 299, 299, False),
        (342, 456, 43, 57, 299, 299, 299, 299, False),
        (342, 456, 43, 100, 299, 299, 299, 299, False),
        (342, 456, 22, 79, 299, 299, 299, 299, False),
    ]
    # "10-full" (TenCrop-like): corners of the whole 342x456 image; centre round(157/2) = 78.
    assert _plan_rows(500, 375, "10-full")[::2] == [
        (342, 456, 0, 0, 299, 299, 299, 299, False),
        (342, 456, 0, 157, 299, 299, 299, 299, False),
        (342, 456, 43, 0, 299, 299, 299, 299, False),
        (342, 456, 43, 157, 299, 299, 299, 299, False),
        (342, 456, 22, 78, 299, 299, 299, 299, False),
    ]


@pytest.mark.parametrize(
    "name, count",
    [("1", 1), ("1-slim", 1), ("10", 10), ("10-full", 10), ("12", 12), ("12-image", 12),
     ("12-3sq", 12), ("12-resized", 12), ("144", 144)],
)
def test_view_counts(name: str, count: int) -> None:
    views = get_protocol(name).resolve(CFG)
    assert len(views) == count == get_protocol(name).num_views
    assert len(set(views)) == count  # no view twice within a protocol
    assert len(plan_views(500, 375, views).views) == count


def test_twelve_is_the_144_subset_at_one_scale_and_centre_square() -> None:
    twelve = get_protocol("12").resolve(CFG)
    all144 = get_protocol("144").resolve(CFG)
    assert set(twelve) <= set(all144)
    assert set(twelve) == {v for v in all144 if v.stage.side == 342 and v.region == "centre"}
    assert set(get_protocol("10").resolve(CFG)) <= set(twelve)
    for width, height in [(500, 375), (375, 500), (401, 257), (512, 512)]:
        rows12 = _plan_rows(width, height, "12")
        rows144 = set(_plan_rows(width, height, "144"))
        assert set(rows12) <= rows144


def test_union_of_1_12_144_has_145_views() -> None:
    lists = [get_protocol(n).resolve(CFG) for n in ("1", "12", "144")]
    union, indices = union_views(lists)
    assert len(union) == 145
    for views, idx in zip(lists, indices):
        assert idx.dtype == np.int64
        assert [union[i] for i in idx] == list(views)
    assert indices[0].tolist() == [0]
    assert indices[1].tolist() == list(range(1, 13))  # first seen in "12"
    assert sorted(indices[2].tolist()) == list(range(1, 145))
    # 10 is inside 12, and 12-resized (unmirrored whole squares) inside 144.
    names = ("10", "12", "144", "12-resized")
    union2, _ = union_views([get_protocol(n).resolve(CFG) for n in names])
    assert len(union2) == 144


def test_union_keeps_views_that_differ_in_any_field() -> None:
    stage = StageSpec("shorter-side", 342, "bicubic", True)
    base = ViewSpec(stage, "centre", "centre", 299, False)
    variants = [
        ViewSpec(stage, "centre", "centre", 299, True),
        ViewSpec(stage, "image", "centre", 299, False),
        ViewSpec(StageSpec("shorter-side", 342, "bilinear", True), "centre", "centre", 299, False),
        ViewSpec(StageSpec("shorter-side", 341, "bicubic", True), "centre", "centre", 299, False),
    ]
    union, indices = union_views([[base, base], variants, [base]])
    assert len(union) == 5
    assert indices[0].tolist() == [0, 0] and indices[2].tolist() == [0]


def test_stage_and_view_counts_do_not_depend_on_image_size() -> None:
    views = _union("1", "1-slim", "10-full", "144")
    shapes = {
        (len(p.stages), tuple(b.stage for b in p.views))
        for p in (plan_views(w, h, views) for w, h in [(500, 375), (375, 500), (1, 1), (4000, 30)])
    }
    assert len(shapes) == 1
    assert len(next(iter(shapes))[1]) == 1 + 1 + 10 + 144


def test_boxes_stay_inside_their_stage_for_odd_sizes() -> None:
    views = _union("1", "1-slim", "10-full", "144")
    for width, height in [(1, 1), (3, 1000), (1000, 3), (299, 299), (341, 342), (263, 411)]:
        plan = plan_views(width, height, views)
        for box in plan.views:
            stage = plan.stages[box.stage]
            assert 0 <= box.y and box.y + box.h <= stage.out_h
            assert 0 <= box.x and box.x + box.w <= stage.out_w


def test_labels() -> None:
    labels = [v.label for v in get_protocol("144").resolve(CFG)]
    assert labels[0] == "s342 start-square top-left"
    assert labels[1] == "s342 start-square top-left mirror"
    assert labels[-1] == "s470 end-square whole mirror"
    assert len(set(labels)) == 144
    assert get_protocol("1").resolve(CFG)[0].label == "s341 image centre"
    assert get_protocol("1-slim").resolve(CFG)[0].label == "c87.5%->299 tf1-bilinear image whole"


def test_empty_image_is_refused() -> None:
    with pytest.raises(InceValError, match="0x10"):
        plan_views(0, 10, get_protocol("1").resolve(CFG))
