"""Devkit and Kaggle label readers: edge cases and their exact one-line refusals.

Small hand-made devkits (a meta.mat with only the three fields the reader needs) and Kaggle CSVs;
every expected message is written out here.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from inceval.data.devkit import _first_line, _tar_mode, find_devkits, read_devkit
from inceval.data.kaggle import is_solution_csv, read_kaggle
from inceval.errors import InceValError
from tests.data.test_datasets_builders import fake_wnids, write_synset_mapping

DEVKIT = "ILSVRC2012_devkit_t12"
GT = "data/ILSVRC2012_validation_ground_truth.txt"
META = "data/meta.mat"
UNMODIFIED = "use an unmodified ILSVRC2012 devkit"
WNIDS = fake_wnids()


def meta_bytes(synsets: list[tuple[int, str, int]]) -> bytes:
    """meta.mat holding a ``synsets`` struct of (ILSVRC2012_ID, WNID, num_children) only."""
    import scipy.io

    array = np.zeros((len(synsets), 1), dtype=[("ILSVRC2012_ID", object), ("WNID", object),
                                               ("num_children", object)])
    for row, (ilsvrc_id, wnid, children) in enumerate(synsets):
        array[row, 0] = (np.array([[ilsvrc_id]], dtype=np.uint16), np.array([wnid]),
                         np.array([[children]], dtype=np.uint8))
    out = io.BytesIO()
    scipy.io.savemat(out, {"synsets": array})
    return out.getvalue()


def devkit_dir(tmp_path: Path, synsets: list[tuple[int, str, int]], gt: bytes = b"1\n") -> Path:
    """An extracted devkit folder with the given synsets and ground-truth bytes."""
    kit = tmp_path / DEVKIT
    (kit / "data").mkdir(parents=True)
    (kit / META).write_bytes(meta_bytes(synsets))
    (kit / GT).write_bytes(gt)
    return kit


def leaves() -> list[tuple[int, str, int]]:
    """The 1000 leaf synsets: ID i has the i-th sorted WNID (so class index = ID - 1)."""
    return [(i + 1, wnid, 0) for i, wnid in enumerate(WNIDS)]


def error(call, *args) -> str:  # noqa: ANN001 - any callable
    """The InceValError message of ``call(*args)``."""
    with pytest.raises(InceValError) as info:
        call(*args)
    return str(info.value)


# ---------------------------------------------------------------- devkit

def test_inner_nodes_before_the_leaves_are_skipped(tmp_path: Path) -> None:
    """IDs above 1000 (inner nodes) are skipped wherever they are, even first; ID 1000 is a
    class. Ground truth 1, 1000, 7 -> class indices 0, 999, 6."""
    synsets = [(1001, "n99999999", 5), *leaves(), (1002, "n99999998", 3)]
    labels = read_devkit(devkit_dir(tmp_path, synsets, b"1\n1000\n7\n"))
    assert labels.labels == (0, 999, 6)
    assert labels.class_wnids == tuple(WNIDS)


@pytest.mark.parametrize("synsets, reason", [
    ([(1, WNIDS[0], 2)], "ILSVRC2012_ID 1 (%s) is not a leaf class; " % WNIDS[0] + UNMODIFIED),
    ([(3, "dog", 0)], "ILSVRC2012_ID 3 has WNID 'dog', not a WNID; " + UNMODIFIED),
    ([(4, WNIDS[0], 0), (4, WNIDS[1], 0)], "ILSVRC2012_ID 4 appears twice; " + UNMODIFIED),
    ([(5, WNIDS[0], 0), (6, WNIDS[0], 0)], "two class IDs share a WNID; " + UNMODIFIED),
])
def test_bad_meta_mat_synsets(tmp_path: Path, synsets: list, reason: str) -> None:
    """Each inconsistency of meta.mat gets its own message naming the file."""
    kit = devkit_dir(tmp_path, synsets)
    assert error(read_devkit, kit) == f"--devkit {kit} {META}: {reason}"


def test_meta_mat_needs_exactly_the_three_fields(tmp_path: Path) -> None:
    """A struct with ID, WNID and num_children (and nothing else) is enough: no refusal."""
    kit = devkit_dir(tmp_path, [(1, WNIDS[0], 0)])
    # one class instead of 1000: the reader gets past the struct check to the class count
    assert "defines 1 classes, not 1000" in error(read_devkit, kit)


@pytest.mark.parametrize("gt, reason", [
    (b"1\n\xe9\n", "is not a text file of class IDs; use an unmodified ILSVRC2012 devkit"),
    (b"", "is empty; use an unmodified ILSVRC2012 devkit"),
    (b"1\n" + b"9" * 45 + b"x\n", "line 2 is '" + "9" * 40 + "', not a class ID; line N must "
     "hold the ILSVRC2012_ID of image N"),
    (b"1001\n", "line 1 has class ID 1001, outside 1..1000; use an unmodified ILSVRC2012 devkit"),
])
def test_bad_ground_truth(tmp_path: Path, gt: bytes, reason: str) -> None:
    """Ground-truth refusals, with long lines cut to 40 characters."""
    kit = devkit_dir(tmp_path, leaves(), gt)
    assert error(read_devkit, kit) == f"--devkit {kit} {GT} {reason}"


def test_missing_devkit_is_named_by_its_option(tmp_path: Path) -> None:
    """Without a name, messages name the devkit as '--devkit PATH'."""
    missing = tmp_path / "nothing"
    assert error(read_devkit, missing) == \
        f"--devkit {missing} does not exist; pass the {DEVKIT} folder or its .tar.gz"
    assert error(read_devkit, missing, "the devkit beside --data") == \
        f"the devkit beside --data does not exist; pass the {DEVKIT} folder or its .tar.gz"


def tar_of(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz holding ``members`` (name -> bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tar_members_with_and_without_leading_dot_slash_are_one_member(tmp_path: Path) -> None:
    """'./X/data/...' and 'X/data/...' name the same file: not two copies."""
    meta = meta_bytes(leaves())
    path = tar_of(tmp_path / f"{DEVKIT}.tar.gz", {
        f"{DEVKIT}/{GT}": b"2\n", f"./{DEVKIT}/{GT}": b"2\n",
        f"{DEVKIT}/{META}": meta})
    assert read_devkit(path).labels == (1,)


def test_tar_with_two_copies_of_a_member(tmp_path: Path) -> None:
    """Two ground truths under different folders are refused, with their count."""
    path = tar_of(tmp_path / f"{DEVKIT}.tar.gz", {
        f"a/{GT}": b"1\n", f"b/{GT}": b"1\n", f"a/{META}": b"x"})
    assert error(read_devkit, path) == (
        f"--devkit {path} holds 2 copies of {GT}; pass {DEVKIT}.tar.gz or the extracted folder")


def test_tar_member_paths_must_end_in_the_devkit_path(tmp_path: Path) -> None:
    """'Xdata/...' is not 'data/...': only a leading './' is dropped from member names."""
    path = tar_of(tmp_path / f"{DEVKIT}.tar.gz", {f"X{GT}": b"1\n", f"X{META}": b"x"})
    assert error(read_devkit, path) == (
        f"--devkit {path} holds no {GT}; pass {DEVKIT}.tar.gz or the extracted folder")


def test_damaged_archive_names_the_compression_error(tmp_path: Path) -> None:
    """A .tar.gz that is not gzip: opened as gzip, so the error says exactly that."""
    path = tmp_path / f"{DEVKIT}.tar.gz"
    path.write_bytes(b"not an archive at all")
    assert error(read_devkit, path) == (
        f"--devkit {path} is not a readable tar archive (not a gzip file); pass {DEVKIT}.tar.gz "
        "or the extracted folder")


def test_unreadable_meta_mat_names_the_error_type_and_first_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scipy's error is quoted as 'Type: first line'."""
    import scipy.io

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("bad header:\nsecond line")

    kit = devkit_dir(tmp_path, leaves())
    monkeypatch.setattr(scipy.io, "loadmat", broken)
    assert error(read_devkit, kit) == (
        f"--devkit {kit} {META} cannot be read (ValueError: bad header); {UNMODIFIED}")


