"""Several processes on one run: torch.distributed ranks (torchrun) and the ``--nproc`` launcher.

A sharded run works like this: rank 0 creates (or resumes) the run directory and opens every
prediction file; all ranks meet at a barrier; each rank attaches to the store and computes its
share of the chunks not done yet (round-robin, so the share is balanced and any number of ranks
can resume any run); the ranks meet again; rank 0 seals the store and reports. The store is the
same, byte for byte, as a one-process run: each chunk is rendered and computed identically
whichever process takes it. The run directory must be on a filesystem every rank sees.

``torchrun --nproc_per_node N -m inceval run ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous variables; ``inceval run --nproc N`` starts N such processes on this machine itself.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inceval.errors import InceValError

# Environment variable carrying the command line the user typed to ranks started by --nproc.
COMMAND_ENV = "INCEVAL_COMMAND"
# Ranks may wait for each other for as long as a paper-scale share takes.
_BARRIER_TIMEOUT = datetime.timedelta(hours=48)
_POLL_S = 0.2
_GRACE_S = 10.0


@dataclass(frozen=True)
class DistContext:
    """This process's place in a run.

    Attributes:
        rank: global rank (0 is the primary: it writes the manifest and reports).
        world_size: processes in the run.
        local_rank: rank on this machine (the GPU it uses).
        local_world_size: processes on this machine.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_primary(self) -> bool:
        """Whether this process writes the manifest and prints progress, tables and summary."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """Whether several processes share the run."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op in a one-process run)."""
        if self.sharded:
            torch.distributed.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (``[value]`` in a one-process run)."""
        if not self.sharded:
            return [value]
        values: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def close(self) -> None:
        """Leave the process group."""
        if self.sharded and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InceValError(f"environment variable {name}={text!r} is not a whole number; "
                           "start ranks with torchrun or inceval run --nproc") from None


def from_environment() -> DistContext:
    """The context torchrun (or ``--nproc``) set up through RANK, WORLD_SIZE, LOCAL_RANK ...

    Raises:
        InceValError: inconsistent variables.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world:
        raise InceValError(f"RANK={rank} and WORLD_SIZE={world} do not fit; start ranks with "
                           "torchrun or inceval run --nproc")
    return DistContext(rank, world, local_rank, local_world)


def init_process_group(context: DistContext, device: torch.device) -> None:
    """Join the ranks: NCCL when the models run on GPUs, gloo on CPUs."""
    if not context.sharded or torch.distributed.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"backend": backend, "timeout": _BARRIER_TIMEOUT}
    if device.type == "cuda":
        kwargs["device_id"] = device
    try:
        torch.distributed.init_process_group(**kwargs)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InceValError(f"rank {context.rank}: cannot join the other ranks ({first}); check "
                           "MASTER_ADDR/MASTER_PORT or use torchrun") from None


def rank_device(device: torch.device, context: DistContext) -> torch.device:
    """The device of this rank: with several ranks on CUDA, GPU ``LOCAL_RANK``.

    Raises:
        InceValError: one GPU named for several ranks, or more ranks than GPUs.
    """
    if not context.sharded or device.type != "cuda":
        return device
    if device.index is not None and context.local_world_size > 1:
        raise InceValError(f"--device {device} names one GPU for {context.local_world_size} "
                           "ranks on this machine; use --device cuda (rank r takes GPU r)")
    if context.local_rank >= torch.cuda.device_count():
        raise InceValError(f"rank {context.rank} wants GPU {context.local_rank} but only "
                           f"{torch.cuda.device_count()} are present; start fewer ranks")
    return torch.device("cuda", context.local_rank)


def share_cpu_threads(context: DistContext) -> None:
    """Split the CPU between the ranks of this machine so they do not fight over cores."""
    if context.local_world_size <= 1:
        return
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    torch.set_num_threads(max(1, cpus // context.local_world_size))


# ---------------------------------------------------------------- the --nproc launcher


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def strip_option(args: list[str], option: str) -> list[str]:
    """``args`` without ``option VALUE`` / ``option=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == option:
            skip = True
            continue
        if arg.startswith(option + "="):
            continue
        out.append(arg)
    return out


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()
                 if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def launch_local(run_args: list[str], nproc: int, command: str) -> int:
    """Run ``inceval run RUN_ARGS`` as ``nproc`` ranks on this machine; the exit status.

    Rank 0 keeps this terminal (progress, tables, summary); the other ranks' output goes to
    temporary files, except their unreadable-image warnings, which are shown as they come, and
    the last line of a failing rank's output is shown. When a rank fails, the
    others are stopped: the chunks finished so far stay in the run directory for ``--resume``.

    Returns:
        0 when every rank succeeded; else 2 when the first failing rank reported an input
        error, 130 when interrupted, 3 otherwise.
    """
    from inceval.store import resume_command

    hint = resume_command({"command": command})
    port = _free_port()
    logs = Path(tempfile.mkdtemp(prefix="inceval-ranks-"))
    procs: list[subprocess.Popen[bytes]] = []
    handles = []
    for rank in range(nproc):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                   WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(nproc),
                   **{COMMAND_ENV: command})
        argv = [sys.executable, "-m", "inceval", "run", *run_args]
        # The ranks import this very inceval, installed or not.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
        if rank == 0:
            procs.append(subprocess.Popen(argv, env=env))
            continue
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(proc)
        relay = threading.Thread(target=_relay, args=(proc, logs / f"rank{rank}.log"),
                                 daemon=True)
        relay.start()
        handles.append(relay)
    failed: tuple[int, int] | None = None
    try:
        while True:
            codes = [proc.poll() for proc in procs]
            failed = next(((rank, code) for rank, code in enumerate(codes)
                           if code not in (None, 0)), None)
            if failed is not None or all(code == 0 for code in codes):
                break
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        _stop(procs)
        print(f"interrupted; finished chunks are kept: continue with {hint}",
              file=sys.stderr)
        return 130
    finally:
        if failed is not None:
            _stop(procs)
        for relay in handles:
            relay.join(timeout=_GRACE_S)
    if failed is None:
        return 0
    rank, code = failed
    detail = _last_line(logs / f"rank{rank}.log") if rank else ""
    detail = detail[len("error: "):] if detail.startswith("error: ") else detail
    print(f"error: rank {rank} of {nproc} {_describe_exit(code)}"
          + (f": {detail}" if detail else "")
          + f"; the other ranks were stopped; finished chunks are kept: continue with "
            f"{hint}", file=sys.stderr)
    return 2 if code == 2 else 3


def _relay(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Keep a rank's output in its log; show its unreadable-image warnings on this terminal."""
    assert proc.stdout is not None
    with open(log, "wb") as handle:
        for line in proc.stdout:
            handle.write(line)
            handle.flush()
            if b"warning: " in line:
                sys.stderr.write(line.decode(errors="replace"))
                sys.stderr.flush()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + _GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
