"""Throughput of the DALI pipeline's feeder alone: file reads, header sizes, view arguments.

No decoding. Writes N synthetic JPEGs of ImageNet-like sizes and file sizes once (quality 90,
smoothed noise, about 100 KB each; most 500x375, 375x500, 500x333 or 333x500, a share of random
sizes, optionally a share with EXIF), then measures images/s of

* ``old``: ``pipeline.read_encoded`` + ``plan_views`` + ``_sample_args`` per image, one thread
  (what ``pipeline._Feeder`` did);
* ``feeder``: ``ImageFeeder.iter_prepared`` over all images, for each thread count, with a new
  feeder (empty size cache) per run;

under the 1-, 12- and 144-crop protocols of the v3 eval config. Each measurement runs twice and
the best is kept. The files are in the page cache (just written), so this measures CPU cost, not
the disk.

    python benchmarks/feeder_cpu.py --out results/bench/feeder_cpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine_info  # noqa: E402

from inceval.data.feeder import ImageFeeder, default_threads  # noqa: E402
from inceval.data.pipeline import _layout, _sample_args, read_encoded  # noqa: E402
from inceval.data.protocols import get_protocol  # noqa: E402
from inceval.data.views import plan_views  # noqa: E402
from inceval.models import get_eval_config  # noqa: E402

COMMON_SIZES = ((500, 375), (375, 500), (500, 333), (333, 500))


def _camera_exif() -> bytes:
    """A small EXIF block like a camera's (such files take PIL's path in the feeder)."""
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x0110] = "Model 1"  # Model
    exif[0x0132] = "2010:01:01 12:00:00"  # DateTime
    exif[0x011A] = 72.0  # XResolution
    exif[0x0128] = 2  # ResolutionUnit: inch
    return exif.tobytes()


def write_images(directory: Path, count: int, random_share: float, exif_share: float,
                 seed: int) -> list[Path]:
    """Write ``count`` JPEGs; ``random_share`` of them get a random size, the rest a common one;
    ``exif_share`` of them carry EXIF."""
    rng = np.random.default_rng(seed)
    exif = _camera_exif()
    # A few textures of lightly smoothed noise: JPEG files about the size of ImageNet's.
    textures = [
        Image.fromarray(rng.integers(0, 256, (640, 640, 3), dtype=np.uint8))
        .filter(ImageFilter.GaussianBlur(0.8))
        for _ in range(4)
    ]
    paths = []
    for index in range(count):
        if rng.random() < random_share:
            width, height = (int(v) for v in rng.integers(120, 640, size=2))
        else:
            width, height = COMMON_SIZES[index % len(COMMON_SIZES)]
        texture = textures[index % len(textures)]
        x, y = int(rng.integers(0, 641 - width)), int(rng.integers(0, 641 - height))
        path = directory / f"{index:06d}.JPEG"
        extra = {"exif": exif} if rng.random() < exif_share else {}
        texture.crop((x, y, x + width, y + height)).save(path, quality=90, **extra)
        paths.append(path)
    return paths


def best_rate(run: Callable[[], int], repeats: int) -> dict[str, float]:
    """Images/s of the fastest of ``repeats`` runs; ``run`` returns the images it handled."""
    best = float("inf")
    images = 0
    for _ in range(repeats):
        start = time.perf_counter()
        images = run()
        best = min(best, time.perf_counter() - start)
    return {"images": images, "seconds": round(best, 4), "images_per_s": round(images / best, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "feeder_cpu.json")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--random-share", type=float, default=0.1,
                        help="share of images with a random size (size-cache misses)")
    parser.add_argument("--exif-share", type=float, default=0.0,
                        help="share of images with EXIF (read through PIL, not by hand)")
    parser.add_argument("--protocols", nargs="+", default=["1", "12", "144"])
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="feeder thread counts (0 = calling thread); default 0 1 2 4 and "
                             "default_threads()")
    parser.add_argument("--read-ahead", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    threads = args.threads or sorted({0, 1, 2, 4, default_threads()})

    config = get_eval_config("v3")
    load_at_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.images, args.random_share, args.exif_share,
                             args.seed)
        file_bytes = sum(p.stat().st_size for p in paths)
        distinct_sizes = len({Image.open(p).size for p in paths})
        for name in args.protocols:
            views = get_protocol(name).resolve(config)
            layout = _layout(views)

            def old() -> int:
                for path in paths:
                    _, width, height = read_encoded(path)
                    _sample_args(layout, plan_views(width, height, views), width, height)
                return len(paths)

            row: dict[str, object] = {"protocol": name, "views_per_image": len(views),
                                      "old": best_rate(old, args.repeats)}
            for count in threads:
                def new(count: int = count) -> int:
                    with ImageFeeder(paths, views, threads=count,
                                     read_ahead=args.read_ahead) as feeder:
                        done = 0
                        for item in feeder.iter_prepared(range(len(paths))):
                            if item.error is not None:
                                raise RuntimeError(item.error)
                            done += 1
                    return done

                row[f"feeder_threads_{count}"] = best_rate(new, args.repeats)
            rows.append(row)
            cells = "  ".join(f"{key.removeprefix('feeder_')}={value['images_per_s']:>9,.0f}"
                              for key, value in row.items() if isinstance(value, dict))
            print(f"protocol {name:>4} ({len(views):>3} views)  images/s  {cells}", flush=True)

    result = {
        "benchmark": "benchmarks/feeder_cpu.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "what": "feeder alone (file read, header size, view geometry, argument arrays; no "
                "decode) over synthetic JPEGs in the page cache; old = read_encoded + "
                "plan_views + _sample_args in one thread; feeder_threads_N = "
                "ImageFeeder.iter_prepared with N reader threads (0 = calling thread), a new "
                "feeder per run; best of `repeats` runs",
        "targets_images_per_s": {"1": 10000, "144": 1000},
        "settings": {"images": args.images, "random_share": args.random_share,
                     "exif_share": args.exif_share,
                     "distinct_sizes": distinct_sizes,
                     "mean_file_bytes": round(file_bytes / len(paths)),
                     "read_ahead": args.read_ahead, "repeats": args.repeats,
                     "eval_config": "v3", "default_threads": default_threads()},
        "machine": {**machine_info(numpy=np.__version__, pillow=Image.__version__,
                                   cpu_count=os.cpu_count()),
                    "load_average_1_5_15min_at_start": load_at_start,
                    "load_average_1_5_15min_at_end": os.getloadavg()},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
