"""``inceval run`` options on the success path: each option's stored effect, checked independently.

Every test runs the real command (click's runner on :data:`inceval.cli.cli`, the group behind the
console script) to exit status 0 and then reads the run directory as plain files: manifest.json
with :mod:`json`, images.csv with :mod:`csv` and ``predictions/v3/1.npy`` with :func:`numpy.load`.
The expectations come from the test itself: image order and labels from the files it wrote, the
blacklist flags from the image numbers, scores from a numpy count over the stored rows, and the
probabilities from a direct recomputation (the reference renderer's pixels, normalised by hand with
literal mean/std, through a freshly built network of the same seed).

One small generated set serves every run: four noisy JPEGs with ILSVRC names, written out of number
order, a list-layout labels file whose labels sit at designed ranks of each image's prediction, a
blacklist, and a Kaggle CSV (with its synset mapping) beside an empty devkit folder, so that the
layout is ambiguous without ``--layout`` and the CSV would label the images differently if
``--labels`` were lost. Every option is chosen so that its run differs observably from the run
without it. Inception-v3 with seeded random weights, one 299-pixel view per image.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from inceval.cli import cli, main
from inceval.data.protocols import get_protocol
from inceval.data.reference import decode_rgb, render_views
from inceval.data.views import plan_views
from inceval.eval_config import EvalConfig
from inceval.models import create_model

SEED = 3
# Image numbers in the order the files are written; every run must order them 7, 9, 12, 42.
WRITE_ORDER = (42, 7, 12, 9)
NUMBERS = (7, 9, 12, 42)
SIZES = {7: (80, 60), 9: (60, 84), 12: (97, 51), 42: (72, 72)}  # width x height
# 50000 names no image of the set: a real blacklist lists images a small set does not hold.
BLACKLIST = (9, 42, 50000)
# Where each image's label sits in its prediction: [lo, hi) ranks (0 = top-1). 7 is a top-1 hit,
# 9 and 42 top-5-only hits, 12 a miss of both.
RANK_RANGES = {7: (0, 1), 9: (1, 5), 12: (5, 40), 42: (1, 5)}
# Labels of the subset runs: classes 5, 5, 9, 5 for images 7, 9, 12, 42.
SUBSET_LABELS = {7: 5, 9: 5, 12: 9, 42: 5}
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the gluon_in1k weights' preprocessing
IMAGENET_STD = (0.229, 0.224, 0.225)
# Stored probabilities are float16 (about 3 significant digits).
RTOL, ATOL = 2e-3, 1e-6
# Clear gap, relative, between a designed label's probability and its neighbours in the ranking:
# over ten times float16's rounding (at most 2**-11 relative), so the stored ranks are the designed
# ones. A random network is nearly uniform, so wider gaps are rare among the top ranks.
MARGIN = 0.004

# The CPU whatever the machine: the reference is computed there, and the device is not under test.
BASE = ["run", "--models", "v3", "--crops", "1", "--weights", "random", "--seed", str(SEED),
        "--device", "cpu", "--workers", "0"]
RunCli = Callable[..., "Run"]


def _name(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def _wnid(index: int) -> str:
    """A synthetic WNID whose position among the 1000 sorted ones is ``index``."""
    return f"n{index:08d}"


@dataclass(frozen=True)
class Tree:
    """The generated dataset and what each option must make of it.

    Attributes:
        data: the flat image folder (``--data``).
        labels: list-layout labels file with the designed labels.
        subset_labels: list-layout labels file with repeated classes (for ``--subset``).
        blacklist: devkit-format blacklist file.
        kaggle_csv: LOC_val_solution.csv beside ``data`` (found by the kaggle layout).
        designed: image number -> label of ``labels``.
        kaggle: image number -> label of ``kaggle_csv`` (differs from ``designed`` everywhere).
        reference: mean/std pair -> (4, 1000) float64 probabilities in number order.
    """

    data: Path
    labels: Path
    subset_labels: Path
    blacklist: Path
    kaggle_csv: Path
    designed: dict[int, int]
    kaggle: dict[int, int]
    reference: dict[tuple[tuple[float, ...], tuple[float, ...]], np.ndarray]


def _write_image(path: Path, width: int, height: int, rng: np.random.Generator) -> None:
    """A smooth colour pattern plus noise: every image and every pixel differs."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [rng.uniform(40, 215) + 90 * np.sin(x / (5 + 3 * c) + rng.uniform(0, 6))
                + 50 * np.cos(y / (4 + c)) for c in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 20, (height, width, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def _reference_probabilities(paths: list[Path],
                             means_stds: list[tuple[tuple[float, ...], tuple[float, ...]]]
                             ) -> dict[tuple[tuple[float, ...], tuple[float, ...]], np.ndarray]:
    """Softmax of the single 299-pixel view of each image, per (mean, std), in float64.

    The view is the reference renderer's (shorter side floor(299 / 0.875) = 341, bicubic, centre
    crop); normalisation is done here by hand; the network is a fresh ``v3`` of seed SEED in its
    training form (no BatchNorm folding, no channels_last), as the engine never sees it.
    """
    geometry = EvalConfig(input_size=299, crop_pct=0.875, interpolation="bicubic")
    views = get_protocol("1").resolve(geometry)
    pixels = []
    for path in paths:
        image = decode_rgb(path)
        pixels.append(render_views(image, plan_views(image.shape[1], image.shape[0], views))[0])
    batch = torch.stack(pixels).to(torch.float32) / 255.0  # (N, 3, 299, 299)
    model = create_model("v3", "random", seed=SEED)
    out = {}
    with torch.no_grad():
        for mean, std in means_stds:
            x = (batch - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
            out[(mean, std)] = model(x).double().softmax(-1).numpy()
    return out


def _class_at_rank(probs: np.ndarray, lo: int, hi: int) -> int:
    """The class at the first rank in [lo, hi) whose probability is clearly apart from both
    neighbours in the ranking (so float16 storage cannot move it across them)."""
    order = np.argsort(-probs, kind="stable")
    ranked = probs[order]
    for rank in range(lo, hi):
        above = rank == 0 or ranked[rank - 1] > ranked[rank] * (1 + MARGIN)
        below = ranked[rank] > ranked[rank + 1] * (1 + MARGIN)
        if above and below:
            return int(order[rank])
    raise AssertionError(f"no clearly separated class at ranks {lo}..{hi - 1}; pick other images")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    top = tmp_path_factory.mktemp("options")
    data = top / "val"
    data.mkdir()
    rng = np.random.default_rng(11)
    for number in WRITE_ORDER:
        _write_image(data / _name(number), *SIZES[number], rng)
    # A devkit folder beside the images and a Kaggle CSV: two label sources, so the layout cannot
    # be detected without --layout or --labels.
    (top / "ILSVRC2012_devkit_t12").mkdir()
    reference = _reference_probabilities(
        [data / _name(n) for n in NUMBERS],
        [(INCEPTION_MEAN, INCEPTION_STD), (IMAGENET_MEAN, IMAGENET_STD)])
    default = reference[(INCEPTION_MEAN, INCEPTION_STD)]
    designed = {n: _class_at_rank(default[i], *RANK_RANGES[n]) for i, n in enumerate(NUMBERS)}
    kaggle = {n: (label + 500) % 1000 for n, label in designed.items()}

    labels = top / "labels.txt"
    labels.write_text("".join(f"{_name(n)} {designed[n]}\n" for n in WRITE_ORDER))
    subset_labels = top / "subset_labels.txt"
    subset_labels.write_text("".join(f"{_name(n)} {SUBSET_LABELS[n]}\n" for n in WRITE_ORDER))
    blacklist = top / "blacklist.txt"
    blacklist.write_text("".join(f"{n}\n" for n in BLACKLIST))
    kaggle_csv = top / "LOC_val_solution.csv"
    kaggle_csv.write_text("ImageId,PredictionString\n" + "".join(
        f"{_name(n)[:-5]},{_wnid(kaggle[n])} 1 2 30 40 {_wnid(kaggle[n])} 5 6 20 20\n"
        for n in WRITE_ORDER))
    (top / "LOC_synset_mapping.txt").write_text(
        "".join(f"{_wnid(i)} synthetic class {i}\n" for i in range(1000)))
    return Tree(data, labels, subset_labels, blacklist, kaggle_csv, designed, kaggle, reference)


@dataclass(frozen=True)
class Run:
    """One finished ``inceval run``: its directory read as plain files, and what it printed."""

    run_dir: Path
    stdout: str
    stderr: str

    @property
    def manifest(self) -> dict[str, Any]:
        """manifest.json."""
        return json.loads((self.run_dir / "manifest.json").read_text())

    @property
    def rows(self) -> list[dict[str, str]]:
        """The rows of images.csv as strings."""
        with open(self.run_dir / "images.csv", newline="") as handle:
            return list(csv.DictReader(handle))

    @property
    def paths(self) -> list[str]:
        """Image paths in run order."""
        return [row["path"] for row in self.rows]

    @property
    def labels(self) -> list[int]:
        """Labels in run order."""
        return [int(row["label"]) for row in self.rows]

    @property
    def blacklisted(self) -> list[bool]:
        """Blacklist flags in run order (stored as 0/1)."""
        return [{"0": False, "1": True}[row["blacklisted"]] for row in self.rows]

    @property
    def probabilities(self) -> np.ndarray:
        """The stored (N, 1000) float16 probabilities of v3 under protocol 1, as float64."""
        stored = np.load(self.run_dir / "predictions" / "v3" / "1.npy")
        assert stored.dtype == np.float16 and stored.shape == (len(self.rows), 1000)
        return stored.astype(np.float64)

    @property
    def summary(self) -> dict[str, Any]:
        """The --json summary printed on stdout."""
        return json.loads(self.stdout)

    def plan_line(self, prefix: str) -> str:
        """The plan line on stderr that starts with ``prefix``."""
        (line,) = [ln for ln in self.stderr.splitlines() if ln.startswith(prefix)]
        return line


@pytest.fixture(scope="module")
def run_cli(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> RunCli:
    """Run ``inceval run`` once per distinct argument list (runs are shared between tests)."""
    done: dict[tuple[str, ...], Run] = {}
    top = tmp_path_factory.mktemp("runs")

    def run(*extra: str, json_output: bool = True) -> Run:
        key = (*extra, str(json_output))
        if key not in done:
            out = top / f"run{len(done)}"
            args = [*BASE, *extra, "--out", str(out), *(["--json"] if json_output else [])]
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            done[key] = Run(out, result.stdout, result.stderr)
        return done[key]

    return run


def _list_run(run_cli: RunCli, tree: Tree, *extra: str, **kwargs: bool) -> Run:
    """A run of the generated set labelled by the designed list file, with the torch backend."""
    return run_cli("--data", str(tree.data), "--labels", str(tree.labels), "--backend", "torch",
                   *extra, **kwargs)


def _errors(probs: np.ndarray, labels: np.ndarray, k: int) -> int:
    """Images whose label is outside the top k; a class tied with the label counts above it."""
    label_probs = probs[np.arange(len(labels)), labels]
    others_at_least = (probs >= label_probs[:, None]).sum(axis=1) - 1
    return int((others_at_least >= k).sum())


# --data and --labels ------------------------------------------------------------------------


def test_data_evaluates_the_given_folder_in_image_number_order(run_cli: RunCli, tree: Tree) -> None:
    run = _list_run(run_cli, tree)
    assert run.paths == [_name(n) for n in NUMBERS]
    data = run.manifest["data"]
    assert data["root"] == str(tree.data.resolve())
    assert data["bundled_sample"] is False and data["num_images"] == 4
    assert data["layout"] == "list"
    expected_fingerprint = hashlib.sha256("".join(
        f"{_name(n)}\t{tree.designed[n]}\n" for n in NUMBERS).encode()).hexdigest()
    assert data["fingerprint"] == expected_fingerprint
    # The stored rows are these images' probabilities, in this order.
    np.testing.assert_allclose(run.probabilities, tree.reference[(INCEPTION_MEAN, INCEPTION_STD)],
                               rtol=RTOL, atol=ATOL)
    assert run.summary["images"] == 4 and run.summary["bundled_sample"] is False
    assert run.plan_line("data: ") == (f"data: list layout, 4 images in {tree.data.resolve()}; "
                                       f"labels: list {tree.labels}; no blacklist")


def test_labels_file_labels_each_path(run_cli: RunCli, tree: Tree) -> None:
    run = _list_run(run_cli, tree)
    assert dict(zip(run.paths, run.labels)) == {_name(n): tree.designed[n] for n in NUMBERS}
    assert run.manifest["data"]["label_source"] == f"list {tree.labels}"
    # Without --labels the CSV beside the images would give other labels (or no layout at all).
    assert all(tree.kaggle[n] != tree.designed[n] for n in NUMBERS)


# --layout -----------------------------------------------------------------------------------


def test_layout_kaggle_labels_by_the_csv_found_beside_the_images(
        run_cli: RunCli, tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    # Without --layout the devkit folder and the CSV are two candidate label sources.
    with pytest.raises(SystemExit) as exit_info:
        main([*BASE, "--data", str(tree.data), "--out", str(tree.data.parent / "unused")])
    assert exit_info.value.code == 2
    assert "several label sources found" in capsys.readouterr().err

    run = run_cli("--data", str(tree.data), "--layout", "kaggle", "--backend", "torch")
    assert dict(zip(run.paths, run.labels)) == {_name(n): tree.kaggle[n] for n in NUMBERS}
    data = run.manifest["data"]
    assert data["layout"] == "kaggle"
    assert data["label_source"] == (f"kaggle {tree.data.resolve().parent / 'LOC_val_solution.csv'}"
                                   " + LOC_synset_mapping.txt")
    np.testing.assert_allclose(run.probabilities, tree.reference[(INCEPTION_MEAN, INCEPTION_STD)],
                               rtol=RTOL, atol=ATOL)


# --blacklist --------------------------------------------------------------------------------


def test_blacklist_flags_its_images_and_scores_the_rest(run_cli: RunCli, tree: Tree) -> None:
    run = _list_run(run_cli, tree, "--blacklist", str(tree.blacklist), json_output=False)
    flags = [n in BLACKLIST for n in NUMBERS]
    assert flags == [False, True, False, True]
    assert run.blacklisted == flags
    data = run.manifest["data"]
    assert data["blacklist"] == str(tree.blacklist)
    assert (data["blacklisted_images"], data["non_blacklisted_images"]) == (2, 2)

    # Scores recomputed with numpy from the stored rows, and the designed values they must equal:
    # all: 9, 12 and 42 miss top-1, 12 misses top-5; non-blacklisted (7, 12): 12 misses both.
    probs, labels, keep = run.probabilities, np.array(run.labels), ~np.array(flags)
    expected = {
        "all": (4, _errors(probs, labels, 1), _errors(probs, labels, 5)),
        "non-blacklisted": (2, _errors(probs[keep], labels[keep], 1),
                            _errors(probs[keep], labels[keep], 5)),
    }
    assert expected == {"all": (4, 3, 1), "non-blacklisted": (2, 1, 1)}
    for subset, (images, top1_wrong, top5_wrong) in expected.items():
        cells = ["v3", "1", subset, str(images), f"{100 * top1_wrong / images:.2f}",
                 f"{100 * top5_wrong / images:.2f}", str(top1_wrong), str(top5_wrong)]
        assert _has_row(run.stdout, cells), (subset, run.stdout)
    assert run.plan_line("data: ").endswith("; blacklist 2 flagged, 2 kept")
    # Flags never drop images: the same four rows as without the blacklist.
    np.testing.assert_array_equal(run.probabilities, _list_run(run_cli, tree).probabilities)


def _has_row(text: str, cells: list[str]) -> bool:
    """Whether a printed table has a line whose cells are exactly ``cells``, in order."""
    for line in text.splitlines():
        if [c for c in line.replace("│", " ").replace("|", " ").split()] == cells:
            return True
    return False


# --subset and --limit -----------------------------------------------------------------------


@pytest.mark.parametrize(("subset", "chosen"), [
    # Labels 5, 5, 9, 5 in image order: the first image of each class is 7 (5) and 12 (9).
    ("per-class:1", (7, 12)),
    # Positions 0 and 3 of the four.
    ("every:3", (7, 42)),
])
def test_subset_selects_exactly_the_expected_images(run_cli: RunCli, tree: Tree, subset: str,
                                                    chosen: tuple[int, ...]) -> None:
    run = run_cli("--data", str(tree.data), "--labels", str(tree.subset_labels),
                  "--backend", "torch", "--subset", subset)
    assert run.paths == [_name(n) for n in chosen]
    assert run.labels == [SUBSET_LABELS[n] for n in chosen]
    assert run.manifest["data"]["subset"] == subset
    assert run.manifest["data"]["num_images"] == len(chosen) == run.summary["images"]
    assert run.plan_line("data: ").startswith(f"data: list layout, {len(chosen)} images in ")
    rows = [NUMBERS.index(n) for n in chosen]
    np.testing.assert_allclose(run.probabilities,
                               tree.reference[(INCEPTION_MEAN, INCEPTION_STD)][rows],
                               rtol=RTOL, atol=ATOL)


def test_limit_keeps_the_first_images_in_number_order(run_cli: RunCli, tree: Tree) -> None:
    run = _list_run(run_cli, tree, "--limit", "2")
    assert run.paths == [_name(7), _name(9)]
    assert run.manifest["data"]["limit"] == 2 and run.summary["images"] == 2
    np.testing.assert_allclose(run.probabilities,
                               tree.reference[(INCEPTION_MEAN, INCEPTION_STD)][:2],
                               rtol=RTOL, atol=ATOL)


# --weights-tag ------------------------------------------------------------------------------


def test_weights_tag_sets_the_evaluation_settings_of_those_weights(
        run_cli: RunCli, tree: Tree) -> None:
    run = _list_run(run_cli, tree, "--weights-tag", "v3=gluon_in1k")
    entry = run.manifest["models"]["v3"]
    assert entry["weights_tag"] == "inception_v3.gluon_in1k"
    assert entry["weights"] == "random"
    config = entry["eval_config"]
    assert (tuple(config["mean"]), tuple(config["std"])) == (IMAGENET_MEAN, IMAGENET_STD)
    assert (config["input_size"], config["crop_pct"], config["resize_size"]) == (299, 0.875, 341)
    assert run.summary["models"]["v3"]["weights_tag"] == "inception_v3.gluon_in1k"

    gluon = tree.reference[(IMAGENET_MEAN, IMAGENET_STD)]
    inception = tree.reference[(INCEPTION_MEAN, INCEPTION_STD)]
    np.testing.assert_allclose(run.probabilities, gluon, rtol=RTOL, atol=ATOL)
    # The two normalisations give clearly different probabilities, so the tag is seen.
    assert np.abs(gluon - inception).max() > 100 * (RTOL * inception.max() + ATOL)
    untagged = _list_run(run_cli, tree)
    assert untagged.manifest["models"]["v3"]["weights_tag"] is None
    assert untagged.manifest["models"]["v3"]["eval_config"]["mean"] == list(INCEPTION_MEAN)


# --dtype ------------------------------------------------------------------------------------


def test_dtype_bfloat16_is_recorded_and_close_to_float32(run_cli: RunCli, tree: Tree) -> None:
    run = _list_run(run_cli, tree, "--dtype", "bfloat16")
    assert run.manifest["settings"]["dtype"] == "bfloat16"
    assert run.summary["dtype"] == "bfloat16"
    assert ", dtype bfloat16, backend torch; " in run.plan_line("device: ")
    single = _list_run(run_cli, tree)
    assert single.manifest["settings"]["dtype"] == "float32"
    # bfloat16 keeps 8 bits of mantissa: within a few percent of float32, yet not the same rows.
    np.testing.assert_allclose(run.probabilities, single.probabilities, rtol=0.02, atol=0)
    differing = np.mean(run.probabilities != single.probabilities)
    assert differing > 0.25, differing


# --backend ----------------------------------------------------------------------------------


def test_backend_torch_is_recorded_and_renders_the_reference_views(
        run_cli: RunCli, tree: Tree) -> None:
    run = _list_run(run_cli, tree)
    assert run.manifest["settings"]["backend"] == "torch"
    assert run.summary["backend"] == "torch"
    assert ", backend torch; output: " in run.plan_line("device: ")
    np.testing.assert_allclose(run.probabilities, tree.reference[(INCEPTION_MEAN, INCEPTION_STD)],
                               rtol=RTOL, atol=ATOL)


@pytest.mark.dali
def test_backend_dali_is_recorded_and_agrees_with_torch(run_cli: RunCli, tree: Tree) -> None:
    run = run_cli("--data", str(tree.data), "--labels", str(tree.labels), "--backend", "dali")
    assert run.manifest["settings"]["backend"] == "dali"
    assert run.summary["backend"] == "dali"
    assert ", backend dali; output: " in run.plan_line("device: ")
    torch_run = _list_run(run_cli, tree)
    assert run.paths == torch_run.paths and run.labels == torch_run.labels
    # The two renderers differ by a few grey levels near resize borders: close probabilities,
    # but not the same file.
    np.testing.assert_allclose(run.probabilities, torch_run.probabilities, rtol=5e-3, atol=ATOL)
    assert not np.array_equal(run.probabilities, torch_run.probabilities)
