"""Blacklist, list-file and subset readers: edge values, BOMs and their exact one-line refusals.

The expected messages are written out by hand: they are what a user sees, and each must name the
file, the line and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inceval.data.blacklist import read_blacklist
from inceval.data.listfile import read_list
from inceval.data.records import ImageRecord
from inceval.data.subsets import select
from inceval.errors import InceValError

DEVKIT_FILE = "ILSVRC2014_clsloc_validation_blacklist.txt"


def message(call, *args) -> str:  # noqa: ANN001 - any callable
    """The InceValError message of ``call(*args)`` (fails when nothing is raised)."""
    with pytest.raises(InceValError) as info:
        call(*args)
    return str(info.value)


# ---------------------------------------------------------------- blacklist

def test_blacklist_accepts_image_number_one(tmp_path: Path) -> None:
    """1 is the first image number: the smallest allowed."""
    path = tmp_path / "bl.txt"
    path.write_text("1\n2\n")
    assert read_blacklist(path) == frozenset({1, 2})


def test_blacklist_missing_unreadable_and_empty(tmp_path: Path) -> None:
    """Each refusal names the devkit file to pass instead."""
    missing = tmp_path / "none.txt"
    assert message(read_blacklist, missing) == \
        f"--blacklist {missing} does not exist; pass the devkit's {DEVKIT_FILE}"
    folder = tmp_path / "folder"
    folder.mkdir()
    assert message(read_blacklist, folder) == (
        f"--blacklist {folder} cannot be read as text ([Errno 21] Is a directory: "
        f"'{folder}'); pass the devkit's {DEVKIT_FILE}")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    assert message(read_blacklist, empty) == \
        f"--blacklist {empty} holds no image numbers; pass the devkit's {DEVKIT_FILE}"


@pytest.mark.parametrize("token, shown", [
    ("x" * 40, "'" + "x" * 40 + "'"),              # 40 characters: shown whole
    ("y" * 41, "'" + "y" * 40 + "...'"),           # 41: the first 40 and an ellipsis
    ("z" * 39, "'" + "z" * 39 + "'"),
])
def test_blacklist_long_bad_lines_are_cut_to_40_characters(tmp_path: Path, token: str,
                                                            shown: str) -> None:
    """A bad line is quoted, cut after 40 characters."""
    path = tmp_path / "bl.txt"
    path.write_text(f"36\n{token}\n")
    assert message(read_blacklist, path) == (
        f"--blacklist {path} line 2 is {shown}, not a 1-based image number; the file must hold "
        "one number per line")


# ---------------------------------------------------------------- list files

def test_list_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    """A UTF-8 BOM (as Windows editors write) is not part of the first path."""
    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffa.JPEG 3\nb/c.JPEG 999\n".encode("utf-8"))
    labels = read_list(path)
    assert labels.labels == {"a.JPEG": 3, "b/c.JPEG": 999}
    assert labels.source == path and labels.class_wnids is None


def test_wnid_list_records_its_source(tmp_path: Path) -> None:
    """A WNID-labelled list: index = position among the 1000 sorted WNIDs; source kept."""
    wnids = [f"n{i:08d}" for i in range(1000, 0, -1)]  # listed in reverse order
    path = tmp_path / "valprep.txt"
    path.write_text("".join(f"img{i}.JPEG {w}\n" for i, w in enumerate(wnids)))
    labels = read_list(path)
    # sorted order: n00000001 (index 0) ... n00001000 (index 999); img0 has n00001000.
    assert (labels.labels["img0.JPEG"], labels.labels["img999.JPEG"]) == (999, 0)
    assert labels.source == path and labels.class_wnids[0] == "n00000001"


def test_list_file_unreadable(tmp_path: Path) -> None:
    """A directory given as --labels."""
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    assert message(read_list, folder) == (
        f"--labels {folder} cannot be read ([Errno 21] Is a directory: '{folder}'); pass a text "
        "file of 'relative/path label' lines")


@pytest.mark.parametrize("line, reason", [
    # a line without a label, 70 characters: quoted up to 60
    ("p" * 70, "line 1 is '" + "p" * 60 + "', not 'relative/path label'; give one image and "
               "its label per line"),
    # a label of 45 characters: quoted up to 40
    ("a.JPEG " + "L" * 45, "line 1 has label '" + "L" * 40 + "', neither a class index 0..999 "
                           "nor a WNID; fix the line"),
    # a path of 65 characters with a backslash: quoted up to 60
    ("d\\" + "q" * 63 + " 1", "line 1: 'd\\\\" + "q" * 58 + "' must be a path relative to "
                              "--data, with / separators and no '..'"),
    ("a\\b.JPEG 1", "line 1: 'a\\\\b.JPEG' must be a path relative to --data, with / separators "
                    "and no '..'"),
])
def test_list_file_bad_lines_are_quoted_and_cut(tmp_path: Path, line: str, reason: str) -> None:
    """Exact messages, with long parts cut to 60 (paths, lines) or 40 (labels) characters."""
    path = tmp_path / "labels.txt"
    path.write_text(line + "\n")
    assert message(read_list, path) == f"--labels {path} {reason}"


@pytest.mark.parametrize("written, stored", [
    ("./a/b.JPEG", "a/b.JPEG"),
    ("a//b.JPEG", "a/b.JPEG"),
    ("a/./b.JPEG", "a/b.JPEG"),
    ("a/b.JPEG", "a/b.JPEG"),
])
def test_list_file_paths_are_normalised(tmp_path: Path, written: str, stored: str) -> None:
    """'.' parts and doubled slashes are dropped; the result is the same POSIX path."""
    path = tmp_path / "labels.txt"
    path.write_text(f"{written} 7\n")
    assert read_list(path).labels == {stored: 7}


# ---------------------------------------------------------------- subsets

RECORDS = [
    ImageRecord("val/n01/x.y.JPEG", 0, 1),
    ImageRecord("val/n01/b.JPEG", 0, 2),
    ImageRecord("val/n02/c.JPEG", 1, 3),
    ImageRecord("val/n02/d.JPEG", 1, 4),
    ImageRecord("val/n03/" + "e" * 70 + ".JPEG", 2, 5),
]


def test_limit_of_one_and_int64_positions() -> None:
    """--limit 1 keeps the first image; positions are int64 even when nothing is selected."""
    assert select(RECORDS, None, 1).tolist() == [0]
    empty = select([], "per-class:2", None)
    assert empty.dtype == np.int64 and empty.tolist() == []
    assert select([], "every:2", None).dtype == np.int64
    assert select([], None, None).dtype == np.int64


def test_subset_file_names_with_dots_nested_folders_and_a_bom(tmp_path: Path) -> None:
    """Aliases: relative path, file name ('x.y.JPEG'), name without its last extension ('x.y')."""
    path = tmp_path / "pick.txt"
    path.write_bytes("\ufeffx.y\nval/n02/d.JPEG\nc.JPEG\n".encode("utf-8"))
    assert select(RECORDS, f"file:{path}", None).tolist() == [0, 2, 3]


def test_subset_file_path_may_contain_a_colon(tmp_path: Path) -> None:
    """Only the first ':' separates the form from its argument."""
    path = tmp_path / "a:b.txt"
    path.write_text("b\n")
    assert select(RECORDS, f"file:{path}", None).tolist() == [1]


def test_subset_file_unreadable(tmp_path: Path) -> None:
    """A directory as subset file: the OS reason is quoted."""
    folder = tmp_path / "dir"
    folder.mkdir()
    assert message(select, RECORDS, f"file:{folder}", None) == (
        f"--subset file:{folder} cannot be read ([Errno 21] Is a directory: '{folder}'); pass a "
        "text file of image names")


def test_subset_file_long_names_are_cut_to_60_characters(tmp_path: Path) -> None:
    """Unknown, ambiguous and repeated names are quoted up to 60 characters."""
    long_name = "e" * 70
    path = tmp_path / "pick.txt"
    path.write_text(f"{long_name}\n{long_name}\n")
    assert message(select, RECORDS, f"file:{path}", None) == (
        f"--subset file:{path} line 2: '{'e' * 60}' is the image of line 1 again; remove the "
        "duplicate")
    unknown = "u" * 65
    path.write_text(f"{unknown}\n")
    assert message(select, RECORDS, f"file:{path}", None) == (
        f"--subset file:{path} line 1: '{'u' * 60}' is not an image of --data; name images by "
        "relative path or file name")
    twins = [ImageRecord(f"val/{d}/{'t' * 64}.JPEG", 0, None) for d in ("a", "b")]
    path.write_text("t" * 64 + ".JPEG\n")
    assert message(select, twins, f"file:{path}", None) == (
        f"--subset file:{path} line 1: '{'t' * 60}' names 2 images; give the relative path")
