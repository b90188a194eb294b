"""Ensembles: weighted means of stored per-image probabilities, stored as a run of their own.

Members are (run, model) pairs. Their runs must cover the same images with the same labels and
blacklist (:func:`inceval.store.require_same_images`), and every member must hold a complete
prediction file for each protocol, computed with the same protocol version. Rows are processed in
chunks, so no prediction matrix is ever loaded whole.

The mean is taken in float64 over the stored (float16) probabilities with the weights normalised
to sum to 1, and stored with the run's ``prob_dtype`` like any model's predictions.

Unreadable images (a member run's images.csv ``error`` column; NaN rows) never enter a mean: an
image unreadable in any member is unreadable in the ensemble, with the first such member's reason,
and is recorded in the ensemble run like in any run (NaN rows, images.csv ``error``, manifest
``unreadable``). Members whose runs could not read the same images are refused unless
``allow_different_images``. A NaN row of an image a member's run marks readable means a damaged
run and is refused.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inceval import __version__
from inceval.errors import InceValError
from inceval.scoring import check_rows_finite
from inceval.store import (RunReader, RunWriter, check_name, require_same_images,
                           unreadable_in_any)

_MEMBER = re.compile(r"^(?P<model>[^@\s]+)(?:@(?P<run>\d+))?$")
_CHUNK_ROWS = 2048


@dataclass(frozen=True)
class Member:
    """One model of an ensemble.

    Attributes:
        run: the run holding the model's predictions.
        model: the model's name in that run.
        weight: relative weight (normalised over the members when averaging).
    """

    run: RunReader
    model: str
    weight: float = 1.0


def resolve_members(specs: Sequence[str], runs: Sequence[RunReader]) -> list[tuple[RunReader, str]]:
    """Turn member specs into (run, model) pairs.

    A spec is ``MODEL`` (from the first run, in the order given, that holds it) or ``MODEL@N``
    (from the N-th run, counting from 1). The same model of the same run may not appear twice.

    Raises:
        InceValError: a malformed spec, a run number out of range, a model no run holds, or a
            repeated member; the message names the spec.
    """
    chosen: list[tuple[RunReader, str]] = []
    seen: dict[tuple[int, str], str] = {}
    for spec in specs:
        match = _MEMBER.match(spec.strip())
        if not match:
            raise InceValError(f"--members entry {spec!r} is not MODEL or MODEL@N")
        model = match["model"]
        if match["run"] is not None:
            index = int(match["run"]) - 1
            if not 0 <= index < len(runs):
                raise InceValError(f"--members entry {spec!r}: run number must be 1..{len(runs)}")
            if model not in runs[index].manifest["models"]:
                raise InceValError(f"--members entry {spec!r}: run {runs[index].run_dir} has no "
                                   f"model {model} (it has {_models(runs[index])})")
        else:
            holders = [i for i, run in enumerate(runs) if model in run.manifest["models"]]
            if not holders:
                have = "; ".join(f"{run.run_dir}: {_models(run)}" for run in runs)
                raise InceValError(f"--members entry {spec!r}: no run has model {model} ({have})")
            index = holders[0]
        if (index, model) in seen:
            raise InceValError(f"--members names {model} of run {index + 1} twice "
                               f"({seen[index, model]!r} and {spec!r}); use MODEL@N to take it "
                               "from another run")
        seen[index, model] = spec
        chosen.append((runs[index], model))
    return chosen


def _models(run: RunReader) -> str:
    return ", ".join(run.manifest["models"]) or "none"


def normalised_weights(weights: Sequence[float]) -> list[float]:
    """Weights scaled to sum to 1.

    Raises:
        InceValError: a weight that is not a positive finite number.
    """
    for weight in weights:
        if not (math.isfinite(weight) and weight > 0):
            raise InceValError(f"--weights must be positive numbers, got {weight!r}")
    try:
        total = math.fsum(weights)
    except OverflowError:  # huge weights: scale them by the largest first
        largest = max(weights)
        weights = [w / largest for w in weights]
        total = math.fsum(weights)
    return [w / total for w in weights]


def member_record(member: Member, weight: float) -> dict[str, Any]:
    """What the ensemble's manifest says about one member (nested members included)."""
    info = member.run.manifest["models"][member.model]
    record: dict[str, Any] = {
        "run": os.path.abspath(member.run.run_dir),
        "model": member.model,
        "arch": info.get("arch"),
        "weights": info.get("weights"),
        "weights_tag": info.get("weights_tag"),
        "weights_file": info.get("weights_file"),
        "weights_sha256": info.get("weights_sha256"),
        "weight": weight,
    }
    if "members" in info:
        record["members"] = info["members"]
    return record


