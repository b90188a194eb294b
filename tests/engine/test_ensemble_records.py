"""What an ensemble run records (manifest, member records, dtype, data) and its exact refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inceval import __version__
from inceval.engine.ensemble import Member, build_ensemble, member_record, resolve_members
from inceval.errors import InceValError
from inceval.store import RunReader, RunWriter
from tests.fixtures.factory import fingerprint, images, random_probs

LABELS = [0, 3, 2, 1, 1]
N = len(LABELS)


def make_run(run_dir: Path, models: dict[str, dict], *, classes: int = 4,
             prob_dtype: str = "float16", data_extra: dict | None = None,
             protocol_version: int = 2) -> RunReader:
    """A finished run whose models carry the given manifest records, under protocol '144'."""
    manifest = {
        "models": models,
        "protocols": {"144": {"version": protocol_version, "views": ["a", "b"]}},
        "data": {"fingerprint": fingerprint("five images"), **(data_extra or {})},
    }
    writer = RunWriter.create(run_dir, manifest=manifest, images=images(LABELS, [1]),
                              prob_dtype=prob_dtype)
    for seed, model in enumerate(models):
        writer.open_predictions(model, "144", num_classes=classes)
        writer.write(model, "144", 0, random_probs(seed, N, classes))
        writer.mark_complete(model, "144")
    writer.finish()
    return RunReader(run_dir)


V4 = {"arch": "inception_v4", "weights": "pretrained", "weights_tag": "tf_in1k",
      "weights_file": "/w/v4.safetensors", "weights_sha256": "ab" * 32}
V3 = {"arch": "inception_v3", "weights": "pretrained", "weights_tag": "tv_in1k",
      "weights_file": "/w/v3.safetensors", "weights_sha256": "cd" * 32}


def test_member_record_copies_the_model_record(tmp_path: Path) -> None:
    """Every field of the member's model record, plus run, model and normalised weight."""
    run = make_run(tmp_path / "a", {"v4": V4})
    assert member_record(Member(run, "v4", 3.0), 0.75) == {
        "run": str((tmp_path / "a").resolve()), "model": "v4", "arch": "inception_v4",
        "weights": "pretrained", "weights_tag": "tf_in1k", "weights_file": "/w/v4.safetensors",
        "weights_sha256": "ab" * 32, "weight": 0.75,
    }


def test_ensemble_manifest_records_kind_members_and_protocol(tmp_path: Path) -> None:
    """The ensemble's own model record, protocol record and run kind, field by field."""
    run = make_run(tmp_path / "a", {"v4": V4, "v3": V3})
    out = build_ensemble([Member(run, "v4", 1.0), Member(run, "v3", 3.0)], ["144"],
                         tmp_path / "e", "pair")
    manifest = RunReader(out).manifest
    assert manifest["kind"] == "ensemble"
    assert manifest["inceval_version"] == __version__
    assert manifest["command"] is None
    record = manifest["models"]["pair"]
    assert {k: v for k, v in record.items() if k != "members"} == {
        "kind": "ensemble", "arch": None, "weights": "ensemble", "weights_tag": None,
        "weights_file": None, "weights_sha256": None}
    assert [(m["model"], m["arch"], m["weight"]) for m in record["members"]] == \
        [("v4", "inception_v4", 0.25), ("v3", "inception_v3", 0.75)]
    assert manifest["protocols"] == {"144": {"version": 2, "views": ["a", "b"]}}


def test_nested_ensemble_records_the_inner_members(tmp_path: Path) -> None:
    """An ensemble of an ensemble keeps the inner member list under its member record."""
    run = make_run(tmp_path / "a", {"v4": V4, "v3": V3})
    inner = RunReader(build_ensemble([Member(run, "v4"), Member(run, "v3")], ["144"],
                                     tmp_path / "inner", "in"))
    outer = RunReader(build_ensemble([Member(inner, "in"), Member(run, "v4")], ["144"],
                                     tmp_path / "outer", "out"))
    members = outer.manifest["models"]["out"]["members"]
    assert [m["model"] for m in members[0]["members"]] == ["v4", "v3"]
    assert members[0]["members"] == inner.manifest["models"]["in"]["members"]
    assert "members" not in members[1]


