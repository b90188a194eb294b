"""Planted changes against a stored run: what `inceval compare --alpha` flags and what it lets pass.

Builds three runs of one synthetic model on 1,000 images (one per class, as
``--subset per-class:1`` gives; 35 of them blacklisted) through the real store API:

* ``baseline``: seeded synthetic softmax probabilities (about 25 % top-1 error);
* ``small``: the baseline with 2 top-1-correct images made wrong (label swapped with the runner-up);
* ``large``: the same with 200 images made wrong.

Planted images are never blacklisted, so the 965 non-blacklisted images that Table 1 (protocol 1)
scores see every change.

Then it runs ``inceval compare`` on both pairs, with the threshold alone and with ``--alpha 0.01``,
and ``inceval tables --format json`` for the intervals, and prints one Markdown table of the
top-1 errors with their exact 95 % intervals, the paired change, the McNemar p-value and both
verdicts (the README's table), followed by the raw output of the two ``--alpha`` comparisons.

    python benchmarks/significance_demo.py [--out DIR]

Everything is seeded: the output is the same on every machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inceval.store import RunWriter  # noqa: E402

IMAGES = 1000
CLASSES = 1000
BLACKLISTED = 35
SEED = 2026
PLANTED = {"small": 2, "large": 200}
ALPHA = 0.01


def synthetic_probabilities(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Softmax of normal logits with a label bonus, tuned to about 25 % top-1 error and a
    calibration error of a few percent."""
    logits = rng.normal(0.0, 3.0, (labels.size, CLASSES))
    logits[np.arange(labels.size), labels] += rng.normal(13.0, 4.0, labels.size)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def plant_errors(probs: np.ndarray, labels: np.ndarray, blacklisted: np.ndarray, count: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Copy of ``probs`` in which ``count`` non-blacklisted top-1-correct images (as stored, in
    float16) become top-1 wrong: the label's probability is swapped with the runner-up's."""
    stored = probs.astype(np.float16)
    out = probs.copy()
    rows = np.arange(labels.size)
    label_p = stored[rows, labels]
    others = stored.copy()
    others[rows, labels] = -1
    correct = np.flatnonzero((label_p > others.max(axis=1)) & ~blacklisted)
    for i in rng.choice(correct, size=count, replace=False):
        runner_up = int(np.argmax(others[i]))
        out[i, [labels[i], runner_up]] = out[i, [runner_up, labels[i]]]
    return out


def write(run_dir: Path, labels: np.ndarray, blacklisted: np.ndarray,
          probs: np.ndarray) -> None:
    """Store ``probs`` as model "v4", protocol "1" of a finished run."""
    manifest = {
        "models": {"v4": {"arch": "inception_v4", "weights": "file",
                          "weights_tag": None, "weights_file": "synthetic",
                          "weights_sha256": hashlib.sha256(b"synthetic").hexdigest()}},
        "protocols": {"1": {"version": 1, "num_views": 1, "views": ["view000"]}},
        "data": {"fingerprint": hashlib.sha256(b"significance demo, 1000 images").hexdigest()},
        "command": ["benchmarks/significance_demo.py"],
    }
    images = [{"path": f"val/ILSVRC2012_val_{i + 1:08d}.JPEG", "label": int(y),
               "blacklisted": bool(b)} for i, (y, b) in enumerate(zip(labels, blacklisted))]
    writer = RunWriter.create(run_dir, manifest=manifest, images=images, overwrite=True)
    writer.open_predictions("v4", "1", num_classes=CLASSES)
    writer.write("v4", "1", 0, probs)
    writer.mark_complete("v4", "1")
    writer.finish()


def inceval(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the inceval CLI of this checkout."""
    return subprocess.run([sys.executable, "-m", "inceval", *args], capture_output=True,
                          text=True, check=False, cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for the three runs (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="inceval-significance-"))
    rng = np.random.default_rng(SEED)
    labels = np.arange(IMAGES) % CLASSES
    blacklisted = np.zeros(IMAGES, dtype=bool)
    blacklisted[rng.choice(IMAGES, size=BLACKLISTED, replace=False)] = True
    base = synthetic_probabilities(rng, labels)
    runs = {"baseline": base}
    for name, count in PLANTED.items():
        runs[name] = plant_errors(base, labels, blacklisted, count, rng)
    for name, probs in runs.items():
        write(out / name, labels, blacklisted, probs)

    tables = json.loads(inceval("tables", *(str(out / n) for n in runs), "--format", "json",
                                "--no-paper").stdout)
    table1 = {row["run"]: row for table in tables["tables"] if table["key"] == "1"
              for row in table["rows"]}
    lines = [f"| Run | Planted | Images | Top-1 error % | 95% CI (exact) | Change pp | "
             "Turned wrong / right | McNemar p | `--max-error-delta 0.05` | "
             f"`... --alpha {ALPHA:g}` |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    raw = []
    for name in runs:
        row = table1[name]
        cells = [name, f"{PLANTED.get(name, 0)}", f"{row['images']:,}", f"{row['top1']:.2f}",
                 f"[{row['top1_ci_low']:.2f}, {row['top1_ci_high']:.2f}]"]
        if name == "baseline":
            lines.append("| " + " | ".join(cells + ["-"] * 5) + " |")
            continue
        verdicts = []
        for extra in ((), ("--alpha", str(ALPHA))):
            done = inceval("compare", str(out / "baseline"), str(out / name), "--json", *extra)
            verdicts.append(f"{'regression' if done.returncode == 1 else 'pass'} "
                            f"(exit {done.returncode})")
            top1 = next(r for r in json.loads(done.stdout)["accuracy"]["rows"]
                        if r["subset"] == "non-blacklisted")["top1"]
        cells += [f"{top1['delta']:+.2f}", f"{top1['turned_wrong']} / {top1['turned_right']}",
                  f"{top1['p_value']:.3g}", *verdicts]
        lines.append("| " + " | ".join(cells) + " |")
        shown = inceval("compare", str(out / "baseline"), str(out / name), "--alpha", str(ALPHA))
        raw.append(f"$ inceval compare baseline {name} --alpha {ALPHA:g}   # exit "
                   f"{shown.returncode}\n{_tidy(shown.stdout, out)}")
    print("\n".join(lines))
    print()
    print("\n\n".join(raw))


def _tidy(text: str, out: Path) -> str:
    """Relative run names, no trailing blanks (rich pads its tables to the console width)."""
    return "\n".join(line.rstrip() for line in text.replace(f"{out}/", "").splitlines())


if __name__ == "__main__":
    main()
