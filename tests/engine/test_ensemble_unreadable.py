"""Ensembles of runs with unreadable images (issue 8): no NaN enters a mean, the union is recorded.

Member runs are written through the store and then marked unreadable by editing their files as
the run contract says (tests/fixtures/unreadable.py). The expected rows are the members' stored
rows averaged with numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inceval.engine.ensemble import Member, build_ensemble
from inceval.errors import InceValError
from inceval.store import RunReader
from tests.fixtures.factory import random_probs, write_run
from tests.fixtures.unreadable import mark_unreadable, nan_rows

LABELS = [0, 3, 2, 7, 1, 1, 5, 4, 6, 2, 0]
N, C = len(LABELS), 10


def _runs(tmp_path: Path, first: dict[int, str], second: dict[int, str]
          ) -> tuple[RunReader, RunReader]:
    a = write_run(tmp_path / "a", LABELS, {("v4", "144"): random_probs(1, N, C),
                                           ("v4", "12"): random_probs(2, N, C)})
    b = write_run(tmp_path / "b", LABELS, {("irv2", "144"): random_probs(3, N, C),
                                           ("irv2", "12"): random_probs(4, N, C)})
    mark_unreadable(a, first)
    mark_unreadable(b, second)
    return RunReader(a), RunReader(b)


def test_runs_that_read_different_images_are_refused_unless_allowed(tmp_path: Path) -> None:
    a, b = _runs(tmp_path, {2: "file is empty"}, {5: "not a readable image"})
    with pytest.raises(InceValError, match=r"cannot be combined: scored images differ: 1 "
                                           r"image\(s\) unreadable only in .*a \(first: index 2\), "
                                           r"1 image\(s\) unreadable only in .*b \(first: index 5\)"
                                           r"; pass --allow-different-images"):
        build_ensemble([Member(a, "v4"), Member(b, "irv2")], ["144"], tmp_path / "e", "e")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("chunk_rows", [3, 64])
def test_the_ensemble_is_unreadable_wherever_a_member_is(tmp_path: Path, chunk_rows: int) -> None:
    # Image 2 unreadable in both (reasons differ: the first member's wins), 5 only in a, 9 only
    # in b; chunks of 3 put them in three different chunks.
    a, b = _runs(tmp_path, {2: "file is empty", 5: "image file not found"},
                 {2: "not a readable image", 9: "file is empty"})
    out = build_ensemble([Member(a, "v4", 3.0), Member(b, "irv2", 1.0)], ["144", "12"],
                         tmp_path / "e", "e", chunk_rows=chunk_rows, allow_different_images=True)
    ens = RunReader(out)
    assert ens.errors.tolist() == ["", "", "file is empty", "", "", "image file not found",
                                   "", "", "", "file is empty", ""]
    record = json.loads((out / "manifest.json").read_text())["unreadable"]
    assert record == {"count": 3, "images": {"2": "file is empty", "5": "image file not found",
                                             "9": "file is empty"}}
    keep = np.ones(N, dtype=bool)
    keep[[2, 5, 9]] = False
    for protocol in ("144", "12"):
        stored = np.asarray(ens.probabilities("e", protocol), dtype=np.float64)
        assert np.isnan(stored[~keep]).all()
        members = [np.asarray(run.probabilities(model, protocol), dtype=np.float64)
                   for run, model in ((a, "v4"), (b, "irv2"))]
        mean = (0.75 * members[0] + 0.25 * members[1])[keep]
        np.testing.assert_array_equal(stored[keep], mean.astype(np.float16).astype(np.float64))
        every, _ = ens.score("e", protocol)
        assert (every.images, every.unreadable) == (8, 3)


def test_runs_with_the_same_unreadable_images_need_no_option(tmp_path: Path) -> None:
    a, b = _runs(tmp_path, {4: "file is empty"}, {4: "file is empty"})
    out = build_ensemble([Member(a, "v4"), Member(b, "irv2")], ["144"], tmp_path / "e", "e")
    assert np.flatnonzero(RunReader(out).unreadable).tolist() == [4]


def test_runs_without_unreadable_images_are_written_as_before(tmp_path: Path) -> None:
    a, b = _runs(tmp_path, {}, {})
    out = build_ensemble([Member(a, "v4"), Member(b, "irv2")], ["144"], tmp_path / "e", "e")
    manifest = json.loads((out / "manifest.json").read_text())
    assert "unreadable" not in manifest and "chunks" not in manifest
    assert RunReader(out).num_unreadable == 0


def test_a_member_nan_row_not_marked_unreadable_is_refused(tmp_path: Path) -> None:
    a, b = _runs(tmp_path, {}, {})
    nan_rows(b.run_dir / "predictions" / "irv2" / "144.npy", [7])
    with pytest.raises(InceValError, match=r"irv2/144\.npy: row 7 holds NaN but images\.csv "
                                           r"marks it readable"):
        build_ensemble([Member(a, "v4"), Member(b, "irv2")], ["144"], tmp_path / "e", "e")
