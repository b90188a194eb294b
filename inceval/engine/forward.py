"""One model applied to rendered views: normalise, forward in slices, softmax, average per protocol.

Averaging follows GoogLeNet (Szegedy et al. 2015a), which the paper cites for its protocols: the
softmax *probabilities* of a protocol's views are averaged, never the logits.

The runner also owns how the forward passes run: the arithmetic (:mod:`inceval.engine.precision`),
``torch.compile`` with fixed slice shapes, pinned host-to-GPU copies, and recovery from CUDA
out-of-memory by halving the views per forward call.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inceval.engine.precision import check_precision, configure_precision, torch_dtype
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

# Views per forward call on CUDA at 299x299: a v4/IRv2 forward of 256 views needs a few GiB of
# activations in float16, far below any datacentre GPU, and keeps the GPU busy.
CUDA_VIEWS_AT_299 = 256
# On a CPU small calls are faster (they stay in cache): Inception-v3 at 299 px on 2 cores ran
# 14.7 views/s at 8 views per call and 13.6 at 32.
CPU_VIEWS_PER_FORWARD = 8
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


def default_views_per_forward(device: torch.device | str, views_per_image: int,
                              input_size: int) -> int:
    """Views per forward call that keep ``device`` busy without running out of memory.

    Rule: 8 on a CPU (small calls stay in cache: measured faster than 32 for Inception-v3 on 2
    cores, and progress is finer). On CUDA,
    256 views at 299x299, scaled by the pixel count (activation memory grows with it):
    ``floor(256 * (299 / input_size)^2)``, between 1 and 1024; then, when an image's views fit,
    rounded down to whole images (a multiple of ``views_per_image``) so that forward calls have
    one shape across batches.

    Args:
        device: where the model runs.
        views_per_image: the distinct views the model computes per image.
        input_size: the model's square input side in pixels.
    """
    if views_per_image < 1 or input_size < 1:
        raise ValueError(f"views_per_image and input_size must be positive, got "
                         f"{views_per_image}, {input_size}")
    if torch.device(device).type != "cuda":
        return CPU_VIEWS_PER_FORWARD
    budget = min(1024, max(1, math.floor(CUDA_VIEWS_AT_299 * (299 / input_size) ** 2)))
    if views_per_image <= budget:
        return budget - budget % views_per_image
    return budget


def _check_compiler(device: torch.device) -> None:
    """Refuse ``compile=True`` up front where inductor cannot generate code."""
    hint = "; drop --compile"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise InceValError("--compile needs triton for CUDA devices (pip install triton)"
                               + hint)
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = get_cpp_compiler()
    except Exception:  # noqa: BLE001 - any failure here means no usable compiler
        compiler = None
    if not compiler or shutil.which(compiler) is None:
        raise InceValError("--compile needs a working C++ compiler (g++ or clang++ on PATH, or "
                           "CXX) on the CPU" + hint)


def _is_compile_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from dynamo/inductor rather than from the model itself."""
    module = type(exc).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor"))


