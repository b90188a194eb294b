"""Ensembles: the stored result is the weighted mean of the members; mismatched runs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inceval.engine.ensemble import Member, build_ensemble, normalised_weights, resolve_members
from inceval.errors import InceValError
from inceval.store import RunReader, RunWriter
from tests.fixtures.factory import fingerprint, images, manifest, random_probs, write_run

LABELS = [0, 3, 2, 7, 1, 1, 5, 4, 6, 2, 0, 3, 9]
N, C = len(LABELS), 10


@pytest.fixture()
def two_runs(tmp_path: Path) -> tuple[RunReader, RunReader]:
    a = write_run(tmp_path / "a", LABELS, {("v4", "144"): random_probs(1, N, C),
                                           ("irv2", "144"): random_probs(2, N, C),
                                           ("irv2", "12"): random_probs(3, N, C)},
                  blacklisted=[2, 5], weights={"v4": "inception_v4.tf_in1k",
                                               "irv2": "inception_resnet_v2.tf_in1k"})
    b = write_run(tmp_path / "b", LABELS, {("irv2", "144"): random_probs(4, N, C)},
                  blacklisted=[2, 5], weights={"irv2": "inception_resnet_v2.tf_ens_adv_in1k"})
    return RunReader(a), RunReader(b)


def _assert_float16_of(stored: np.ndarray, exact: np.ndarray) -> None:
    """``stored`` is a correctly rounded float16 of ``exact`` (within half a float16 step)."""
    assert stored.dtype == np.float16
    half_ulp = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64) / 2
    assert np.all(np.abs(stored.astype(np.float64) - exact) <= half_ulp * (1 + 1e-6))


def test_ensemble_is_the_weighted_mean_of_the_stored_members(
        two_runs: tuple[RunReader, RunReader], tmp_path: Path) -> None:
    a, b = two_runs
    members = [Member(a, "v4", 1.0), Member(a, "irv2", 2.0), Member(b, "irv2", 3.0)]
    out = build_ensemble(members, ["144"], tmp_path / "ens", "mix", chunk_rows=4)
    stack = np.stack([a.probabilities("v4", "144"), a.probabilities("irv2", "144"),
                      b.probabilities("irv2", "144")]).astype(np.float64)
    exact = np.average(stack, axis=0, weights=[1, 2, 3])
    stored = RunReader(out).probabilities("mix", "144")
    _assert_float16_of(np.asarray(stored), exact)
    assert not np.array_equal(stored, a.probabilities("v4", "144"))
    # chunking does not change a bit
    whole = build_ensemble(members, ["144"], tmp_path / "ens2", "mix", chunk_rows=1000)
    np.testing.assert_array_equal(RunReader(whole).probabilities("mix", "144"), stored)


def test_ensemble_run_records_members_images_and_protocols(
        two_runs: tuple[RunReader, RunReader], tmp_path: Path) -> None:
    a, b = two_runs
    out = build_ensemble([Member(a, "irv2"), Member(b, "irv2")], ["144"], tmp_path / "ens",
                         "2xirv2", command=["inceval", "ensemble"])
    run = RunReader(out)
    record = run.manifest["models"]["2xirv2"]
    assert record["kind"] == "ensemble"
    assert [(Path(m["run"]).name, m["model"], m["weights_tag"], m["weight"])
            for m in record["members"]] == [
        ("a", "irv2", "inception_resnet_v2.tf_in1k", 0.5),
        ("b", "irv2", "inception_resnet_v2.tf_ens_adv_in1k", 0.5)]
    assert record["members"][0]["weights_sha256"] == fingerprint("inception_resnet_v2.tf_in1k")
    assert run.manifest["protocols"]["144"]["version"] == 1
    assert run.fingerprint == a.fingerprint
    assert run.labels.tolist() == LABELS
    assert run.blacklisted.tolist() == a.blacklisted.tolist()
    assert run.status("2xirv2", "144").complete
    assert run.manifest["command"] == ["inceval", "ensemble"]


def test_runs_over_other_images_or_labels_are_refused(
        two_runs: tuple[RunReader, RunReader], tmp_path: Path) -> None:
    a, _ = two_runs
    other = RunReader(write_run(tmp_path / "other", LABELS, {("v3", "144"): random_probs(5, N, C)},
                                blacklisted=[2, 5], data_fingerprint=fingerprint("other list")))
    with pytest.raises(InceValError, match=r"runs .*a and .*other cannot be combined: image "
                                           r"lists differ"):
        build_ensemble([Member(a, "v4"), Member(other, "v3")], ["144"], tmp_path / "x", "e")
    relabelled = RunReader(write_run(tmp_path / "relabelled", [1] + LABELS[1:],
                                     {("v3", "144"): random_probs(5, N, C)}, blacklisted=[2, 5]))
    with pytest.raises(InceValError, match="cannot be combined: labels differ"):
        build_ensemble([Member(a, "v4"), Member(relabelled, "v3")], ["144"], tmp_path / "y", "e")
    reblack = RunReader(write_run(tmp_path / "reblack", LABELS,
                                  {("v3", "144"): random_probs(5, N, C)}, blacklisted=[2]))
    with pytest.raises(InceValError, match="cannot be combined: blacklists differ"):
        build_ensemble([Member(a, "v4"), Member(reblack, "v3")], ["144"], tmp_path / "z", "e")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_members_must_have_complete_files_of_one_protocol_version(
        two_runs: tuple[RunReader, RunReader], tmp_path: Path) -> None:
    a, b = two_runs
    with pytest.raises(InceValError, match=r"no predictions for model irv2 under protocol 12"):
        build_ensemble([Member(a, "irv2"), Member(b, "irv2")], ["12"], tmp_path / "x", "e")
    v2 = RunReader(write_run(tmp_path / "v2", LABELS, {("v3", "144"): random_probs(6, N, C)},
                             blacklisted=[2, 5], protocols={"144": 2}))
    with pytest.raises(InceValError, match=r"protocol 144 is version 1 in .*a but 2 in .*v2"):
        build_ensemble([Member(a, "v4"), Member(v2, "v3")], ["144"], tmp_path / "y", "e")
    writer = RunWriter.create(tmp_path / "partial", manifest=manifest({"v3": None}, {"144": 1}),
                              images=images(LABELS, [2, 5]))
    writer.open_predictions("v3", "144", num_classes=C)
    writer.write("v3", "144", 0, random_probs(7, 3, C))
    writer.close()
    with pytest.raises(InceValError, match="incomplete .*3 of 13 rows"):
        build_ensemble([Member(a, "v4"), Member(RunReader(tmp_path / "partial"), "v3")], ["144"],
                       tmp_path / "z", "e")
    with pytest.raises(InceValError, match="is the member run"):
        build_ensemble([Member(a, "v4")], ["144"], a.run_dir, "e", overwrite=True)
    assert a.status("v4", "144").complete  # the member survived


def test_resolve_members(two_runs: tuple[RunReader, RunReader]) -> None:
    a, b = two_runs
    picked = resolve_members(["v4", "irv2", "irv2@2"], [a, b])
    assert [(run.run_dir.name, model) for run, model in picked] == \
        [("a", "v4"), ("a", "irv2"), ("b", "irv2")]
    assert [(r.run_dir.name, m) for r, m in resolve_members(["irv2@2", "irv2"], [a, b])] == \
        [("b", "irv2"), ("a", "irv2")]
    with pytest.raises(InceValError, match=r"names irv2 of run 1 twice \('irv2' and 'irv2@1'\)"):
        resolve_members(["irv2", "irv2@1"], [a, b])
    with pytest.raises(InceValError, match="run number must be 1..2"):
        resolve_members(["v4@3"], [a, b])
    with pytest.raises(InceValError, match="run number must be 1..2"):
        resolve_members(["v4@0"], [a, b])
    with pytest.raises(InceValError, match=r"run .*b has no model v4 \(it has irv2\)"):
        resolve_members(["v4@2"], [a, b])
    with pytest.raises(InceValError, match="no run has model v3"):
        resolve_members(["v3"], [a, b])
    with pytest.raises(InceValError, match="is not MODEL or MODEL@N"):
        resolve_members(["v4@x"], [a, b])


def test_weights_are_normalised_and_must_be_positive() -> None:
    assert normalised_weights([1, 1, 2]) == [0.25, 0.25, 0.5]
    for bad in ([1, 0], [1, -1], [1, float("nan")], [float("inf"), 1]):
        with pytest.raises(InceValError, match="positive"):
            normalised_weights(bad)
    # Huge finite weights: their sum overflows a float, their ratio does not.
    assert normalised_weights([1e308, 1e308, 1e308]) == pytest.approx([1 / 3] * 3)


def test_a_protocol_named_twice_is_refused_before_anything_is_written(
        two_runs: tuple[RunReader, RunReader], tmp_path: Path) -> None:
    a, b = two_runs
    with pytest.raises(InceValError, match="--crops names protocol 144 twice"):
        build_ensemble([Member(a, "irv2"), Member(b, "irv2")], ["144", "144"], tmp_path / "e",
                       "e")
    assert not (tmp_path / "e").exists()


def test_manifest_is_plain_json(two_runs: tuple[RunReader, RunReader], tmp_path: Path) -> None:
    a, b = two_runs
    out = build_ensemble([Member(a, "irv2"), Member(b, "irv2")], ["144"], tmp_path / "ens", "e")
    text = (out / "manifest.json").read_text()

    def refuse(constant: str) -> None:
        """json.loads accepts NaN, Infinity and -Infinity by default; strict JSON does not."""
        raise AssertionError(f"manifest.json holds {constant}, which is not JSON")

    manifest = json.loads(text, parse_constant=refuse)  # also fails on Python objects (repr)
    assert manifest["models"]["e"]["kind"] == "ensemble"
