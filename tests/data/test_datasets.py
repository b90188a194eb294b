"""Each layout labels generated trees exactly; order, fingerprint and describe are as documented."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from inceval.data import builtin
from inceval.data.datasets import LAYOUTS, ImageRecord, ValDataset, load_val_dataset
from tests.data.test_datasets_builders import (
    fake_wnids,
    kaggle_tree,
    make_class_folders,
    make_devkit_dir,
    make_devkit_tar,
    make_flat,
    permuted_ids,
    touch,
    val_name,
    write_solution_csv,
    write_synset_mapping,
)

WNIDS = fake_wnids()
IDS = permuted_ids(WNIDS)  # ILSVRC2012_ID -> WNID, not in WNID order
ID_OF = {wnid: i for i, wnid in IDS.items()}
# Image i (1-based) of the small devkit sets has class WNIDS[CLASSES[i - 1]].
CLASSES = [65, 278, 0, 999, 65, 500]


def real_wnids() -> list[str]:
    return list(builtin.imagenet_wnids())


def small_devkit(tmp_path: Path, archive: bool = False) -> tuple[Path, Path]:
    """Flat val with images 1..6 (created out of order) and a devkit beside it."""
    root = make_flat(tmp_path / "val", [val_name(i) for i in (4, 2, 6, 1, 5, 3)])
    gt = [ID_OF[WNIDS[c]] for c in CLASSES]
    make = make_devkit_tar if archive else make_devkit_dir
    return root, make(tmp_path, IDS, gt)


def test_layouts_are_the_six_documented_ones() -> None:
    assert list(LAYOUTS) == ["valprep", "devkit", "kaggle", "list", "imagenetv2", "ilsvrc2012"]
    assert all(isinstance(text, str) and "\n" not in text and text for text in LAYOUTS.values())


def test_valprep_label_is_the_sorted_folder_position(tmp_path: Path) -> None:
    assert WNIDS == sorted(WNIDS)
    images = {WNIDS[999]: [val_name(1, "jpeg")], WNIDS[500]: [val_name(2, "png"), "notes.txt",
              ".hidden.JPEG"], WNIDS[0]: [val_name(3, "JPG")]}
    root = make_class_folders(tmp_path / "val", reversed(WNIDS), images)
    ds = load_val_dataset(root)
    assert ds.layout == "valprep"
    assert [r.path for r in ds.records] == [f"{WNIDS[999]}/{val_name(1, 'jpeg')}",
                                            f"{WNIDS[500]}/{val_name(2, 'png')}",
                                            f"{WNIDS[0]}/{val_name(3, 'JPG')}"]
    assert ds.labels().tolist() == [999, 500, 0]
    assert [r.image_number for r in ds.records] == [1, 2, 3]
    assert ds.class_wnids == tuple(WNIDS)
    assert ds.label_source == "WNID folder names"


def test_valprep_real_wnids_give_the_standard_indices(tmp_path: Path) -> None:
    wnids = real_wnids()
    # The notes: 0 = n01440764 tench, 65 = n01751748 sea snake, 999 = n15075141 toilet tissue.
    images = {"n15075141": ["b.JPEG"], "n01751748": ["a.JPEG"], "n01440764": ["c.JPEG"]}
    ds = load_val_dataset(make_class_folders(tmp_path / "val", wnids, images), layout="valprep")
    assert dict(zip([r.path for r in ds.records], ds.labels().tolist(), strict=True)) == {
        "n01440764/c.JPEG": 0, "n01751748/a.JPEG": 65, "n15075141/b.JPEG": 999}
    # Without image numbers the order is the sorted path.
    assert [r.path for r in ds.records] == sorted(r.path for r in ds.records)


def test_devkit_folder_maps_ids_through_wnids(tmp_path: Path) -> None:
    root, devkit = small_devkit(tmp_path)
    ds = load_val_dataset(root, devkit=devkit)
    assert ds.layout == "devkit"
    assert [r.path for r in ds.records] == [val_name(i) for i in range(1, 7)]
    assert ds.labels().tolist() == CLASSES
    assert ds.class_wnids == tuple(WNIDS)
    assert ds.label_source == f"devkit {devkit}"


def test_devkit_known_ids_of_the_notes(tmp_path: Path) -> None:
    wnids = real_wnids()
    # The notes: ID 1 = n02119789 kit fox -> index 278; image 1 has ID 490 = n01751748 -> 65.
    ids = permuted_ids(wnids, {1: "n02119789", 490: "n01751748"})
    root = make_flat(tmp_path / "val", [val_name(1), val_name(2)])
    make_devkit_dir(tmp_path, ids, [490, 1])
    ds = load_val_dataset(root)  # the devkit beside root is found
    assert ds.labels().tolist() == [65, 278]
    assert ds.class_wnids[65] == "n01751748" and ds.class_wnids[278] == "n02119789"


def test_devkit_archive_is_read_without_extracting(tmp_path: Path) -> None:
    root, archive = small_devkit(tmp_path, archive=True)
    assert archive.name == "ILSVRC2012_devkit_t12.tar.gz"
    for ds in (load_val_dataset(root, devkit=archive), load_val_dataset(root)):
        assert ds.layout == "devkit"
        assert ds.labels().tolist() == CLASSES
        assert ds.label_source == f"devkit {archive}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ILSVRC2012_devkit_t12.tar.gz", "val"]


def test_devkit_inside_root_and_its_data_folder_are_accepted(tmp_path: Path) -> None:
    root = make_flat(tmp_path / "val", [val_name(i) for i in range(1, 7)])
    devkit = make_devkit_dir(root, IDS, [ID_OF[WNIDS[c]] for c in CLASSES])
    assert load_val_dataset(root, layout="devkit").labels().tolist() == CLASSES
    assert load_val_dataset(root, devkit=devkit / "data").labels().tolist() == CLASSES


def kaggle_set(tmp_path: Path, mapping: bool = True) -> tuple[Path, Path]:
    top = tmp_path / "imagenet-object-localization-challenge"
    val = make_flat(kaggle_tree(top), [val_name(i) for i in range(1, 6)])
    classes = {1: 10, 2: 999, 3: 0, 4: 10, 5: 500}
    csv = write_solution_csv(top / "LOC_val_solution.csv",
                             {val_name(i)[:-5]: WNIDS[c] for i, c in classes.items()})
    if mapping:
        write_synset_mapping(top / "LOC_synset_mapping.txt", WNIDS)
    return val, csv


def test_kaggle_csv_found_four_levels_up(tmp_path: Path) -> None:
    val, csv = kaggle_set(tmp_path)
    ds = load_val_dataset(val)
    assert ds.layout == "kaggle"
    assert ds.labels().tolist() == [10, 999, 0, 10, 500]
    assert [r.image_number for r in ds.records] == [1, 2, 3, 4, 5]
    assert ds.class_wnids == tuple(WNIDS)
    assert ds.label_source == f"kaggle {csv} + LOC_synset_mapping.txt"
    assert load_val_dataset(val, labels_file=csv).fingerprint() == ds.fingerprint()
    assert load_val_dataset(val, layout="kaggle", labels_file=csv).layout == "kaggle"


def test_kaggle_without_mapping_takes_the_csv_classes(tmp_path: Path) -> None:
    top = tmp_path / "kaggle"
    val = make_flat(kaggle_tree(top), [val_name(i) for i in range(1, 1001)])
    # Image i has class (7 * i) % 1000: every class once, in a scrambled order.
    write_solution_csv(top / "LOC_val_solution.csv",
                       {val_name(i)[:-5]: WNIDS[(7 * i) % 1000] for i in range(1, 1001)})
    ds = load_val_dataset(val)
    assert ds.labels().tolist() == [(7 * i) % 1000 for i in range(1, 1001)]
    assert ds.class_wnids == tuple(WNIDS)


def test_list_with_integer_labels_in_a_nested_tree(tmp_path: Path) -> None:
    root = tmp_path / "images"
    for rel in ("b/x 1.JPEG", "a/deep/y.png", "c.jpg"):
        touch(root / rel)
    listing = tmp_path / "val.txt"
    listing.write_text("# path label\nb/x 1.JPEG 7\n\n./a/deep/y.png\t0\nc.jpg 999\n")
    ds = load_val_dataset(root, labels_file=listing)
    assert ds.layout == "list"
    assert [(r.path, r.label) for r in ds.records] == [("a/deep/y.png", 0), ("b/x 1.JPEG", 7),
                                                       ("c.jpg", 999)]
    assert ds.class_wnids is None
    assert ds.label_source == f"list {listing}"


def test_list_with_wnid_labels_uses_sorted_wnids(tmp_path: Path) -> None:
    names = [f"img_{i:04d}.png" for i in range(1000)]
    root = make_flat(tmp_path / "images", names)
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{n} {WNIDS[(37 * i) % 1000]}\n" for i, n in enumerate(names)))
    ds = load_val_dataset(root, layout="list", labels_file=listing)
    assert ds.labels().tolist() == [(37 * i) % 1000 for i in range(1000)]
    assert ds.class_wnids == tuple(WNIDS)


def test_imagenetv2_folder_names_are_integers_not_text(tmp_path: Path) -> None:
    images = {"2": ["f00.jpeg"], "10": ["e11.jpeg"], "100": ["d22.jpeg"], "999": ["a33.jpeg"],
              "0": ["c44.jpeg", "b55.jpeg"]}
    root = make_class_folders(tmp_path / "v2", [str(i) for i in range(1000)], images)
    ds = load_val_dataset(root)
    assert ds.layout == "imagenetv2"
    assert [(r.path, r.label) for r in ds.records] == [
        ("0/b55.jpeg", 0), ("0/c44.jpeg", 0), ("10/e11.jpeg", 10), ("100/d22.jpeg", 100),
        ("2/f00.jpeg", 2), ("999/a33.jpeg", 999)]
    # Text order of the folders would have put "10" at position 2 and "2" at position 112.
    assert sorted(str(i) for i in range(1000)).index("10") == 2
    assert ds.class_wnids is None and ds.label_source == "class-number folder names"


def test_explicit_layout_overrides_detection(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "val", WNIDS, {WNIDS[3]: [val_name(1)]})
    listing = tmp_path / "val.txt"
    listing.write_text(f"{WNIDS[3]}/{val_name(1)} 42\n")
    assert load_val_dataset(root).labels().tolist() == [3]
    ds = load_val_dataset(root, layout="list", labels_file=listing)
    assert ds.layout == "list" and ds.labels().tolist() == [42]


def test_order_is_by_image_number_not_by_name(tmp_path: Path) -> None:
    # Case and extension differ, so sorting names would not give number order.
    names = [val_name(3, "jpg"), val_name(1, "png"), val_name(2, "JPEG"), val_name(10, "jpeg")]
    root = make_flat(tmp_path / "val", names)
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    ds = load_val_dataset(root, labels_file=listing)
    assert [r.image_number for r in ds.records] == [1, 2, 3, 10]
    assert ds.labels().tolist() == [1, 2, 0, 3]


def test_paths_labels_and_flags_have_the_documented_types(tmp_path: Path) -> None:
    root, devkit = small_devkit(tmp_path)
    ds = load_val_dataset(root, devkit=devkit)
    assert len(ds) == 6
    paths = ds.paths()
    assert all(p.is_absolute() and p.is_file() for p in paths)
    assert paths[0] == root.resolve() / val_name(1)
    assert ds.labels().dtype == np.int64
    assert ds.blacklisted.dtype == bool and not ds.blacklisted.any() and not ds.has_blacklist
    with pytest.raises(ValueError):
        ds.blacklisted[0] = True
    assert isinstance(ds.records[0], ImageRecord)


def test_fingerprint_is_sha256_of_path_tab_label_lines(tmp_path: Path) -> None:
    root, devkit = small_devkit(tmp_path)
    ds = load_val_dataset(root, devkit=devkit)
    lines = "".join(f"{val_name(i)}\t{c}\n" for i, c in enumerate(CLASSES, start=1))
    assert ds.fingerprint() == hashlib.sha256(lines.encode()).hexdigest()
    assert load_val_dataset(root, devkit=devkit).fingerprint() == ds.fingerprint()


def test_fingerprint_changes_with_order_or_a_label(tmp_path: Path) -> None:
    root, devkit = small_devkit(tmp_path)
    ds = load_val_dataset(root, devkit=devkit)
    swapped = list(ds.records)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    reordered = ValDataset(ds.root, ds.layout, tuple(swapped), ds.blacklisted, ds.class_wnids,
                           ds.label_source)
    assert reordered.fingerprint() != ds.fingerprint()
    # One ground-truth line changed: image 6 gets another class.
    gt = devkit / "data" / "ILSVRC2012_validation_ground_truth.txt"
    lines = gt.read_text().splitlines()
    lines[5] = str(ID_OF[WNIDS[501]])
    gt.write_text("\n".join(lines) + "\n")
    relabelled = load_val_dataset(root, devkit=devkit)
    assert relabelled.labels().tolist() == CLASSES[:5] + [501]
    assert relabelled.fingerprint() != ds.fingerprint()


def test_describe_is_one_line_with_layout_count_source_and_blacklist(tmp_path: Path) -> None:
    root, devkit = small_devkit(tmp_path)
    blacklist = tmp_path / "blacklist.txt"
    blacklist.write_text("2\n5\n7\n")
    ds = load_val_dataset(root, devkit=devkit, blacklist=blacklist)
    assert ds.describe() == (f"devkit layout, 6 images in {root.resolve()}; labels: devkit "
                             f"{devkit}; blacklist 2 flagged, 4 kept")
    plain = load_val_dataset(root, devkit=devkit)
    assert plain.describe().endswith("; no blacklist")
