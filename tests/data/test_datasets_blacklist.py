"""read_blacklist and the blacklist flags: kept images, flagged by the number in their file name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inceval.data import builtin
from inceval.data.datasets import load_val_dataset, read_blacklist
from inceval.errors import InceValError
from tests.data.test_datasets_builders import (
    fake_wnids,
    make_class_folders,
    make_devkit_dir,
    make_flat,
    permuted_ids,
    val_name,
)

WNIDS = fake_wnids()
IDS = permuted_ids(WNIDS)


def test_reads_the_devkit_blacklist() -> None:
    path = builtin.ilsvrc2014_blacklist_path()
    numbers = read_blacklist(path)
    expected = {int(line) for line in path.read_text().split()}
    assert numbers == expected
    assert isinstance(numbers, frozenset)
    # The notes: 1,762 numbers, first 36, last 49981.
    assert (len(numbers), min(numbers), max(numbers)) == (1762, 36, 49981)


def test_blank_lines_and_spaces_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bl.txt"
    path.write_text("36\n\n  50 \r\n56")
    assert read_blacklist(path) == {36, 50, 56}


@pytest.mark.parametrize("content, line, shown", [
    ("36\n50\nfoo\n", 3, "'foo'"),
    ("36\n0\n", 2, "'0'"),
    ("-4\n", 1, "'-4'"),
    ("36\n4.5\n", 2, "'4.5'"),
    ("36 50\n", 1, "'36 50'"),
    ("ILSVRC2012_val_00000036.JPEG n01440764\n", 1, "'ILSVRC2012_val_00000036.JPEG n01440764'"),
])
def test_garbage_lines_are_refused_with_their_line_number(tmp_path: Path, content: str, line: int,
                                                          shown: str) -> None:
    path = tmp_path / "bl.txt"
    path.write_text(content)
    with pytest.raises(InceValError) as info:
        read_blacklist(path)
    assert str(info.value) == (f"--blacklist {path} line {line} is {shown}, not a 1-based image "
                               "number; the file must hold one number per line")


def test_empty_or_missing_blacklist_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    message = f"--blacklist {empty} holds no image numbers"
    with pytest.raises(InceValError, match=re.escape(message)):
        read_blacklist(empty)
    missing = tmp_path / "missing.txt"
    with pytest.raises(InceValError, match=re.escape(f"--blacklist {missing} does not exist")):
        read_blacklist(missing)


def test_flags_follow_the_number_in_the_file_name(tmp_path: Path) -> None:
    numbers = [1, 2, 3, 36, 37, 50]
    root = make_flat(tmp_path / "val", [val_name(n) for n in numbers])
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{val_name(n)} {n}\n" for n in numbers))
    blacklist = tmp_path / "bl.txt"
    blacklist.write_text("36\n50\n56\n2\n")
    ds = load_val_dataset(root, labels_file=listing, blacklist=blacklist)
    assert len(ds) == 6  # flagged, not dropped
    assert ds.has_blacklist and ds.blacklist_source == blacklist
    flagged = [r.image_number for r, f in zip(ds.records, ds.blacklisted, strict=True) if f]
    assert flagged == [2, 36, 50]
    assert ds.labels()[~ds.blacklisted].tolist() == [1, 3, 37]


def test_a_blacklist_that_flags_nothing_still_counts_as_applied(tmp_path: Path) -> None:
    root = make_flat(tmp_path / "val", [val_name(1)])
    make_devkit_dir(tmp_path, IDS, [5])
    blacklist = tmp_path / "bl.txt"
    blacklist.write_text("36\n")
    ds = load_val_dataset(root, blacklist=blacklist)
    assert ds.has_blacklist and not ds.blacklisted.any()
    assert ds.describe().endswith("blacklist 0 flagged, 1 kept")


def test_valprep_images_are_flagged_by_number_too(tmp_path: Path) -> None:
    images = {WNIDS[0]: [val_name(36)], WNIDS[1]: [val_name(35)]}
    root = make_class_folders(tmp_path / "val", WNIDS, images)
    blacklist = tmp_path / "bl.txt"
    blacklist.write_text("36\n")
    ds = load_val_dataset(root, blacklist=blacklist)
    rows = [(r.image_number, r.label, bool(f))
            for r, f in zip(ds.records, ds.blacklisted, strict=True)]
    assert rows == [(35, 1, False), (36, 0, True)]


def test_blacklist_needs_image_numbers_in_file_names(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "v2", [str(i) for i in range(1000)],
                              {"3": ["a1b2.jpeg"], "4": [val_name(9)]})
    blacklist = tmp_path / "bl.txt"
    blacklist.write_text("36\n")
    with pytest.raises(InceValError) as info:
        load_val_dataset(root, blacklist=blacklist)
    assert str(info.value) == (
        f"--blacklist needs ILSVRC2012_val_%08d file names but 3/a1b2.jpeg in --data "
        f"{root.resolve()} has no image number; drop --blacklist for this set")


def test_flags_are_computed_before_limit_and_subset(tmp_path: Path) -> None:
    root = make_flat(tmp_path / "val", [val_name(n) for n in range(1, 11)])
    make_devkit_dir(tmp_path, IDS, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    blacklist = tmp_path / "bl.txt"
    blacklist.write_text("3\n4\n9\n")
    ds = load_val_dataset(root, blacklist=blacklist, subset="every:2", limit=4)
    assert [r.image_number for r in ds.records] == [1, 3, 5, 7]
    assert ds.blacklisted.tolist() == [False, True, False, False]
