"""Damaged run directories: every reader gives one line naming the file and the problem, exit 2.

Each case damages a copy of a small valid run in one way, then runs `inceval tables`, `compare`
and `ensemble` on it. None may print a traceback, exit 1 (reserved for regressions) or score.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from inceval.cli import main
from inceval.store import RunReader
from tests.fixtures.factory import random_probs, write_run
from tests.fixtures.unreadable import identity_sha256, mark_unreadable, nan_rows

LABELS = [3, 1, 4, 1, 5, 9, 2, 6]


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    probs = random_probs(1, len(LABELS), 10)
    return write_run(tmp_path / "good", LABELS, {("v3", "1"): probs, ("v4", "1"): probs})


def _edit_manifest(run: Path, change: Callable[[dict], None]) -> None:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _rewrite_images(run: Path, text: str) -> None:
    """Replace images.csv and fix its sha256 in the manifest (the sha256 of the text without its
    ``error`` column, as the store computes it), as a careless tool would."""
    (run / "images.csv").write_text(text)
    digest = identity_sha256(text)
    _edit_manifest(run, lambda m: m.update(images_sha256=digest))


def _error_column(run: Path, change: Callable[[list[str]], list[str]]) -> None:
    """Rewrite the last (error) cell of every data line of images.csv; sha fixed."""
    mark_unreadable(run, {})  # the column exists (empty) from here on
    lines = (run / "images.csv").read_text().splitlines()
    cells = [line.rsplit(",", 1)[1] for line in lines[1:]]
    _rewrite_images(run, "\n".join([lines[0]] + [line.rsplit(",", 1)[0] + "," + cell
                                                  for line, cell in zip(lines[1:], change(cells))])
                    + "\n")


def _swap_last_columns(run: Path) -> None:
    """Put the error column before 'blacklisted' in images.csv; sha fixed."""
    mark_unreadable(run, {})
    lines = (run / "images.csv").read_text().splitlines()
    _rewrite_images(run, "".join(",".join([*cells[:3], cells[4], cells[3]]) + "\n"
                                 for cells in (line.split(",") for line in lines)))


def _unreadable(images: dict, count: int | None = None) -> Callable[[dict], None]:
    return _set({"count": len(images) if count is None else count, "images": images},
                "unreadable")


def _drop(*keys: str) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return change


def _set(value: object, *keys: str) -> Callable[[dict], None]:
    def change(manifest: dict) -> None:
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


NPY = "predictions/v3/1.npy"
# (case, how to damage the run, text the one-line message must contain)
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    *[(f"missing {key}", lambda r, k=key: _edit_manifest(r, _drop(k)), f"key '{key}' is missing")
      for key in ("prob_dtype", "num_images", "images_sha256", "models", "protocols", "data",
                  "predictions")],
    ("missing data.fingerprint", lambda r: _edit_manifest(r, _drop("data", "fingerprint")),
     "key 'data.fingerprint' is missing"),
    ("missing entry key", lambda r: _edit_manifest(r, _drop("predictions", "v3", "1", "num_rows")),
     "key 'predictions.v3.1.num_rows' is missing"),
    ("num_images as text", lambda r: _edit_manifest(r, _set("8", "num_images")),
     "key 'num_images' should be an integer, not a string"),
    ("predictions as a list", lambda r: _edit_manifest(r, _set([], "predictions")),
     "key 'predictions' should be an object, not a list"),
    ("complete as text", lambda r: _edit_manifest(r, _set("yes", "predictions", "v3", "1",
                                                          "complete")),
     "key 'predictions.v3.1.complete' should be a boolean, not a string"),
    ("rows_written as true", lambda r: _edit_manifest(r, _set(True, "predictions", "v3", "1",
                                                              "rows_written")),
     "key 'predictions.v3.1.rows_written' should be an integer, not a boolean"),
    ("rows_written too high", lambda r: _edit_manifest(r, _set(99, "predictions", "v3", "1",
                                                               "rows_written")),
     "key 'predictions.v3.1.rows_written' is 99, more than its 8 rows"),
    ("protocol version as text", lambda r: _edit_manifest(r, _set("1", "protocols", "1",
                                                                  "version")),
     "key 'protocols.1.version' should be an integer, not a string"),
    ("file outside predictions", lambda r: _edit_manifest(r, _set("../x.npy", "predictions", "v3",
                                                                  "1", "file")),
     "key 'predictions.v3.1.file' is '../x.npy', not a path under predictions/"),
    ("unknown model", lambda r: _edit_manifest(r, _drop("models", "v4")),
     "key 'predictions.v4' names a model that 'models' lacks"),
    ("manifest not JSON", lambda r: (r / "manifest.json").write_text("{"), "cannot read"),
    ("empty npy", lambda r: (r / NPY).write_bytes(b""), f"/{NPY} (No data left in file)"),
    ("truncated npy", lambda r: (r / NPY).write_bytes((r / NPY).read_bytes()[:200]),
     f"/{NPY} (mmap length is greater than file size)"),
    ("npy of text", lambda r: (r / NPY).write_text("not numpy at all" * 20),
     f"/{NPY} is not a .npy file"),
    ("npy of the wrong shape", lambda r: np.save(r / NPY, np.zeros((8, 7), np.float16)),
     f"{NPY} has shape (8, 7) float16 but the manifest says (8, 10) float16"),
    ("npy missing", lambda r: (r / NPY).unlink(), f"{NPY} is missing"),
    ("images.csv row dropped, sha fixed",
     lambda r: _rewrite_images(r, "".join((r / "images.csv").read_text().splitlines(True)[:-1])),
     "images.csv: 7 rows but the manifest says 8 images"),
    ("images.csv column dropped, sha fixed",
     lambda r: _rewrite_images(r, "\n".join(",".join(line.split(",")[:3])
                                           for line in (r / "images.csv").read_text().splitlines())
                               + "\n"),
     "images.csv: column 'blacklisted' is missing"),
    ("images.csv label not a number, sha fixed",
     lambda r: _rewrite_images(r, (r / "images.csv").read_text().replace(",3,0", ",three,0")),
     "images.csv: column 'label' holds values that are not integers"),
    ("images.csv changed, sha kept",
     lambda r: (r / "images.csv").write_text((r / "images.csv").read_text().replace(",3,0", ",2,0")),
     "images.csv was changed after the run"),
    # Unreadable images (issue 8): the error column and manifest["unreadable"] must agree.
    ("error column marks an image the manifest does not list",
     lambda r: _error_column(r, lambda c: c[:2] + ["file is empty"] + c[3:]),
     "images.csv: column 'error' marks image 2 unreadable but manifest.json does not list it"),
    ("manifest lists an image the error column does not mark",
     lambda r: (mark_unreadable(r, {2: "file is empty"}),
                _edit_manifest(r, _unreadable({"2": "file is empty",
                                               "5": "not a readable image"}))),
     "manifest.json lists image 5 as unreadable (key 'unreadable.images') but column 'error' "
     "does not mark it"),
    ("reasons differ",
     lambda r: (mark_unreadable(r, {2: "file is empty"}),
                _edit_manifest(r, _unreadable({"2": "not a readable image"}))),
     "column 'error' of image 2 differs from manifest.json key 'unreadable.images.2'"),
    ("manifest lists unreadable images, images.csv has no error column",
     lambda r: (mark_unreadable(r, {}),
                _rewrite_images(r, "".join(line.rsplit(",", 1)[0] + "\n" for line in
                                           (r / "images.csv").read_text().splitlines())),
                _edit_manifest(r, _unreadable({"2": "file is empty"}))),
     "images.csv: it has no column 'error' but manifest.json lists 1 unreadable image(s)"),
    ("error column not last",
     lambda r: _swap_last_columns(r), "images.csv: column 'error' is not the last column"),
    ("unreadable count disagrees",
     lambda r: (mark_unreadable(r, {2: "file is empty"}),
                _edit_manifest(r, _unreadable({"2": "file is empty"}, count=3))),
     "key 'unreadable.count' is 3 but 'unreadable.images' lists 1 image(s)"),
    ("unreadable index out of range",
     lambda r: _edit_manifest(r, _unreadable({"8": "file is empty"})),
     "key 'unreadable.images.8' is not an image index (0..7)"),
    ("unreadable index not a number",
     lambda r: _edit_manifest(r, _unreadable({"02": "file is empty"})),
     "key 'unreadable.images.02' is not an image index (0..7)"),
    ("unreadable reason not a string",
     lambda r: _edit_manifest(r, _unreadable({"2": 404})),
     "key 'unreadable.images.2' should be the reason the image could not be read, not an "
     "integer"),
    ("unreadable reason empty",
     lambda r: _edit_manifest(r, _unreadable({"2": " "})),
     "key 'unreadable.images.2' should be the reason the image could not be read, not an empty "
     "string"),
    ("unreadable not an object",
     lambda r: _edit_manifest(r, _set(["2"], "unreadable")),
     "key 'unreadable' should be an object, not a list"),
    ("NaN row of an image marked readable",
     lambda r: nan_rows(r / NPY, [2, 6]),
     f"{NPY}: rows 2, 6 hold NaN but images.csv marks them readable; the run directory is "
     "damaged"),
    ("NaN row beside a marked unreadable image",
     lambda r: (mark_unreadable(r, {2: "file is empty"}), nan_rows(r / NPY, [5])),
     f"{NPY}: row 5 holds NaN but images.csv marks it readable; the run directory is "
     "damaged"),
]


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_at_least_the_ten_kinds_of_the_issue_are_covered() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize(("case", "damage", "message"), CASES, ids=[c[0] for c in CASES])
def test_damaged_run_is_one_line_exit_2_in_every_reader(
        good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
        damage: Callable[[Path], None], message: str) -> None:
    RunReader(good).results()  # the undamaged run reads fine
    damage(good)
    for args in (["tables", str(good)], ["tables", str(good), "--format", "json"],
                 ["compare", str(good), str(good)],
                 ["ensemble", str(good), "--members", "v3,v4", "--crops", "1",
                  "--out", str(tmp_path / f"ens-{abs(hash(case))}")]):
        code, out, err = _run_cli(args, capsys)
        assert code == 2, (case, args, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1, (case, args, err)
        assert message in err, (case, args, err)
        assert "Traceback" not in out + err


def test_a_bug_exits_3_with_its_traceback(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import inceval.cli.models as models_cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("planted bug")

    monkeypatch.setattr(models_cli.command, "callback", broken)
    code, _, err = _run_cli(["models"], capsys)
    assert code == 3
    assert "Traceback" in err and "RuntimeError: planted bug" in err
    assert err.rstrip().splitlines()[-1].startswith("error: internal error in inceval")
