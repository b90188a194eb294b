"""Every way a dataset can be wrong ends in one InceValError line naming the input and the fix."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

from inceval.data import builtin
from inceval.data.datasets import load_val_dataset
from inceval.errors import InceValError
from tests.data.test_datasets_builders import (
    GT,
    fake_wnids,
    kaggle_tree,
    make_class_folders,
    make_devkit_dir,
    make_devkit_tar,
    make_flat,
    permuted_ids,
    touch,
    val_name,
    write_meta_mat,
    write_solution_csv,
    write_synset_mapping,
)

WNIDS = fake_wnids()
IDS = permuted_ids(WNIDS)


def error_of(*args, **kwargs) -> str:
    with pytest.raises(InceValError) as info:
        load_val_dataset(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture()
def tmp(tmp_path: Path) -> Path:
    return tmp_path.resolve()


# --- the root and the options -------------------------------------------------------------------


def test_nonexistent_root(tmp: Path) -> None:
    assert error_of(tmp / "nope") == (f"--data {tmp / 'nope'} does not exist; pass the ImageNet "
                                      "validation folder")


def test_root_that_is_a_file(tmp: Path) -> None:
    path = touch(tmp / "x.JPEG")
    assert error_of(path) == f"--data {path} is not a folder; pass the folder holding the images"


@pytest.mark.parametrize("where", ["top", "subfolder"])
def test_symlink_loop_is_named(tmp: Path, where: str) -> None:
    # os.DirEntry.is_dir()/is_file() raise on a symlink loop; that is one line, not a traceback.
    root = tmp / "val"
    folder = root / "sub" if where == "subfolder" else root
    touch(root / "a.jpg")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop1.jpg").symlink_to(folder / "loop2.jpg")
    (folder / "loop2.jpg").symlink_to(folder / "loop1.jpg")
    message = error_of(root)
    assert message.startswith(f"{folder / 'loop'}") and "cannot be read (" in message
    assert message.endswith("); fix or remove it")


@pytest.mark.parametrize("layout", ["auto", "valprep", "devkit"])
def test_empty_directory(tmp: Path, layout: str) -> None:
    root = tmp / "val"
    # Non-image files and empty class folders are no images.
    make_class_folders(root, WNIDS if layout == "valprep" else [], {})
    touch(root / "README.txt")
    touch(root / ".hidden.JPEG")
    make_devkit_dir(tmp, IDS, [1])
    assert error_of(root, layout=layout) == (f"--data {root} holds no images (.JPEG, .jpg, .jpeg, "
                                             ".png); pass the validation image folder")


def test_unknown_layout(tmp: Path) -> None:
    assert error_of(make_flat(tmp / "v", []), layout="flat") == (
        "--layout 'flat' is unknown; choose auto or one of valprep, devkit, kaggle, list, "
        "imagenetv2, ilsvrc2012")


def test_devkit_and_labels_together(tmp: Path) -> None:
    root = make_flat(tmp / "val", [val_name(1)])
    kit, listing = make_devkit_dir(tmp, IDS, [1]), touch(tmp / "l.txt")
    assert error_of(root, devkit=kit, labels_file=listing) == (
        "--devkit and --labels are two label sources; pass only one")


def test_missing_label_files(tmp: Path) -> None:
    root = make_flat(tmp / "val", [val_name(1)])
    assert error_of(root, devkit=tmp / "kit") == (
        f"--devkit {tmp / 'kit'} does not exist; check the path")
    assert error_of(root, labels_file=tmp / "l.txt") == (
        f"--labels {tmp / 'l.txt'} does not exist; check the path")
    assert error_of(root, labels_file=tmp) == (
        f"--labels {tmp} is not a file; pass the label file itself")


def test_options_the_layout_does_not_use(tmp: Path) -> None:
    root = make_class_folders(tmp / "val", WNIDS, {WNIDS[0]: [val_name(1)]})
    kit, listing = make_devkit_dir(tmp / "kit", IDS, [1]), touch(tmp / "l.txt")
    assert error_of(root, layout="valprep", devkit=kit) == (
        "--devkit is used only by --layout devkit, not valprep; drop it")
    assert error_of(root, layout="devkit", labels_file=listing) == (
        "--labels is used only by --layout kaggle or list, not devkit; drop it")
    assert error_of(root, layout="imagenetv2", labels_file=listing) == (
        "--labels is used only by --layout kaggle or list, not imagenetv2; drop it")
    assert error_of(root, layout="list") == (
        "--layout list needs --labels FILE with 'relative/path label' lines")


# --- layout detection ----------------------------------------------------------------------------


def test_ambiguous_images_at_top_and_in_folders(tmp: Path) -> None:
    root = make_class_folders(tmp / "val", WNIDS, {WNIDS[4]: [val_name(2)]})
    touch(root / val_name(1))
    assert error_of(root) == (f"cannot detect the layout: --data {root} holds images both directly "
                              f"and in subfolders (e.g. {WNIDS[4]}/); point --data at one of them "
                              "or pass --layout")


def test_ambiguous_two_devkits_beside_root(tmp: Path) -> None:
    root = make_flat(tmp / "val", [val_name(1)])
    kit, archive = make_devkit_dir(tmp, IDS, [1]), make_devkit_tar(tmp, IDS, [1])
    expected_sources = f"{kit}, {archive}"
    assert error_of(root) == (f"cannot detect the layout: several label sources found for --data "
                              f"{root} ({expected_sources}); pass --devkit or --labels to choose "
                              "one")
    assert error_of(root, layout="devkit") == (f"--layout devkit found several label sources "
                                               f"({expected_sources}); pass --devkit to choose one")
    assert load_val_dataset(root, devkit=archive).labels().tolist() == [WNIDS.index(IDS[1])]


def test_ambiguous_devkit_and_kaggle_csv(tmp: Path) -> None:
    root = make_flat(tmp / "val", [val_name(1)])
    kit = make_devkit_dir(tmp, IDS, [1])
    csv = write_solution_csv(tmp / "LOC_val_solution.csv", {val_name(1)[:-5]: WNIDS[0]})
    assert error_of(root) == (f"cannot detect the layout: several label sources found for --data "
                              f"{root} ({kit}, {csv}); pass --devkit or --labels to choose one")


def test_folder_neither_wnid_nor_number(tmp: Path) -> None:
    root = make_class_folders(tmp / "val", ["n01440764", "cats"], {"n01440764": ["a.jpg"],
                                                                   "cats": ["b.jpg"]})
    assert error_of(root) == (f"cannot detect the layout: folder cats/ in --data {root} is neither "
                              "a WNID nor a class number; pass --layout list with --labels FILE")


def test_mixed_wnid_and_number_folders(tmp: Path) -> None:
    root = make_class_folders(tmp / "val", ["n01440764", "7"], {"n01440764": ["a.jpg"],
                                                                "7": ["b.jpg"]})
    assert error_of(root) == (f"cannot detect the layout: --data {root} mixes WNID folders and "
                              "class-number folders; keep one kind or pass --layout")


def test_flat_images_without_labels(tmp: Path) -> None:
    root = make_flat(tmp / "val", ["a.JPEG", "b.JPEG"])
    assert error_of(root) == (f"--data {root} holds 2 images in one folder but no labels were "
                              "found beside it; pass --devkit ILSVRC2012_devkit_t12 (folder or "
                              ".tar.gz) or --labels FILE")
    root = make_flat(tmp / "val2", [val_name(1), "b.JPEG"])  # one file without a number
    assert error_of(root).startswith(f"--data {root} holds 2 images in one folder but no labels")
    assert error_of(root, layout="ilsvrc2012") == (
        f"b.JPEG in --data {root} is not named ILSVRC2012_val_%08d (1..50,000); the bundled "
        "ground truth labels images by that number: pass --labels FILE or --devkit for other "
        "images")
    root = make_flat(tmp / "val3", [val_name(1), val_name(50_001)])  # beyond the 50,000
    assert error_of(root).startswith(f"--data {root} holds 2 images in one folder but no labels")


def test_flat_ilsvrc_files_without_devkit_take_the_bundled_labels_for_quick_runs(tmp: Path) -> None:
    root = make_flat(tmp / "val", [val_name(1), val_name(2)])
    assert error_of(root) == (
        f"the bundled ILSVRC-2012 ground truth labels 50,000 images but 49,998 are missing from "
        f"--data {root} (first: image 3); copy the complete set, or pass --limit/--subset to "
        "evaluate the images present")
    # Image 1 is a sea snake (class 65); image 2 is n09193705 (alp) in the published ground truth.
    for dataset in (load_val_dataset(root, limit=2), load_val_dataset(root, subset="every:1"),
                    load_val_dataset(root, layout="ilsvrc2012", limit=5)):
        assert dataset.layout == "ilsvrc2012"
        assert dataset.labels().tolist() == [65, builtin.imagenet_wnids().index("n09193705")]
        assert dataset.label_source == "bundled ILSVRC-2012 validation ground truth"
    # The bundled blacklist by name: image 36 is its first entry.
    flagged = make_flat(tmp / "flagged", [val_name(35), val_name(36)])
    dataset = load_val_dataset(flagged, blacklist="ilsvrc2014", limit=2)
    assert dataset.blacklisted.tolist() == [False, True]
    assert dataset.blacklist_source == builtin.ilsvrc2014_blacklist_path()
    assert error_of(root, layout="devkit") == (f"--layout devkit found no ILSVRC2012_devkit_t12* "
                                               f"inside or beside --data {root}; pass --devkit")
    assert error_of(root, layout="kaggle") == (f"--layout kaggle found no LOC_val_solution.csv in "
                                               f"or up to 4 folders above --data {root}; pass "
                                               "--labels")


# --- valprep -------------------------------------------------------------------------------------


def test_valprep_incomplete_copy(tmp: Path) -> None:
    root = make_class_folders(tmp / "val", WNIDS[:998], {WNIDS[0]: [val_name(1)]})
    assert error_of(root) == (f"--data {root} has 998 WNID class folders, not 1000 (nor the 200 "
                              "of ImageNet-A or ImageNet-R); the class index is the folder's "
                              "position among all 1000, so copy the complete validation set")


def test_valprep_images_in_a_non_wnid_folder(tmp: Path) -> None:
    root = make_class_folders(tmp / "val", [*WNIDS, "empty_extra"],
                              {WNIDS[0]: [val_name(1)], "extra": [val_name(2)]})
    assert error_of(root, layout="valprep") == (
        f"folder extra/ in --data {root} holds images but is not a WNID (n + 8 digits); the "
        "valprep layout needs root/<wnid>/ folders only")
    (root / "extra" / val_name(2)).unlink()  # an empty non-WNID folder is harmless
    assert load_val_dataset(root).labels().tolist() == [0]


def test_valprep_with_flat_images(tmp: Path) -> None:
    root = make_flat(tmp / "val", [val_name(1)])
    assert error_of(root, layout="valprep") == (
        f"--data {root} holds 1 images directly (e.g. {val_name(1)}); the valprep layout keeps "
        "them in root/<wnid>/ folders")


def test_same_image_in_two_class_folders(tmp: Path) -> None:
    root = make_class_folders(tmp / "val", WNIDS, {WNIDS[0]: [val_name(7)],
                                                   WNIDS[1]: [val_name(7, "png")]})
    assert error_of(root) == (f"{WNIDS[0]}/{val_name(7)} and {WNIDS[1]}/{val_name(7, 'png')} in "
                              f"--data {root} are both image 7; remove the copy")


# --- imagenetv2 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("folder, label", [("1000", 1000), ("-1", -1)])
def test_imagenetv2_class_folder_out_of_range(tmp: Path, folder: str, label: int) -> None:
    root = make_class_folders(tmp / "v2", [str(i) for i in range(1000)], {folder: ["a.jpeg"]})
    assert error_of(root) == (f"folder {folder}/ in --data {root} is class {label}, outside "
                              "0..999; the imagenetv2 layout needs folders 0..999")


def test_imagenetv2_two_folders_for_one_class(tmp: Path) -> None:
    root = make_class_folders(tmp / "v2", [str(i) for i in range(1000)], {"007": ["a.jpeg"]})
    assert error_of(root) == (f"folders 007/ and 7/ in --data {root} are both class 7; keep one")


def test_imagenetv2_missing_class_folders(tmp: Path) -> None:
    root = make_class_folders(tmp / "v2", [str(i) for i in range(999)], {"5": ["a.jpeg"]})
    assert error_of(root) == (f"--data {root} has 999 class folders, not 1000; the imagenetv2 "
                              "layout needs folders 0..999, so copy the complete set")
    touch(root / "n01440764" / "b.jpeg")
    assert error_of(root, layout="imagenetv2") == (
        f"folder n01440764/ in --data {root} holds images but is not a class number; the "
        "imagenetv2 layout needs folders named 0..999")


# --- devkit --------------------------------------------------------------------------------------


def devkit_set(tmp: Path, images: int, gt: list[int]) -> tuple[Path, Path]:
    root = make_flat(tmp / "val", [val_name(i) for i in range(1, images + 1)])
    return root, make_devkit_dir(tmp, IDS, gt)


def test_ground_truth_shorter_than_the_images(tmp: Path) -> None:
    root, kit = devkit_set(tmp, 6, [1, 2, 3, 4, 5])
    assert error_of(root) == (f"1 of the 6 images in --data {root} have no label in {kit} (auto-"
                              f"detected) {GT} (first: {val_name(6)}); it has 5 lines, line N "
                              "for image N: use the devkit of these images")


def test_ground_truth_longer_than_the_images(tmp: Path) -> None:
    root, kit = devkit_set(tmp, 4, [1, 2, 3, 4, 5, 6])
    (root / val_name(2)).unlink()
    assert error_of(root, devkit=kit) == (
        f"--devkit {kit} {GT} labels 6 images but 3 are missing from --data {root} (first: image "
        "2); copy the complete set, or pass --limit/--subset to evaluate the images present")
    quick = load_val_dataset(root, devkit=kit, limit=10)
    assert [r.image_number for r in quick.records] == [1, 3, 4]
    assert quick.labels().tolist() == [WNIDS.index(IDS[i]) for i in (1, 3, 4)]


@pytest.mark.parametrize("line, message", [
    ("0", "has class ID 0, outside 1..1000; use an unmodified ILSVRC2012 devkit"),
    ("1001", "has class ID 1001, outside 1..1000; use an unmodified ILSVRC2012 devkit"),
    ("n01440764", "is 'n01440764', not a class ID; line N must hold the ILSVRC2012_ID of image N"),
    ("", "is '', not a class ID; line N must hold the ILSVRC2012_ID of image N"),
])
def test_bad_ground_truth_line(tmp: Path, line: str, message: str) -> None:
    root, kit = devkit_set(tmp, 3, [1, 2, 3])
    (kit / GT).write_text(f"1\n{line}\n3\n")
    assert error_of(root, devkit=kit) == f"--devkit {kit} {GT} line 2 {message}"


def test_meta_mat_with_999_classes(tmp: Path) -> None:
    root, kit = devkit_set(tmp, 1, [1])
    write_meta_mat(kit / "data" / "meta.mat", {i: w for i, w in IDS.items() if i != 1000})
    assert error_of(root, devkit=kit) == (
        f"--devkit {kit} data/meta.mat defines 999 classes, not 1000 (a class index is the "
        "position among all 1000 sorted WNIDs); use an unmodified ILSVRC2012 devkit")


def test_meta_mat_without_synsets(tmp: Path) -> None:
    import numpy as np
    import scipy.io

    root, kit = devkit_set(tmp, 1, [1])
    scipy.io.savemat(kit / "data" / "meta.mat", {"classes": np.arange(3)})
    assert error_of(root, devkit=kit) == (
        f"--devkit {kit} data/meta.mat has no synsets struct with ILSVRC2012_ID, WNID and "
        "num_children; use an unmodified ILSVRC2012 devkit")
    (kit / "data" / "meta.mat").write_bytes(b"not a mat file")
    assert error_of(root, devkit=kit).startswith(f"--devkit {kit} data/meta.mat cannot be read (")


def test_devkit_missing_members(tmp: Path) -> None:
    root, kit = devkit_set(tmp, 1, [1])
    (kit / "data" / "meta.mat").unlink()
    assert error_of(root, devkit=kit) == (f"--devkit {kit} has no data/meta.mat; pass the "
                                          "ILSVRC2012_devkit_t12 folder that holds data/ (or its "
                                          ".tar.gz)")
    archive = tmp / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(kit / GT, arcname=f"ILSVRC2012_devkit_t12/{GT}")
    assert error_of(root, devkit=archive) == (
        f"--devkit {archive} holds no data/meta.mat; pass ILSVRC2012_devkit_t12.tar.gz or the "
        "extracted folder")
    broken = tmp / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b garbage")
    assert error_of(root, devkit=broken).startswith(f"--devkit {broken} is not a readable tar "
                                                    "archive (")


def test_devkit_without_scipy(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, kit = devkit_set(tmp, 1, [1])
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    assert error_of(root, devkit=kit) == (f"reading data/meta.mat of --devkit {kit} needs scipy: "
                                          "pip install 'inceval[devkit]' (or use --labels with a "
                                          "list file)")


def test_devkit_file_without_an_image_number(tmp: Path) -> None:
    root, kit = devkit_set(tmp, 2, [1, 2])
    touch(root / "photo.jpg")
    assert error_of(root, devkit=kit) == (f"photo.jpg in --data {root} is not named "
                                          "ILSVRC2012_val_%08d; the devkit layout labels images by "
                                          "that number")


def test_devkit_same_number_twice(tmp: Path) -> None:
    root, kit = devkit_set(tmp, 2, [1, 2])
    touch(root / val_name(2, "png"))
    assert error_of(root, devkit=kit) == (
        f"{val_name(2)} and {val_name(2, 'png')} in --data {root} are the same entry of --devkit "
        f"{kit} {GT}; remove one")


def test_devkit_images_in_a_subfolder(tmp: Path) -> None:
    root, kit = devkit_set(tmp, 2, [1, 2])
    touch(root / "more" / val_name(3))
    assert error_of(root, devkit=kit) == (
        f"--data {root} has images in subfolder more/; the devkit layout needs every image "
        "directly in --data")


# --- kaggle --------------------------------------------------------------------------------------


def kaggle_set(tmp: Path, rows: dict[int, str], images: int = 3,
               mapping: bool = True) -> tuple[Path, Path]:
    val = make_flat(kaggle_tree(tmp / "k"), [val_name(i) for i in range(1, images + 1)])
    csv = write_solution_csv(tmp / "k" / "LOC_val_solution.csv",
                             {val_name(i)[:-5]: w for i, w in rows.items()})
    if mapping:
        write_synset_mapping(tmp / "k" / "LOC_synset_mapping.txt", WNIDS)
    return val, csv


def test_kaggle_wrong_header(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0], 2: WNIDS[1], 3: WNIDS[2]})
    csv.write_text("ImageId,Label\nILSVRC2012_val_00000001,n01440764\n")
    assert error_of(val, labels_file=csv, layout="kaggle") == (
        f"--labels {csv} does not start with the header ImageId,PredictionString; pass Kaggle's "
        "LOC_val_solution.csv (or use --layout list for a plain list)")


def test_kaggle_duplicate_image(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0]})
    csv.write_text(f"ImageId,PredictionString\nILSVRC2012_val_00000001,{WNIDS[0]} 1 2 3 4\n"
                   f"ILSVRC2012_val_00000002,{WNIDS[1]} 1 2 3 4\n"
                   f"ILSVRC2012_val_00000001,{WNIDS[2]} 1 2 3 4\n")
    assert error_of(val) == (f"{csv} (auto-detected) line 4: ILSVRC2012_val_00000001 is listed "
                             "twice (first on line 2); remove the duplicate")


def test_kaggle_unknown_wnid(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0], 2: "n00000001", 3: WNIDS[2]})
    line = 1 + [r.split(",")[0] for r in csv.read_text().splitlines()].index(
        "ILSVRC2012_val_00000002")
    assert error_of(val, labels_file=csv) == (
        f"--labels {csv} line {line}: ILSVRC2012_val_00000002 has WNID n00000001, which is not in "
        f"{csv.parent / 'LOC_synset_mapping.txt'}; use the mapping that came with the CSV")


def test_kaggle_without_mapping_and_fewer_classes(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0], 2: WNIDS[5], 3: WNIDS[0]}, mapping=False)
    assert error_of(val, labels_file=csv) == (
        f"--labels {csv} defines 2 classes, not 1000 (a class index is the position among all 1000 "
        "sorted WNIDs); put LOC_synset_mapping.txt beside it or use the complete CSV")


def test_kaggle_bad_mapping(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0], 2: WNIDS[1], 3: WNIDS[2]})
    mapping = csv.parent / "LOC_synset_mapping.txt"
    write_synset_mapping(mapping, [WNIDS[1], WNIDS[0], *WNIDS[2:]])
    assert error_of(val) == (f"{mapping} line 2: {WNIDS[0]} is repeated or out of sorted order; "
                             "the standard class index needs the sorted Kaggle mapping")
    write_synset_mapping(mapping, WNIDS[:-1])
    assert error_of(val) == (f"{mapping} defines 999 classes, not 1000 (a class index is the "
                             "position among all 1000 sorted WNIDs); use Kaggle's complete mapping "
                             "file")
    mapping.write_text("tench n01440764\n")
    assert error_of(val) == (f"{mapping} line 1 starts with 'tench', not a WNID; each line must be "
                             "'wnid name'")


def test_kaggle_malformed_row(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0]})
    csv.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,\n")
    assert error_of(val) == (f"{csv} (auto-detected) line 2 is not 'ImageId,PredictionString' "
                             "with a WNID first; pass an unmodified LOC_val_solution.csv")
    csv.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,cat 1 2 3 4\n")
    assert error_of(val) == (f"{csv} (auto-detected) line 2: 'cat' is not a WNID; pass an "
                             "unmodified LOC_val_solution.csv")


def test_kaggle_image_without_a_row(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0], 3: WNIDS[2]})
    assert error_of(val) == (f"1 of the 3 images in --data {val} have no label in {csv} (auto-"
                             f"detected) (first: {val_name(2)}); use the CSV that belongs to these "
                             "images")


def test_kaggle_rows_without_images(tmp: Path) -> None:
    val, csv = kaggle_set(tmp, {1: WNIDS[0], 2: WNIDS[1], 3: WNIDS[2], 4: WNIDS[3]})
    assert error_of(val, labels_file=csv) == (
        f"--labels {csv} labels 4 images but 1 are missing from --data {val} (first: "
        "ILSVRC2012_val_00000004); copy the complete set, or pass --limit/--subset to evaluate the "
        "images present")
    assert load_val_dataset(val, subset="every:1").labels().tolist() == [0, 1, 2]


# --- list ----------------------------------------------------------------------------------------


def list_set(tmp: Path, text: str, names: list[str]) -> tuple[Path, Path]:
    root = make_flat(tmp / "imgs", names)
    listing = tmp / "val.txt"
    listing.write_text(text)
    return root, listing


@pytest.mark.parametrize("text, message", [
    ("a.jpg 3\nb.jpg 1000\n", "line 2 has label 1000, outside 0..999; labels are sorted-WNID class "
                              "indices"),
    ("a.jpg -1\n", "line 1 has label -1, outside 0..999; labels are sorted-WNID class indices"),
    ("a.jpg cat\n", "line 1 has label 'cat', neither a class index 0..999 nor a WNID; fix the "
                    "line"),
    ("a.jpg 3\nb.jpg\n", "line 2 is 'b.jpg', not 'relative/path label'; give one image and its "
                         "label per line"),
    ("a.jpg 3\n./a.jpg 4\n", "line 2: a.jpg is listed twice (first on line 1); remove the "
                             "duplicate"),
    ("a.jpg 3\nb.jpg n01440764\n", "line 2 has a WNID label but earlier lines have integer labels; "
                                   "use one kind throughout"),
    ("a.jpg n01440764\nb.jpg n01443537\n", "defines 2 classes, not 1000 (a class index is the "
     "position among all 1000 sorted WNIDs); WNID labels need every class present; use integer "
     "labels 0..999 for a partial list"),
    ("/abs/a.jpg 3\n", "line 1: '/abs/a.jpg' must be a path relative to --data, with / separators "
                       "and no '..'"),
    ("../a.jpg 3\n", "line 1: '../a.jpg' must be a path relative to --data, with / separators and "
                     "no '..'"),
    ("# only a comment\n", "lists no images; give one 'relative/path label' per line"),
])
def test_bad_list_file(tmp: Path, text: str, message: str) -> None:
    root, listing = list_set(tmp, text, ["a.jpg", "b.jpg"])
    assert error_of(root, labels_file=listing) == f"--labels {listing} {message}"


def test_list_misses_an_image_on_disk(tmp: Path) -> None:
    root, listing = list_set(tmp, "a.jpg 3\n", ["a.jpg", "b.jpg"])
    touch(root / "sub" / "c.png")
    assert error_of(root, labels_file=listing) == (
        f"2 of the 3 images in --data {root} have no label in --labels {listing} (first: b.jpg); "
        "add them or move them out of --data")


def test_list_names_an_absent_image(tmp: Path) -> None:
    root, listing = list_set(tmp, "a.jpg 3\nb.jpg 4\nc.jpg 5\n", ["a.jpg", "c.jpg"])
    assert error_of(root, labels_file=listing) == (
        f"--labels {listing} labels 3 images but 1 are missing from --data {root} (first: b.jpg); "
        "copy the complete set, or pass --limit/--subset to evaluate the images present")
    ds = load_val_dataset(root, labels_file=listing, subset="per-class:1")
    assert [(r.path, r.label) for r in ds.records] == [("a.jpg", 3), ("c.jpg", 5)]
