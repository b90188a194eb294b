"""Progress reports of a run: the engine emits them and the CLI renders them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """Where a run stands.

    Attributes:
        images_done: images all of whose models and protocols are finished.
        images_total: images in the run.
        views_done: model views computed so far (each view once per model that sees it).
        views_total: model views of the whole run.
        elapsed_s: seconds since the first batch was requested.
        chunk: the chunk being worked on (0-based), and ``chunks`` the number of chunks.
        chunks: number of chunks in the run.
        finished: True on the last report.
    """

    images_done: int
    images_total: int
    views_done: int
    views_total: int
    elapsed_s: float
    chunk: int
    chunks: int
    finished: bool = False

    @property
    def images_per_s(self) -> float:
        """Images finished per second of wall time."""
        return self.images_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def views_per_s(self) -> float:
        """Model views computed per second of wall time."""
        return self.views_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the views rate (cost follows views, not images)."""
        if self.views_done == 0 or self.elapsed_s <= 0:
            return None
        return (self.views_total - self.views_done) / self.views_per_s


ProgressCallback = Callable[[Progress], None]