class ModelRunner:
    """Scores the views of a batch of images with one model.

    Args:
        model: an eval-mode classifier; it is moved to ``device`` in place (and cast in place
            when ``cast="model"`` with a reduced precision).
        eval_config: the model's preprocessing (mean/std of pixels scaled to [0, 1]).
        device: where the model runs.
        precision: ``"float32"`` (IEEE unless ``tf32``), ``"bfloat16"`` or ``"float16"``.
        max_views_per_forward: the most views (images x views) in one forward call; bounds the
            activation memory of large multi-crop batches.
        tf32: allow TensorFloat-32 for float32 convolutions and matrix products on CUDA.
        cast: reduced precision by ``"autocast"`` or by casting the ``"model"`` and its inputs.
        compile: run the forward through ``torch.compile``; slices then have fixed sizes (a
            short slice is padded with blank views whose outputs are dropped) so few shapes are
            compiled.
        compile_mode: ``"default"`` or ``"max-autotune-no-cudagraphs"``.

    Attributes:
        views_per_forward: the current views per forward call (halved after a CUDA OOM).
        oom_halvings: how many times it was halved.
        precision_facts: the arithmetic switches in force, for the manifest.
        compiled_sizes: the slice sizes compiled so far (compile only).
    """

    def __init__(self, model: nn.Module, eval_config: EvalConfig, device: torch.device,
                 precision: str, max_views_per_forward: int, *, tf32: bool = False,
                 cast: str = "autocast", compile: bool = False,  # noqa: A002 - the CLI's name
                 compile_mode: str = "default") -> None:
        if max_views_per_forward < 1:
            raise ValueError(f"max_views_per_forward must be positive, got {max_views_per_forward}")
        if compile_mode not in COMPILE_MODES:
            raise InceValError(f"compile mode {compile_mode!r} is unknown; use "
                               f"{' or '.join(COMPILE_MODES)}")
        device = torch.device(device)
        self.precision_facts = configure_precision(device, precision, tf32, cast)
        self.device = device
        self.precision = precision
        self.cast = cast
        self.max_views_per_forward = max_views_per_forward
        self.views_per_forward = max_views_per_forward
        self.oom_halvings = 0
        self.model = model.to(device).eval()
        self._dtype = torch_dtype(precision)
        self._cast_model = cast == "model" and self._dtype != torch.float32
        if self._cast_model:
            self.model = self.model.to(self._dtype)
        self._mean = torch.tensor(eval_config.mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(eval_config.std, device=device).view(1, 3, 1, 1)
        form = getattr(model, "inference_form", None) or {}
        self._channels_last = bool(form.get("channels_last", False))
        self.compile = compile
        self.compile_mode = compile_mode
        self.compiled_sizes: list[int] = []
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self.model
        if compile:
            _check_compiler(device)
            mode = None if compile_mode == "default" else compile_mode
            self._forward = torch.compile(self.model, mode=mode, dynamic=False)

    def settings(self) -> dict[str, Any]:
        """What this runner did, for the manifest: precision facts, compile, views per forward."""
        return {
            **self.precision_facts,
            "compile": self.compile_mode if self.compile else False,
            "max_views_per_forward": self.max_views_per_forward,
            "views_per_forward": self.views_per_forward,
            "oom_halvings": self.oom_halvings,
        }

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self._dtype == torch.float32 or self._cast_model:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self._dtype):
            yield

    def _slice_size(self, remaining: int) -> int:
        """Views in the next forward call, out of ``remaining``."""
        size = min(self.views_per_forward, remaining)
        if not self.compile:
            return size
        # Even slices (1152 views at 256: 5 x 231, not 4 x 256 + 128) so padding wastes little.
        return math.ceil(remaining / math.ceil(remaining / size))

    def _padded_size(self, size: int) -> int:
        """The compiled shape a slice of ``size`` views is padded to (``size`` if none fits)."""
        fits = [s for s in self.compiled_sizes if size <= s <= self.views_per_forward]
        return min(fits) if fits else size

    def _forward_slice(self, views: torch.Tensor) -> torch.Tensor:
        """Softmax (float32) of uint8 views (n, 3, H, W)."""
        n = views.shape[0]
        target = self._padded_size(n) if self.compile else n
        new_shape = self.compile and target not in self.compiled_sizes
        x = views.to(self.device, non_blocking=views.is_pinned())
        if target > n:
            x = torch.cat([x, x.new_zeros((target - n, *x.shape[1:]))])
        x = (x.to(torch.float32) / 255.0 - self._mean) / self._std
        if self._cast_model:
            x = x.to(self._dtype)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            logits = self._forward(x)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:
            if new_shape and _is_compile_failure(exc):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise InceValError(f"--compile: torch.compile failed ({type(exc).__name__}: "
                                   f"{first[:160]}); it needs a working C++ compiler (CPU) or "
                                   "triton (CUDA); drop --compile") from exc
            raise
        if new_shape:
            self.compiled_sizes.append(target)
        return torch.softmax(logits[:n].float(), dim=-1)

    def _try_slice(self, views: torch.Tensor) -> torch.Tensor | None:
        """The slice's softmax, or None after a CUDA out-of-memory error."""
        try:
            return self._forward_slice(views)
        except torch.cuda.OutOfMemoryError:
            return None

    def _halve(self, name: str) -> None:
        """Release cached GPU memory and halve the views per forward, for the rest of the run."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.views_per_forward == 1:
            raise InceValError(f"CUDA out of memory on {self.device} with one view of {name} per "
                               "forward; free GPU memory (other processes?) or use --device cpu")
        self.views_per_forward = max(1, self.views_per_forward // 2)
        self.oom_halvings += 1

    def probabilities(self, views: torch.Tensor,
                      on_views: Callable[[int], None] | None = None) -> torch.Tensor:
        """Softmax of every view.

        Args:
            views: uint8 of shape (B, N, 3, H, W), on any device.
            on_views: called with the number of views after each forward call.

        Returns:
            float32 of shape (B, N, classes) on the model's device.

        Raises:
            InceValError: CUDA out of memory even at one view per forward, or ``--compile``
                failing to compile.
        """
        if views.dtype != torch.uint8 or views.ndim != 5:
            raise ValueError(f"views must be uint8 (B, N, 3, H, W), got {views.dtype} "
                             f"{tuple(views.shape)}")
        check_precision(self.precision_facts, self.device)
        b, n = views.shape[:2]
        flat = views.reshape(b * n, *views.shape[2:])
        if self.device.type == "cuda" and flat.device.type == "cpu" and not flat.is_pinned():
            # One host copy into page-locked memory lets every slice go up asynchronously.
            flat = flat.pin_memory()
        out = []
        start = 0
        with torch.inference_mode(), self._autocast():
            while start < flat.shape[0]:
                size = self._slice_size(flat.shape[0] - start)
                probs = self._try_slice(flat[start:start + size])
                if probs is None:
                    # Out of the except block, so the failed slice's tensors are already freed.
                    self._halve(getattr(self.model, "model_name", type(self.model).__name__))
                    continue
                out.append(probs)
                start += size
                if on_views is not None:
                    on_views(size)
        probs = torch.cat(out)
        return probs.view(b, n, probs.shape[-1])

    def protocol_probabilities(self, views: torch.Tensor, protocol_views: Sequence[np.ndarray],
                               on_views: Callable[[int], None] | None = None,
                               selection: np.ndarray | None = None) -> list[torch.Tensor]:
        """Per protocol, the mean softmax over its views.

        Args:
            views: uint8 (B, N, 3, H, W): the rendered views (of several models, maybe).
            protocol_views: per protocol, indices of its views along dimension 1 of the views the
                model computes: ``views``, or ``views[:, selection]`` when ``selection`` is given.
            on_views: called with the number of views after each forward call.
            selection: indices along dimension 1 of ``views`` of the views this model computes,
                each once; None to compute every rendered view.

        Returns:
            Per protocol, float32 (B, classes) on the CPU.
        """
        if selection is not None:
            index = torch.as_tensor(selection, dtype=torch.long, device=views.device)
            views = views.index_select(1, index)
        probs = self.probabilities(views, on_views)
        result = []
        for indices in protocol_views:
            index = torch.as_tensor(indices, dtype=torch.long, device=probs.device)
            result.append(probs.index_select(1, index).mean(dim=1).cpu())
        return result