@pytest.mark.parametrize("name, mode", [
    ("ILSVRC2012_devkit_t12.tar.gz", "r:gz"),
    ("ILSVRC2012_DEVKIT_T12.TAR.GZ", "r:gz"),
    ("devkit.tgz", "r:gz"),
    ("DEVKIT.TGZ", "r:gz"),
    ("devkit.tar", "r:"),
    ("devkit.TAR", "r:"),
    ("devkit.tar.bz2", "r:*"),
])
def test_tar_mode_follows_the_suffix_in_any_case(name: str, mode: str) -> None:
    """gzip for .tar.gz/.tgz, plain for .tar, autodetect otherwise; case does not matter."""
    assert _tar_mode(Path(name)) == mode


@pytest.mark.parametrize("text, first", [
    ("bad MAX:\nmore", "bad MAX"),        # first line, trailing colon dropped
    (":lead:", ":lead"),                   # only trailing colons go
    ("  spaced  \n", "spaced"),
    ("", "OSError"),                       # no text: the type
])
def test_first_line_of_an_error(text: str, first: str) -> None:
    """Multi-line library errors are cut to one line."""
    assert _first_line(OSError(text)) == first


def test_only_archives_and_folders_are_devkits(tmp_path: Path) -> None:
    """A file named like the devkit but not an archive is not found; an archive is."""
    root = tmp_path / "val"
    root.mkdir()
    (tmp_path / f"{DEVKIT}.txt").write_text("notes")
    assert find_devkits(root) == []
    (tmp_path / f"{DEVKIT}.tgz").write_bytes(b"")
    assert find_devkits(root) == [tmp_path / f"{DEVKIT}.tgz"]


