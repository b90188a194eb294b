"""Description of the machine a benchmark ran on, stored beside its numbers."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(**extra: object) -> dict[str, object]:
    """CPU, usable cores, torch threads and versions, plus ``extra`` keys of the caller."""
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }
    info.update(extra)
    return info
