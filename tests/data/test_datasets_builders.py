"""Builders of synthetic validation trees for the dataset tests, and checks of the builders.

Images are empty files: the loader never decodes them. The devkit's meta.mat is written with
scipy.io.savemat in the real struct layout (an 1860 x 1 ``synsets`` struct with the devkit's eight
fields; leaf classes have ILSVRC2012_ID 1..1000, inner nodes 1001..1860 with children).
"""

from __future__ import annotations

import csv
import functools
import io
import os
import random
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest

DEVKIT = "ILSVRC2012_devkit_t12"
GT = "data/ILSVRC2012_validation_ground_truth.txt"
META = "data/meta.mat"
SYNSET_FIELDS = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
                 "wordnet_height", "num_train_images")
INNER_NODES = 860  # the real meta.mat has 1860 synsets: 1000 leaves + 860 inner nodes


def val_name(number: int, ext: str = "JPEG") -> str:
    """``ILSVRC2012_val_%08d.<ext>``."""
    return f"ILSVRC2012_val_{number:08d}.{ext}"


def fake_wnids(seed: int = 0) -> list[str]:
    """1000 distinct WNID-shaped strings, sorted (a stand-in for the real class list)."""
    rng = random.Random(seed)
    return sorted({f"n{n:08d}" for n in rng.sample(range(1_000_000, 99_999_999), 1000)})


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def make_flat(root: Path, names: Iterable[str]) -> Path:
    """A flat folder of empty image files."""
    root.mkdir(parents=True, exist_ok=True)
    folder = str(root)
    for name in names:  # os.open, not Path.touch: twice as fast for 50,000 files
        os.close(os.open(os.path.join(folder, name), os.O_CREAT | os.O_WRONLY, 0o644))
    return root


def make_class_folders(root: Path, folders: Iterable[str],
                       images: Mapping[str, Iterable[str]]) -> Path:
    """One folder per name in ``folders`` (valprep WNIDs or ImageNetV2 numbers), plus images."""
    root.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        (root / folder).mkdir(exist_ok=True)
    for folder, names in images.items():
        for name in names:
            touch(root / folder / name)
    return root


def permuted_ids(wnids: list[str], fixed: Mapping[int, str] | None = None,
                 seed: int = 1) -> dict[int, str]:
    """ILSVRC2012_ID (1..1000) -> WNID with IDs in a shuffled, non-WNID order.

    ``fixed`` pins some IDs to WNIDs (e.g. the devkit's real ID 1 = n02119789).
    """
    fixed = dict(fixed or {})
    rest = [w for w in wnids if w not in fixed.values()]
    random.Random(seed).shuffle(rest)
    free = iter(rest)
    return {i: fixed[i] if i in fixed else next(free) for i in range(1, 1001)}


def write_meta_mat(target: Path, id_to_wnid: Mapping[int, str]) -> None:
    """Write meta.mat with the devkit's ``synsets`` struct (leaves first, then inner nodes)."""
    target.write_bytes(meta_mat_bytes(tuple(sorted(id_to_wnid.items()))))


@functools.lru_cache(maxsize=8)
def meta_mat_bytes(id_to_wnid: tuple[tuple[int, str], ...]) -> bytes:
    """The contents of meta.mat for sorted (ID, WNID) pairs; cached, as savemat is slow."""
    import scipy.io

    dtype = [(f, object) for f in SYNSET_FIELDS]
    synsets = np.zeros((len(id_to_wnid) + INNER_NODES, 1), dtype=dtype)
    for row, (ilsvrc_id, wnid) in enumerate(id_to_wnid):
        synsets[row, 0] = _synset(ilsvrc_id, wnid, children=[])
    for k in range(INNER_NODES):
        ilsvrc_id = 1001 + k
        children = [1 + (k % 1000), 1 + ((k + 1) % 1000)]
        synsets[len(id_to_wnid) + k, 0] = _synset(ilsvrc_id, f"n{90_000_000 + k:08d}", children)
    out = io.BytesIO()
    scipy.io.savemat(out, {"synsets": synsets})
    return out.getvalue()


