"""The CI throughput gate's baseline: several runs of the ``ci`` preset, per row the median.

One bench on a shared machine can land on a quiet or a busy moment; a baseline made of the
median run of each row keeps a lucky (or unlucky) moment from moving the gate's bar. The result
is an ordinary bench document (its rows are rows of real runs) with a ``baseline`` entry saying
how it was made and every run's normalised value per row::

    python -m inceval.bench.gate --runs 3 --out results/bench/ci_baseline.json

The check itself is two commands (.ci/run)::

    inceval bench --preset ci --quiet --json current.json
    inceval compare results/bench/ci_baseline.json current.json --max-slowdown 0.5
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inceval.bench.result import read_bench, row_key, validate, write_bench
from inceval.errors import InceValError


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


def main(argv: list[str] | None = None) -> None:
    """Run the ``ci`` preset ``--runs`` times and write their per-row median as the baseline."""
    from inceval.cli.bench import command as bench_command

    parser = argparse.ArgumentParser(prog="python -m inceval.bench.gate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/bench/ci_baseline.json"))
    args = parser.parse_args(argv)
    documents = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            path = Path(tmp) / f"run{run}.json"
            bench_command.main(["--preset", "ci", "--quiet", "--json", str(path)],
                               prog_name="inceval bench", standalone_mode=False)
            documents.append(read_bench(path).document)
    write_bench(args.out, median_document(documents))
    print(f"baseline of {args.runs} run(s) written to {args.out}")


if __name__ == "__main__":
    main()
