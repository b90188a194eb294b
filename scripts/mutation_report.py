"""Run mutmut on the pure-logic core and write its report (run from the repository root).

One command for the whole thing (docs/testing.md)::

    python scripts/mutation_report.py run            # ~8 minutes on 2 cores

It deletes ``mutants/`` (mutmut 3 never refreshes an unmutated file it copied there earlier, so
a stale copy of a module another change touched could break the tests), runs
``mutmut run --max-children 2`` with the ``[tool.mutmut]`` configuration of pyproject.toml,
then writes

* ``results/mutation/final-run.txt``  - a per-module table, then mutmut's own verdict of every
  mutant (``mutmut results --all true``) verbatim;
* ``results/mutation/final-run.json`` - the same counts per module, the wall time, the
  documented equivalent survivors and the score with and without them;
* ``results/mutation/final-run-cicd-stats.json`` - mutmut's own ``export-cicd-stats`` file;
* ``results/mutation/summary.json`` - {date, command, modules, first_run, final_run}.

``python scripts/mutation_report.py report OUT`` writes OUT.txt / OUT.json from the ``mutants/``
of an earlier run without running anything; ``... summary`` rebuilds summary.json.

Equivalent mutants are read from docs/testing.md, from lines of the form
``- `inceval.module.x_function__mutmut_N`: why it cannot change behaviour``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time
import tomllib
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path("results/mutation")
MUTMUT_RUN = ["mutmut", "run", "--max-children", "2"]
_LINE = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<verdict>.+?)\s*$")
_EQUIVALENT = re.compile(r"^- `(?P<name>inceval\.\S+__mutmut_\d+)`:")
_MODULE = re.compile(r"^(?P<module>.+?)\.(?:x_|xǁ)")


def module_of(name: str) -> str:
    """``inceval.data.views.x_plan_views__mutmut_3`` -> ``inceval.data.views``."""
    match = _MODULE.match(name)
    return match["module"] if match else name


def equivalents(doc: Path = Path("docs/testing.md")) -> list[str]:
    """Mutant names documented as equivalent in docs/testing.md."""
    if not doc.is_file():
        return []
    return [m["name"] for line in doc.read_text().splitlines() if (m := _EQUIVALENT.match(line))]


def report(out: str, command: str, wall_s: float | None = None) -> dict[str, Any]:
    """Write ``out``.txt and ``out``.json for the mutmut results in ./mutants; return the JSON."""
    listing = subprocess.run(["mutmut", "results", "--all", "true"], check=True,
                             capture_output=True, text=True).stdout
    version = subprocess.run(["mutmut", "--version"], capture_output=True, text=True).stdout.strip()
    verdicts: dict[str, str] = {}
    for line in listing.splitlines():
        if match := _LINE.match(line):
            verdicts[match["name"]] = match["verdict"]
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, verdict in verdicts.items():
        per_module[module_of(name)][verdict] += 1
        per_module[module_of(name)]["total"] += 1
    total: Counter[str] = Counter()
    for counts in per_module.values():
        total.update(counts)
    documented = equivalents()
    equivalent = [name for name in documented if verdicts.get(name) == "survived"]
    undocumented = sorted(n for n, v in verdicts.items() if v == "survived" and n not in documented)
    killed, all_mutants = total["killed"], total["total"]
    data = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "mutmut_version": version,
        "wall_time_s": None if wall_s is None else round(wall_s),
        "modules": {module: dict(counts) for module, counts in sorted(per_module.items())},
        "total": dict(total),
        "score": round(100.0 * killed / all_mutants, 2) if all_mutants else None,
        "equivalent": equivalent,
        "score_excluding_equivalent": (round(100.0 * killed / (all_mutants - len(equivalent)), 2)
                                       if all_mutants else None),
        "survivors_not_documented": undocumented,
    }
    Path(out + ".json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    header = (f"{'module':34} {'killed':>7} {'survived':>8} {'timeout':>7} {'suspic.':>7} "
              f"{'no tests':>8} {'total':>6} {'score':>7}")
    rows = [header]
    for module, counts in sorted(per_module.items()) + [("TOTAL", total)]:
        score = 100.0 * counts["killed"] / counts["total"]
        rows.append(f"{module:34} {counts['killed']:7} {counts['survived']:8} "
                    f"{counts['timeout']:7} {counts['suspicious']:7} {counts['no tests']:8} "
                    f"{counts['total']:6} {score:6.1f}%")
    wall = "" if wall_s is None else f"; wall time {wall_s / 60:.1f} min"
    text = (f"# mutmut report, {data['date']}\n# command: {command}{wall}\n# {version}\n"
            f"# score (killed / total): {data['score']}%; documented equivalent survivors: "
            f"{len(equivalent)}; score excluding them: {data['score_excluding_equivalent']}%; "
            f"survivors not documented: {len(undocumented)}\n\n"
            + "\n".join(rows) + "\n\n# mutmut results --all true\n" + listing)
    Path(out + ".txt").write_text(text)
    print("\n".join(rows))
    return data


def run() -> None:
    """Fresh mutmut run, then the final-run report and summary.json."""
    shutil.rmtree("mutants", ignore_errors=True)
    start = time.monotonic()
    subprocess.run(MUTMUT_RUN, check=True)
    wall = time.monotonic() - start
    command = " ".join(MUTMUT_RUN)
    report(str(RESULTS / "final-run"), command, wall)
    subprocess.run(["mutmut", "export-cicd-stats"], check=True, capture_output=True)
    shutil.copy("mutants/mutmut-cicd-stats.json", RESULTS / "final-run-cicd-stats.json")
    summarise(command)


def summarise(command: str = " ".join(MUTMUT_RUN)) -> None:
    """results/mutation/summary.json from the first-run*.json and final-run.json files."""
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    final = json.loads((RESULTS / "final-run.json").read_text())

    def load(name: str) -> Any:
        path = RESULTS / name
        return json.loads(path.read_text()) if path.is_file() else None

    first = load("first-run.json")
    added = {name: load(f"first-run-{name}.json") for name in ("devkit-kaggle", "layouts")}
    added = {name: run for name, run in added.items() if run}
    combined = None
    if first:
        killed = first["total"]["killed"] + sum(r["total"]["killed"] for r in added.values())
        total = first["total"]["total"] + sum(r["total"]["total"] for r in added.values())
        combined = {"killed": killed, "total": total, "score": round(100.0 * killed / total, 2)}
    summary = {
        "date": final["date"],
        "command": "python scripts/mutation_report.py run  (= rm -rf mutants; " + command + ")",
        "modules": config["only_mutate"],
        "tests": config["pytest_add_cli_args_test_selection"],
        "first_run": first,
        "first_run_of_modules_added_later": added,
        "first_runs_combined": combined,
        "final_run": final,
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    """Command line: ``run`` or ``report OUT [COMMAND] [WALL_S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("run", help="fresh mutmut run, then the final report and summary")
    sub.add_parser("summary", help="rebuild results/mutation/summary.json")
    rep = sub.add_parser("report", help="report an earlier run from ./mutants")
    rep.add_argument("out", help="output path without extension")
    rep.add_argument("command", nargs="?", default=" ".join(MUTMUT_RUN))
    rep.add_argument("wall_s", nargs="?", type=float, default=None)
    args = parser.parse_args()
    if args.action == "run":
        run()
    elif args.action == "summary":
        summarise()
    else:
        report(args.out, args.command, args.wall_s)


if __name__ == "__main__":
    main()
