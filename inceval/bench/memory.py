"""Peak host RSS and peak device memory over one measurement.

Linux keeps a per-process high-water mark of the resident set (``VmHWM``) that writing ``5`` to
``/proc/self/clear_refs`` resets, so each measurement gets its own peak. Where that is not
possible the peak is the process's lifetime peak (``ru_maxrss``) and says so (``scope``).
psutil adds nothing here: it reports no peak RSS on Linux.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 1024 * 1024


@dataclass(frozen=True)
class MemoryPeaks:
    """Peaks of one measurement.

    Attributes:
        rss_bytes: peak resident set of the process.
        rss_scope: ``"measurement"`` (reset before it) or ``"process"`` (lifetime peak).
        device_bytes: peak CUDA memory allocated by torch, or None off CUDA.
    """

    rss_bytes: int | None
    rss_scope: str
    device_bytes: int | None


def _read_hwm() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _lifetime_peak() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


class PeakTracker:
    """Resets the peaks when created (where possible); :meth:`read` returns them.

    Args:
        device: the torch device whose allocator is tracked (CUDA only).
    """

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._device = device
        self._scope = "process"
        try:
            _CLEAR_REFS.write_text("5")
            self._scope = "measurement"
        except OSError:
            pass
        if self._cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)

    def read(self) -> MemoryPeaks:
        """The peaks since creation (RSS: since process start when it could not be reset)."""
        rss = _read_hwm() if self._scope == "measurement" else None
        scope = self._scope
        if rss is None:
            rss, scope = _lifetime_peak(), "process"
        device_bytes = None
        if self._cuda:
            torch.cuda.synchronize(self._device)
            device_bytes = int(torch.cuda.max_memory_allocated(self._device))
        return MemoryPeaks(rss, scope, device_bytes)
