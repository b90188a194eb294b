"""The results store: round trip, progress records, resume, refusals and loud write failures."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import inceval.store as store
from inceval.errors import InceValError
from inceval.store import RunReader, RunWriter, SCHEMA_VERSION
from tests.fixtures.factory import fingerprint, images, manifest, random_probs, ranked_probs

LABELS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
BLACK = [1, 4, 7]


def _create(run_dir: Path, **kwargs) -> RunWriter:
    kwargs.setdefault("manifest", manifest({"v4": "inception_v4.tf_in1k"}, {"144": 1}))
    kwargs.setdefault("images", images(LABELS, BLACK))
    return RunWriter.create(run_dir, **kwargs)


def _disk_manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_round_trip_stores_float16_rows_and_the_image_table(tmp_path: Path) -> None:
    probs = random_probs(0, 10, 12)
    writer = _create(tmp_path / "run")
    writer.open_predictions("v4", "144", num_classes=12)
    for start, stop in ((0, 3), (3, 4), (4, 10)):  # uneven batches
        writer.write("v4", "144", start, probs[start:stop])
    writer.mark_complete("v4", "144")
    writer.finish({"throughput": {"images_per_s": 12.5}})

    run = RunReader(tmp_path / "run")
    m = run.manifest
    assert (m["format"], m["schema_version"], m["prob_dtype"], m["num_images"]) == \
        ("inceval-run", SCHEMA_VERSION, "float16", 10)
    assert m["throughput"] == {"images_per_s": 12.5} and m["finished_at"]
    assert m["predictions"]["v4"]["144"] == {
        "file": "predictions/v4/144.npy", "protocol_version": 1, "num_rows": 10,
        "num_classes": 12, "rows_written": 10, "complete": True}
    assert run.entries() == [("v4", "144")]
    assert run.labels.tolist() == LABELS
    assert np.flatnonzero(run.blacklisted).tolist() == BLACK
    assert run.images.columns.tolist() == ["index", "path", "label", "blacklisted"]
    assert run.images["path"].tolist() == [i["path"] for i in images(LABELS)]
    assert run.fingerprint == manifest({}, {})["data"]["fingerprint"]
    stored = run.probabilities("v4", "144")
    assert stored.dtype == np.float16
    np.testing.assert_array_equal(stored, probs.astype(np.float16))
    with pytest.raises(ValueError):
        stored[0, 0] = 1  # read-only map
    raw = np.load(tmp_path / "run" / "predictions" / "v4" / "144.npy")  # plain .npy for users
    np.testing.assert_array_equal(raw, probs.astype(np.float16))


def test_float32_storage_keeps_the_values(tmp_path: Path) -> None:
    probs = random_probs(1, 10, 10)
    writer = _create(tmp_path / "run", prob_dtype="float32")
    writer.open_predictions("v4", "144", num_classes=10)
    writer.write("v4", "144", 0, probs)
    writer.mark_complete("v4", "144")
    writer.finish()
    np.testing.assert_array_equal(RunReader(tmp_path / "run").probabilities("v4", "144"), probs)


def test_torch_bfloat16_rows_are_widened_then_stored(tmp_path: Path) -> None:
    probs = torch.from_numpy(random_probs(9, 10, 10)).to(torch.bfloat16)
    writer = _create(tmp_path / "run")
    writer.open_predictions("v4", "144", num_classes=10)
    writer.write("v4", "144", 0, probs)
    writer.mark_complete("v4", "144")
    writer.finish()
    np.testing.assert_array_equal(RunReader(tmp_path / "run").probabilities("v4", "144"),
                                  probs.float().numpy().astype(np.float16))


def test_results_match_hand_computed_errors_on_both_subsets(tmp_path: Path) -> None:
    ranks = [0, 0, 1, 5, 4, 0, 7, 2, 0, 3]  # classes above each image's label
    writer = _create(tmp_path / "run")
    writer.open_predictions("v4", "144", num_classes=12)
    writer.write("v4", "144", 0, torch.from_numpy(ranked_probs(LABELS, ranks, 12)))
    writer.mark_complete("v4", "144")
    writer.finish()
    all_, clean = RunReader(tmp_path / "run").results()
    # all 10: top-1 wrong where rank >= 1 (6 images), top-5 wrong where rank >= 5 (2 images)
    assert (all_.subset, all_.images, all_.top1_wrong, all_.top5_wrong) == ("all", 10, 6, 2)
    assert (all_.top1_error, all_.top5_error) == (60.0, 20.0)
    # rows 1, 4, 7 blacklisted (ranks 0, 4, 2): 7 left, top-1 wrong 4, top-5 wrong 2
    assert (clean.subset, clean.images, clean.top1_wrong, clean.top5_wrong) == \
        ("non-blacklisted", 7, 4, 2)
    assert clean.top1_error == pytest.approx(400 / 7) and clean.top5_error == pytest.approx(200 / 7)
    assert all_.top1_tie_dependent == 0 and all_.complete


def test_results_count_float16_ties_as_wrong(tmp_path: Path) -> None:
    """A tie created by float16 storage decides the outcome, and is counted as wrong.

    Label 0 (0.50004) beats class 1 (0.49995) in float32, and nothing else comes close, so the
    unrounded row is top-1 correct. float16 rounds both to 0.5 (its spacing just below 0.5 is
    2**-12 ~ 0.000244, above 0.5 it is 2**-11): under the pessimistic rule the stored row is top-1
    wrong and tie-dependent; a store scoring with the optimistic rule (or an index-order argmax)
    would count it right and fail here. Top-5 is unaffected: only one class ties with the label.
    """
    row = np.array([[0.50004, 0.49995, 0.00001]], dtype=np.float32)
    assert row[0, 0] > row[0, 1] > row[0, 2]  # float32: the label is the clear first choice
    assert np.float16(row[0, 0]) == np.float16(row[0, 1]) == np.float16(0.5)
    writer = _create(tmp_path / "run", images=images([0]))
    writer.open_predictions("v4", "144", num_classes=3)
    writer.write("v4", "144", 0, row)
    writer.mark_complete("v4", "144")
    writer.finish()
    score = RunReader(tmp_path / "run").results()[0]
    assert (score.top1_wrong, score.top1_error, score.top1_tie_dependent) == (1, 100.0, 1)
    assert (score.top5_wrong, score.top5_error, score.top5_tie_dependent) == (0, 0.0, 0)


def test_progress_is_recorded_after_each_write_and_incomplete_files_are_refused(
        tmp_path: Path) -> None:
    probs = random_probs(2, 10, 12)
    writer = _create(tmp_path / "run")
    writer.open_predictions("v4", "144", num_classes=12)
    assert _disk_manifest(tmp_path / "run")["predictions"]["v4"]["144"]["rows_written"] == 0
    writer.write("v4", "144", 0, probs[:4])
    assert _disk_manifest(tmp_path / "run")["predictions"]["v4"]["144"]["rows_written"] == 4
    # What a crash leaves: the rows are on disk, readable by another process right now.
    run = RunReader(tmp_path / "run")
    status = run.status("v4", "144")
    assert (status.rows_written, status.complete) == (4, False)
    with pytest.raises(InceValError, match=r"incomplete \(4 of 10 rows written\)"):
        run.probabilities("v4", "144")
    with pytest.raises(InceValError, match="incomplete"):
        run.results()
    partial = run.probabilities("v4", "144", allow_incomplete=True)
    np.testing.assert_array_equal(partial, probs[:4].astype(np.float16))
    scores = run.score("v4", "144", allow_incomplete=True)
    assert scores[0].images == 4 and not scores[0].complete
    writer.close()
    assert _disk_manifest(tmp_path / "run")["finished_at"] is None


def test_flush_interval_delays_the_progress_record_until_close(tmp_path: Path) -> None:
    writer = _create(tmp_path / "run", flush_interval_s=3600)
    writer.open_predictions("v4", "144", num_classes=12)
    writer.write("v4", "144", 0, random_probs(3, 5, 12))
    assert _disk_manifest(tmp_path / "run")["predictions"]["v4"]["144"]["rows_written"] == 0
    writer.close()
    assert _disk_manifest(tmp_path / "run")["predictions"]["v4"]["144"]["rows_written"] == 5


def test_resume_continues_from_rows_written(tmp_path: Path) -> None:
    probs = random_probs(4, 10, 12)
    with _create(tmp_path / "run") as writer:
        writer.open_predictions("v4", "144", num_classes=12)
        writer.write("v4", "144", 0, probs[:6])
    resumed = RunWriter.resume(tmp_path / "run",
                               manifest=manifest({"v4": "inception_v4.tf_in1k", "v3": None},
                                                 {"144": 1, "12": 1}))
    assert resumed.rows_written("v4", "144") == 6
    resumed.open_predictions("v4", "144", num_classes=12)
    resumed.write("v4", "144", 4, probs[4:])  # restart at an earlier batch boundary
    resumed.mark_complete("v4", "144")
    resumed.finish()
    run = RunReader(tmp_path / "run")
    np.testing.assert_array_equal(run.probabilities("v4", "144"), probs.astype(np.float16))
    assert set(run.manifest["models"]) == {"v4", "v3"} and "12" in run.manifest["protocols"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m["data"].update(fingerprint=fingerprint("other")), "another image list"),
        (lambda m: m["protocols"]["144"].update(version=2), "protocol 144 was version 1"),
        (lambda m: m["models"]["v4"].update(weights_sha256="0" * 64), "weights_sha256"),
    ],
)
def test_resume_refuses_a_different_run(tmp_path: Path, change, match: str) -> None:
    _create(tmp_path / "run").close()
    new = manifest({"v4": "inception_v4.tf_in1k"}, {"144": 1})
    change(new)
    with pytest.raises(InceValError, match=match):
        RunWriter.resume(tmp_path / "run", manifest=new)


def test_writes_that_would_corrupt_the_file_are_refused(tmp_path: Path) -> None:
    probs = random_probs(5, 10, 12)
    writer = _create(tmp_path / "run")
    with pytest.raises(ValueError, match="not in the manifest"):
        writer.open_predictions("v3", "144")
    with pytest.raises(ValueError, match="num_classes"):
        writer.open_predictions("v4", "144", num_classes=5)  # label 9 would not fit
    writer.open_predictions("v4", "144", num_classes=12)
    with pytest.raises(ValueError, match="gap"):
        writer.write("v4", "144", 2, probs[2:4])
    with pytest.raises(ValueError, match="shape"):
        writer.write("v4", "144", 0, probs[:, :11])
    with pytest.raises(ValueError, match="exceed"):
        writer.write("v4", "144", 0, np.concatenate([probs, probs[:1]]))
    with pytest.raises(ValueError, match="not probabilities"):
        writer.write("v4", "144", 0, np.log(probs))  # logits are not probabilities
    bad = probs[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(InceValError, match="NaN or infinite probabilities for images 0..2"):
        writer.write("v4", "144", 0, bad)
    assert writer.rows_written("v4", "144") == 0
    with pytest.raises(ValueError, match="rows written; cannot mark complete"):
        writer.mark_complete("v4", "144")
    writer.write("v4", "144", 0, probs)
    writer.mark_complete("v4", "144")
    with pytest.raises(ValueError, match="complete"):
        writer.write("v4", "144", 0, probs[:1])
    writer.finish()
    with pytest.raises(ValueError, match="closed"):
        writer.write("v4", "144", 0, probs[:1])


def test_manifest_and_images_are_validated(tmp_path: Path) -> None:
    good = manifest({"v4": None}, {"144": 1})
    bad_fp = json.loads(json.dumps(good))
    bad_fp["data"]["fingerprint"] = "abc"
    with pytest.raises(ValueError, match="fingerprint"):
        _create(tmp_path / "a", manifest=bad_fp)
    with pytest.raises(ValueError, match="store only"):
        _create(tmp_path / "b", manifest={**good, "predictions": {}})
    with pytest.raises(InceValError, match="cannot be stored"):
        _create(tmp_path / "c", manifest={**good, "models": {"../x": {}}})
    with pytest.raises(ValueError, match="duplicate image path"):
        _create(tmp_path / "d", images=images([1, 2])[:1] * 2)


def test_image_table_round_trips_awkward_paths_and_extra_columns(tmp_path: Path) -> None:
    table = pd.DataFrame({"path": ['a,b/"q".JPEG', "NA", "x y/é.jpg"], "label": [0, 1, 2],
                          "blacklisted": [False, True, False], "wnid": ["n1", "n2", "n3"]})
    _create(tmp_path / "run", images=table).finish()
    got = RunReader(tmp_path / "run").images
    assert got["path"].tolist() == table["path"].tolist()
    assert got["wnid"].tolist() == ["n1", "n2", "n3"]
    assert got["blacklisted"].tolist() == [False, True, False]


def test_non_empty_directories_are_refused_and_overwrite_only_replaces_runs(
        tmp_path: Path) -> None:
    _create(tmp_path / "run").finish()
    with pytest.raises(InceValError, match=r"run directory .*run is not empty; choose a new one"):
        _create(tmp_path / "run")
    _create(tmp_path / "run", overwrite=True, images=images([7, 7])).finish()
    assert RunReader(tmp_path / "run").num_images == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InceValError, match="not an inceval run"):
        _create(other, overwrite=True)
    (tmp_path / "run" / "notes.txt").write_text("keep me")
    with pytest.raises(InceValError, match="also holds 'notes.txt'"):
        _create(tmp_path / "run", overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    assert RunReader(tmp_path / "run").num_images == 2


def test_a_second_writer_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    writer = _create(tmp_path / "run")
    with pytest.raises(InceValError, match="another inceval process is writing"):
        RunWriter.resume(tmp_path / "run")
    with pytest.raises(InceValError, match="another inceval process is writing"):
        _create(tmp_path / "run", overwrite=True)
    writer.close()
    RunWriter.resume(tmp_path / "run").close()


def test_failed_manifest_write_is_loud_and_keeps_the_old_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = _create(tmp_path / "run")
    writer.open_predictions("v4", "144", num_classes=10)
    before = (tmp_path / "run" / "manifest.json").read_text()

    def full_disk(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "replace", full_disk)
    with pytest.raises(InceValError, match="cannot write .*manifest.json: No space left"):
        writer.write("v4", "144", 0, random_probs(6, 2, 10))
    assert (tmp_path / "run" / "manifest.json").read_text() == before


def test_failed_allocation_is_loud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate here")
    writer = _create(tmp_path / "run")

    def full_disk(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "posix_fallocate", full_disk)
    with pytest.raises(InceValError, match="cannot create .*144.npy: No space left"):
        writer.open_predictions("v4", "144", num_classes=10)


def test_reader_refuses_non_runs_other_schemas_and_edited_images(tmp_path: Path) -> None:
    with pytest.raises(InceValError, match="does not exist"):
        RunReader(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InceValError, match="has no manifest.json"):
        RunReader(tmp_path / "empty")
    _create(tmp_path / "run").finish()
    path = tmp_path / "run" / "manifest.json"
    original = json.loads(path.read_text())
    path.write_text(json.dumps({**original, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(InceValError, match="schema version 2; .* upgrade inceval"):
        RunReader(tmp_path / "run")
    path.write_text(json.dumps({**original, "format": "something"}))
    with pytest.raises(InceValError, match="not an inceval run manifest"):
        RunReader(tmp_path / "run")
    path.write_text(json.dumps(original))
    csv = tmp_path / "run" / "images.csv"
    csv.write_text(csv.read_text().replace(",3,", ",4,", 1))
    with pytest.raises(InceValError, match="images.csv was changed after the run"):
        _ = RunReader(tmp_path / "run").labels


def test_missing_entry_names_what_the_run_has(tmp_path: Path) -> None:
    writer = _create(tmp_path / "run")
    writer.open_predictions("v4", "144", num_classes=10)
    writer.close()
    with pytest.raises(InceValError, match=r"no predictions for model v3 .* \(it has: v4/144\)"):
        RunReader(tmp_path / "run").probabilities("v3", "144")


def test_damaged_prediction_file_is_refused(tmp_path: Path) -> None:
    writer = _create(tmp_path / "run")
    writer.open_predictions("v4", "144", num_classes=10)
    writer.write("v4", "144", 0, random_probs(8, 10, 10))
    writer.mark_complete("v4", "144")
    writer.finish()
    np.save(tmp_path / "run" / "predictions" / "v4" / "144.npy", np.zeros((10, 10), np.float32))
    with pytest.raises(InceValError, match="the run is damaged"):
        RunReader(tmp_path / "run").probabilities("v4", "144")


def test_resume_repairs_unreadable_records_cut_between_their_two_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # images.csv (column `error`) and manifest.json (key `unreadable`) are both derived from the
    # chunk markers and written one after the other. A run killed between the two writes must
    # not be refused as damaged by --resume, and the resume makes them agree again.
    run_dir = tmp_path / "run"
    probs = random_probs(5, 10, 12)
    with _create(run_dir, manifest={**manifest({"v4": "inception_v4.tf_in1k"}, {"144": 1}),
                                    "command": "inceval run --models v4 --out run"}) as writer:
        writer.use_chunks(5, 2)
        writer.open_predictions("v4", "144", num_classes=12)
        writer.write("v4", "144", 0, probs[:5])
        writer.complete_chunk(0, 0, 5, {1: "empty file"})
    writer = RunWriter.resume(run_dir)
    writer.open_predictions("v4", "144", num_classes=12)
    writer.write("v4", "144", 5, probs[5:])
    original = RunWriter._save_manifest

    def killed(self: RunWriter) -> None:
        raise KeyboardInterrupt  # the process dies right after images.csv was replaced

    monkeypatch.setattr(RunWriter, "_save_manifest", killed)
    with pytest.raises(KeyboardInterrupt):  # the marker is written, then the records
        writer.complete_chunk(1, 5, 10, {7: "truncated JPEG"})
    with pytest.raises(KeyboardInterrupt):
        writer.close()  # releases the directory
    monkeypatch.setattr(RunWriter, "_save_manifest", original)

    csv_errors = pd.read_csv(run_dir / "images.csv", keep_default_na=False)["error"]
    assert list(np.flatnonzero(csv_errors != "")) == [1, 7]
    assert _disk_manifest(run_dir)["unreadable"]["images"] == {"1": "empty file"}
    with pytest.raises(InceValError) as info:
        RunReader(run_dir).errors
    message = str(info.value)
    assert "image 7" in message and "inceval run --models v4 --out run --resume" in message
    assert "damaged" not in message and "\n" not in message

    with RunWriter.resume(run_dir) as resumed:
        assert resumed.done_chunks().keys() == {0, 1}
    run = RunReader(run_dir)
    assert run.errors.tolist() == ["", "empty file"] + [""] * 5 + ["truncated JPEG", "", ""]
    assert run.manifest["unreadable"] == {"count": 2, "images": {"1": "empty file",
                                                                 "7": "truncated JPEG"}}


def test_mismatched_unreadable_records_of_a_finished_run_are_damage(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with _create(run_dir) as writer:
        writer.use_chunks(10, 1)
        writer.open_predictions("v4", "144", num_classes=12)
        writer.write("v4", "144", 0, random_probs(6, 10, 12))
        writer.complete_chunk(0, 0, 10, {2: "empty file"})
        writer.seal()
        writer.finish()
    recorded = _disk_manifest(run_dir)
    recorded["unreadable"] = {"count": 0, "images": {}}
    (run_dir / "manifest.json").write_text(json.dumps(recorded))
    with pytest.raises(InceValError, match="marks image 2 unreadable .* the run directory is "
                                           "damaged: restore it from a copy or rerun$"):
        RunReader(run_dir).errors