def test_dtype_and_data_come_from_the_first_member_run(tmp_path: Path) -> None:
    """prob_dtype and the data record follow the first member's run, in either order."""
    a = make_run(tmp_path / "a", {"v4": V4}, prob_dtype="float32", data_extra={"root": "/a"})
    b = make_run(tmp_path / "b", {"v3": V3}, prob_dtype="float16", data_extra={"root": "/b"})
    ab = RunReader(build_ensemble([Member(a, "v4"), Member(b, "v3")], ["144"], tmp_path / "ab",
                                  "e"))
    ba = RunReader(build_ensemble([Member(b, "v3"), Member(a, "v4")], ["144"], tmp_path / "ba",
                                  "e"))
    assert (ab.manifest["prob_dtype"], ab.manifest["data"]["root"]) == ("float32", "/a")
    assert (ba.manifest["prob_dtype"], ba.manifest["data"]["root"]) == ("float16", "/b")
    assert ab.probabilities("e", "144").dtype == np.float32


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    """A second ensemble into the same directory is refused unless overwrite is asked for."""
    run = make_run(tmp_path / "a", {"v4": V4})
    build_ensemble([Member(run, "v4")], ["144"], tmp_path / "e", "one")
    with pytest.raises(InceValError):
        build_ensemble([Member(run, "v4")], ["144"], tmp_path / "e", "two")
    assert RunReader(tmp_path / "e").entries() == [("one", "144")]
    build_ensemble([Member(run, "v4")], ["144"], tmp_path / "e", "two", overwrite=True)
    assert RunReader(tmp_path / "e").entries() == [("two", "144")]


def test_build_refusals(tmp_path: Path) -> None:
    """Exact messages: no members, no protocols, a bad name, writing into a member run."""
    run = make_run(tmp_path / "a", {"v4": V4})
    cases = [
        (([], ["144"], tmp_path / "e", "e"),
         "an ensemble needs at least one member (--members)"),
        (([Member(run, "v4")], [], tmp_path / "e", "e"), "name at least one protocol (--crops)"),
        (([Member(run, "v4")], ["144"], tmp_path / "e", "a/b"),
         "ensemble name 'a/b' cannot be stored; use letters, digits and . _ + - "
         "(not starting with . + or -)"),
        (([Member(run, "v4")], ["144"], tmp_path / "a", "e"),
         f"--out {tmp_path / 'a'} is the member run {tmp_path / 'a'}; write the ensemble to a "
         "new directory"),
    ]
    for args, message in cases:
        with pytest.raises(InceValError) as info:
            build_ensemble(*args)
        assert str(info.value) == message


def test_different_class_counts_are_refused(tmp_path: Path) -> None:
    """Members with 4 and 6 classes cannot be averaged; the counts are listed sorted."""
    a = make_run(tmp_path / "a", {"v4": V4}, classes=6)
    b = make_run(tmp_path / "b", {"v3": V3}, classes=4)
    with pytest.raises(InceValError) as info:
        build_ensemble([Member(a, "v4"), Member(b, "v3")], ["144"], tmp_path / "e", "e")
    assert str(info.value) == \
        "members' 144 predictions have different class counts [4, 6]; they cannot be averaged"


def test_member_spec_refusals_list_what_the_runs_hold(tmp_path: Path) -> None:
    """A model no run holds lists every run's models ('none' for an empty run); a repeat names
    both specs."""
    a = make_run(tmp_path / "a", {"v4": V4, "v3": V3})
    empty = make_run(tmp_path / "empty", {})
    with pytest.raises(InceValError) as info:
        resolve_members(["irv2"], [a, empty])
    assert str(info.value) == (f"--members entry 'irv2': no run has model irv2 "
                               f"({tmp_path / 'a'}: v4, v3; {tmp_path / 'empty'}: none)")
    with pytest.raises(InceValError) as info:
        resolve_members(["v4", "v4@1"], [a])
    assert str(info.value) == ("--members names v4 of run 1 twice ('v4' and 'v4@1'); use MODEL@N "
                               "to take it from another run")
