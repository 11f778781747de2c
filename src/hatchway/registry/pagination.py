"""``n``/``last`` pagination shared by the tags list and the catalog."""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # set when more entries follow


def paginate(sorted_items: list[str], n: int | None, last: str | None) -> Page:
    start = bisect.bisect_right(sorted_items, last) if last else 0
    if n is None:
        return Page(sorted_items[start:], None)
    items = sorted_items[start : start + n]
    more = n > 0 and start + n < len(sorted_items)
    return Page(items, items[-1] if more else None)
