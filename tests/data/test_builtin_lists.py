"""The label lists bundled in inceval/labelsets: intact copies of the published files.

The digests are those of the files as published (the ground truth before gzip), so a truncated,
re-sorted or edited copy fails here.
"""

from __future__ import annotations

import gzip
import hashlib

from inceval.data import builtin

SHA256 = {
    builtin.WNIDS: "70002b0ff5de60a3a17a82dbfcff291931f96225ddf941ad2e182fc39e183d15",
    builtin.BLACKLIST_2014: "9bb7a1a102fd1902ebdd011bc0f83f870ea91953928fc389e8c083354ec6678a",
    builtin.VAL_GROUND_TRUTH: "51f21feed9bb7017e88190317c62ec834b43dc011d9f8e43cef8b1bfeb0d4f71",
    builtin.LEMMAS: "c98cf8e050b2f67f824762ebdb5bcf683adc7955382b9ff8b1c0f49548bb449b",
    builtin.REAL_LABELS: "d83e9bff374c631aae8439eb064c7019acc56e1b3bc3f56b8380c2a710b0220b",
    builtin.IMAGENET_A_WNIDS: "9826a24166e74ce62fb87b27889874ca26917542c745712309d6e25855d63bc2",
    builtin.IMAGENET_R_WNIDS: "a6a0729f7a99230280639cab6e51e01485a3b41a676ea35621a501c9d6e83ca4",
}


def _content(name: str) -> bytes:
    raw = builtin.labelset_path(name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


def test_bundled_files_are_the_published_ones() -> None:
    for name, digest in SHA256.items():
        assert hashlib.sha256(_content(name)).hexdigest() == digest, name


def test_sources_and_licences_are_recorded_for_every_bundled_file() -> None:
    sources = builtin.labelset_path("SOURCES.md").read_text()
    for name in SHA256:
        assert f"`{name}`" in sources


def test_wnids_are_1000_sorted_distinct_with_known_anchors() -> None:
    wnids = builtin.imagenet_wnids()
    assert len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
    # Known classes: 0 tench, 65 sea snake, 278 kit fox, 999 toilet tissue.
    assert (wnids[0], wnids[65], wnids[278], wnids[999]) == \
        ("n01440764", "n01751748", "n02119789", "n15075141")


def test_ground_truth_covers_the_50000_images_in_order_with_known_classes() -> None:
    rows = builtin.ilsvrc2012_val_wnids()
    assert [name for name, _ in rows] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 50_001)]
    assert set(wnid for _, wnid in rows) == set(builtin.imagenet_wnids())
    # Image 1 is a sea snake (the devkit's ID 490); every class has exactly 50 images.
    assert rows[0][1] == "n01751748"
    counts: dict[str, int] = {}
    for _, wnid in rows:
        counts[wnid] = counts.get(wnid, 0) + 1
    assert set(counts.values()) == {50}


def test_class_names_are_the_first_lemma_of_each_class() -> None:
    names = builtin.class_names()
    assert len(names) == 1000
    assert (names[0], names[278], names[281], names[999]) == \
        ("tench", "kit fox", "tabby", "toilet tissue")
    assert builtin.class_label(281) == "tabby (281)"
    # Two names occur twice in WordNet's first lemmas (the notes): crane and maillot.
    repeated = {n for n in names if names.count(n) > 1}
    assert repeated == {"crane", "maillot"}


def test_imagenet_a_and_r_are_200_of_the_1000_classes() -> None:
    for name in ("imagenet-a", "imagenet-r"):
        wnids = builtin.dataset_wnids(name)
        assert len(set(wnids)) == 200 and set(wnids) <= set(builtin.imagenet_wnids())