# ---------------------------------------------------------------- Kaggle

HEADER = "ImageId,PredictionString\n"


def solution(tmp_path: Path, body: str, *, bom: bool = False) -> Path:
    """LOC_val_solution.csv with the header and ``body``."""
    path = tmp_path / "LOC_val_solution.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + (HEADER + body).encode("utf-8"))
    return path


def full_body(skip_line: str = "") -> str:
    """One row per WNID (1000 rows, image i has WNID i), with ``skip_line`` after row 500."""
    rows = [f"img{i},{w} 1 2 3 4\n" for i, w in enumerate(WNIDS)]
    rows.insert(500, skip_line)
    return "".join(rows)


def test_solution_header_detection(tmp_path: Path) -> None:
    """The header is found after a BOM; binary files are not solutions (and do not crash)."""
    assert is_solution_csv(solution(tmp_path, "", bom=True))
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\x00ImageId,\x80\x81" * 10)
    assert not is_solution_csv(binary)


@pytest.mark.parametrize("skip_line", ["\n", ",\n", " , \n"])
def test_blank_rows_in_the_middle_are_skipped(tmp_path: Path, skip_line: str) -> None:
    """Empty rows, a lone comma or whitespace fields: skipped, and reading goes on after them."""
    labels = read_kaggle(solution(tmp_path, full_body(skip_line), bom=True), "--labels x")
    assert len(labels.labels) == 1000 and labels.labels["img999"] == 999
    assert labels.mapping is None
    assert labels.source == tmp_path / "LOC_val_solution.csv"


@pytest.mark.parametrize("body, reason", [
    ("img1\n", "line 2 is not 'ImageId,PredictionString' with a WNID first; pass an unmodified "
               "LOC_val_solution.csv"),
    (",n00000001 1 2 3 4\n", "line 2 is not 'ImageId,PredictionString' with a WNID first; pass "
                             "an unmodified LOC_val_solution.csv"),
    ("", "has no rows; pass Kaggle's complete LOC_val_solution.csv"),
])
def test_bad_solution_rows(tmp_path: Path, body: str, reason: str) -> None:
    """A one-field row, an empty ImageId, no rows at all."""
    assert error(read_kaggle, solution(tmp_path, body), "--labels S") == f"--labels S {reason}"


def test_empty_or_unreadable_solution(tmp_path: Path) -> None:
    """An empty file has no header; a directory cannot be read."""
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert error(read_kaggle, empty, "--labels E") == (
        "--labels E does not start with the header ImageId,PredictionString; pass Kaggle's "
        "LOC_val_solution.csv (or use --layout list for a plain list)")
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    assert error(read_kaggle, folder, "--labels D") == (
        f"--labels D cannot be read ([Errno 21] Is a directory: '{folder}'); pass "
        "LOC_val_solution.csv")


def test_mapping_with_a_blank_line_is_read_to_the_end(tmp_path: Path) -> None:
    """A blank line inside LOC_synset_mapping.txt is skipped, not the end of the file."""
    path = solution(tmp_path, full_body())
    mapping = write_synset_mapping(tmp_path / "LOC_synset_mapping.txt", WNIDS)
    text = mapping.read_text().splitlines(keepends=True)
    mapping.write_text("".join(text[:10] + ["\n"] + text[10:]))
    labels = read_kaggle(path, "--labels x")
    assert labels.mapping == mapping and labels.class_wnids == tuple(WNIDS)


@pytest.mark.parametrize("lines, reason", [
    (["n00000001 a\n", "n00000001 a again\n"],
     "line 2: n00000001 is repeated or out of sorted order; the standard class index needs the "
     "sorted Kaggle mapping"),
    (["n00000002 b\n", "n00000001 a\n"],
     "line 2: n00000001 is repeated or out of sorted order; the standard class index needs the "
     "sorted Kaggle mapping"),
    (["w" * 50 + " long\n"], "line 1 starts with '" + "w" * 40 + "', not a WNID; each line must "
                             "be 'wnid name'"),
])
def test_bad_mapping_lines(tmp_path: Path, lines: list[str], reason: str) -> None:
    """Repeated, unsorted and non-WNID mapping lines, quoted up to 40 characters."""
    path = solution(tmp_path, "img1,n00000001 1 2 3 4\n")
    mapping = tmp_path / "LOC_synset_mapping.txt"
    mapping.write_text("".join(lines))
    assert error(read_kaggle, path, "--labels x") == f"{mapping} {reason}"
