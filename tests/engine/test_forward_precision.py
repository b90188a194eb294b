"""The model runner's arithmetic, compile, views-per-forward rule and out-of-memory recovery.

References are independent of the runner: hand-worked numbers (views-per-forward rule, slice
sequences) and a direct float64 computation of the stand-in network's softmax.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from inceval.engine import forward as forward_module
from inceval.engine.forward import ModelRunner, default_views_per_forward
from inceval.engine.precision import check_precision, configure_precision, precision_facts
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig

CPU = torch.device("cpu")
CONFIG = EvalConfig(input_size=8, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


@pytest.fixture(autouse=True)
def _restore_switches() -> Iterator[None]:
    """The switches are process-global: put them back for the other tests."""
    saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    yield
    torch.set_float32_matmul_precision(saved[0])
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.benchmark) = saved[1:]


class _LinearNet(nn.Module):
    """Logits linear in the pooled pixels; records the size and dtype of every call."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3 * 4 * 4, 7)
        self.calls: list[int] = []
        self.input_dtypes: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(x.shape[0]))
        self.input_dtypes.append(x.dtype)
        return 20 * self.proj(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))


class _OutOfMemoryAbove(nn.Module):
    """Raises CUDA out-of-memory for calls of more than ``limit`` views, like a full GPU."""

    def __init__(self, net: nn.Module, limit: int) -> None:
        super().__init__()
        self.net = net
        self.limit = limit
        self.attempts: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.attempts.append(int(x.shape[0]))
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def _views(images: int, views: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (images, views, 3, 8, 8), dtype=torch.uint8, generator=generator)


def _reference_probs(net: _LinearNet, views: torch.Tensor) -> torch.Tensor:
    """float64 softmax of every view, computed without the runner."""
    mean = torch.tensor(CONFIG.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CONFIG.std, dtype=torch.float64).view(1, 3, 1, 1)
    x = (views.reshape(-1, 3, 8, 8).double() / 255 - mean) / std
    with torch.no_grad():
        pooled = nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        logits = 20 * (pooled @ net.proj.weight.double().T + net.proj.bias.double())
    return logits.softmax(-1).view(*views.shape[:2], 7)


# --- precision switches -------------------------------------------------------------------------

def test_cpu_float32_is_ieee_whatever_was_set_before() -> None:
    torch.set_float32_matmul_precision("medium")  # lets oneDNN use bfloat16 inside float32 matmuls
    facts = configure_precision(CPU, "float32")
    assert torch.get_float32_matmul_precision() == "highest"
    assert facts == {"dtype": "float32", "cast": "none", "float32_matmul_precision": "highest",
                     "tf32_matmul": False, "tf32_cudnn": False, "cudnn_benchmark": False}


@pytest.mark.parametrize("tf32", [True, False])
def test_cuda_switches_follow_tf32(tf32: bool) -> None:
    # The flags are plain process state, so their logic is testable without a GPU.
    torch.backends.cuda.matmul.allow_tf32 = not tf32
    torch.backends.cudnn.allow_tf32 = not tf32
    torch.backends.cudnn.benchmark = False
    facts = configure_precision(torch.device("cuda"), "float32", tf32=tf32)
    assert torch.backends.cuda.matmul.allow_tf32 is tf32
    assert torch.backends.cudnn.allow_tf32 is tf32
    assert torch.backends.cudnn.benchmark is True
    assert facts == {"dtype": "float32", "cast": "none",
                     "float32_matmul_precision": "high" if tf32 else "highest",
                     "tf32_matmul": tf32, "tf32_cudnn": tf32, "cudnn_benchmark": True}


def test_reduced_precision_records_its_cast() -> None:
    assert configure_precision(CPU, "bfloat16", cast="model")["cast"] == "model"
    assert configure_precision(CPU, "bfloat16")["cast"] == "autocast"
    assert precision_facts(torch.device("cuda"), "float16", "autocast")["dtype"] == "float16"


