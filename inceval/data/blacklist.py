"""The ILSVRC2014 validation blacklist: image numbers excluded from the paper's Table 1."""

from __future__ import annotations

from pathlib import Path

from inceval.errors import InceValError


def read_blacklist(path: str | Path) -> frozenset[int]:
    """Read a devkit blacklist file: one 1-based validation image number per line.

    Blank lines are allowed; anything else that is not a positive integer is refused with its line
    number, so a wrong file (say, a ground-truth or class list) cannot pass for a blacklist.

    Args:
        path: e.g. ``ILSVRC2014_devkit/data/ILSVRC2014_clsloc_validation_blacklist.txt``.

    Returns:
        The blacklisted image numbers (image N is ``ILSVRC2012_val_%08d.JPEG`` % N).

    Raises:
        InceValError: if the file is missing, unreadable, has a bad line or no numbers at all.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InceValError(f"--blacklist {path} does not exist; pass the devkit's "
                           "ILSVRC2014_clsloc_validation_blacklist.txt") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InceValError(f"--blacklist {path} cannot be read as text ({exc}); pass the devkit's "
                           "ILSVRC2014_clsloc_validation_blacklist.txt") from None
    numbers: set[int] = set()
    for line_number, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token:
            continue
        if not (token.isascii() and token.isdigit()) or int(token) < 1:
            shown = token if len(token) <= 40 else token[:40] + "..."
            raise InceValError(f"--blacklist {path} line {line_number} is {shown!r}, not a 1-based "
                               "image number; the file must hold one number per line")
        numbers.add(int(token))
    if not numbers:
        raise InceValError(f"--blacklist {path} holds no image numbers; pass the devkit's "
                           "ILSVRC2014_clsloc_validation_blacklist.txt")
    return frozenset(numbers)
