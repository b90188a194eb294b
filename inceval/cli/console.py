"""The single rich console of the CLI (stdout) and one for diagnostics (stderr)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write machine-readable JSON to stdout, without rich markup or wrapping."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
