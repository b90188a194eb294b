"""inceval against the timm validate.py-style loop on the CPU: same images, machine, session.

For each protocol, on the same generated photographs (500x375 JPEGs, quality 90; at least 100
images at 1 and 12 crops so that warm-up does not dominate, fewer at 144), ``--rounds`` times with
the variants interleaved (medians reported; run-to-run noise on a shared 2-core VM is ~10%):

* baseline NCHW and baseline channels_last: benchmarks/baseline_torch.py (PIL + DataLoader);
* inceval model only: the inference-form network on views rendered once, already in memory;
* inceval end to end: ``evaluate(..., writer=None)``, what ``inceval run`` does minus the store.

All four use the real network (random weights: speed does not depend on them), the same batch
size (inceval's default for the protocol unless --batch-size) and the same worker count
(DataLoader processes / DALI threads). Writes results/bench/compare_cpu.json and prints the
ratios against the targets of issue 7:

* inceval end to end >= 0.95 x inceval model only, at 1, 12 and 144 crops;
* inceval end to end >= 1.6 x baseline NCHW and >= 1.25 x baseline channels_last, at 1 and 12.

Against each baseline it also prints two ceilings: inceval's model alone over the baseline (what
a perfect data path would give) and the CPU's best float32 GEMM rate, measured in the same run,
over the baseline's achieved GFLOP/s (about what the same float32 arithmetic at the machine's peak
could give).

    python benchmarks/compare.py                                   # the full measurement
    python benchmarks/compare.py --images 4 --images-144 1 --input-size 107 --rounds 1 \\
        --out /tmp/c.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.baseline_torch import run_baseline  # noqa: E402

from inceval.bench.calibration import gemm_rate  # noqa: E402
from inceval.bench.runner import machine_info, model_macs  # noqa: E402
from inceval.bench.stages import measure_end_to_end, measure_model  # noqa: E402
from inceval.bench.synthetic import write_synthetic_jpegs  # noqa: E402
from inceval.data.loader import resolve_backend  # noqa: E402
from inceval.data.protocols import get_protocol  # noqa: E402
from inceval.data.views import union_views  # noqa: E402
from inceval.engine.evaluate import default_batch_size  # noqa: E402
from inceval.engine.forward import default_views_per_forward  # noqa: E402
from inceval.models import create_model, get_eval_config, prepare_for_inference  # noqa: E402

# (numerator, denominator, least ratio, protocols it applies to)
TARGETS = (
    ("inceval_end_to_end", "inceval_model_only", 0.95, ("1", "12", "144")),
    ("inceval_end_to_end", "baseline_nchw", 1.6, ("1", "12")),
    ("inceval_end_to_end", "baseline_channels_last", 1.25, ("1", "12")),
)
BASELINE_PROTOCOLS = ("1", "12")


def _rates(measurement: Any) -> dict[str, float]:
    return {"images": measurement.images, "views": measurement.views,
            "seconds": measurement.seconds, "images_per_s": measurement.images_per_s,
            "views_per_s": measurement.views_per_s}


VARIANTS = ("inceval_model_only", "inceval_end_to_end", "baseline_nchw", "baseline_channels_last")


def measure_protocol(name: str, paths: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    """Every variant on ``paths`` for one protocol, ``args.rounds`` times, interleaved.

    Round r runs the variants in an order rotated by r, so that a slow spell of the machine
    (another tenant, frequency changes) falls on different variants in different rounds; each
    variant's rate is the median over rounds, and each ratio the median of the per-round ratios.
    """
    device = torch.device("cpu")
    plain = create_model(args.model, "random")
    if args.input_size:
        plain.eval_config = plain.eval_config.with_input_size(args.input_size)
    config = plain.eval_config
    fast = prepare_for_inference(plain)
    protocol = get_protocol(name)
    views, _ = union_views([protocol.resolve(config)])
    per_forward = default_views_per_forward(device, len(views), config.input_size)
    batch = args.batch_size or default_batch_size(len(views), config.input_size, device,
                                                  per_forward)
    common = {"backend": resolve_backend("auto"), "batch_size": batch, "device": device,
              "precision": "float32", "max_views_per_forward": per_forward,
              "workers": args.workers, "min_seconds": 0.0}

    def baseline(channels_last: bool) -> dict[str, float]:
        model = create_model(args.model, "random")  # as built, as timm evaluates it
        return run_baseline(model, paths, name, config, channels_last=channels_last,
                            batch_size=batch, workers=args.workers)

    runs = {
        "inceval_model_only": lambda: _rates(measure_model(fast, paths, views,
                                                           images=len(paths), **common)),
        "inceval_end_to_end": lambda: _rates(measure_end_to_end(fast, protocol, paths,
                                                                **common)),
        "baseline_nchw": lambda: baseline(False),
        "baseline_channels_last": lambda: baseline(True),
    }
    variants = [v for v in VARIANTS if name in BASELINE_PROTOCOLS or not v.startswith("baseline")]
    rounds: list[dict[str, dict[str, float]]] = []
    for number in range(args.rounds):
        shift = number % len(variants)
        measured = {}
        for variant in variants[shift:] + variants[:shift]:
            measured[variant] = runs[variant]()
            print(f"{name} round {number + 1}/{args.rounds}: {variant} "
                  f"{measured[variant]['images_per_s']:.3f} img/s", flush=True)
        rounds.append(measured)
    results: dict[str, Any] = {"protocol": name, "views_per_image": len(views),
                               "images": len(paths), "batch_size": batch,
                               "macs_per_view": model_macs(fast, config.input_size)}
    for variant in variants:
        rates = [r[variant]["images_per_s"] for r in rounds]
        median_run = sorted(rounds, key=lambda r: r[variant]["images_per_s"])[len(rounds) // 2]
        results[variant] = {**median_run[variant], "images_per_s": statistics.median(rates),
                            "views_per_s": statistics.median(r[variant]["views_per_s"]
                                                             for r in rounds),
                            "images_per_s_by_round": rates}
        gflop = 2 * results["macs_per_view"] * results[variant]["views_per_s"] / 1e9
        results[variant]["gflop_per_s"] = gflop
    results["rounds"] = rounds
    return results


def ratios(results: list[dict[str, Any]], gemm_gflop_per_s: float) -> list[dict[str, Any]]:
    """Each target's ratio (median of the per-round ratios of images/s) and whether it is met.

    A ratio against a baseline also gets its ceilings: ``ceiling_model_only`` (inceval's model
    alone against the baseline: no data path can do better, as end to end <= model only) and
    ``ceiling_gemm`` (the CPU's best measured float32 GEMM rate against the baseline's achieved
    GFLOP/s: roughly what an implementation of the same float32 arithmetic at the machine's peak
    could give; a network's convolutions can edge past a 1024-square GEMM).
    """
    out = []
    for row in results:
        for numerator, denominator, least, protocols in TARGETS:
            if row["protocol"] not in protocols or denominator not in row:
                continue
            by_round = [r[numerator]["images_per_s"] / r[denominator]["images_per_s"]
                        for r in row["rounds"]]
            value = statistics.median(by_round)
            entry = {"protocol": row["protocol"], "ratio": f"{numerator} / {denominator}",
                     "value": value, "by_round": by_round, "target": least,
                     "met": value >= least}
            if denominator.startswith("baseline"):
                entry["ceiling_model_only"] = statistics.median(
                    r["inceval_model_only"]["images_per_s"] / r[denominator]["images_per_s"]
                    for r in row["rounds"])
                entry["ceiling_gemm"] = gemm_gflop_per_s / row[denominator]["gflop_per_s"]
            out.append(entry)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="v3")
    parser.add_argument("--crops", default="1,12,144")
    parser.add_argument("--images", type=int, default=100, help="images at 1 and 12 crops")
    parser.add_argument("--images-144", type=int, default=8, help="images at 144 crops")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: inceval's default batch for each protocol")
    parser.add_argument("--workers", type=int, default=2,
                        help="DataLoader processes of the baseline and DALI threads of inceval")
    parser.add_argument("--input-size", type=int, default=None,
                        help="reduced input size, for a quick check of the script only")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "compare_cpu.json")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved repetitions of every variant; medians are reported")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)

    load_at_start = os.getloadavg()
    gemm = [gemm_rate(torch.device("cpu"), "float32", seconds=3.0)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        files = write_synthetic_jpegs(tmp, max(args.images, args.images_144))
        config = get_eval_config(args.model)
        for name in args.crops.split(","):
            many = len(get_protocol(name).resolve(config)) >= 100
            count = args.images_144 if many else args.images
            results.append(measure_protocol(name, files[:count], args))
    gemm.append(gemm_rate(torch.device("cpu"), "float32", seconds=3.0))
    # The CPU's float32 peak as far as measured: the better of the two products (a product
    # slowed by a busy spell says nothing about the peak).
    gemm_gflop = max(g["tflop_per_s"] for g in gemm) * 1e3
    checks = ratios(results, gemm_gflop)
    machine = machine_info(torch.device("cpu"))
    machine["load_average_at_end"] = list(os.getloadavg())
    document = {
        "benchmark": "benchmarks/compare.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "what": "images/s on the same generated 500x375 JPEGs (quality 90), one process: "
                "timm validate.py-style loop (PIL + DataLoader, NCHW / channels_last, model as "
                "built) vs inceval model only (inference form, views in memory) and inceval "
                "end to end (evaluate with writer=None); random weights",
        "settings": {"model": args.model, "input_size": args.input_size, "images": args.images,
                     "images_144": args.images_144, "workers": args.workers,
                     "batch_size": args.batch_size, "rounds": args.rounds,
                     "load_average_at_start": load_at_start},
        "machine": machine,
        "gemm_float32": {"gflop_per_s": gemm_gflop, "measured": gemm,
                         "what": "square float32 matrix product before and after, the better "
                                 "of the two; achieved GFLOP/s of each variant = 2 x MACs per "
                                 "view x views/s"},
        "note": args.note,
        "results": results,
        "ratios": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    for check in checks:
        verdict = "met" if check["met"] else "NOT MET"
        ceiling = ""
        if "ceiling_gemm" in check:
            ceiling = (f"  [ceilings: model only {check['ceiling_model_only']:.2f}, "
                       f"GEMM {check['ceiling_gemm']:.2f}]")
        print(f"{check['protocol']:>4} crops  {check['ratio']:<48} {check['value']:6.2f}  "
              f"(target >= {check['target']})  {verdict}{ceiling}")


if __name__ == "__main__":
    main()
