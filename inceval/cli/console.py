"""The single rich console of the CLI (stdout) and one for diagnostics (stderr)."""

from __future__ import annotations

import json
import os
from typing import Any

from rich.console import Console, ConsoleDimensions

_PIPE_WIDTH = 160


class _Console(Console):
    """A rich Console that is wide when writing to a log or a pipe.

    rich falls back to 80 columns when not on a terminal, which squeezes the tables into
    ellipses; logs and pipes get 160 instead. A terminal, or an explicit COLUMNS, keeps its own
    width (read at each use, as rich does).
    """

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self._width is None and "COLUMNS" not in os.environ and not self.is_terminal:
            return ConsoleDimensions(max(dimensions.width, _PIPE_WIDTH), dimensions.height)
        return dimensions

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = _Console()
err_console = _Console(stderr=True)


def print_json(data: Any) -> None:
    """Write machine-readable JSON to stdout, without rich markup or wrapping."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
