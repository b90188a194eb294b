"""Bad image files in a run (issue 8): each is isolated, recorded and leaves the others untouched.

Every bad kind (truncated JPEG, empty file, garbage bytes, a directory, a dangling symlink, a file
gone since the scan, an image too elongated to resize) is mixed into eight good textured
colour-code images (tests/engine/bad_files.py) and evaluated by two stand-in models on both
backends. The independent references are:

* a second run over the same good images WITHOUT the bad file (its own folder and list file): every
  good image's stored float16 rows must be bit-identical to that run's, matched by image path;
* the colour stand-in's designed class order: each decodable image's top-5 classes are the first
  five of its colour code's order (tests/engine/colour_standin.py);
* the documented reasons (docs/results-format.md, images.csv ``error``), written out by hand in
  ``bad_files.REASONS``, and the DALI pipeline count the engine documents: one build per view
  group plus one per DALI decode failure, none for a file the header check refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image, UnidentifiedImageError

from inceval.engine.evaluate import RunStats, evaluate, open_run
from inceval.errors import InceValError
from inceval.store import RunReader
from tests.engine.bad_files import (
    FOUND_BY_DALI,
    INPUT_SIZE,
    KINDS,
    NUM_GOOD,
    ODDITIES,
    Built,
    TextureNet,
    build_dataset,
    image_name,
    reason_matches,
)
from tests.engine.colour_standin import ColourCodeNet, class_orders

PROTOCOLS = ["1", "12"]
MODELS = ("colour", "texture")
BATCH_SIZE = 3
CHUNK_SIZE = 4
# Image 145 falls between good images 140 and 150: position 5, mid-batch in chunk 1 (4..7).
SINGLE_BAD_NUMBER = 145
SINGLE_BAD_POSITION = 5
BACKENDS = ["torch", pytest.param("dali", marks=pytest.mark.dali)]


@pytest.fixture(scope="module")
def orders() -> np.ndarray:
    return class_orders(seed=0)


@dataclass
class Outcome:
    """One finished run and what the engine reported on the way."""

    built: Built
    backend: str
    run_dir: Path
    stats: RunStats
    calls: list[tuple[Path, str]]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "manifest.json").read_text())


def _models(orders: np.ndarray) -> list[Any]:
    return [ColourCodeNet(orders, input_size=INPUT_SIZE, name="colour"), TextureNet()]


def _workers(backend: str) -> int:
    return 0 if backend == "torch" else 1


def _evaluate(run_dir: Path, built: Built, backend: str, orders: np.ndarray, *,
              batch_size: int = BATCH_SIZE, chunk_size: int = CHUNK_SIZE) -> Outcome:
    models = _models(orders)
    calls: list[tuple[Path, str]] = []
    writer = open_run(run_dir, models, PROTOCOLS, built.dataset, settings={"test": True})
    with writer:
        stats = evaluate(models, PROTOCOLS, built.dataset, writer, backend=backend, device="cpu",
                         workers=_workers(backend), batch_size=batch_size, chunk_size=chunk_size,
                         on_bad_image=lambda path, reason: calls.append((Path(path), reason)))
        writer.finish(stats.manifest_update())
    return Outcome(built, backend, run_dir, stats, calls)


def _stored(run_dir: Path) -> dict[tuple[str, str], np.ndarray]:
    """Every prediction file the manifest lists, read with numpy alone."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {(model, protocol): np.load(run_dir / entry["file"])
            for model, files in manifest["predictions"].items()
            for protocol, entry in files.items()}


def _top5(row: np.ndarray) -> list[int]:
    return np.argsort(-row.astype(np.float64), kind="stable")[:5].tolist()


# image path -> (model, protocol) -> stored float16 row
Rows = dict[str, dict[tuple[str, str], np.ndarray]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory,
              orders: np.ndarray) -> Callable[[str], Rows]:
    """backend -> the rows of a run over the good images alone, by image path (one run per
    backend, made on first use)."""
    runs: dict[str, Rows] = {}

    def rows(backend: str) -> Rows:
        if backend not in runs:
            root = tmp_path_factory.mktemp(f"reference-{backend}")
            built = build_dataset(root / "data")
            outcome = _evaluate(root / "run", built, backend, orders)
            assert outcome.calls == [] and outcome.stats.unreadable == {}
            stored = _stored(outcome.run_dir)
            paths = [r.path for r in built.dataset.records]
            runs[backend] = {path: {key: probs[i] for key, probs in stored.items()}
                             for i, path in enumerate(paths)}
        return runs[backend]

    return rows


