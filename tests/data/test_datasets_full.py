"""Full-size checks: 50,000 empty files labelled from the bundled ground truth.

The blacklist leaves 48,238 images, and the devkit, list and valprep layouts agree image by image
with the sorted-WNID index of the bundled imagenet_wnids.txt (inceval.data.builtin).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inceval.data import builtin
from inceval.data.datasets import load_val_dataset
from inceval.errors import InceValError
from tests.data.test_datasets_builders import (
    GT,
    make_devkit_dir,
    make_flat,
    permuted_ids,
    val_name,
)

N = 50_000


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The bundled ground truth and, derived from it, the expected labels of images 1..50,000."""
    wnids = list(builtin.imagenet_wnids())
    rows = [list(row) for row in builtin.ilsvrc2012_val_wnids()]
    assert [name for name, _ in rows] == [val_name(i) for i in range(1, N + 1)]
    index = {wnid: i for i, wnid in enumerate(wnids)}
    listing = tmp_path_factory.mktemp("truth") / "ILSVRC2012_val_wnid.txt"
    listing.write_text("".join(f"{name} {wnid}\n" for name, wnid in rows))
    return {"wnids": wnids, "wnid_of": [w for _, w in rows],
            "labels": np.array([index[w] for _, w in rows], dtype=np.int64),
            "list": listing, "blacklist": builtin.ilsvrc2014_blacklist_path()}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for tens of thousands of files: in RAM (/dev/shm) when the system has one.

    Creating 50,000 files on a journaled disk takes 10-25 s on a busy machine, about 1-3 s on tmpfs.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and shutil.disk_usage(shm).free > 64 * 2**20):
        yield tmp_path_factory.mktemp("full")
        return
    base = Path(tempfile.mkdtemp(prefix="inceval-full-", dir=shm))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def flat(scratch: Path, truth: dict) -> dict:
    """50,000 empty files in one folder, and a devkit whose IDs are not in WNID order."""
    base = scratch
    start = time.perf_counter()
    root = make_flat(base / "val", (val_name(i) for i in range(1, N + 1)))
    # The notes: ID 1 = n02119789 (kit fox), ID 490 = n01751748 (sea snake, image 1's class).
    ids = permuted_ids(truth["wnids"], {1: "n02119789", 490: "n01751748"})
    id_of = {wnid: i for i, wnid in ids.items()}
    make_devkit_dir(base, ids, [id_of[w] for w in truth["wnid_of"]])
    seconds = time.perf_counter() - start
    assert seconds < 60, f"building 50,000 files took {seconds:.1f} s"
    return {"root": root, "devkit": base / "ILSVRC2012_devkit_t12", "base": base}


def test_blacklist_leaves_48238_images(flat: dict, truth: dict) -> None:
    ds = load_val_dataset(flat["root"], blacklist=truth["blacklist"])
    assert ds.layout == "devkit" and len(ds) == N
    assert int((~ds.blacklisted).sum()) == 48_238
    flagged = {r.image_number for r, f in zip(ds.records, ds.blacklisted, strict=True) if f}
    expected = {int(x) for x in truth["blacklist"].read_text().split()}
    assert flagged == expected and len(flagged) == 1762
    assert bool(ds.blacklisted[19876])  # the notes: the CMYK image 19877 is blacklisted
    assert ds.labels()[0] == 65  # the notes: image 1 is n01751748 -> 65


def test_devkit_and_list_layouts_agree_with_the_wnid_index(flat: dict, truth: dict) -> None:
    kit = load_val_dataset(flat["root"], devkit=flat["devkit"])
    listed = load_val_dataset(flat["root"], labels_file=truth["list"])
    assert listed.layout == "list"
    np.testing.assert_array_equal(kit.labels(), truth["labels"])
    np.testing.assert_array_equal(listed.labels(), truth["labels"])
    assert [r.path for r in kit.records] == [r.path for r in listed.records]
    assert kit.fingerprint() == listed.fingerprint()
    assert kit.class_wnids == listed.class_wnids == tuple(truth["wnids"])


def test_valprep_tree_agrees_with_the_devkit(flat: dict, truth: dict) -> None:
    # Every 10th image (5,000 files) in all 1000 class folders, against the devkit's every:10.
    root = flat["base"] / "valprep"
    for wnid in truth["wnids"]:
        (root / wnid).mkdir(parents=True)
    for i in range(1, N + 1, 10):
        (root / truth["wnid_of"][i - 1] / val_name(i)).touch()
    valprep = load_val_dataset(root, blacklist=truth["blacklist"])
    kit = load_val_dataset(flat["root"], devkit=flat["devkit"], blacklist=truth["blacklist"],
                           subset="every:10")
    assert valprep.layout == "valprep"
    assert [r.image_number for r in valprep.records] == list(range(1, N + 1, 10))
    np.testing.assert_array_equal(valprep.labels(), kit.labels())
    np.testing.assert_array_equal(valprep.blacklisted, kit.blacklisted)
    assert valprep.fingerprint() != kit.fingerprint()  # paths differ: <wnid>/ prefix


def test_ground_truth_with_49999_lines_for_50000_images(flat: dict) -> None:
    short = flat["base"] / "short" / "ILSVRC2012_devkit_t12"
    (short / "data").mkdir(parents=True)
    lines = (flat["devkit"] / GT).read_text().splitlines()
    (short / GT).write_text("\n".join(lines[:-1]) + "\n")
    (short / "data" / "meta.mat").write_bytes((flat["devkit"] / "data" / "meta.mat").read_bytes())
    with pytest.raises(InceValError) as info:
        load_val_dataset(flat["root"], devkit=short)
    assert str(info.value) == (
        f"1 of the 50,000 images in --data {flat['root'].resolve()} have no label in --devkit "
        f"{short} {GT} (first: {val_name(N)}); it has 49,999 lines, line N for image N: use the "
        "devkit of these images")


def test_quick_subsets_of_the_full_set(flat: dict, truth: dict) -> None:
    ds = load_val_dataset(flat["root"], blacklist=truth["blacklist"], subset="per-class:2")
    assert len(ds) == 2000
    assert np.bincount(ds.labels(), minlength=1000).tolist() == [2] * 1000
    # per-class:2 keeps, for each class, its two lowest image numbers.
    first_two: dict[int, list[int]] = {}
    for number, label in enumerate(truth["labels"].tolist(), start=1):
        if len(first_two.setdefault(label, [])) < 2:
            first_two[label].append(number)
    assert [r.image_number for r in ds.records] == sorted(n for v in first_two.values() for n in v)
    assert len(load_val_dataset(flat["root"], subset="every:50", limit=999)) == 999