@pytest.mark.parametrize(
    ("device", "precision", "tf32", "cast", "message"),
    [
        ("cpu", "float32", True, "autocast",
         "--tf32 applies to CUDA devices only (TensorFloat-32 is a GPU format); drop it for "
         "--device cpu"),
        ("cuda", "bfloat16", True, "autocast",
         "--tf32 changes float32 arithmetic only; drop it for --dtype bfloat16"),
        ("cpu", "float16", False, "autocast",
         "--dtype float16 is not supported on the CPU; use bfloat16 or float32"),
        ("cpu", "float8", False, "autocast",
         "--dtype 'float8' is unknown; use float32, bfloat16, float16"),
        ("cpu", "bfloat16", False, "weights", "cast 'weights' is unknown; use autocast or model"),
    ],
)
def test_refused_settings(device: str, precision: str, tf32: bool, cast: str,
                          message: str) -> None:
    with pytest.raises(InceValError, match=f"^{re.escape(message)}$"):
        configure_precision(torch.device(device), precision, tf32, cast)


def test_runner_refuses_to_run_after_the_switches_changed() -> None:
    runner = ModelRunner(_LinearNet(), CONFIG, CPU, "float32", 8)
    check_precision(runner.precision_facts, CPU)  # unchanged: passes
    torch.set_float32_matmul_precision("high")
    with pytest.raises(RuntimeError, match="float32_matmul_precision='high'"):
        runner.probabilities(_views(1, 2, seed=0))


# --- reduced precision: autocast vs cast model --------------------------------------------------

def test_cast_model_runs_every_op_in_bfloat16() -> None:
    views = _views(2, 3, seed=3)
    expected = _reference_probs(_LinearNet(), views)
    autocast_net, cast_net = _LinearNet(), _LinearNet()
    by_autocast = ModelRunner(autocast_net, CONFIG, CPU, "bfloat16", 8).probabilities(views)
    by_cast = ModelRunner(cast_net, CONFIG, CPU, "bfloat16", 8, cast="model").probabilities(views)
    assert autocast_net.input_dtypes == [torch.float32]  # autocast casts inside the ops
    assert autocast_net.proj.weight.dtype == torch.float32
    assert cast_net.input_dtypes == [torch.bfloat16]
    assert cast_net.proj.weight.dtype == torch.bfloat16
    for got in (by_autocast, by_cast):
        assert got.dtype == torch.float32
        # bfloat16 keeps 8 bits of mantissa: logits of size ~20 are off by up to ~0.1.
        torch.testing.assert_close(got.double(), expected, rtol=0, atol=0.05)
    # ... and they are not float32 results: the tolerance above is needed.
    assert (by_cast.double() - expected).abs().max() > 1e-4


# --- views per forward --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("device", "views_per_image", "input_size", "expected"),
    [
        ("cpu", 144, 299, 8),
        ("cuda", 1, 299, 256),
        ("cuda", 12, 299, 252),  # 21 whole images of 12 views
        ("cuda", 144, 299, 144),
        ("cuda", 145, 299, 145),  # 256 - 256 % 145
        ("cuda", 12, 331, 204),  # floor(256 * (299/331)^2) = floor(208.9) = 208 -> 17 x 12
        ("cuda", 144, 598, 64),  # 256 / 4 = 64 < 144 views: part of an image per call
        ("cuda", 1, 107, 1024),  # floor(256 * 7.81) = 1998, capped at 1024
        ("cuda:1", 12, 107, 1020),
    ],
)
def test_default_views_per_forward(device: str, views_per_image: int, input_size: int,
                                   expected: int) -> None:
    assert default_views_per_forward(device, views_per_image, input_size) == expected


# --- CUDA out of memory -------------------------------------------------------------------------

