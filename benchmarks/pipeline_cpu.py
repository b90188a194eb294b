"""Throughput of the DALI CPU view pipeline against the PIL/torch reference (no model).

Renders the test photographs (tests/photos.py), repeated to a fixed number of images, under the
1-, 12- and 144-crop protocols at input 299, once per backend, and writes images/s and views/s
with the machine description to a JSON file.

    python benchmarks/pipeline_cpu.py --out results/pipeline_cpu.json

Each protocol and backend runs once; numbers on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine_info as describe_machine  # noqa: E402

from inceval.data.pipeline import iter_dali_batches  # noqa: E402
from inceval.data.protocols import get_protocol  # noqa: E402
from inceval.data.reference import iter_reference_batches  # noqa: E402
from inceval.data.views import ViewBatch  # noqa: E402
from inceval.eval_config import EvalConfig  # noqa: E402
from tests.photos import write_photo_set  # noqa: E402


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    import nvidia.dali

    return describe_machine(dali=nvidia.dali.__version__, gpu="none (DALI CPU-only)")


def time_run(batches: Callable[[], Iterator[ViewBatch]]) -> dict[str, float]:
    """Consume one epoch and time it whole, pipeline construction included.

    DALI fills its prefetch queue before the first batch returns, so a rate measured after the
    first batch would flatter it; use enough images that start-up is a small share instead.
    """
    start = time.perf_counter()
    first_done = None
    images = views = 0
    for batch in batches():
        images += len(batch.indices)
        views += batch.views.shape[0] * batch.views.shape[1]
        if first_done is None:
            first_done = time.perf_counter()
    seconds = time.perf_counter() - start
    return {
        "images": images,
        "views": views,
        "seconds": round(seconds, 3),
        "seconds_to_first_batch": round(first_done - start, 3),
        "images_per_s": round(images / seconds, 2),
        "views_per_s": round(views / seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "pipeline_cpu.json")
    parser.add_argument("--images", type=int, default=64, help="images for 1 and 12 crops")
    parser.add_argument("--images-144", type=int, default=32, help="images for 144 crops")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-threads", type=int, default=2, help="DALI CPU threads")
    parser.add_argument("--protocols", nargs="+", default=["1", "12", "144"])
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    args = parser.parse_args(argv)

    config = EvalConfig()
    machine = machine_info()
    load_at_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = write_photo_set(Path(tmp))
        # Warm-up: library imports and first-use initialisation stay out of the timings.
        warm_views = get_protocol("1").resolve(config)
        list(iter_dali_batches(photos[:1], warm_views, batch_size=1, device="cpu"))
        list(iter_reference_batches(photos[:1], warm_views, batch_size=1))
        for name in args.protocols:
            count = args.images_144 if name == "144" else args.images
            paths = [photos[i % len(photos)] for i in range(count)]
            views = get_protocol(name).resolve(config)
            # 144 views of 299 pixels are 38 MB per image: smaller batches for 144 crops.
            batch_size = args.batch_size if len(views) < 100 else max(1, args.batch_size // 2)
            dali = time_run(lambda: iter_dali_batches(
                paths, views, batch_size=batch_size, device="cpu",
                num_threads=args.num_threads))
            reference = time_run(lambda: iter_reference_batches(
                paths, views, batch_size=batch_size, num_workers=0))
            row = {
                "protocol": name,
                "views_per_image": len(views),
                "batch_size": batch_size,
                "dali_cpu": dali,
                "reference": reference,
                "speedup_dali_over_reference": round(
                    dali["images_per_s"] / reference["images_per_s"], 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    result = {
        "benchmark": "benchmarks/pipeline_cpu.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "what": "decode + resize + crop + mirror of the test photos at input 299, no model; "
                "uint8 views; DALI CPU (num_threads) vs the PIL/torch reference in process; "
                "rates over the whole epoch including pipeline construction",
        "settings": {"dali_num_threads": args.num_threads,
                     "reference_num_workers": 0, "input_size": config.input_size},
        "machine": {**machine, "load_average_1_5_15min_at_start": load_at_start,
                    "load_average_1_5_15min_at_end": os.getloadavg()},
        "note": args.note,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
