"""What arithmetic the forward passes use, set once per run and recorded in the manifest.

``--dtype float32`` means IEEE float32. On Ampere and later GPUs cuDNN runs float32 convolutions
in TensorFloat-32 (10-bit mantissa) by default, so a run that wants float32 has to say so; TF32 is
opt-in (``tf32=True``). The switches are process-global in torch, hence one function,
:func:`configure_precision`, sets them, and :func:`check_precision` lets each forward verify that
nothing changed them since.

Reduced precision (``bfloat16``, ``float16``) has two forms:

* ``cast="autocast"``: float32 weights, ``torch.autocast`` picks per op (matrix products and
  convolutions in the reduced dtype; softmax and reductions in float32).
* ``cast="model"``: the model (already in inference form, BatchNorm folded in float64 by
  :func:`inceval.models.prepare_for_inference`) and its inputs are cast to the dtype once; every
  op runs in it. No per-call weight casts, half the weight memory.

Decision: the default stays ``autocast``. On the CPU (2 cores with AVX512-BF16, v3 at 299, random
weights with a trained-like logit spread; results/gpu/cpu_v3_299_cast_and_compile.json) bfloat16
by ``model`` and by ``autocast`` give the same softmax to the digits reported (max |dp| 3.5e-3 from
float32 for both, top-1 of all 8 photos equal, 94 of 96 views), and ``model`` ran 25.7 against
20.4 views/s (float32: 13.0; medians of 3 interleaved rounds on a shared machine). That is one
CPU; the default follows CUDA, where float16 is the usual choice, once benchmarks/gpu_check.py
(sections numerics and runner) has measured both casts there.
"""

from __future__ import annotations

from typing import Any

import torch

from inceval.errors import InceValError

PRECISIONS = ("float32", "bfloat16", "float16")
CASTS = ("autocast", "model")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name (``float32``, ``bfloat16``, ``float16``).

    Raises:
        InceValError: an unknown name.
    """
    if precision not in _DTYPES:
        raise InceValError(f"--dtype {precision!r} is unknown; use {', '.join(PRECISIONS)}")
    return _DTYPES[precision]


def check_settings(device: torch.device, precision: str, tf32: bool, cast: str) -> None:
    """Refuse combinations that cannot run or would not mean what they say.

    Raises:
        InceValError: unknown precision or cast, float16 on a CPU, TF32 off CUDA or with a
            reduced precision.
    """
    torch_dtype(precision)
    if cast not in CASTS:
        raise InceValError(f"cast {cast!r} is unknown; use {' or '.join(CASTS)}")
    if device.type == "cpu" and precision == "float16":
        raise InceValError("--dtype float16 is not supported on the CPU; use bfloat16 or float32")
    if tf32 and device.type != "cuda":
        raise InceValError("--tf32 applies to CUDA devices only (TensorFloat-32 is a GPU format); "
                           f"drop it for --device {device}")
    if tf32 and precision != "float32":
        raise InceValError(f"--tf32 changes float32 arithmetic only; drop it for "
                           f"--dtype {precision}")


def configure_precision(device: torch.device | str, precision: str, tf32: bool = False,
                        cast: str = "autocast") -> dict[str, Any]:
    """Set torch's process-global arithmetic switches for a run on ``device``; return the facts.

    On CUDA: TF32 for matrix products and cuDNN convolutions on or off as ``tf32`` says
    (``torch.set_float32_matmul_precision`` "high" or "highest"), and ``cudnn.benchmark`` on
    (every protocol feeds fixed shapes, so the autotuned algorithm is reused). On a CPU the float32
    matmul precision is set to "highest" (oneDNN may otherwise use bfloat16 internally).

    Args:
        device: where the models run.
        precision: ``float32``, ``bfloat16`` or ``float16``.
        tf32: allow TensorFloat-32 for float32 work on CUDA.
        cast: ``autocast`` or ``model`` (see the module docstring); ignored for float32.

    Returns:
        The facts for the manifest (:func:`precision_facts`).

    Raises:
        InceValError: see :func:`check_settings`.
    """
    device = torch.device(device)
    check_settings(device, precision, tf32, cast)
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    return precision_facts(device, precision, cast)


def precision_facts(device: torch.device | str, precision: str, cast: str) -> dict[str, Any]:
    """What the forward passes on ``device`` use now, read back from torch.

    Returns:
        ``dtype``, ``cast`` (``autocast``, ``model`` or ``none`` for float32),
        ``float32_matmul_precision``, ``tf32_matmul``, ``tf32_cudnn`` and ``cudnn_benchmark``
        (the last three false off CUDA, where they do not apply).
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    return {
        "dtype": precision,
        "cast": "none" if precision == "float32" else cast,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "tf32_matmul": bool(cuda and torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(cuda and torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": bool(cuda and torch.backends.cudnn.benchmark),
    }


def check_precision(expected: dict[str, Any], device: torch.device | str) -> None:
    """Verify that the switches recorded by :func:`configure_precision` still hold.

    Raises:
        RuntimeError: something in the process changed them (another runner configured with a
            different ``tf32``, say), so the recorded facts would be false.
    """
    now = precision_facts(device, expected["dtype"], expected["cast"])
    if now != expected:
        changed = sorted(k for k in now if now[k] != expected.get(k))
        raise RuntimeError(f"torch precision switches changed after configure_precision: "
                           f"{', '.join(f'{k}={now[k]!r}' for k in changed)}; configure one "
                           "precision per process")