def test_out_of_memory_halves_and_retries_the_same_slice() -> None:
    views = _views(3, 7, seed=4)  # 21 views
    net = _OutOfMemoryAbove(_LinearNet(), limit=5)
    runner = ModelRunner(net, CONFIG, CPU, "float32", 16)
    counted: list[int] = []
    got = runner.probabilities(views, counted.append)
    # 16 fails, 8 fails, then slices of 4: 4 + 4 + 4 + 4 + 4 + 1 = 21.
    assert net.attempts == [16, 8, 4, 4, 4, 4, 4, 1]
    assert counted == [4, 4, 4, 4, 4, 1]
    assert runner.views_per_forward == 4 and runner.oom_halvings == 2
    assert runner.max_views_per_forward == 16
    assert runner.settings()["oom_halvings"] == 2

    unlimited = ModelRunner(_LinearNet(), CONFIG, CPU, "float32", 16).probabilities(views)
    torch.testing.assert_close(got, unlimited, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got.double(), _reference_probs(net.net, views), rtol=1e-5,
                               atol=1e-6)
    # The halved size stays for the rest of the run: no new failures.
    net.attempts.clear()
    runner.probabilities(_views(2, 5, seed=5))
    assert net.attempts == [4, 4, 2]


def test_out_of_memory_at_one_view_is_a_user_error() -> None:
    net = _OutOfMemoryAbove(_LinearNet(), limit=0)
    net.model_name = "v4"
    runner = ModelRunner(net, CONFIG, CPU, "float32", 2)
    message = ("CUDA out of memory on cpu with one view of v4 per forward; free GPU memory "
               "(other processes?) or use --device cpu")
    with pytest.raises(InceValError, match=f"^{re.escape(message)}$"):
        runner.probabilities(_views(1, 3, seed=6))
    assert net.attempts == [2, 1]
    assert runner.oom_halvings == 1


# --- torch.compile ------------------------------------------------------------------------------

def _eager_compile(shapes: list[int]):  # noqa: ANN202
    """A stand-in for torch.compile that records the batch sizes the compiled forward sees."""
    def fake_compile(model: nn.Module, **kwargs: object):  # noqa: ANN202
        assert kwargs["dynamic"] is False

        def run(x: torch.Tensor) -> torch.Tensor:
            shapes.append(int(x.shape[0]))
            return model(x)
        return run
    return fake_compile


def test_compile_feeds_fixed_shapes_and_drops_the_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[int] = []
    monkeypatch.setattr(torch, "compile", _eager_compile(shapes))
    monkeypatch.setattr(forward_module, "_check_compiler", lambda device: None)
    net = _LinearNet()
    runner = ModelRunner(net, CONFIG, CPU, "float32", 4, compile=True)
    counted: list[int] = []
    views = _views(3, 5, seed=7)  # 15 views
    got = runner.probabilities(views, counted.append)
    # 15 at most 4 a call: 4 even slices of ceil(15/4) = 4 -> 4, 4, 4, then 3 padded to 4.
    assert shapes == [4, 4, 4, 4]
    assert counted == [4, 4, 4, 3]
    assert runner.compiled_sizes == [4]
    torch.testing.assert_close(got.double(), _reference_probs(net, views), rtol=1e-5, atol=1e-6)

    shapes.clear()
    more = _views(2, 5, seed=8)  # 10 views: 4, then 6 as 2 x 3, each padded to 4
    got = runner.probabilities(more, counted.append)
    assert shapes == [4, 4, 4] and runner.compiled_sizes == [4]
    torch.testing.assert_close(got.double(), _reference_probs(net, more), rtol=1e-5, atol=1e-6)


def test_compile_slices_evenly_and_never_pads_past_a_halved_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[int] = []
    monkeypatch.setattr(torch, "compile", _eager_compile(shapes))
    monkeypatch.setattr(forward_module, "_check_compiler", lambda device: None)
    net = _OutOfMemoryAbove(_LinearNet(), limit=6)
    runner = ModelRunner(net, CONFIG, CPU, "float32", 10, compile=True)
    runner.probabilities(_views(2, 9, seed=9))  # 18 views
    # 18 at 10: 2 slices of 9 -> fails; halved to 5: 18 -> 4 slices of ceil(18/4) = 5 -> 5, 5,
    # 5, then 3 padded to 5 (never to the failed 9).
    assert net.attempts == [9, 5, 5, 5, 5]
    assert runner.compiled_sizes == [5]
    assert runner.oom_halvings == 1


