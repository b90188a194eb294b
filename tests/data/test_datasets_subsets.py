"""Quick runs: --subset (per-class:K, every:K, file:PATH) then --limit, over the fixed order."""

from __future__ import annotations

from pathlib import Path

import pytest

from inceval.data.datasets import SUBSET_FORMS, load_val_dataset
from inceval.errors import InceValError
from tests.data.test_datasets_builders import make_flat, val_name

# Image n (1..12) has class LABELS[n - 1]: class 0 x4, class 5 x3, class 9 x5, interleaved.
LABELS = [9, 0, 5, 0, 9, 9, 0, 5, 9, 0, 5, 9]


@pytest.fixture()
def small(tmp_path: Path) -> tuple[Path, Path]:
    root = make_flat(tmp_path / "val", [val_name(n) for n in range(1, 13)])
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{val_name(n)} {c}\n" for n, c in enumerate(LABELS, start=1)))
    return root, listing


def numbers(root: Path, listing: Path, **kwargs) -> list[int]:
    ds = load_val_dataset(root, labels_file=listing, **kwargs)
    assert ds.labels().tolist() == [LABELS[r.image_number - 1] for r in ds.records]
    return [r.image_number for r in ds.records]


def test_forms_are_documented() -> None:
    assert SUBSET_FORMS == ("per-class:K", "every:K", "file:PATH")


def test_limit_keeps_the_first_images(small: tuple[Path, Path]) -> None:
    assert numbers(*small, limit=3) == [1, 2, 3]
    assert numbers(*small, limit=12) == list(range(1, 13))
    assert numbers(*small, limit=100) == list(range(1, 13))


def test_per_class_keeps_the_first_k_of_each_class(small: tuple[Path, Path]) -> None:
    # class 9: 1, 5, 6, 9, 12; class 0: 2, 4, 7, 10; class 5: 3, 8, 11.
    assert numbers(*small, subset="per-class:1") == [1, 2, 3]
    assert numbers(*small, subset="per-class:2") == [1, 2, 3, 4, 5, 8]
    assert numbers(*small, subset="per-class:4") == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_every_k_keeps_positions_0_k_2k(small: tuple[Path, Path]) -> None:
    assert numbers(*small, subset="every:5") == [1, 6, 11]
    assert numbers(*small, subset="every:1") == list(range(1, 13))


def test_limit_applies_after_the_subset(small: tuple[Path, Path]) -> None:
    assert numbers(*small, subset="per-class:2", limit=4) == [1, 2, 3, 4]


def test_file_subset_keeps_dataset_order(small: tuple[Path, Path], tmp_path: Path) -> None:
    chosen = tmp_path / "quick.txt"
    # A file name, a stem and a relative path; comments and blank lines skipped.
    chosen.write_text(f"# quick\n{val_name(9)}\n\n{val_name(2)[:-5]}\n./{val_name(5)}\n")
    assert numbers(*small, subset=f"file:{chosen}") == [2, 5, 9]


@pytest.mark.parametrize("subset", ["per-class:0", "every:-1", "every:two", "per-class:"])
def test_bad_k_is_refused(small: tuple[Path, Path], subset: str) -> None:
    with pytest.raises(InceValError) as info:
        load_val_dataset(small[0], labels_file=small[1], subset=subset)
    assert str(info.value) == f"--subset {subset!r}: K must be a positive whole number"


@pytest.mark.parametrize("subset", ["first:10", "per-class", "file:", "10"])
def test_unknown_subset_form_is_refused(small: tuple[Path, Path], subset: str) -> None:
    with pytest.raises(InceValError) as info:
        load_val_dataset(small[0], labels_file=small[1], subset=subset)
    assert str(info.value) == (f"--subset {subset!r} is not understood; use one of per-class:K, "
                               "every:K, file:PATH")


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit_is_refused(small: tuple[Path, Path], limit: object) -> None:
    with pytest.raises(InceValError) as info:
        load_val_dataset(small[0], labels_file=small[1], limit=limit)
    assert str(info.value) == f"--limit {limit!r} must be a positive number of images"


def test_file_subset_errors(small: tuple[Path, Path], tmp_path: Path) -> None:
    root, listing = small
    chosen = tmp_path / "quick.txt"
    cases = [
        (f"{val_name(1)}\n{val_name(99)}\n",
         f"line 2: '{val_name(99)}' is not an image of --data; name images by relative path or "
         "file name"),
        (f"{val_name(3)}\n{val_name(3)[:-5]}\n",
         f"line 2: '{val_name(3)[:-5]}' is the image of line 1 again; remove the duplicate"),
        ("# nothing\n\n", "names no images; give one image name per line"),
    ]
    for content, message in cases:
        chosen.write_text(content)
        with pytest.raises(InceValError) as info:
            load_val_dataset(root, labels_file=listing, subset=f"file:{chosen}")
        assert str(info.value) == f"--subset file:{chosen} {message}"


def test_file_subset_with_an_ambiguous_name(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for rel in ("a/x.png", "b/x.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    listing = tmp_path / "val.txt"
    listing.write_text("a/x.png 1\nb/x.png 2\n")
    chosen = tmp_path / "quick.txt"
    chosen.write_text("x.png\n")
    with pytest.raises(InceValError) as info:
        load_val_dataset(root, labels_file=listing, subset=f"file:{chosen}")
    assert str(info.value) == f"--subset file:{chosen} line 1: 'x.png' names 2 images; give the " \
                              "relative path"
    chosen.write_text("b/x.png\n")
    ds = load_val_dataset(root, labels_file=listing, subset=f"file:{chosen}")
    assert [(r.path, r.label) for r in ds.records] == [("b/x.png", 2)]
