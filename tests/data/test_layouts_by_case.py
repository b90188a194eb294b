"""Layout planning and labelling, case by case: explicit layouts with found sources, the
ImageNet-A subset of valprep, the bundled ILSVRC-2012 labels and ImageNetV2 folders.

Images are empty files (only names matter to the layouts); expected values are written out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inceval.data import builtin
from inceval.data.layouts import Plan, label_images, plan_layout
from inceval.data.scan import scan_two_levels
from inceval.errors import InceValError
from tests.data.test_datasets_builders import fake_wnids, touch

DEVKIT = "ILSVRC2012_devkit_t12"
NO_IMAGES = "holds no images (.JPEG, .jpg, .jpeg, .png); pass the validation image folder"


def flat(root: Path, *names: str) -> Path:
    """A flat folder of empty image files."""
    for name in names:
        touch(root / name)
    return root


def test_explicit_devkit_layout_with_and_without_the_option(tmp_path: Path) -> None:
    """--layout devkit: the --devkit given, else the one devkit found beside --data."""
    root = flat(tmp_path / "val", "ILSVRC2012_val_00000001.JPEG")
    kit = tmp_path / DEVKIT
    kit.mkdir()
    scan = scan_two_levels(root)
    assert plan_layout(root, scan, "devkit", kit, None) == Plan("devkit", kit, False)
    assert plan_layout(root, scan, "devkit", None, None) == Plan("devkit", kit, True)


def test_explicit_kaggle_layout_finds_the_csv(tmp_path: Path) -> None:
    """--layout kaggle without --labels: the one LOC_val_solution.csv found above --data."""
    root = flat(tmp_path / "val", "a.JPEG")
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\n")
    scan = scan_two_levels(root)
    assert plan_layout(root, scan, "kaggle", None, None) == Plan("kaggle", csv, True)
    assert plan_layout(root, scan, "kaggle", None, csv) == Plan("kaggle", csv, False)
    # auto with a --labels file that starts with the Kaggle header: the kaggle layout
    assert plan_layout(root, scan, "auto", None, csv) == Plan("kaggle", csv, False)


def test_a_found_devkit_is_named_as_auto_detected(tmp_path: Path) -> None:
    """Errors about a devkit found by search name it '<path> (auto-detected)'."""
    root = flat(tmp_path / "val", "ILSVRC2012_val_00000001.JPEG")
    kit = tmp_path / DEVKIT
    kit.mkdir()
    scan = scan_two_levels(root)
    with pytest.raises(InceValError) as info:
        label_images(root, scan, Plan("devkit", kit, True), partial_ok=True)
    assert str(info.value).startswith(f"{kit} (auto-detected) has no data/")
    with pytest.raises(InceValError) as info:
        label_images(root, scan, Plan("devkit", kit, False), partial_ok=True)
    assert str(info.value).startswith(f"--devkit {kit} has no data/")


def test_kaggle_without_mapping_and_dotted_image_ids(tmp_path: Path) -> None:
    """ImageIds are file names without their last extension, dots included; no mapping file
    means the label source names only the CSV."""
    wnids = fake_wnids()
    csv = tmp_path / "labels" / "LOC_val_solution.csv"
    csv.parent.mkdir()
    csv.write_text("ImageId,PredictionString\n"
                   + "".join(f"img{i}.v2,{w} 1 2 3 4\n" for i, w in enumerate(wnids)))
    root = flat(tmp_path / "val", "img7.v2.JPEG")
    labelled = label_images(root, scan_two_levels(root), Plan("kaggle", csv), partial_ok=True)
    assert [(r.path, r.label) for r in labelled.records] == [("img7.v2.JPEG", 7)]
    assert labelled.label_source == f"kaggle {csv}"


def test_imagenet_a_folders_keep_the_1000_class_space(tmp_path: Path) -> None:
    """The 200 ImageNet-A WNID folders: labels are positions among all 1000 sorted WNIDs."""
    root = tmp_path / "imagenet-a"
    a_wnids = sorted(builtin.dataset_wnids("imagenet-a"))
    for wnid in a_wnids:
        (root / wnid).mkdir(parents=True)
    scan = scan_two_levels(root)
    with pytest.raises(InceValError) as info:
        label_images(root, scan, Plan("valprep", None), partial_ok=False)
    assert str(info.value) == f"--data {root} {NO_IMAGES}"
    touch(root / a_wnids[0] / "ILSVRC2012_val_00000009.JPEG")
    labelled = label_images(root, scan_two_levels(root), Plan("valprep", None), partial_ok=False)
    everything = builtin.imagenet_wnids()
    (record,) = labelled.records
    assert (record.path, record.image_number) == (f"{a_wnids[0]}/ILSVRC2012_val_00000009.JPEG", 9)
    assert record.label == everything.index(a_wnids[0])
    assert labelled.class_wnids == everything and len(everything) == 1000
    assert labelled.label_source == "WNID folder names (imagenet-a: 200 of the 1000 classes)"


def test_bundled_ground_truth_covers_image_50000(tmp_path: Path) -> None:
    """The last validation image (50,000) is labelled by the bundled ground truth."""
    root = flat(tmp_path / "val", "ILSVRC2012_val_00050000.JPEG")
    labelled = label_images(root, scan_two_levels(root), Plan("ilsvrc2012", None),
                            partial_ok=True)
    assert [r.image_number for r in labelled.records] == [50000]
    assert labelled.class_wnids == builtin.imagenet_wnids()
    assert labelled.class_wnids[0] == "n01440764"  # tench, the first class


def test_bundled_ground_truth_needs_a_flat_folder(tmp_path: Path) -> None:
    """Images in a subfolder are refused by name of the layout."""
    root = tmp_path / "val"
    touch(root / "sub" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(InceValError) as info:
        label_images(root, scan_two_levels(root), Plan("ilsvrc2012", None), partial_ok=True)
    assert str(info.value) == (f"--data {root} has images in subfolder sub/; the ilsvrc2012 "
                               "layout needs every image directly in --data")


def test_imagenetv2_folders(tmp_path: Path) -> None:
    """Top-level images are refused; 1000 empty folders hold no images; numbers are kept."""
    root = tmp_path / "v2"
    for label in range(1000):
        (root / str(label)).mkdir(parents=True)
    touch(root / "stray.JPEG")
    with pytest.raises(InceValError) as info:
        label_images(root, scan_two_levels(root), Plan("imagenetv2", None), partial_ok=False)
    assert str(info.value) == (f"--data {root} holds 1 images directly (e.g. stray.JPEG); the "
                               "imagenetv2 layout keeps them in root/<class number>/ folders")
    (root / "stray.JPEG").unlink()
    with pytest.raises(InceValError) as info:
        label_images(root, scan_two_levels(root), Plan("imagenetv2", None), partial_ok=False)
    assert str(info.value) == f"--data {root} {NO_IMAGES}"
    touch(root / "12" / "ILSVRC2012_val_00000005.JPEG")
    labelled = label_images(root, scan_two_levels(root), Plan("imagenetv2", None),
                            partial_ok=False)
    assert [(r.path, r.label, r.image_number) for r in labelled.records] == \
        [("12/ILSVRC2012_val_00000005.JPEG", 12, 5)]
