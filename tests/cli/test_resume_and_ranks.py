"""Runs that survive: SIGKILL + --resume, --nproc 2 sharding, a killed rank, refused resumes.

Every run here is a real ``inceval run`` process (Inception-v3, random weights, the bundled
photographs, DALI on the CPU) so that interruptions are real signals. The store of an
interrupted-then-resumed or sharded run must equal, byte for byte, the store of one uninterrupted
process: the prediction files and images.csv.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inceval.engine.evaluate import SLEEP_ENV

pytestmark = pytest.mark.dali

BASE = ["--models", "v3", "--weights", "random", "--crops", "1", "--limit", "6",
        "--chunk-size", "2", "--batch-size", "1", "--backend", "dali", "--device", "cpu"]
STORE_FILES = ("predictions/v3/1.npy", "images.csv")
TIMEOUT_S = 240


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "inceval", "run", *BASE, "--out", str(out), *extra]


def _run(out: Path, *extra: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(out, *extra), capture_output=True, text=True,
                          timeout=TIMEOUT_S, env={**os.environ, **(env or {})})


def _start(out: Path, *extra: str, sleep_s: float) -> subprocess.Popen[str]:
    # The planted per-batch sleep makes the run slow enough to be killed part-way.
    return subprocess.Popen(_command(out, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, SLEEP_ENV: str(sleep_s)})


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name}: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _markers(run: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted((run / "chunks").glob("*.json"))}


def _assert_same_store(a: Path, b: Path) -> None:
    for name in STORE_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    manifest = json.loads((b / "manifest.json").read_text())
    assert manifest["finished_at"] and all(
        entry["complete"] for files in manifest["predictions"].values()
        for entry in files.values())


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted one-process run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = _run(out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["chunks"] == {"size": 2, "total": 3, "already_done": 0, "computed": 3}
    # One long-lived DALI pipeline for the 3 chunks, not one per chunk.
    assert summary["pipeline_builds"] == 1
    return out


def test_sigkilled_run_resumes_to_the_identical_store(reference_run: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(out, sleep_s=1.0)
    try:
        _wait_for(out / "chunks" / "000000.json", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done_before = _markers(out)
    assert 1 <= len(done_before) < 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished_at"] is None

    result = _run(out, "--resume", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # Finished chunks were not recomputed: their markers are untouched, the rest was computed.
    assert summary["chunks"]["already_done"] == len(done_before)
    assert summary["chunks"]["computed"] == 3 - len(done_before)
    after = _markers(out)
    assert {k: after[k] for k in done_before} == done_before
    _assert_same_store(reference_run, out)
    resumes = json.loads((out / "manifest.json").read_text())["resumes"]
    assert len(resumes) == 1 and "--resume" in resumes[0]["command"]


def test_resume_of_a_finished_run_says_complete_and_exits_0(reference_run: Path,
                                                            tmp_path: Path) -> None:
    before = {name: (reference_run / name).read_bytes() for name in STORE_FILES}
    result = _run(reference_run, "--resume")
    assert result.returncode == 0, result.stderr
    assert f"run {reference_run} is complete; nothing was computed" in result.stdout
    assert {name: (reference_run / name).read_bytes() for name in STORE_FILES} == before


@pytest.mark.parametrize(("change", "named"), [
    (["--crops", "12"], "--crops was 1, now 12"),
    (["--dtype", "bfloat16"], "--dtype: was 'float32', now 'bfloat16'"),
    (["--limit", "5"], "the images (--data, --subset, --limit)"),
    (["--seed", "0", "--models", "v4"], "--models was v3, now v4"),
])
def test_resume_with_a_changed_command_is_refused_naming_the_difference(
        reference_run: Path, change: list[str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inceval", "run", *BASE, *change, "--out", str(reference_run),
         "--resume"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: --resume: {reference_run} is another run (")
    assert named in lines[-1]


def test_two_ranks_write_the_store_of_one_process(reference_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _run(out, "--nproc", "2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # only rank 0 prints
    assert summary["chunks"]["computed"] == 3 and summary["results"]
    _assert_same_store(reference_run, out)
    assert json.loads((out / "manifest.json").read_text())["settings"]["ranks"] == 2


def test_a_killed_rank_fails_the_run_and_one_process_resumes_it(reference_run: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "run"
    launcher = _start(out, "--nproc", "2", sleep_s=1.5)
    try:
        _wait_for(out / "chunks" / "000000.json", launcher)
        ranks = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True,
                               text=True).stdout.split()
        assert len(ranks) == 2
        # The launcher starts rank 0 first; kill rank 1.
        os.kill(int(sorted(ranks, key=int)[1]), signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=TIMEOUT_S)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 3
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: rank 1 of 2 was killed by SIGKILL")
    assert "--resume" in last
    assert len(_markers(out)) < 3

    result = _run(out, "--resume")
    assert result.returncode == 0, result.stderr
    _assert_same_store(reference_run, out)


@pytest.fixture(scope="module")
def data_with_bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled photos plus a truncated JPEG (found by DALI) and a non-image (by its header)."""
    from inceval.sample import SAMPLE_LABELS, SAMPLE_ROOT

    root = tmp_path_factory.mktemp("bad-data")
    (root / "images").mkdir()
    lines = SAMPLE_LABELS.read_text().splitlines()
    for line in lines:
        name = line.split()[0]
        (root / name).write_bytes((SAMPLE_ROOT / name).read_bytes())
    coffee = (SAMPLE_ROOT / "images" / "coffee.jpg").read_bytes()
    (root / "images" / "aa_truncated.jpg").write_bytes(coffee[:3000])
    (root / "images" / "zz_garbage.jpg").write_bytes(b"not an image")
    lines = ["images/aa_truncated.jpg 7", *lines, "images/zz_garbage.jpg 5"]
    (root / "labels.txt").write_text("\n".join(lines) + "\n")
    return root


