"""Forward throughput of each network on this CPU: plain form vs inference form.

The inference form is ``prepare_for_inference`` (BatchNorm folded into the convolutions,
channels_last weights and inputs). Weights are random: speed does not depend on their values.
For each model and form: ``--warmup`` untimed batches, then ``--iters`` timed batches of
``--batch-size`` images; images/s and GFLOP/s (2 x MACs x images/s) are written with the machine
description to a JSON file.

    python benchmarks/models_cpu.py --out results/models_cpu.json

One run per model and form; on a shared machine the numbers are indicative only (the load
average before and after is recorded).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine_info as describe_machine  # noqa: E402

from inceval.models import (  # noqa: E402
    autocast_context,
    create_model,
    list_models,
    prepare_for_inference,
)
from inceval.models.complexity import count_macs  # noqa: E402


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    return describe_machine(mkldnn=torch.backends.mkldnn.is_available())


def time_forward(
    model: torch.nn.Module, batch: torch.Tensor, warmup: int, iters: int, precision: str | None
) -> list[float]:
    """Seconds per timed batch."""
    seconds = []
    with torch.inference_mode(), autocast_context("cpu", precision):
        for step in range(warmup + iters):
            start = time.perf_counter()
            model(batch)
            if step >= warmup:
                seconds.append(time.perf_counter() - start)
    return seconds


def _summary(seconds: list[float], batch_size: int, macs: int) -> dict[str, float]:
    images_per_s = batch_size / statistics.median(seconds)
    return {
        "seconds_per_batch": [round(s, 4) for s in seconds],
        "images_per_s": round(images_per_s, 3),
        "gflops_per_s": round(2 * macs * images_per_s / 1e9, 2),
    }


def bench_model(name: str, args: argparse.Namespace) -> dict[str, object]:
    """Plain and inference-form throughput of one model."""
    model = create_model(name)
    macs = count_macs(model, args.input_size)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(args.batch_size, 3, args.input_size, args.input_size, generator=generator)
    forms = {
        "plain": (model, batch, None),
        "inference": (
            prepare_for_inference(model),
            batch.contiguous(memory_format=torch.channels_last),
            None,
        ),
    }
    if args.bf16:
        forms["inference_bf16"] = (forms["inference"][0], forms["inference"][1], "bfloat16")
    result: dict[str, object] = {"macs_per_image": macs}
    for form, (net, inputs, precision) in forms.items():
        result[form] = _summary(
            time_forward(net, inputs, args.warmup, args.iters, precision), args.batch_size, macs
        )
    plain = result["plain"]["images_per_s"]
    result["ratio_inference_over_plain"] = round(result["inference"]["images_per_s"] / plain, 3)
    if args.bf16:
        result["ratio_inference_bf16_over_plain"] = round(result["inference_bf16"]["images_per_s"] / plain, 3)
    return result


def main() -> None:
    """Parse options, run every model once, write the JSON file."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list_models(), help="models to run (default: all)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    parser.add_argument("--iters", type=int, default=3, help="timed forward passes per form (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forward passes first (default 1)")
    parser.add_argument(
        "--input-size", type=int, default=299, help="square input side in pixels (default 299)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--bf16", action="store_true", help="also time the inference form under bf16 autocast"
    )
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. machine load)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "results" / "models_cpu.json", help="output JSON file"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()
    started = time.perf_counter()
    models = {}
    for name in args.models:
        models[name] = bench_model(name, args)
        print(f"{name}: {models[name]}", file=sys.stderr)
    report = {
        "benchmark": "models_cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {
            "batch_size": args.batch_size,
            "iters": args.iters,
            "warmup": args.warmup,
            "input_size": args.input_size,
            "weights": "random",
            "timing": "median seconds per batch over the timed iterations, torch.inference_mode",
            "inference_form": "prepare_for_inference: BatchNorm folded, channels_last weights and inputs",
        },
        "load_average_1_5_15": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
        "note": args.note,
        "models": models,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