def test_compile_never_pads_to_a_shape_above_the_halved_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "compile", _eager_compile([]))
    monkeypatch.setattr(forward_module, "_check_compiler", lambda device: None)
    net = _OutOfMemoryAbove(_LinearNet(), limit=8)
    runner = ModelRunner(net, CONFIG, CPU, "float32", 10, compile=True)
    runner.probabilities(_views(2, 4, seed=15))  # 8 views fit: shape 8 compiled
    net.limit = 6  # another process took memory meanwhile
    runner.probabilities(_views(2, 4, seed=16))
    # 8 fails; halved to 5: 2 slices of 4, compiled anew rather than padded back to 8.
    assert net.attempts == [8, 8, 4, 4]
    assert runner.compiled_sizes == [8, 4]


def test_compile_without_a_compiler_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.cpp_builder as cpp_builder

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", lambda: "/nonexistent/g++")
    message = ("--compile needs a working C++ compiler (g++ or clang++ on PATH, or CXX) on the "
               "CPU; drop --compile")
    with pytest.raises(InceValError, match=f"^{re.escape(message)}$"):
        ModelRunner(_LinearNet(), CONFIG, CPU, "float32", 4, compile=True)


def test_compile_failure_at_the_first_call_is_a_user_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._dynamo.exc import BackendCompilerFailed

    def failing_compile(model: nn.Module, **kwargs: object):  # noqa: ANN202
        def run(x: torch.Tensor) -> torch.Tensor:
            raise BackendCompilerFailed("inductor", RuntimeError("cc1plus: fatal error"), None)
        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    monkeypatch.setattr(forward_module, "_check_compiler", lambda device: None)
    runner = ModelRunner(_LinearNet(), CONFIG, CPU, "float32", 4, compile=True)
    with pytest.raises(InceValError, match=r"^--compile: torch.compile failed "
                       r"\(BackendCompilerFailed: .*\); it needs a working C\+\+ compiler \(CPU\) "
                       r"or triton \(CUDA\); drop --compile$"):
        runner.probabilities(_views(1, 2, seed=10))


def test_model_errors_are_not_taken_for_compile_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(model: nn.Module, **kwargs: object):  # noqa: ANN202
        def run(x: torch.Tensor) -> torch.Tensor:
            raise ValueError("shape mismatch in the classifier")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(forward_module, "_check_compiler", lambda device: None)
    runner = ModelRunner(_LinearNet(), CONFIG, CPU, "float32", 4, compile=True)
    with pytest.raises(ValueError, match="shape mismatch"):
        runner.probabilities(_views(1, 2, seed=11))


@pytest.mark.slow
def test_real_compile_gives_the_eager_probabilities() -> None:
    pytest.importorskip("torch._inductor")
    views = _views(3, 5, seed=12)
    eager_net, compiled_net = _LinearNet(), _LinearNet()
    eager = ModelRunner(eager_net, CONFIG, CPU, "float32", 4).probabilities(views)
    runner = ModelRunner(compiled_net, CONFIG, CPU, "float32", 4, compile=True)
    compiled = runner.probabilities(views)
    assert runner.compiled_sizes == [4]
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)


# --- the GPU path (skipped without CUDA) --------------------------------------------------------

@pytest.mark.gpu
def test_cpu_views_reach_the_gpu_through_pinned_memory() -> None:
    views = _views(3, 5, seed=13)
    net = _LinearNet()
    expected = _reference_probs(net, views)
    runner = ModelRunner(net, CONFIG, torch.device("cuda"), "float32", 4)
    got = runner.probabilities(views)
    assert got.device.type == "cuda"
    assert runner.precision_facts["tf32_cudnn"] is False
    torch.testing.assert_close(got.cpu().double(), expected, rtol=1e-4, atol=1e-6)


def test_protocol_probabilities_unchanged_with_new_options() -> None:
    """cast and tf32 keywords leave float32 CPU results as before (the runner's old contract)."""
    views = _views(2, 4, seed=14)
    net = _LinearNet()
    runner = ModelRunner(net, CONFIG, CPU, "float32", 3, cast="model")
    result = runner.protocol_probabilities(views, [np.array([0, 3])])
    expected = _reference_probs(net, views)[:, [0, 3]].mean(1)
    torch.testing.assert_close(result[0].double(), expected, rtol=1e-5, atol=1e-6)
    assert net.input_dtypes == [torch.float32] * 3  # float32 ignores cast="model"