def _check_isolated(outcome: Outcome, reference_rows: Rows,
                    orders: np.ndarray) -> dict[int, str]:
    """Everything a run with bad files must show; returns position -> reason."""
    built = outcome.built
    root = built.dataset.root
    paths = [r.path for r in built.dataset.records]
    bad_positions = sorted(built.position(name) for name in built.bad)

    # The callback: exactly once per bad file, never for a good one.
    called = sorted(str(path.relative_to(root)) for path, _ in outcome.calls)
    assert called == sorted(built.bad)
    reasons = {built.position(str(path.relative_to(root))): reason
               for path, reason in outcome.calls}
    assert sorted(reasons) == bad_positions
    assert all(reason and "\n" not in reason for reason in reasons.values())
    assert outcome.stats.unreadable == reasons

    # images.csv: the reason on the bad rows, "" on every other.
    frame = pd.read_csv(outcome.run_dir / "images.csv", keep_default_na=False)
    assert frame["path"].tolist() == paths
    assert frame.columns[-1] == "error"
    assert frame["error"].tolist() == [reasons.get(i, "") for i in range(len(paths))]

    # The manifest's record agrees.
    assert outcome.manifest["unreadable"] == {
        "count": len(reasons), "images": {str(i): reasons[i] for i in bad_positions}}

    # Every prediction file: NaN rows for the bad images; the good rows bit-identical to the run
    # without the bad files, matched by path.
    stored = _stored(outcome.run_dir)
    assert set(stored) == {(m, p) for m in MODELS for p in PROTOCOLS}
    good = [i for i in range(len(paths)) if i not in reasons]
    assert len(good) == NUM_GOOD
    for key, probs in stored.items():
        assert probs.dtype == np.float16 and probs.shape == (len(paths), 1000)
        for i in bad_positions:
            assert np.isnan(probs[i]).all(), (key, paths[i])
        for i in good:
            assert np.array_equal(probs[i], reference_rows[paths[i]][key]), (key, paths[i])
    for protocol in PROTOCOLS:
        for i in good:
            code = built.codes[paths[i]]
            assert _top5(stored[("colour", protocol)][i]) == orders[code, :5].tolist()

    # The reader scores the good images only and counts the others.
    every, _ = RunReader(outcome.run_dir).score("colour", "1")
    assert (every.images, every.unreadable) == (NUM_GOOD, len(reasons))

    if outcome.backend == "dali":
        found_by_dali = sum(kind in FOUND_BY_DALI for kind in built.bad.values())
        # One view group: one build, plus one per DALI failure (a failure finds every bad file
        # in flight, so there are at least one and at most found_by_dali of them).
        assert 1 + min(found_by_dali, 1) <= outcome.stats.pipeline_builds <= 1 + found_by_dali
    return reasons


# ----------------------------------------------------------------------------------------------
# One bad file of each kind


def _kind_params() -> list[Any]:
    params = []
    for backend in ("torch", "dali"):
        marks = [pytest.mark.dali] if backend == "dali" else []
        params += [pytest.param((kind, backend), id=f"{kind}-{backend}", marks=marks)
                   for kind in KINDS]
    return params


@pytest.fixture(scope="module", params=_kind_params())
def single_bad(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               orders: np.ndarray) -> Outcome:
    """A run over the good images plus one bad file of each kind, on each backend."""
    kind, backend = request.param
    root = tmp_path_factory.mktemp(f"{kind}-{backend}")
    built = build_dataset(root / "data", bad=[(SINGLE_BAD_NUMBER, kind)])
    assert built.position(image_name(SINGLE_BAD_NUMBER)) == SINGLE_BAD_POSITION
    return _evaluate(root / "run", built, backend, orders)


def test_a_bad_file_is_isolated(single_bad: Outcome, reference: Callable[[str], Rows],
                                orders: np.ndarray) -> None:
    _check_isolated(single_bad, reference(single_bad.backend), orders)
    if single_bad.backend == "dali":
        (kind,) = single_bad.built.bad.values()
        # A file the header check refuses never reaches DALI; a truncated one costs a rebuild.
        assert single_bad.stats.pipeline_builds == (2 if kind in FOUND_BY_DALI else 1)


