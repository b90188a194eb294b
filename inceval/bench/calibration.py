"""Two yardsticks measured in the same process as the bench: a GEMM and a reference workload.

* The GEMM rate (a large square matrix product at the run's dtype) is the denominator of MFU:
  the share of the device's matrix-multiply rate that the model's FLOPs achieve.
* The reference workload is a fixed small convolution stack on a fixed tensor, always float32,
  with the same threads as the bench. Dividing a throughput by its rate cancels most of what a
  shared or differently sized machine does to both, which is what lets a throughput gate run on
  noisy CI machines. Its definition never changes within one version: a bench file records the
  version and ``inceval compare`` refuses to normalise across versions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

REFERENCE_WORKLOAD = "conv-stack"
REFERENCE_VERSION = 1
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Side of the square GEMM: on a GPU large enough to reach the matmul peak; on a CPU small enough
# that one product takes milliseconds, so a one-second measurement holds many.
GEMM_SIZE = {"cpu": 1024, "cuda": 8192}


@dataclass(frozen=True)
class ConvStack:
    """The reference workload: ``layers`` 3x3 convolutions (+ReLU) of ``channels`` channels.

    Attributes:
        batch: images in the fixed input tensor.
        channels: input and output channels of every convolution.
        size: spatial side of the input.
        layers: number of convolutions.
    """

    batch: int
    channels: int
    size: int
    layers: int

    @property
    def flop(self) -> int:
        """FLOPs of one forward pass (2 per multiply-accumulate, convolutions only)."""
        macs = self.batch * self.size * self.size * self.channels * self.channels * 9
        return 2 * macs * self.layers


# Per device type: milliseconds per pass (about 10 ms on a 2-core CPU, a few on a large GPU).
REFERENCE_STACKS = {
    "cpu": ConvStack(batch=8, channels=32, size=56, layers=4),
    "cuda": ConvStack(batch=128, channels=128, size=56, layers=4),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    """float32 means float32 for the reference, whatever TF32 settings the run chose."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _timed_repeats(step: Callable[[], object], device: torch.device, seconds: float,
                   least: int = 3, group: int = 1) -> tuple[int, float]:
    """Run ``step`` until ``seconds`` have passed (at least ``least`` times): (repeats, seconds).

    The device is synchronised after every ``group`` steps, so that on a GPU the clock sees
    finished work without a synchronisation per step.
    """
    _sync(device)
    start = time.perf_counter()
    repeats = 0
    elapsed = 0.0
    while repeats < least or elapsed < seconds:
        for _ in range(group):
            step()
        repeats += group
        _sync(device)
        elapsed = time.perf_counter() - start
    return repeats, elapsed


class ReferenceWorkload:
    """The fixed convolution stack, built once per bench; :meth:`burst` measures its rate.

    Args:
        device: where it runs (its type selects the stack of REFERENCE_STACKS).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stack = REFERENCE_STACKS["cuda" if device.type == "cuda" else "cpu"]
        generator = torch.Generator().manual_seed(0)
        convs: list[nn.Module] = []
        for _ in range(self.stack.layers):
            conv = nn.Conv2d(self.stack.channels, self.stack.channels, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.05)
                conv.bias.zero_()
            convs += [conv, nn.ReLU()]
        self.net = nn.Sequential(*convs).to(device).eval()
        shape = (self.stack.batch, self.stack.channels, self.stack.size, self.stack.size)
        # Drawn where it is used: the CUDA input is hundreds of MB.
        on_device = torch.Generator(device=device).manual_seed(0)
        self.input = torch.randn(shape, generator=on_device, device=device)
        self.bursts: list[float] = []

    def _step(self) -> None:
        self.net(self.input)

    def burst(self, seconds: float) -> float:
        """Measure for about ``seconds`` (after one untimed pass); passes per second.

        Every burst is kept (:attr:`bursts`); :attr:`rate` is their median.
        """
        with torch.inference_mode(), _no_tf32():
            self._step()
            repeats, elapsed = _timed_repeats(self._step, self.device, seconds)
        rate = repeats / elapsed
        self.bursts.append(rate)
        return rate

    @property
    def rate(self) -> float:
        """The median of all bursts so far (passes per second)."""
        if not self.bursts:
            raise RuntimeError("the reference workload has not been measured yet")
        ordered = sorted(self.bursts)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2

    def describe(self) -> dict[str, object]:
        """The JSON entry: definition, version, the median rate and every burst."""
        return {
            "workload": REFERENCE_WORKLOAD,
            "version": REFERENCE_VERSION,
            "definition": {**asdict(self.stack), "kernel": 3, "dtype": "float32",
                           "device_type": self.device.type},
            "rate": self.rate,
            "unit": "passes/s",
            "gflop_per_s": self.rate * self.stack.flop / 1e9,
            "bursts": list(self.bursts),
        }


def gemm_rate(device: torch.device, dtype: str, seconds: float = 1.0, *, tf32: bool = False,
              size: int | None = None) -> dict[str, object]:
    """The square matrix-multiply rate of ``device`` at ``dtype`` (TFLOP/s).

    Args:
        device: where to multiply.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        seconds: about how long to measure, after two untimed products.
        tf32: float32 on CUDA as TensorFloat-32, as the run's forwards with ``--tf32``.
        size: matrix side; default GEMM_SIZE of the device type.

    Returns:
        The JSON entry: size, dtype, device type, allow_tf32, repeats, seconds, tflop_per_s.
    """
    side = size or GEMM_SIZE["cuda" if device.type == "cuda" else "cpu"]
    generator = torch.Generator(device=device).manual_seed(1)
    a, b = (torch.randn(side, side, generator=generator, device=device, dtype=_DTYPES[dtype])
            for _ in range(2))
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        with torch.inference_mode():
            for _ in range(2):
                torch.mm(a, b)
            repeats, elapsed = _timed_repeats(lambda: torch.mm(a, b), device, seconds,
                                              group=10 if device.type == "cuda" else 1)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    allow_tf32 = tf32 if device.type == "cuda" and dtype == "float32" else None
    return {
        "size": side,
        "dtype": dtype,
        "device_type": device.type,
        "allow_tf32": allow_tf32,
        "repeats": repeats,
        "seconds": elapsed,
        "tflop_per_s": 2 * side**3 * repeats / elapsed / 1e12,
    }
