"""GPU check (issue 7): numerics, throughput and the DALI GPU path, in one command.

    python benchmarks/gpu_check.py                 # on a CUDA machine; budget 450 s (7.5 minutes)
    python benchmarks/gpu_check.py --quick         # v3 only, fewer variants; budget 200 s
    python benchmarks/gpu_check.py --dry-run       # every section on the CPU at tiny sizes

Sections, each guarded (a failing one records its error and the others still run), in order of
importance, under one time budget (``--budget-s``):

torch only (they run on a GPU machine without DALI):
  environment    device, versions, what is importable
  numerics       the bundled photos' views through ModelRunner on the device - float32 with TF32
                 off and on, float16 and bfloat16 by autocast and by casting the model, BatchNorm
                 folded vs plain, channels_last vs contiguous - against CPU float32 of the same
                 weights: max softmax difference and top-1 agreement per view
  runner         model-only views/s of ModelRunner per dtype and cast, TFLOP/s and MFU; picks
                 each model's best dtype (fastest reduced precision with sound numerics)
  oom            a real CUDA out-of-memory (memory fraction capped): the runner halves its views
                 per forward and gets the uncapped result
  bench_model, bench_end_to_end
                 ``inceval bench`` (model-only, and end to end with ``--backend torch``) at 1, 12
                 and 144 crops for v3, v4, irv2 at the best dtype, with MFU
  compile        torch.compile against eager: compile time, speed-up, agreement, fixed shapes
DALI (run when it imports):
  dali_decode    views decoded by DALI on the GPU (nvJPEG, "mixed") vs on the CPU vs the PIL
                 reference, through the engine's own path (evaluate, producer thread, uint8)
  dali_handoff   the producer/consumer hand-off under a delayed consumer: per-view sums must be
                 bit-identical to an undelayed run
  dali_pipeline_memory
                 DALI pipeline builds, host RSS and device memory over a long run
  dali_end_to_end
                 evaluate() throughput with DALI on the GPU

Weights are random (seed 0): there is no network on the GPU machine. Dtype comparisons stay
meaningful against CPU float32 of the same weights; for them the classifier is scaled so that the
logits spread like a trained network's (std 3 over classes), else every softmax is near uniform.

Exit status: 0 all sections ran and every check passed; 1 a section failed, a check failed or
the budget cut sections short; 2 no CUDA device (without --dry-run) or bad options. JSON goes to
results/gpu/gpu_check-<timestamp>.json (``--out``), a markdown summary to stdout. ``--dry-run``
proves the script on the CPU; its numbers are no GPU result, and only section errors (a broken
script) make it exit non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.memory import write_synthetic_jpegs  # noqa: E402

from inceval.engine.forward import ModelRunner, default_views_per_forward  # noqa: E402
from inceval.engine.precision import configure_precision  # noqa: E402
from inceval.models import create_model, prepare_for_inference  # noqa: E402

RESULTS = REPO / "results" / "gpu"
MODELS = ("v3", "v4", "irv2")
TARGET_LOGIT_STD = 3.0
# Dense datasheet peaks in TFLOP/s (NVIDIA SXM parts unless named); MFU divides by these.
PEAK_TFLOPS = {
    "H100 PCIe": {"float16": 756.0, "bfloat16": 756.0, "tf32": 378.0, "float32": 51.2},
    "H200": {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9},
    "H100": {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9},
    "A100": {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5},
}
# Limits of the checks. float32 on another device only reorders sums: 1e-3 of probability is
# far above that and far below any real fault (a wrong layout or fold moves whole classes).
FLOAT32_MAX_PROB_DIFF = 1e-3
# A dtype whose view-level top-1 agreement with CPU float32 is below this is broken (overflow,
# wrong cast), not merely rounded: it is never picked as a model's best dtype. A garbage detector,
# not a quality bar; the measured agreement is reported as it is.
SOUND_TOP1_AGREEMENT = 0.9
COMPILED_TOP1_AGREEMENT = 0.99
DECODE_MAX_MEAN_DIFF = 2.0  # grey levels, view interiors: nvJPEG's chroma upsampling differs
MEMORY_GROWTH = 0.10


class Skipped(Exception):
    """A section that cannot run here, and why (not a failure)."""


class OutOfTime(Exception):
    """The time budget does not allow the next piece of work."""


@dataclass
class Context:
    """Settings of this check and what sections pass on to later ones."""

    device: torch.device
    dry_run: bool
    quick: bool
    deadline: float
    models: list[str]
    input_size: int | None
    work_dir: Path
    numerics_protocol: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    numerics_sound: dict[str, dict[str, bool]] = field(default_factory=dict)
    best: dict[str, dict[str, Any]] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    section: str = ""

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def remaining(self) -> float:
        """Seconds left in the budget."""
        return self.deadline - time.monotonic()

    def need(self, seconds: float, what: str) -> None:
        """Raise OutOfTime (and note ``what`` as not done) unless ``seconds`` are left."""
        if self.remaining() < seconds:
            self.incomplete.append(f"{self.section}: {what}")
            raise OutOfTime(what)

    def check(self, name: str, passed: bool, value: Any, limit: str) -> None:
        """Record one pass/fail criterion of the current section."""
        self.checks.append({"section": self.section, "check": name, "passed": bool(passed),
                            "value": value, "limit": limit})

    def size(self, model: nn.Module) -> int:
        return int(model.eval_config.input_size)


# --- helpers ------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    """Wait for the device, so that wall-clock times cover the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], Any], device: torch.device, min_seconds: float,
          min_iters: int = 2) -> tuple[int, float]:
    """Repeat ``step`` for ``min_seconds`` and ``min_iters`` at least: (iters, seconds)."""
    sync(device)
    start = time.perf_counter()
    iters = 0
    while iters < min_iters or time.perf_counter() - start < min_seconds:
        step()
        iters += 1
        if iters % 4 == 0:
            sync(device)
    sync(device)
    return iters, time.perf_counter() - start