def test_reason_is_the_documented_phrase(single_bad: Outcome) -> None:
    # Both backends refuse the same files with the same words (the feeder's checks come first).
    (kind,) = single_bad.built.bad.values()
    ((path, reason),) = single_bad.calls
    assert str(single_bad.built.dataset.root) not in reason
    assert reason_matches(kind, reason), reason


def test_strict_raises_one_line_naming_the_file(single_bad: Outcome, tmp_path: Path,
                                                orders: np.ndarray) -> None:
    built = single_bad.built
    (bad_path,) = (built.dataset.root / name for name in built.bad)
    (recorded,) = single_bad.stats.unreadable.values()
    models = _models(orders)
    writer = open_run(tmp_path / "run", models, PROTOCOLS, built.dataset)
    with pytest.raises(InceValError) as info:
        with writer:
            evaluate(models, PROTOCOLS, built.dataset, writer, backend=single_bad.backend,
                     device="cpu", workers=_workers(single_bad.backend), batch_size=BATCH_SIZE,
                     chunk_size=CHUNK_SIZE, strict=True)
    message = str(info.value)
    assert "\n" not in message
    # The file, the reason the lenient run recorded, then what to do.
    assert message.startswith(f"{bad_path}: {recorded}; ")
    # Chunk 0 (images 0..3) was finished before the bad image 5 of chunk 1 stopped the run.
    assert sorted(p.name for p in (tmp_path / "run" / "chunks").iterdir()) == ["000000.json"]


# ----------------------------------------------------------------------------------------------
# Bad files at batch and chunk edges

