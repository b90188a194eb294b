"""Peak host memory of a whole run stays flat as the run grows (issue 8).

A run of 10,000 images must not need more memory than a run of 1,000: predictions go to the
store as batches finish, pipelines and queues are bounded. This script checks it end to end:

1. once, it writes synthetic JPEGs of mixed sizes (160x120 to 500x375, both orientations) and a
   list-layout labels file into ``--image-dir`` (kept for later runs);
2. for each backend and crop protocol it runs the real engine (``open_run`` + ``evaluate`` with a
   real :class:`~inceval.store.RunWriter`) over the first SMALL and over the first LARGE images,
   each in its own child process, with a tiny stand-in network at input 64 so that the engine,
   not the model, is measured;
3. the peak resident set of each child comes from the kernel (``os.wait4`` rusage, ``ru_maxrss``);
   the child also samples its resident set by kind (anonymous vs file-backed, which includes the
   store's memory-mapped prediction files) as the run goes, to tell what grew.

It writes ``results/memory/memory_cpu.json`` and exits 1 when a LARGE run's peak is more than 10%
above its SMALL run's peak, 0 otherwise (2 for bad options).

    nice -n 10 python benchmarks/memory.py                       # 1,000 vs 10,000 images
    python benchmarks/memory.py --images 100,1000 --out /tmp/m.json   # a quick check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_GENERATOR_VERSION = 1  # bump when the images change: the default folder name follows it
DEFAULT_IMAGE_DIR = Path(tempfile.gettempdir()) / f"inceval-memory-images-v{_GENERATOR_VERSION}"
DEFAULT_OUT = REPO / "results" / "memory" / "memory_cpu.json"
# (width, height) of the generated images: landscape, portrait, small and ImageNet-typical.
SIZES = ((160, 120), (120, 160), (240, 180), (320, 240), (240, 320), (400, 300), (500, 375),
         (375, 500), (500, 333), (333, 500))
TOLERANCE = 0.10
INPUT_SIZE = 64


def write_synthetic_jpegs(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """Write ``count`` JPEGs of mixed sizes (a smooth colour field plus grain) into ``directory``.

    Files that already exist are kept (the content depends only on the seed and the index), so a
    second call is cheap. Returns the paths in order, named ``synthetic_00000.JPEG`` ...
    """
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"synthetic_{index:05d}.JPEG"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng([seed, index])
        width, height = SIZES[int(rng.integers(len(SIZES)))]
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC),
                           dtype=np.int16)
        grain = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
        pixels = np.clip(field + grain, 0, 255).astype(np.uint8)
        partial = path.with_suffix(".part")
        Image.fromarray(pixels).save(partial, format="JPEG", quality=85)
        partial.rename(path)  # an interrupted run leaves no half-written image behind
    return paths


def prepare_images(directory: Path, count: int) -> Path:
    """At least ``count`` images and a labels file (``name label``, 0..999) for every image there.

    Runs take the first N images (``limit``); the list layout wants a label for each file.
    """
    images = directory / "images"
    write_synthetic_jpegs(images, count)
    present = sorted(images.glob("*.JPEG"))
    labels = directory / "labels.txt"
    labels.write_text("".join(f"{p.name} {i % 1000}\n" for i, p in enumerate(present)))
    return labels


# --- the child: one run of the engine -----------------------------------------------------------

def tiny_model() -> Any:
    """A small conv net with what the engine needs (name, eval_config, weights_info)."""
    import torch
    from torch import nn

    from inceval.eval_config import EvalConfig

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1000)).eval()
    model.model_name = "tiny"
    model.eval_config = EvalConfig(input_size=INPUT_SIZE, crop_pct=0.875,
                                   interpolation="bicubic")
    model.weights_info = {"source": "stand-in", "tag": None, "path": None, "sha256": None,
                          "seed": 0, "notes": ["benchmarks/memory.py stand-in"]}
    return model


def resident_breakdown() -> dict[str, float]:
    """This process's resident set now, in total and by kind (MiB): anonymous, file-backed
    (this includes memory-mapped files such as the store's predictions), shared memory.
    """
    kinds = {"VmRSS:": "rss_mib", "RssAnon:": "anon_mib", "RssFile:": "file_mib",
             "RssShmem:": "shmem_mib"}
    result = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(None, 1)[0] if line.strip() else ""
            if key in kinds:
                result[kinds[key]] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return result


class ResidentSampler:
    """Progress callback that samples the resident set (at most every ``interval_s``) and keeps
    the sample at the peak and the first sample past each tenth of the run."""

    def __init__(self, total: int, interval_s: float = 0.2) -> None:
        self.total = total
        self.interval_s = interval_s
        self.last = 0.0
        self.peak: dict[str, Any] = {}
        self.by_tenth: dict[int, dict[str, Any]] = {}

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s and not progress.finished:
            return
        self.last = now
        sample = {"images_done": progress.images_done, **resident_breakdown()}
        if sample.get("rss_mib", 0) > self.peak.get("rss_mib", -1):
            self.peak = sample
        tenth = min(10, 10 * progress.images_done // max(1, self.total))
        self.by_tenth.setdefault(tenth, sample)


def child_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the stand-in over ``spec['images']`` images into a temporary run directory."""
    import resource

    from inceval.data.datasets import load_val_dataset
    from inceval.engine.evaluate import evaluate, open_run

    directory = Path(spec["image_dir"])
    dataset = load_val_dataset(directory / "images", layout="list",
                               labels_file=Path(spec["labels"]), limit=spec["images"])
    model = tiny_model()
    sampler = ResidentSampler(len(dataset))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inceval-memory-run-") as scratch:
        writer = open_run(Path(scratch) / "run", [model], [spec["crops"]], dataset)
        with writer:
            stats = evaluate([model], [spec["crops"]], dataset, writer, backend=spec["backend"],
                             device="cpu", batch_size=spec["batch_size"],
                             workers=spec["workers"], progress=sampler)
            writer.finish(stats.manifest_update())
    return {"images": stats.images, "rss_sampled_peak": sampler.peak,
            "rss_by_tenth": [sampler.by_tenth[k] for k in sorted(sampler.by_tenth)], "model_views": stats.model_views,
            "engine_seconds": round(stats.seconds, 2),
            "wall_seconds_in_child": round(time.perf_counter() - started, 2),
            "child_self_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024, 1)}


# --- the parent: one child per run, peaks from the kernel ---------------------------------------

def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one child; its peak RSS (``wait4`` rusage of that child alone) and wall time."""
    started = time.perf_counter()
    # Files, not pipes: a child never blocks on a full pipe while the parent waits in wait4.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errors:
        child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)],
                                 stdout=out, stderr=errors, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
        errors.seek(0)
        error_text = errors.read().decode(errors="replace")
    row: dict[str, Any] = {key: spec[key] for key in ("backend", "crops", "images")}
    row["wall_seconds"] = round(time.perf_counter() - started, 2)
    row["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
    row["exit_code"] = child.returncode
    if child.returncode != 0:
        row["error"] = error_text.strip().splitlines()[-1] if error_text.strip() else "no output"
        return row
    row.update(json.loads(output.strip().splitlines()[-1]))
    row["images_per_s"] = round(row["images"] / row["engine_seconds"], 1)
    return row


def compare(rows: list[dict[str, Any]], small: int, large: int) -> list[dict[str, Any]]:
    """Per backend and protocol: the large run's peak over the small run's."""
    by_key = {(r["backend"], r["crops"], r["images"]): r for r in rows}
    result = []
    for backend, crops in dict.fromkeys((r["backend"], r["crops"]) for r in rows):
        a, b = by_key.get((backend, crops, small)), by_key.get((backend, crops, large))
        ok = a is not None and b is not None and a["exit_code"] == 0 and b["exit_code"] == 0
        ratio = b["peak_rss_mib"] / a["peak_rss_mib"] if ok else None
        result.append({"backend": backend, "crops": crops, "small_images": small,
                       "large_images": large,
                       "small_peak_rss_mib": a["peak_rss_mib"] if a else None,
                       "large_peak_rss_mib": b["peak_rss_mib"] if b else None,
                       "ratio": round(ratio, 4) if ratio is not None else None,
                       "passed": bool(ok and ratio <= 1 + TOLERANCE)})
    return result


def source_revision() -> str | None:
    """The checkout's commit (with ``+changes`` when the tree differs from it), if it is one."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def _parse_list(text: str, kind: type) -> list[Any]:
    return [kind(item) for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the children, write the JSON file; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default="1000,10000",
                        help="SMALL,LARGE image counts (default 1000,10000)")
    parser.add_argument("--crops", default="1,12", help="protocols, comma-separated")
    parser.add_argument("--backends", default="dali,torch", help="view loaders, comma-separated")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--workers", type=int, default=2,
                        help="DALI threads / decoding processes (default 2)")
    parser.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGE_DIR,
                        help=f"where the synthetic images are kept (default {DEFAULT_IMAGE_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSON file")
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_run(json.loads(args.child))))
        return 0
    try:
        small, large = _parse_list(args.images, int)
    except ValueError:
        parser.error(f"--images must be SMALL,LARGE (two whole numbers), got {args.images!r}")
    if not 0 < small < large:
        parser.error(f"--images needs 0 < SMALL < LARGE, got {args.images!r}")

    from benchmarks.machine import machine_info

    load_before = os.getloadavg()
    clock = time.perf_counter()
    labels = prepare_images(args.image_dir, large)
    generation_s = time.perf_counter() - clock
    print(f"images ready in {args.image_dir} ({generation_s:.0f} s)", file=sys.stderr)
    rows = []
    for backend in _parse_list(args.backends, str):
        for crops in _parse_list(args.crops, str):
            for count in (small, large):
                spec = {"backend": backend, "crops": crops, "images": count,
                        "image_dir": str(args.image_dir), "labels": str(labels),
                        "batch_size": args.batch_size, "workers": args.workers}
                rows.append(measure(spec))
                print(json.dumps(rows[-1]), file=sys.stderr)
    comparisons = compare(rows, small, large)
    passed = all(c["passed"] for c in comparisons)
    report = {
        "benchmark": "benchmarks/memory.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "what": ("peak RSS (kernel rusage of each child process) of a whole run - open_run + "
                 "evaluate with a real RunWriter, device cpu - over SMALL vs LARGE synthetic "
                 "images; passed when LARGE <= SMALL x (1 + tolerance). rss_sampled_peak and "
                 "rss_by_tenth: the child's own samples (/proc/self/status, every 0.2 s) split "
                 "into anonymous and file-backed pages; the torch backend's decoding worker "
                 "processes are not included in either figure"),
        "machine": machine_info(),
        "source": source_revision(),
        "settings": {"images": [small, large], "crops": _parse_list(args.crops, str),
                     "backends": _parse_list(args.backends, str), "batch_size": args.batch_size,
                     "workers": args.workers, "model": "tiny stand-in conv net",
                     "input_size": INPUT_SIZE, "tolerance": TOLERANCE,
                     "image_sizes": [list(s) for s in SIZES],
                     "generator_version": _GENERATOR_VERSION},
        "load_average_1_5_15": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in os.getloadavg()]},
        "wall_seconds": round(time.perf_counter() - clock, 1),
        "note": args.note,
        "runs": rows,
        "comparisons": comparisons,
        "passed": passed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| backend | crops | peak RSS small (MiB) | peak RSS large (MiB) | ratio | passed |",
          "|---|---|---|---|---|---|", sep="\n")
    for c in comparisons:
        print(f"| {c['backend']} | {c['crops']} | {c['small_peak_rss_mib']} | "
              f"{c['large_peak_rss_mib']} | {c['ratio']} | {c['passed']} |")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