def build(name: str, ctx: Context, **form: bool) -> nn.Module:
    """A seeded random network at the check's input size, in inference form (``form``)."""
    model = create_model(name, "random", seed=0)
    if ctx.input_size:
        model.eval_config = model.eval_config.with_input_size(ctx.input_size)
    return prepare_for_inference(model, **form)


def classifier(model: nn.Module) -> nn.Linear:
    """The final classifier (the last Linear outside any auxiliary head)."""
    heads = [m for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and "aux" not in name.lower()]
    return heads[-1]


def macs_per_view(model: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of one view (registry for named networks, else counted)."""
    from inceval.models.complexity import count_macs, model_complexity

    try:
        return model_complexity(model.model_name, input_size).macs
    except Exception:  # noqa: BLE001 - a stand-in: count it
        return count_macs(model, input_size)


def peak_tflops(ctx: Context, precision: str, tf32: bool) -> float | None:
    """The datasheet peak of this GPU for the arithmetic used, or None (CPU, unknown GPU)."""
    if not ctx.cuda:
        return None
    name = torch.cuda.get_device_name(ctx.device)
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return peaks["tf32" if precision == "float32" and tf32 else precision]
    return None


def photo_views(eval_config: Any, protocol: str) -> torch.Tensor:
    """uint8 (8, N, 3, S, S): the bundled photos' views, by the PIL/torch reference renderer."""
    from inceval.data.protocols import get_protocol
    from inceval.data.reference import decode_rgb, render_views
    from inceval.data.views import plan_views
    from inceval.sample import SAMPLE_ROOT

    specs = get_protocol(protocol).resolve(eval_config)
    out = []
    for path in sorted((SAMPLE_ROOT / "images").glob("*.jpg")):
        image = decode_rgb(path)
        out.append(render_views(image, plan_views(image.shape[1], image.shape[0], specs)))
    return torch.stack(out)


def compare_probs(got: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Differences of (images, views, classes) probabilities from a reference."""
    got, reference = got.float().cpu(), reference.float().cpu()
    diff = (got - reference).abs()
    same_view = got.argmax(-1) == reference.argmax(-1)
    same_image = got.mean(1).argmax(-1) == reference.mean(1).argmax(-1)
    return {"max_abs_prob_diff": float(diff.max()), "mean_abs_prob_diff": float(diff.mean()),
            "top1_agreement_views": float(same_view.float().mean()),
            "top1_agreement_images": float(same_image.float().mean()),
            "finite": bool(torch.isfinite(got).all())}


def dataset_of(ctx: Context, count: int) -> Any:
    """The first ``count`` synthetic JPEGs as a labelled dataset (labels are arbitrary)."""
    from inceval.data.datasets import load_val_dataset

    folder = ctx.work_dir / "images"
    write_synthetic_jpegs(folder, count)
    present = sorted(folder.glob("*.JPEG"))  # earlier sections may have written more
    labels = ctx.work_dir / "labels.txt"
    labels.write_text("".join(f"{p.name} {i % 1000}\n" for i, p in enumerate(present)))
    return load_val_dataset(folder, layout="list", labels_file=labels, limit=count)


def run_engine(ctx: Context, models: list[nn.Module], protocols: list[str], dataset: Any, *,
               device: torch.device | str, backend: str, progress: Any = None,
               **options: Any) -> Any:
    """evaluate() with a real RunWriter into a scratch run directory; the RunStats."""
    from inceval.engine.evaluate import evaluate, open_run

    with tempfile.TemporaryDirectory(dir=ctx.work_dir) as scratch:
        writer = open_run(Path(scratch) / "run", models, protocols, dataset)
        with writer:
            stats = evaluate(models, protocols, dataset, writer, backend=backend, device=device,
                             progress=progress, **options)
            writer.finish(stats.manifest_update())
    return stats


class ViewRecorder(nn.Module):
    """A stand-in network that records what reaches it and returns uniform logits.

    Args:
        eval_config: its preprocessing (the views are de-normalised back to uint8 levels).
        keep_views: keep the uint8 views (on the CPU), else only float64 per-view sums.
        delay_s: sleep per forward call, after the device finished: a slow consumer.
    """

    def __init__(self, eval_config: Any, *, keep_views: bool, delay_s: float = 0.0) -> None:
        super().__init__()
        self.model_name = "recorder"
        self.eval_config = eval_config
        self.weights_info = {"source": "stand-in", "tag": None, "path": None, "sha256": None,
                             "seed": None, "notes": ["benchmarks/gpu_check.py view recorder"]}
        self.keep_views = keep_views
        self.delay_s = delay_s
        self.views: list[torch.Tensor] = []
        self.sums: list[torch.Tensor] = []
        self.register_buffer("anchor", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sums.append(x.double().sum(dim=(1, 2, 3)).cpu())
        if self.keep_views:
            mean = torch.tensor(self.eval_config.mean, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(self.eval_config.std, device=x.device).view(1, 3, 1, 1)
            levels = ((x.float() * std + mean) * 255.0).round().clamp(0, 255)
            self.views.append(levels.to(torch.uint8).cpu())
        if self.delay_s:
            sync(x.device)
            time.sleep(self.delay_s)
        return torch.zeros(x.shape[0], 1000, device=x.device) + self.anchor

    def recorded_views(self) -> torch.Tensor:
        return torch.cat(self.views)

    def recorded_sums(self) -> torch.Tensor:
        return torch.cat(self.sums)


def dali_or_skip() -> str:
    """DALI's version, or Skipped when it does not import."""
    try:
        import nvidia.dali
    except ImportError as exc:
        raise Skipped(f"DALI does not import here ({exc})") from None
    return str(nvidia.dali.__version__)


def rss_mib() -> float | None:
    """This process's resident set now (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@contextlib.contextmanager
def counting_pipeline_builds() -> Iterator[list[int]]:
    """Count DALI pipelines built inside the block (one item per ``Pipeline.build`` that builds)."""
    from nvidia.dali.pipeline import Pipeline

    calls: list[int] = []
    original = Pipeline.build

    def build(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_built", False):  # run() and the iterators call build() again
            calls.append(1)
        return original(self, *args, **kwargs)

    Pipeline.build = build
    try:
        yield calls
    finally:
        Pipeline.build = original


# --- torch sections -----------------------------------------------------------------------------

def section_environment(ctx: Context) -> dict[str, Any]:
    """Device and versions; which optional parts import."""
    info: dict[str, Any] = {"device": str(ctx.device), "torch": torch.__version__,
                            "cuda_runtime": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version()}
    if ctx.cuda:
        props = torch.cuda.get_device_properties(ctx.device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
    for module in ("nvidia.dali", "inceval.bench.runner", "triton"):
        try:
            imported = __import__(module, fromlist=["_"])
            info[module] = getattr(imported, "__version__", "imports")
        except Exception as exc:  # noqa: BLE001 - recorded, not raised
            info[module] = f"not available: {type(exc).__name__}: {exc}"
    info["summary"] = f"{info.get('gpu', 'cpu')}, torch {torch.__version__}"
    return info


def numerics_variants(ctx: Context) -> list[dict[str, Any]]:
    """(label, precision, tf32, cast, inference form) of the numerics section."""
    reduced = ["float16", "bfloat16"] if ctx.cuda else ["bfloat16"]
    variants = [{"label": "float32", "precision": "float32"}]
    if ctx.cuda:
        variants.append({"label": "float32 tf32", "precision": "float32", "tf32": True})
    for precision in reduced:
        for cast in ("autocast", "model"):
            variants.append({"label": f"{precision} {cast}", "precision": precision,
                             "cast": cast})
    variants.append({"label": "float32 bn-not-folded", "precision": "float32",
                     "form": {"fold_bn": False}})
    variants.append({"label": "float32 contiguous", "precision": "float32",
                     "form": {"channels_last": False}})
    if ctx.quick:
        variants = [v for v in variants if "bn-not" not in v["label"]]
    return variants


def section_numerics(ctx: Context) -> dict[str, Any]:
    """Each variant's softmax on the device against CPU float32 of the same weights."""
    from inceval.data.reference import normalize

    protocol = ctx.numerics_protocol or ("1" if ctx.quick or ctx.dry_run else "12")
    rows, scales = [], {}
    for name in ctx.models:
        ctx.need(15, f"numerics of {name}")
        raw = create_model(name, "random", seed=0)
        if ctx.input_size:
            raw.eval_config = raw.eval_config.with_input_size(ctx.input_size)
        config = raw.eval_config
        views = photo_views(config, protocol)
        head = classifier(raw)
        with torch.inference_mode():
            spread = float(raw(normalize(views.flatten(0, 1), config)).std(dim=-1).mean())
            scale = TARGET_LOGIT_STD / spread
            head.weight.mul_(scale)
            head.bias.mul_(scale)
        scales[name] = round(scale, 3)
        reference = ModelRunner(prepare_for_inference(raw), config, torch.device("cpu"),
                                "float32", 64).probabilities(views)
        sound = ctx.numerics_sound.setdefault(name, {})
        for variant in numerics_variants(ctx):
            model = prepare_for_inference(raw, **variant.get("form", {}))
            runner = ModelRunner(model, config, ctx.device, variant["precision"],
                                 default_views_per_forward(ctx.device, views.shape[1],
                                                           config.input_size),
                                 tf32=variant.get("tf32", False),
                                 cast=variant.get("cast", "autocast"))
            metrics = compare_probs(runner.probabilities(views), reference)
            rows.append({"model": name, "variant": variant["label"], **metrics,
                         "facts": runner.precision_facts})
            sound[variant["label"]] = (metrics["finite"] and metrics["top1_agreement_views"]
                                       >= SOUND_TOP1_AGREEMENT)
            if variant["precision"] == "float32" and not variant.get("tf32"):
                ctx.check(f"{name} {variant['label']} = CPU float32",
                          metrics["max_abs_prob_diff"] <= FLOAT32_MAX_PROB_DIFF and
                          metrics["top1_agreement_views"] == 1.0,
                          round(metrics["max_abs_prob_diff"], 8),
                          f"max abs dp <= {FLOAT32_MAX_PROB_DIFF}, top-1 agreement 1")
            else:
                ctx.check(f"{name} {variant['label']} finite", metrics["finite"],
                          metrics["finite"], "no inf/NaN")
        del raw, reference
    worst = max((r for r in rows if r["variant"] != "float32"),
                key=lambda r: r["max_abs_prob_diff"], default=None)
    summary = (f"{len(rows)} variants; worst {worst['model']} {worst['variant']}: "
               f"max abs dp {worst['max_abs_prob_diff']:.2e}, top-1 "
               f"{worst['top1_agreement_views']:.3f}" if worst else "")
    return {"protocol": protocol,
            "reference": "CPU float32, BN folded, channels_last (the run's form)",
            "classifier_scale": scales, "target_logit_std": TARGET_LOGIT_STD, "rows": rows,
            "summary": summary}


def throughput_variants(ctx: Context) -> list[dict[str, Any]]:
    """(label, precision, tf32, cast) of the runner section."""
    if not ctx.cuda:
        return [{"label": "float32", "precision": "float32"},
                {"label": "bfloat16 autocast", "precision": "bfloat16", "cast": "autocast"},
                {"label": "bfloat16 model", "precision": "bfloat16", "cast": "model"}]
    variants = [{"label": "float32", "precision": "float32"},
                {"label": "float32 tf32", "precision": "float32", "tf32": True}]
    for precision in ("float16", "bfloat16"):
        for cast in ("autocast", "model"):
            variants.append({"label": f"{precision} {cast}", "precision": precision,
                             "cast": cast})
    return variants


def _gemm_tflops(ctx: Context, precision: str, tf32: bool) -> float | None:
    """The measured GEMM rate from inceval bench's calibration, when it is there."""
    try:
        from inceval.bench.calibration import gemm_rate
    except ImportError:
        return None
    seconds = 0.3 if ctx.dry_run else 0.5
    return float(gemm_rate(ctx.device, precision, seconds, tf32=tf32)["tflop_per_s"])


def interleaved_rates(ctx: Context, steps: list[tuple[ModelRunner, Callable[[], Any]]],
                      views_per_step: int, min_seconds: float,
                      rounds: int = 3) -> list[tuple[float, list[float]]]:
    """Views/s of each step, timed in turns (round after round), so that a load that comes
    and goes on a shared machine weighs on every step alike: (median, per-round rates).

    Each runner's precision switches are set again before its turn: they are process-global,
    and runners of different ``tf32`` cannot otherwise share one process.
    """
    per_round: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for index, (runner, step) in enumerate(steps):
            configure_precision(runner.device, runner.precision,
                                runner.precision_facts["tf32_matmul"], runner.cast)
            iters, seconds = timed(step, ctx.device, min_seconds / rounds, min_iters=1)
            per_round[index].append(round(iters * views_per_step / seconds, 2))
    return [(statistics.median(rates), rates) for rates in per_round]


def section_runner(ctx: Context) -> dict[str, Any]:
    """Model-only views/s of ModelRunner per precision and cast; each model's best dtype."""
    rows = []
    min_seconds = 0.0 if ctx.dry_run else (0.5 if ctx.quick else 1.0)
    for name in ctx.models:
        ctx.need(20, f"runner throughput of {name}")
        model = build(name, ctx)
        size = ctx.size(model)
        per_forward = default_views_per_forward(ctx.device, 1, size)
        macs = macs_per_view(model, size)
        generator = torch.Generator().manual_seed(0)
        host_views = torch.randint(0, 256, (per_forward, 1, 3, size, size), dtype=torch.uint8,
                                   generator=generator)
        device_views = host_views.to(ctx.device)
        entries = []
        for variant in throughput_variants(ctx):
            for where, views in (("device", device_views), ("host", host_views)):
                if where == "host" and not (ctx.cuda and variant["label"] == "float16 autocast"):
                    continue  # the pinned-copy path once, at the likely default
                runner = ModelRunner(copy.deepcopy(model), model.eval_config, ctx.device,
                                     variant["precision"], per_forward,
                                     tf32=variant.get("tf32", False),
                                     cast=variant.get("cast", "autocast"))
                if ctx.cuda:
                    torch.cuda.reset_peak_memory_stats(ctx.device)
                runner.probabilities(views)  # warm-up: cuDNN autotuning, allocator
                peak_mib = (round(torch.cuda.max_memory_allocated(ctx.device) / 2**20)
                            if ctx.cuda else None)
                entries.append((variant, where, views, runner, peak_mib))
        rates = interleaved_rates(
            ctx, [(runner, (lambda r=runner, v=views: r.probabilities(v)))
                  for _, _, views, runner, _ in entries], per_forward, min_seconds)
        measured = []
        for (variant, where, _, _, peak_mib), (views_per_s, per_round) in zip(entries, rates):
            tflops = 2 * macs * views_per_s / 1e12
            peak = peak_tflops(ctx, variant["precision"], variant.get("tf32", False))
            row = {"model": name, "variant": variant["label"], "views_from": where,
                   "views_per_forward": per_forward, "input_size": size,
                   "views_per_s": round(views_per_s, 1), "views_per_s_rounds": per_round,
                   "tflop_per_s": round(tflops, 3),
                   "mfu_datasheet": round(tflops / peak, 4) if peak else None,
                   "peak_device_mib": peak_mib}
            measured.append((variant, row))
            rows.append(row)
        del entries
        reduced = [(v, r) for v, r in measured if v["precision"] != "float32"
                   and r["views_from"] == "device"
                   and ctx.numerics_sound.get(name, {}).get(v["label"], True)]
        if reduced:
            variant, row = max(reduced, key=lambda vr: vr[1]["views_per_s"])
            ctx.best[name] = {"precision": variant["precision"], "cast": variant["cast"],
                              "views_per_s": row["views_per_s"]}
        del device_views
    gemm = {}
    for label, precision, tf32 in (("float16", "float16", False), ("bfloat16", "bfloat16", False),
                                   ("float32", "float32", False)):
        if precision == "float16" and not ctx.cuda:
            continue
        with contextlib.suppress(Exception):
            gemm[label] = _gemm_tflops(ctx, precision, tf32)
    for row in rows:
        precision = row["variant"].split()[0]
        rate = gemm.get(precision) if "tf32" not in row["variant"] else None
        row["mfu_measured_gemm"] = round(row["tflop_per_s"] / rate, 4) if rate else None
    summary = ", ".join(f"{m}: {b['precision']} {b['cast']} {b['views_per_s']:.0f} views/s"
                        for m, b in ctx.best.items())
    return {"rows": rows, "best": ctx.best, "gemm_tflop_per_s": gemm,
            "peak_tflops_table": PEAK_TFLOPS, "summary": summary}


class _SimulatedMemory(nn.Module):
    """CPU dry run only: raises CUDA out-of-memory above ``limit`` views, like a full GPU."""

    def __init__(self, model: nn.Module, limit: int) -> None:
        super().__init__()
        self.model = model
        self.limit = limit
        self.inference_form = getattr(model, "inference_form", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("simulated CUDA out of memory")
        return self.model(x)


def section_oom(ctx: Context) -> dict[str, Any]:
    """A forward that does not fit: halvings, then the same probabilities as without the cap."""
    ctx.need(20, "oom")
    name = ctx.models[0]
    model = build(name, ctx).to(ctx.device)
    size = ctx.size(model)
    precision = ctx.best.get(name, {}).get("precision", "float16" if ctx.cuda else "float32")
    views_count = 256 if ctx.quick or not ctx.cuda else 1024
    if ctx.dry_run:
        views_count = 16
    generator = torch.Generator().manual_seed(1)
    views = torch.randint(0, 256, (views_count, 1, 3, size, size), dtype=torch.uint8,
                          generator=generator).to(ctx.device)
    cap_gib = None
    if ctx.cuda:
        torch.cuda.empty_cache()
        cap = torch.cuda.memory_allocated(ctx.device) + 2**30
        total = torch.cuda.get_device_properties(ctx.device).total_memory
        cap_gib = round(cap / 2**30, 2)
        torch.cuda.set_per_process_memory_fraction(cap / total, ctx.device)
        try:
            runner = ModelRunner(model, model.eval_config, ctx.device, precision, views_count)
            got = runner.probabilities(views)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
            torch.cuda.empty_cache()
    else:
        runner = ModelRunner(_SimulatedMemory(model, views_count // 4), model.eval_config,
                             ctx.device, precision, views_count)
        got = runner.probabilities(views)
    reference = ModelRunner(model, model.eval_config, ctx.device, precision,
                            runner.views_per_forward).probabilities(views)
    metrics = compare_probs(got.unsqueeze(0), reference.unsqueeze(0))
    ctx.check("out of memory halves the views per forward", runner.oom_halvings >= 1,
              runner.oom_halvings, ">= 1 halving")
    ctx.check("halved run = uncapped run at the final size",
              metrics["top1_agreement_views"] == 1.0 and metrics["max_abs_prob_diff"] <= 5e-3,
              round(metrics["max_abs_prob_diff"], 8), "top-1 agreement 1, max abs dp <= 5e-3")
    return {"model": name, "precision": precision, "views": views_count,
            "memory_cap_gib": cap_gib, "simulated": not ctx.cuda,
            "oom_halvings": runner.oom_halvings, "final_views_per_forward":
            runner.views_per_forward, **metrics,
            "summary": (f"{runner.oom_halvings} halvings to {runner.views_per_forward} views"
                        f"{' (simulated)' if not ctx.cuda else ''}; max abs dp "
                        f"{metrics['max_abs_prob_diff']:.1e}")}


def _bench(ctx: Context, stage: str) -> dict[str, Any]:
    """inceval bench rows for one stage, model by model and protocol by protocol."""
    try:
        from inceval.bench.runner import BenchSettings, run_bench
    except ImportError as exc:
        raise Skipped(f"inceval bench not available ({exc})") from None
    protocols = ("1", "12") if ctx.quick or ctx.dry_run else ("1", "12", "144")
    paths = write_synthetic_jpegs(ctx.work_dir / "images", 4 if ctx.dry_run else 64)
    rows, documents = [], []
    for name in ctx.models:
        best = ctx.best.get(name, {})
        precision = best.get("precision", "float16" if ctx.cuda else "float32")
        for protocol in protocols:
            ctx.need(30 if ctx.cuda else 10, f"{stage} {name} {protocol}")
            if ctx.dry_run:
                images, min_seconds = 2, 0.0
            else:
                images = 32 if protocol == "144" else 256
                min_seconds = 1.0 if ctx.quick else 2.0
            settings = BenchSettings(device=str(ctx.device), dtype=precision, backend="torch",
                                     stages=(stage,), images=images, min_seconds=min_seconds,
                                     gemm_seconds=0.05 if ctx.dry_run else 0.5,
                                     reference_seconds=0.05 if ctx.dry_run else 0.2,
                                     extra={"caller": "benchmarks/gpu_check.py"})
            document = run_bench([build(name, ctx)], [protocol], paths, settings)
            documents.append({k: document.get(k) for k in ("settings", "gemm", "reference")})
            for row in document["rows"]:
                rows.append({"model": name, "protocol": protocol, "dtype": precision,
                             **{k: row.get(k) for k in ("stage", "images_per_s", "views_per_s",
                                                        "tflop_per_s", "mfu", "device_peak_mib",
                                                        "rss_peak_mib")}})
    summary = "; ".join(f"{r['model']} {r['protocol']}: {r['images_per_s']:.1f} img/s"
                        for r in rows)
    return {"stage": stage, "backend": "torch", "rows": rows, "documents": documents,
            "note": "bench's own runner default cast (autocast); mfu = of its measured GEMM",
            "summary": summary}


def section_bench_model(ctx: Context) -> dict[str, Any]:
    """inceval bench, model only."""
    return _bench(ctx, "model")


def section_bench_end_to_end(ctx: Context) -> dict[str, Any]:
    """inceval bench, end to end with the torch view loader."""
    return _bench(ctx, "end-to-end")


def section_compile(ctx: Context) -> dict[str, Any]:
    """torch.compile vs eager at the best dtype: compile seconds, speed-up, agreement, shapes."""
    rows = []
    names = ctx.models if not (ctx.quick or ctx.dry_run) else ctx.models[:1]
    for name in names:
        ctx.need(150 if ctx.cuda else 60, f"compile {name}")
        model = build(name, ctx)
        size = ctx.size(model)
        best = ctx.best.get(name, {})
        precision = best.get("precision", "float16" if ctx.cuda else "float32")
        cast = best.get("cast", "autocast")
        per_forward = 8 if ctx.dry_run else default_views_per_forward(ctx.device, 1, size)
        generator = torch.Generator().manual_seed(2)
        views = torch.randint(0, 256, (per_forward, 1, 3, size, size), dtype=torch.uint8,
                              generator=generator).to(ctx.device)
        tail = views[: max(1, per_forward // 3)]
        eager = ModelRunner(copy.deepcopy(model), model.eval_config, ctx.device, precision,
                            per_forward, cast=cast)
        expected, expected_tail = eager.probabilities(views), eager.probabilities(tail)
        compiled = ModelRunner(copy.deepcopy(model), model.eval_config, ctx.device, precision,
                               per_forward, cast=cast, compile=True)
        start = time.perf_counter()
        got = compiled.probabilities(views)
        sync(ctx.device)
        compile_s = time.perf_counter() - start
        got_tail = compiled.probabilities(tail)
        (eager_rate, _), (compiled_rate, _) = interleaved_rates(
            ctx, [(eager, lambda: eager.probabilities(views)),
                  (compiled, lambda: compiled.probabilities(views))],
            per_forward, 0.0 if ctx.dry_run else 2.0)
        metrics = compare_probs(torch.cat([got, got_tail]).unsqueeze(0),
                                torch.cat([expected, expected_tail]).unsqueeze(0))
        rows.append({"model": name, "precision": precision, "cast": cast, "mode": "default",
                     "views_per_forward": per_forward, "compile_seconds": round(compile_s, 1),
                     "eager_views_per_s": round(eager_rate, 1),
                     "compiled_views_per_s": round(compiled_rate, 1),
                     "speedup": round(compiled_rate / eager_rate, 3),
                     "compiled_sizes": list(compiled.compiled_sizes), **metrics})
        ctx.check(f"{name} compiled = eager", metrics["top1_agreement_views"]
                  >= COMPILED_TOP1_AGREEMENT and metrics["finite"],
                  round(metrics["top1_agreement_views"], 4), f">= {COMPILED_TOP1_AGREEMENT}")
        ctx.check(f"{name} one compiled shape for full and short slices",
                  compiled.compiled_sizes == [per_forward], compiled.compiled_sizes,
                  f"[{per_forward}]")
    summary = "; ".join(f"{r['model']}: x{r['speedup']} after {r['compile_seconds']} s"
                        for r in rows)
    return {"rows": rows, "summary": summary}


# --- DALI sections ------------------------------------------------------------------------------

def _decode_device(ctx: Context) -> str:
    return "GPU (nvJPEG mixed)" if ctx.cuda else "CPU (dry run: CPU vs CPU proves the code only)"


def section_dali_decode(ctx: Context) -> dict[str, Any]:
    """Views through the engine: DALI on the device vs DALI on the CPU vs the PIL reference."""
    version = dali_or_skip()
    ctx.need(20, "dali decode")
    from inceval.eval_config import EvalConfig

    size = ctx.input_size or 299
    config = EvalConfig(input_size=size, crop_pct=0.875, interpolation="bicubic")
    dataset = dataset_of(ctx, 8 if ctx.dry_run else 32)
    protocol = "1" if ctx.dry_run else "12"
    recorded = {}
    for label, device, backend in (("dali_device", ctx.device, "dali"),
                                   ("dali_cpu", "cpu", "dali"), ("reference", "cpu", "torch")):
        recorder = ViewRecorder(config, keep_views=True)
        run_engine(ctx, [recorder], [protocol], dataset, device=device, backend=backend,
                   batch_size=4, workers=2)
        recorded[label] = recorder.recorded_views()
    margin = max(1, size // 16)

    def difference(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        diff = (a.float() - b.float()).abs()
        inner = diff[..., margin:-margin, margin:-margin]
        return {"mean": float(diff.mean()), "max": float(diff.max()),
                "interior_mean": float(inner.mean()), "interior_max": float(inner.max()),
                "share_above_8_levels": float((diff > 8).float().mean())}

    shapes_equal = len({tuple(v.shape) for v in recorded.values()}) == 1
    ctx.check("same views from every path", shapes_equal,
              {k: list(v.shape) for k, v in recorded.items()}, "equal shapes")
    if not shapes_equal:
        return {"dali": version, "summary": "view shapes differ"}
    result = {"dali": version, "decoded_on": _decode_device(ctx), "protocol": protocol,
              "images": len(dataset), "interior_margin_px": margin,
              "device_vs_cpu": difference(recorded["dali_device"], recorded["dali_cpu"]),
              "cpu_vs_reference": difference(recorded["dali_cpu"], recorded["reference"]),
              "device_vs_reference": difference(recorded["dali_device"], recorded["reference"])}
    ctx.check("device-decoded views match CPU-decoded (interior mean)",
              result["device_vs_cpu"]["interior_mean"] <= DECODE_MAX_MEAN_DIFF,
              round(result["device_vs_cpu"]["interior_mean"], 4),
              f"<= {DECODE_MAX_MEAN_DIFF} grey levels")
    result["summary"] = (f"device vs cpu: mean {result['device_vs_cpu']['mean']:.3f}, max "
                         f"{result['device_vs_cpu']['max']:.0f} levels")
    return result


def section_dali_handoff(ctx: Context) -> dict[str, Any]:
    """A consumer slower than the producer sees exactly the views of a fast one."""
    version = dali_or_skip()
    ctx.need(30, "dali handoff")
    from inceval.eval_config import EvalConfig

    config = EvalConfig(input_size=ctx.input_size or 299, crop_pct=0.875, interpolation="bicubic")
    dataset = dataset_of(ctx, 16 if ctx.dry_run else 128)
    protocol = "1" if ctx.dry_run else "12"
    sums = {}
    handoffs = set()
    for label, delay in (("fast", 0.0), ("delayed", 0.02 if ctx.dry_run else 0.05)):
        recorder = ViewRecorder(config, keep_views=False, delay_s=delay)
        stats = run_engine(ctx, [recorder], [protocol], dataset, device=ctx.device,
                           backend="dali", batch_size=4, workers=2, max_views_per_forward=8)
        sums[label] = recorder.recorded_sums()
        handoffs.add(stats.view_handoff)
    identical = sums["fast"].shape == sums["delayed"].shape and torch.equal(sums["fast"],
                                                                            sums["delayed"])
    differing = (int((sums["fast"] != sums["delayed"]).sum())
                 if sums["fast"].shape == sums["delayed"].shape else None)
    ctx.check("delayed consumer: bit-identical view sums", identical, differing,
              "0 differing views")
    return {"dali": version, "decoded_on": _decode_device(ctx), "protocol": protocol,
            "images": len(dataset), "views": int(sums["fast"].numel()),
            "differing_views": differing, "view_handoff": sorted(map(str, handoffs)),
            "summary": f"identical: {identical} (hand-off: {', '.join(sorted(map(str, handoffs)))})"}


def section_dali_pipeline_memory(ctx: Context) -> dict[str, Any]:
    """Pipeline builds, host RSS and device memory over a long run of a trivial model."""
    version = dali_or_skip()
    ctx.need(45, "dali pipeline memory")
    from inceval.eval_config import EvalConfig

    config = EvalConfig(input_size=ctx.input_size or 299, crop_pct=0.875, interpolation="bicubic")
    count = 48 if ctx.dry_run else (512 if ctx.quick else 2048)
    dataset = dataset_of(ctx, count)
    samples: list[dict[str, Any]] = []
    last = [0.0]

    def progress(state: Any) -> None:
        now = time.monotonic()
        if now - last[0] < 0.25 and not state.finished:
            return
        last[0] = now
        sample = {"images_done": state.images_done, "rss_mib": rss_mib()}
        if ctx.cuda:
            free, total = torch.cuda.mem_get_info(ctx.device)
            sample["device_used_mib"] = round((total - free) / 2**20)
        samples.append(sample)

    recorder = ViewRecorder(config, keep_views=False)
    with counting_pipeline_builds() as builds:
        stats = run_engine(ctx, [recorder], ["12"], dataset, device=ctx.device, backend="dali",
                           progress=progress)
    quarter = next((s for s in samples if s["images_done"] >= count // 4), samples[0])
    end = samples[-1]
    rss_growth = end["rss_mib"] / quarter["rss_mib"] - 1
    ctx.check("host RSS flat after the first quarter", rss_growth <= MEMORY_GROWTH,
              round(rss_growth, 4), f"<= {MEMORY_GROWTH}")
    result: dict[str, Any] = {"dali": version, "decoded_on": _decode_device(ctx),
                              "images": count, "protocol": "12",
                              "pipeline_builds": len(builds), "view_groups": 1,
                              "images_per_s": round(stats.images_per_s, 1),
                              "rss_mib_quarter": quarter["rss_mib"], "rss_mib_end": end["rss_mib"],
                              "samples": samples[:: max(1, len(samples) // 40)]}
    ctx.check("one long-lived DALI pipeline per view group", len(builds) <= 1, len(builds),
              "<= 1 build for 1 view group")
    if ctx.cuda:
        growth = end["device_used_mib"] / quarter["device_used_mib"] - 1
        result.update(device_mib_quarter=quarter["device_used_mib"],
                      device_mib_end=end["device_used_mib"])
        ctx.check("device memory flat after the first quarter", growth <= MEMORY_GROWTH,
                  round(growth, 4), f"<= {MEMORY_GROWTH}")
    result["summary"] = (f"{len(builds)} builds; RSS {quarter['rss_mib']} -> {end['rss_mib']} "
                         f"MiB over {count} images")
    return result


def section_dali_end_to_end(ctx: Context) -> dict[str, Any]:
    """evaluate() images/s with DALI on the device, real networks at their best dtype."""
    version = dali_or_skip()
    count = 8 if ctx.dry_run else 512
    dataset = dataset_of(ctx, count)
    rows = []
    names = ctx.models if not (ctx.quick or ctx.dry_run) else ctx.models[:1]
    for name in names:
        model = build(name, ctx)
        best = ctx.best.get(name, {})
        precision = best.get("precision", "float16" if ctx.cuda else "float32")
        macs = macs_per_view(model, ctx.size(model))
        for protocol in ("1", "12"):
            ctx.need(30 if ctx.cuda else 10, f"dali end to end {name} {protocol}")
            stats = run_engine(ctx, [model], [protocol], dataset, device=ctx.device,
                               backend="dali", precision=precision)
            tflops = 2 * macs * stats.views_per_s / 1e12
            peak = peak_tflops(ctx, precision, False)
            rows.append({"model": name, "protocol": protocol, "precision": precision,
                         "images": stats.images, "seconds": round(stats.seconds, 2),
                         "images_per_s": round(stats.images_per_s, 1),
                         "views_per_s": round(stats.views_per_s, 1),
                         "mfu_datasheet": round(tflops / peak, 4) if peak else None})
    summary = "; ".join(f"{r['model']} {r['protocol']}: {r['images_per_s']} img/s" for r in rows)
    return {"dali": version, "decoded_on": _decode_device(ctx), "rows": rows,
            "note": "whole runs, pipeline construction and store writes included",
            "summary": summary}


SECTIONS: tuple[tuple[str, Callable[[Context], dict[str, Any]], float], ...] = (
    ("environment", section_environment, 0),
    ("numerics", section_numerics, 20),
    ("runner", section_runner, 20),
    ("oom", section_oom, 20),
    ("bench_model", section_bench_model, 30),
    ("bench_end_to_end", section_bench_end_to_end, 30),
    ("compile", section_compile, 60),
    ("dali_decode", section_dali_decode, 20),
    ("dali_handoff", section_dali_handoff, 30),
    ("dali_pipeline_memory", section_dali_pipeline_memory, 45),
    ("dali_end_to_end", section_dali_end_to_end, 30),
)


# --- driver -------------------------------------------------------------------------------------

def run_section(ctx: Context, name: str, function: Callable[[Context], dict[str, Any]],
                least_s: float) -> dict[str, Any]:
    """One guarded section: its result, status, seconds and error."""
    ctx.section = name
    before = len(ctx.checks)
    started = time.perf_counter()
    entry: dict[str, Any] = {"status": "ok", "error": None}
    if ctx.remaining() < least_s:
        ctx.incomplete.append(f"{name}: not started")
        entry.update(status="skipped", error=f"time budget ({ctx.remaining():.0f} s left)")
        return {**entry, "seconds": 0.0, "result": None}
    print(f"[{datetime.datetime.now():%H:%M:%S}] {name} ...", file=sys.stderr, flush=True)
    try:
        entry["result"] = function(ctx)
    except Skipped as exc:
        entry.update(status="skipped", error=str(exc), result=None)
    except OutOfTime as exc:
        entry.update(status="incomplete", error=f"time budget: {exc} not done", result=None)
    except Exception as exc:  # noqa: BLE001 - recorded; the other sections still run
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                     traceback=traceback.format_exc(limit=8), result=None)
    finally:
        if ctx.cuda:
            torch.cuda.empty_cache()
    failed_checks = [c["check"] for c in ctx.checks[before:] if not c["passed"]]
    if failed_checks and entry["status"] == "ok":
        entry.update(status="failed", error=f"checks failed: {', '.join(failed_checks)}")
    entry["seconds"] = round(time.perf_counter() - started, 1)
    print(f"    {entry['status']} in {entry['seconds']} s"
          + (f": {entry['error']}" if entry["error"] else ""), file=sys.stderr, flush=True)
    return entry


def judge(sections: dict[str, dict[str, Any]], incomplete: list[str],
          dry_run: bool) -> tuple[int, str]:
    """The exit status and a one-line verdict.

    A real check fails (1) on any failed section or check and on work the budget cut; a dry run
    fails only on sections that raised (the script is broken), since its numbers are no GPU result.
    """
    errors = [n for n, e in sections.items() if e["status"] == "failed"
              and not str(e["error"]).startswith("checks failed")]
    if dry_run:
        if errors:
            return 1, f"dry run: sections raised errors: {', '.join(errors)}"
        return 0, "dry run: every section ran on the CPU; no GPU was checked"
    failed = [n for n, e in sections.items() if e["status"] == "failed"]
    if failed:
        return 1, f"failed: {', '.join(failed)}"
    if incomplete:
        return 1, f"incomplete (time budget): {'; '.join(incomplete)}"
    return 0, "every section ran and every check passed"


def markdown(report: dict[str, Any]) -> str:
    """The human summary: sections, checks, and the main numbers."""
    lines = [f"## inceval GPU check: {report['device_description']}"]
    if report["dry_run"]:
        lines.append("\n**DRY RUN on the CPU: no GPU was checked; numbers prove the script "
                     "runs, nothing about a GPU.**")
    lines += ["", "| section | status | seconds | summary |", "|---|---|---|---|"]
    for name, entry in report["sections"].items():
        summary = (entry.get("result") or {}).get("summary") or entry.get("error") or ""
        lines.append(f"| {name} | {entry['status']} | {entry['seconds']} | {summary} |")
    if report["checks"]:
        lines += ["", "| section | check | value | limit | passed |", "|---|---|---|---|---|"]
        for c in report["checks"]:
            lines.append(f"| {c['section']} | {c['check']} | {c['value']} | {c['limit']} | "
                         f"{'yes' if c['passed'] else '**NO**'} |")
    numerics = (report["sections"].get("numerics", {}).get("result") or {}).get("rows", [])
    if numerics:
        lines += ["", "| model | variant | max abs dp | mean abs dp | top-1 views | top-1 images |",
                  "|---|---|---|---|---|---|"]
        for r in numerics:
            lines.append(f"| {r['model']} | {r['variant']} | {r['max_abs_prob_diff']:.2e} | "
                         f"{r['mean_abs_prob_diff']:.2e} | {r['top1_agreement_views']:.4f} | "
                         f"{r['top1_agreement_images']:.3f} |")
    runner = (report["sections"].get("runner", {}).get("result") or {}).get("rows", [])
    if runner:
        lines += ["", "| model | variant | views from | views/s | TFLOP/s | MFU (datasheet) | "
                  "MFU (GEMM) |", "|---|---|---|---|---|---|---|"]
        for r in runner:
            lines.append(f"| {r['model']} | {r['variant']} | {r['views_from']} | "
                         f"{r['views_per_s']} | {r['tflop_per_s']} | {r['mfu_datasheet']} | "
                         f"{r['mfu_measured_gemm']} |")
    lines += ["", f"exit status {report['exit_status']}: {report['verdict']}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="run every section on the CPU at tiny sizes (checks no GPU)")
    parser.add_argument("--quick", action="store_true", help="v3 only, fewer variants")
    parser.add_argument("--device", default="cuda", help="CUDA device (default cuda)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="time budget in seconds (default 450; --quick 200; --dry-run 900)")
    parser.add_argument("--models", default=None,
                        help="comma-separated (default v3,v4,irv2; --quick v3)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="model input side (default the models' own; --dry-run 75)")
    parser.add_argument("--numerics-protocol", default=None,
                        help="crop protocol of the numerics section (default 12; --quick and "
                             "--dry-run 1)")
    parser.add_argument("--sections", default=None,
                        help=f"comma-separated subset of {','.join(s[0] for s in SECTIONS)}")
    parser.add_argument("--out", type=Path, default=None, help="output JSON file")
    args = parser.parse_args(argv)
    known = {s[0] for s in SECTIONS}
    if args.sections:
        unknown = set(args.sections.split(",")) - known
        if unknown:
            parser.error(f"--sections: unknown {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the sections, write the JSON, print the markdown; the exit status."""
    args = parse_args(argv)
    if args.dry_run:
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            print(f"no CUDA device: torch {torch.__version__} (CUDA build {torch.version.cuda}) "
                  "sees none; nothing was checked (use --dry-run to prove the script on the CPU)")
            return 2
        device = torch.device(args.device)
        if device.type != "cuda":
            print(f"--device {args.device}: the GPU check needs a CUDA device (or --dry-run)")
            return 2
    budget = args.budget_s or (900.0 if args.dry_run else 200.0 if args.quick else 450.0)
    models = (args.models.split(",") if args.models
              else ["v3"] if args.quick else list(MODELS))
    input_size = args.input_size or (75 if args.dry_run else None)
    chosen = args.sections.split(",") if args.sections else [s[0] for s in SECTIONS]
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="inceval-gpu-check-") as work:
        ctx = Context(device, args.dry_run, args.quick, time.monotonic() + budget, models,
                      input_size, Path(work), args.numerics_protocol)
        sections = {name: run_section(ctx, name, function, least)
                    for name, function, least in SECTIONS if name in chosen}
    exit_status, verdict = judge(sections, ctx.incomplete, args.dry_run)
    description = (f"{torch.cuda.get_device_name(device)} ({device})" if device.type == "cuda"
                   else "CPU (dry run)")
    report = {
        "script": "benchmarks/gpu_check.py",
        "dry_run": args.dry_run,
        "quick": args.quick,
        "started_at": started.isoformat(timespec="seconds"),
        "budget_s": budget,
        "wall_s": round((datetime.datetime.now(datetime.timezone.utc) - started)
                        .total_seconds(), 1),
        "device": str(device),
        "device_description": description,
        "models": models,
        "input_size": input_size,
        "command": " ".join(["benchmarks/gpu_check.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "sections": sections,
        "checks": ctx.checks,
        "incomplete": ctx.incomplete,
        "exit_status": exit_status,
        "verdict": verdict,
    }
    out = args.out or RESULTS / f"gpu_check-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(markdown(report))
    print(f"wrote {out}", file=sys.stderr)
    return exit_status


if __name__ == "__main__":
    sys.exit(main())