# Good images are numbers 100, 110, ..., 170; bad numbers between them place the bad files.
SCENARIOS = {
    # name: (bad files, batch size, chunk size, their positions)
    "two_bad_in_one_batch": ([(101, "truncated"), (102, "garbage")], 4, 8, [1, 2]),
    "two_truncated_in_one_batch": ([(101, "truncated"), (102, "truncated")], 4, 8, [1, 2]),
    "first_and_last_of_a_chunk": ([(131, "truncated"), (151, "truncated")], 3, 4, [4, 7]),
    "first_and_last_of_the_run": ([(50, "truncated"), (171, "missing")], 3, 4, [0, 9]),
    "a_chunk_all_bad": ([(121, "truncated"), (122, "empty"), (123, "dangling_symlink")], 2, 3,
                        [3, 4, 5]),
    # No image of the chunk reaches DALI; the last chunk of the run, so the pipeline ends on it.
    "the_last_chunk_all_refused_by_header": ([(171, "garbage"), (172, "elongated")], 3, 4,
                                             [8, 9]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_bad_files_at_batch_and_chunk_edges(scenario: str, backend: str, tmp_path: Path,
                                            reference: Callable[[str], Rows],
                                            orders: np.ndarray) -> None:
    bad, batch_size, chunk_size, positions = SCENARIOS[scenario]
    built = build_dataset(tmp_path / "data", bad=bad)
    assert sorted(built.position(name) for name in built.bad) == positions
    outcome = _evaluate(tmp_path / "run", built, backend, orders, batch_size=batch_size,
                        chunk_size=chunk_size)
    reasons = _check_isolated(outcome, reference(backend), orders)
    for position, reason in reasons.items():
        kind = built.bad[built.dataset.records[position].path]
        assert reason_matches(kind, reason), reason
    # Every chunk is done, the all-bad one included.
    manifest = outcome.manifest
    chunks = -(-len(built.dataset) // chunk_size)
    assert sorted(p.name for p in (tmp_path / "run" / "chunks").iterdir()) == \
        [f"{n:06d}.json" for n in range(chunks)]
    assert manifest["finished_at"] is not None
    if backend == "dali" and scenario == "two_truncated_in_one_batch":
        # Both truncated files were in flight at the one DALI failure: one rebuild finds both.
        assert outcome.stats.pipeline_builds == 2


# ----------------------------------------------------------------------------------------------
# Decodable oddities are not bad files


def _check_oddity_files(built: Built, odd: list[tuple[int, str]]) -> None:
    """Each oddity file is what its name says (PIL's view of its header)."""
    expected = {
        "cmyk_jpeg": ("JPEG", "CMYK", (40, 30)),
        "grayscale_jpeg": ("JPEG", "L", (40, 30)),
        "gray16_png": ("PNG", "I;16", (40, 30)),
        "png_named_jpeg": ("PNG", "RGB", (40, 30)),
        "progressive_jpeg": ("JPEG", "RGB", (40, 30)),
        "one_pixel": ("JPEG", "RGB", (1, 1)),
    }
    for number, oddity in odd:
        suffix = ODDITIES[oddity][1]
        with Image.open(built.dataset.root / image_name(number, suffix)) as image:
            assert (image.format, image.mode, image.size) == expected[oddity], oddity
            assert bool(image.info.get("progressive")) == (oddity == "progressive_jpeg")


@pytest.mark.parametrize("backend", BACKENDS)
def test_decodable_oddities_are_not_flagged(backend: str, tmp_path: Path,
                                            reference: Callable[[str], Rows],
                                            orders: np.ndarray) -> None:
    odd = [(101 + 10 * i, name) for i, name in enumerate(ODDITIES)]
    built = build_dataset(tmp_path / "data", odd=odd)
    _check_oddity_files(built, odd)
    outcome = _evaluate(tmp_path / "run", built, backend, orders)
    assert outcome.calls == [] and outcome.stats.unreadable == {}
    frame = pd.read_csv(outcome.run_dir / "images.csv", keep_default_na=False)
    assert frame["error"].tolist() == [""] * len(built.dataset)
    assert outcome.manifest.get("unreadable", {"count": 0})["count"] == 0
    stored = _stored(outcome.run_dir)
    reference_rows = reference(backend)
    paths = [r.path for r in built.dataset.records]
    assert len(paths) == NUM_GOOD + len(ODDITIES)
    for key, probs in stored.items():
        assert np.isfinite(probs).all(), key
        for i, path in enumerate(paths):
            if path in reference_rows:
                assert np.array_equal(probs[i], reference_rows[path][key]), (key, path)
    # Each oddity decodes to its designed colour: its top-5 is its code's order.
    for protocol in PROTOCOLS:
        for i, path in enumerate(paths):
            assert _top5(stored[("colour", protocol)][i]) == \
                orders[built.codes[path], :5].tolist(), (protocol, path)
    every, _ = RunReader(outcome.run_dir).score("colour", "1")
    assert (every.images, every.unreadable) == (len(paths), 0)
    if backend == "dali":
        assert outcome.stats.pipeline_builds == 1


# ----------------------------------------------------------------------------------------------
# The fixtures themselves


def test_each_bad_file_is_what_its_kind_says(tmp_path: Path) -> None:
    built = build_dataset(tmp_path / "data", bad=[(101 + 10 * i, kind)
                                                  for i, kind in enumerate(KINDS)])
    path = {kind: built.dataset.root / name for name, kind in built.bad.items()}
    assert len(built.dataset) == NUM_GOOD + len(KINDS)
    # A whole header (PIL reads the size) over a cut-off scan (decoding fails).
    with Image.open(path["truncated"]) as image:
        assert image.format == "JPEG" and image.size == (96, 64)
        with pytest.raises(OSError, match="truncated"):
            image.load()
    assert path["empty"].is_file() and path["empty"].stat().st_size == 0
    with pytest.raises(UnidentifiedImageError):
        Image.open(path["garbage"])
    assert path["directory"].is_dir()
    assert path["dangling_symlink"].is_symlink() and not path["dangling_symlink"].exists()
    assert not path["missing"].exists() and not path["missing"].is_symlink()
    with Image.open(path["elongated"]) as image:
        assert image.size == (65000, 1)



@pytest.mark.parametrize("backend", BACKENDS)
def test_the_reference_rows_tell_every_good_image_apart(
        backend: str, reference: Callable[[str], Rows]) -> None:
    # A row written at the wrong position, or rendered from another image's pixels, would fail
    # the comparison with the reference: every good image's rows differ from every other's,
    # for both models (the texture model also sees the pattern, not only the colour).
    rows = reference(backend)
    assert len(rows) == NUM_GOOD
    for key in ((m, p) for m in MODELS for p in PROTOCOLS):
        distinct = {rows[path][key].tobytes() for path in rows}
        assert len(distinct) == NUM_GOOD, key
    # The texture model tells views apart: its 1-crop and 12-crop rows differ for every image.
    for path in rows:
        assert not np.array_equal(rows[path][("texture", "1")], rows[path][("texture", "12")])