def _synset(ilsvrc_id: int, wnid: str, children: list[int]) -> tuple:
    return (np.array([[ilsvrc_id]], dtype=np.uint16), np.array([wnid]), np.array([f"words {wnid}"]),
            np.array([f"gloss {wnid}"]), np.array([[len(children)]], dtype=np.uint8),
            np.array([children], dtype=np.uint16).reshape(1, -1),
            np.array([[0 if not children else 1]], dtype=np.uint8),
            np.array([[1300 if not children else 0]], dtype=np.uint16))


def make_devkit_dir(parent: Path, id_to_wnid: Mapping[int, str], gt_ids: Iterable[int],
                    name: str = DEVKIT) -> Path:
    """An extracted devkit folder: data/ILSVRC2012_validation_ground_truth.txt and data/meta.mat."""
    devkit = parent / name
    (devkit / "data").mkdir(parents=True, exist_ok=True)
    (devkit / GT).write_text("".join(f"{i}\n" for i in gt_ids))
    write_meta_mat(devkit / META, id_to_wnid)
    return devkit


def make_devkit_tar(parent: Path, id_to_wnid: Mapping[int, str], gt_ids: Iterable[int],
                    name: str = DEVKIT + ".tar.gz") -> Path:
    """The devkit archive as distributed: members under ILSVRC2012_devkit_t12/."""
    meta = meta_mat_bytes(tuple(sorted(id_to_wnid.items())))
    members = {GT: "".join(f"{i}\n" for i in gt_ids).encode(), META: meta,
               "readme.txt": b"devkit readme\n"}
    path = parent / name
    parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(f"{DEVKIT}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_solution_csv(path: Path, rows: Mapping[str, str], seed: int = 2) -> Path:
    """LOC_val_solution.csv: ImageId -> WNID, rows shuffled, each with two boxes as on Kaggle."""
    items = list(rows.items())
    random.Random(seed).shuffle(items)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ImageId", "PredictionString"])
        for image_id, wnid in items:
            writer.writerow([image_id, f"{wnid} 10 20 200 300 {wnid} 5 5 50 60 "])
    return path


def write_synset_mapping(path: Path, wnids: Iterable[str]) -> Path:
    path.write_text("".join(f"{w} name of {w}, another name\n" for w in wnids))
    return path


def kaggle_tree(top: Path) -> Path:
    """Kaggle's folder for the validation images: <top>/ILSVRC/Data/CLS-LOC/val."""
    val = top / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True, exist_ok=True)
    return val


# --- checks of the builders themselves --------------------------------------------------------


def test_meta_mat_has_the_devkit_struct_layout(tmp_path: Path) -> None:
    import scipy.io

    wnids = fake_wnids()
    write_meta_mat(tmp_path / "meta.mat", permuted_ids(wnids))
    raw = scipy.io.loadmat(tmp_path / "meta.mat")["synsets"]
    assert raw.shape == (1860, 1)
    assert raw.dtype.names == SYNSET_FIELDS
    assert raw[0, 0]["ILSVRC2012_ID"].shape == (1, 1)
    assert raw[0, 0]["WNID"][0] in wnids
    leaves = [int(s["ILSVRC2012_ID"][0, 0]) for s in raw[:, 0] if int(s["num_children"][0, 0]) == 0]
    assert sorted(leaves) == list(range(1, 1001))


def test_permuted_ids_differ_from_wnid_order_and_keep_pins() -> None:
    wnids = fake_wnids()
    ids = permuted_ids(wnids, {1: wnids[278], 490: wnids[65]})
    assert sorted(ids.values()) == wnids
    assert ids[1] == wnids[278] and ids[490] == wnids[65]
    assert [ids[i] for i in range(1, 1001)] != wnids


def test_devkit_tar_holds_members_under_top_folder(tmp_path: Path) -> None:
    path = make_devkit_tar(tmp_path, permuted_ids(fake_wnids()), [3, 2, 1])
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        assert {f"{DEVKIT}/{GT}", f"{DEVKIT}/{META}"} <= names
        assert tar.extractfile(f"{DEVKIT}/{GT}").read() == b"3\n2\n1\n"


@pytest.mark.parametrize("number, expected", [(1, "ILSVRC2012_val_00000001.JPEG"),
                                              (50000, "ILSVRC2012_val_00050000.JPEG")])
def test_val_name(number: int, expected: str) -> None:
    assert val_name(number) == expected