def _bad_data_args(root: Path) -> list[str]:
    return ["--data", str(root), "--labels", str(root / "labels.txt"), "--layout", "list",
            "--limit", "10"]


def test_bad_files_are_reported_recorded_and_identical_across_ranks(
        data_with_bad_files: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    first = _run(one, *_bad_data_args(data_with_bad_files), "--json")
    assert first.returncode == 0, first.stderr
    warnings = [line for line in first.stderr.splitlines() if "warning: skipped" in line]
    assert warnings == [
        f"warning: skipped unreadable image {data_with_bad_files}/images/aa_truncated.jpg: "
        "cannot decode image (image file is truncated (4 bytes not processed))",
        f"warning: skipped unreadable image {data_with_bad_files}/images/zz_garbage.jpg: "
        "not a readable image",
    ]
    summary = json.loads(first.stdout)
    assert [(u["index"], u["path"]) for u in summary["unreadable"]] == [
        (0, "images/aa_truncated.jpg"), (9, "images/zz_garbage.jpg")]
    assert summary["pipeline_builds"] == 2  # one pipeline, rebuilt once for the truncated file
    assert {r["images"] for r in summary["results"]} == {8}
    assert {r["unreadable"] for r in summary["results"]} == {2}

    second = _run(two, *_bad_data_args(data_with_bad_files), "--nproc", "2")
    assert second.returncode == 0, second.stderr
    assert sum("warning: skipped" in line for line in second.stderr.splitlines()) == 2
    _assert_same_store(one, two)


def test_strict_stops_at_the_first_bad_file_with_one_line(data_with_bad_files: Path,
                                                          tmp_path: Path) -> None:
    result = _run(tmp_path / "run", *_bad_data_args(data_with_bad_files), "--strict", "-q")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {data_with_bad_files}/images/aa_truncated.jpg: cannot "
                           "decode image (image file is truncated")
    assert last.endswith("--strict -q --resume")
