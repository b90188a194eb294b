"""WordNet IDs and the standard class order (index = position in the sorted list of 1000 WNIDs)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from inceval.errors import InceValError

NUM_CLASSES = 1000

_WNID = re.compile(r"n\d{8}")


def is_wnid(text: str) -> bool:
    """Whether ``text`` has the shape of a WordNet noun ID: ``n`` followed by 8 digits."""
    return _WNID.fullmatch(text) is not None


def class_order(wnids: Iterable[str], source: str, fix: str) -> tuple[str, ...]:
    """The 1000 class WNIDs of a label source in standard (sorted) order.

    Args:
        wnids: the WNIDs the source defines (any order; repeats count once).
        source: the file or folder that defines them, as the error message should name it.
        fix: what the user should do when the count is wrong.

    Returns:
        The sorted WNIDs; the class index of a WNID is its position here.

    Raises:
        InceValError: if the source does not define exactly 1000 distinct WNIDs, since any other
            count shifts the index of every later class.
    """
    distinct = sorted(set(wnids))
    if len(distinct) != NUM_CLASSES:
        raise InceValError(
            f"{source} defines {len(distinct)} classes, not {NUM_CLASSES} (a class index is the "
            f"position among all {NUM_CLASSES} sorted WNIDs); {fix}"
        )
    return tuple(distinct)