def build_ensemble(
    members: Sequence[Member],
    protocols: Sequence[str],
    out_dir: str | os.PathLike[str],
    name: str,
    *,
    overwrite: bool = False,
    command: Sequence[str] | None = None,
    chunk_rows: int = _CHUNK_ROWS,
    allow_different_images: bool = False,
) -> Path:
    """Average the members' probabilities under each protocol and store them as model ``name``.

    Args:
        members: two or more members (a single member is allowed and copies it).
        protocols: protocol names; every member needs a complete file for each.
        out_dir: new run directory for the ensemble.
        name: the ensemble's model name in the new run.
        overwrite: replace an earlier run in ``out_dir``.
        command: the command line, recorded in the manifest.
        chunk_rows: rows averaged at a time.
        allow_different_images: accept member runs of the same images that could not read the
            same ones; the ensemble is then unreadable wherever any member is.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        InceValError: members over different images (or, unless allowed, with different
            unreadable images), a missing, incomplete or damaged prediction file, different
            protocol versions or class counts, or an unusable ``out_dir``.
    """
    if not members:
        raise InceValError("an ensemble needs at least one member (--members)")
    if not protocols:
        raise InceValError("name at least one protocol (--crops)")
    repeated = next((p for i, p in enumerate(protocols) if p in protocols[:i]), None)
    if repeated is not None:
        raise InceValError(f"--crops names protocol {repeated} twice; list each protocol once")
    check_name("ensemble", name)
    runs = [m.run for m in members]
    target = Path(out_dir).resolve()
    for run in runs:
        if run.run_dir.resolve() == target:
            raise InceValError(f"--out {out_dir} is the member run {run.run_dir}; write the "
                               "ensemble to a new directory")
    require_same_images(runs, allow_different_scored=allow_different_images)
    unreadable = unreadable_in_any(runs)
    reasons = _unreadable_reasons(runs, unreadable)
    weights = normalised_weights([m.weight for m in members])
    protocol_records = {p: _common_protocol(members, p) for p in protocols}
    classes = {p: _common_classes(members, p) for p in protocols}
    first = runs[0]
    manifest = {
        "kind": "ensemble",
        "inceval_version": __version__,
        "command": list(command) if command is not None else None,
        "models": {name: {
            "kind": "ensemble",
            "arch": None,
            "weights": "ensemble",
            "weights_tag": None,
            "weights_file": None,
            "weights_sha256": None,
            "members": [member_record(m, w) for m, w in zip(members, weights)],
        }},
        "protocols": protocol_records,
        "data": first.manifest["data"],
    }
    # images holds no error column: the writer records the unreadable images itself.
    writer = RunWriter.create(out_dir, manifest=manifest, images=first.images,
                              prob_dtype=first.manifest["prob_dtype"], overwrite=overwrite)
    total = first.num_images
    with writer:
        sources = {}
        for protocol in protocols:
            writer.open_predictions(name, protocol, num_classes=classes[protocol])
            sources[protocol] = [(m.run.probabilities(m.model, protocol),
                                  m.run.status(m.model, protocol).path, m.run.unreadable)
                                 for m in members]
        if reasons:
            # Only chunked writing records unreadable images (NaN rows, error column, manifest).
            writer.use_chunks(chunk_rows, -(-total // chunk_rows))
        for number, start in enumerate(range(0, total, chunk_rows)):
            stop = min(start + chunk_rows, total)
            for protocol in protocols:
                mean = _weighted_mean(sources[protocol], weights, start, stop, unreadable)
                if reasons:
                    writer.write_rows(name, protocol, np.arange(start, stop), mean)
                else:
                    writer.write(name, protocol, start, mean)
            if reasons:
                writer.complete_chunk(number, start, stop,
                                      {i: r for i, r in reasons.items() if start <= i < stop})
        if reasons:
            writer.seal()
        else:
            for protocol in protocols:
                writer.mark_complete(name, protocol)
        writer.finish()
    return Path(out_dir)


def _unreadable_reasons(runs: Sequence[RunReader], unreadable: np.ndarray) -> dict[int, str]:
    """Image index -> reason of every image unreadable in some run (the first run's reason)."""
    errors = [run.errors.to_numpy() for run in runs]
    return {int(i): next(str(e[i]) for e in errors if e[i] != "")
            for i in np.flatnonzero(unreadable)}


def _weighted_mean(sources: Sequence[tuple[Any, Any, np.ndarray]], weights: Sequence[float],
                   start: int, stop: int, unreadable: np.ndarray) -> np.ndarray:
    """Weighted mean of rows ``start..stop-1`` of the members' files, in float64.

    ``sources`` holds (probabilities, path, that run's unreadable mask) per member. Rows of images
    unreadable in any member get a uniform placeholder; the writer replaces them with NaN.
    """
    skip = unreadable[start:stop]
    mean: np.ndarray | None = None
    for (probs, path, own), weight in zip(sources, weights):
        block = np.asarray(probs[start:stop], dtype=np.float64)
        check_rows_finite(block, start, own, path)
        block[skip] = 0.0
        mean = weight * block if mean is None else mean + weight * block
    assert mean is not None
    mean[skip] = 1.0 / mean.shape[1]
    return mean


def _common_protocol(members: Sequence[Member], protocol: str) -> dict[str, Any]:
    """The protocol's manifest record, after checking every member has it in the same version."""
    record: dict[str, Any] | None = None
    for member in members:
        status = member.run.status(member.model, protocol)  # raises when absent
        if not status.complete:
            raise InceValError(f"{status.path} is incomplete ({status.rows_written} of "
                               f"{status.num_rows} rows); finish that run before ensembling")
        mine = dict(member.run.manifest["protocols"][protocol])
        mine["version"] = status.protocol_version
        if record is None:
            record, origin = mine, member
        elif mine["version"] != record["version"]:
            raise InceValError(
                f"protocol {protocol} is version {record['version']} in {origin.run.run_dir} "
                f"but {mine['version']} in {member.run.run_dir}; rerun one of them")
    assert record is not None
    return record


def _common_classes(members: Sequence[Member], protocol: str) -> int:
    counts = {m.run.status(m.model, protocol).num_classes for m in members}
    if len(counts) != 1:
        raise InceValError(f"members' {protocol} predictions have different class counts "
                           f"{sorted(counts)}; they cannot be averaged")
    return counts.pop()
