"""The CI throughput gate's baseline: several runs of the ``ci`` preset, per row the median.

One bench on a shared machine can land on a quiet or a busy moment; a baseline made of the
median run of each row keeps a lucky (or unlucky) moment from moving the gate's bar. The result
is an ordinary bench document (its rows are rows of real runs) with a ``baseline`` entry saying
how it was made and every run's normalised value per row::

    python -m inceval.bench.gate --runs 3 --out results/bench/ci_baseline.json

The check itself is two commands (.ci/run)::

    inceval bench --preset ci --quiet --json current.json
    inceval compare results/bench/ci_baseline.json current.json --max-slowdown 0.5

``--under-load N`` demonstrates that the check does not flake: N consecutive checks while a
CPU-bound process (``python -c "while True: pass"``) runs beside them, then one check with a
planted slowdown (the engine's INCEVAL_TEST_SLEEP_PER_BATCH_S) that must fail; the outcome goes
to a JSON and a Markdown file::

    python -m inceval.bench.gate --under-load 5 --out results/bench/gate_under_load.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inceval.bench.result import read_bench, row_key, validate, write_bench
from inceval.errors import InceValError

# The engine's planted-slowdown hook (inceval.engine.evaluate.SLEEP_ENV), for the gate's checks.
SLEEP_ENV = "INCEVAL_TEST_SLEEP_PER_BATCH_S"


def median_document(documents: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The first document with each row replaced by that row of the run with its median
    normalised throughput (the lower middle one for an even count).

    Raises:
        InceValError: no documents, or runs with different rows.
    """
    if not documents:
        raise InceValError("no bench runs to make a baseline of")
    keys = [row_key(row) for row in documents[0]["rows"]]
    for number, document in enumerate(documents[1:], 2):
        if [row_key(row) for row in document["rows"]] != keys:
            raise InceValError(f"bench run {number} measured other rows than run 1; make the "
                               "baseline from runs of one preset")
    rows = []
    for position, key in enumerate(keys):
        runs = [document["rows"][position] for document in documents]
        chosen = sorted(runs, key=lambda row: row["normalised"])[(len(runs) - 1) // 2]
        rows.append({**chosen, "normalised_runs": [row["normalised"] for row in runs]})
    baseline = copy.deepcopy(documents[0])
    baseline["rows"] = rows
    baseline["baseline"] = {"runs": len(documents), "rule": "per row, the run with the median "
                            "normalised throughput"}
    return validate(baseline).document


def check_once(baseline: Path, max_slowdown: float, workdir: Path,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """One CI check as .ci/run does it (two subprocesses): its exit status and every ratio."""
    current = workdir / "current.json"
    started = time.perf_counter()
    load = list(os.getloadavg())
    subprocess.run([sys.executable, "-m", "inceval", "bench", "--preset", "ci", "--quiet",
                    "--json", str(current)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    bench_seconds = time.perf_counter() - started
    compared = subprocess.run([sys.executable, "-m", "inceval", "compare", str(baseline),
                               str(current), "--max-slowdown", str(max_slowdown), "--json"],
                              capture_output=True, text=True)
    if compared.returncode not in (0, 1):
        raise RuntimeError(f"inceval compare failed: {compared.stderr.strip()}")
    outcome = json.loads(compared.stdout)
    document = read_bench(current).document
    return {
        "planted_sleep_per_batch_s": (env or {}).get(SLEEP_ENV),
        "load_average_1min_at_start": load[0],
        "bench_seconds": bench_seconds,
        "exit_status": compared.returncode,
        "reference_bursts": document["reference"]["bursts"],
        "rows": {"/".join((r["model"], r["protocol"], r["stage"])): {
            "views_per_s": r["current_views_per_s"], "normalised": r["current_normalised"],
            "raw_ratio": r["current_views_per_s"] / r["baseline_views_per_s"],
            "ratio": r["ratio"], "status": r["status"]} for r in outcome["rows"]},
    }


def under_load(baseline: Path, runs: int, max_slowdown: float,
               planted_sleep: float) -> dict[str, Any]:
    """``runs`` checks beside a busy process, then one with a planted slowdown."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    checks = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(runs):
                checks.append(check_once(baseline, max_slowdown, Path(tmp)))
                print(_line(len(checks), checks[-1]), flush=True)
            checks.append(check_once(baseline, max_slowdown, Path(tmp),
                                     {SLEEP_ENV: str(planted_sleep)}))
            print(_line(len(checks), checks[-1]), flush=True)
    finally:
        busy.kill()
        busy.wait()
    return {"what": f"{runs} consecutive CI throughput checks (inceval bench --preset ci, then "
                    f"inceval compare --max-slowdown {max_slowdown:g} against {baseline}) with "
                    "`python -c \"while True: pass\"` running beside them, then one with a "
                    f"planted slowdown of {planted_sleep:g} s per batch",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpus_usable": len(os.sched_getaffinity(0)), "baseline": str(baseline),
            "max_slowdown": max_slowdown, "checks": checks,
            "under_load_passed": sum(c["exit_status"] == 0 for c in checks[:-1]),
            "planted_caught": checks[-1]["exit_status"] == 1}


def _line(number: int, check: dict[str, Any]) -> str:
    ratios = ", ".join(f"{key} {row['ratio']:.2f}" for key, row in check["rows"].items())
    planted = " (planted slowdown)" if check["planted_sleep_per_batch_s"] else ""
    return (f"check {number}{planted}: exit {check['exit_status']}, bench "
            f"{check['bench_seconds']:.0f} s, ratios {ratios}")


def to_markdown(report: dict[str, Any]) -> str:
    """The demonstration as a Markdown table: one line per check."""
    keys = list(report["checks"][0]["rows"])
    lines = [f"# CI throughput gate under load ({report['date']})", "", report["what"] + ".", "",
             "Ratio = normalised throughput now / baseline; the gate fails below "
             f"{1 - report['max_slowdown']:g}.", "",
             "| Check | Planted sleep | Load (1 min) | Bench s | " + " | ".join(keys)
             + " | Exit |",
             "|---|---|---:|---:|" + "---:|" * len(keys) + "---:|"]
    for number, check in enumerate(report["checks"], 1):
        ratios = " | ".join(f"{check['rows'][key]['ratio']:.2f}" for key in keys)
        lines.append(f"| {number} | {check['planted_sleep_per_batch_s'] or '-'} | "
                     f"{check['load_average_1min_at_start']:.2f} | "
                     f"{check['bench_seconds']:.0f} | {ratios} | {check['exit_status']} |")
    loaded = [row for check in report["checks"][:-1] for row in check["rows"].values()]
    raw = [row["raw_ratio"] for row in loaded]
    normalised = [row["ratio"] for row in loaded]
    lines += ["", f"Under load, raw views/s ranged from {min(raw):.2f}x to {max(raw):.2f}x the "
                  f"baseline's; normalised ratios from {min(normalised):.2f} to "
                  f"{max(normalised):.2f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the baseline (``--runs``), or run the under-load demonstration (``--under-load``)."""
    from inceval.cli.bench import command as bench_command

    parser = argparse.ArgumentParser(prog="python -m inceval.bench.gate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: results/bench/ci_baseline.json, or with --under-load "
                             "results/bench/gate_under_load.json (and .md beside it)")
    parser.add_argument("--under-load", type=int, default=None, metavar="N")
    parser.add_argument("--baseline", type=Path, default=Path("results/bench/ci_baseline.json"))
    parser.add_argument("--max-slowdown", type=float, default=0.5)
    parser.add_argument("--planted-sleep", type=float, default=1.0, metavar="S")
    args = parser.parse_args(argv)
    if args.under_load is not None:
        out = args.out or Path("results/bench/gate_under_load.json")
        report = under_load(args.baseline, args.under_load, args.max_slowdown,
                            args.planted_sleep)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(to_markdown(report))
        print(f"{report['under_load_passed']}/{args.under_load} passed under load; planted "
              f"slowdown {'caught' if report['planted_caught'] else 'NOT caught'}")
        return
    args.out = args.out or Path("results/bench/ci_baseline.json")
    documents = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            path = Path(tmp) / f"run{run}.json"
            bench_command.main(["--preset", "ci", "--quiet", "--json", str(path)],
                               prog_name="inceval bench", standalone_mode=False)
            documents.append(read_bench(path).document)
    baseline = median_document(documents)
    baseline["command"] = shlex.join(["python", "-m", "inceval.bench.gate",
                                      *(sys.argv[1:] if argv is None else argv)])
    write_bench(args.out, baseline)
    print(f"baseline of {args.runs} run(s) written to {args.out}")


if __name__ == "__main__":
    main()
