"""JSON from clients, with its nesting bounded before the parser sees it.

``json.loads`` recurses once per nested array or object, so a document a few thousand
levels deep raises ``RecursionError`` (or, on some builds, exhausts the C stack) instead
of a clean syntax error. :func:`loads` measures the depth first with a bounded scan:
strings are cut out by one regular expression, every byte but a bracket is dropped, and
the brackets left are counted only when there are more openers than the limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string: no raw quote or backslash inside, except an escaped character. In valid
# UTF-8 neither byte nor a bracket occurs inside a multi-byte sequence, so bytes suffice.
_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


class TooDeepError(ValueError):
    """The document nests arrays and objects deeper than allowed."""


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays/objects in the JSON text ``body`` nest deeper than ``limit``.

    Exact for valid JSON; for invalid JSON it may answer either way, and the parser
    that runs next refuses the document anyway (an unclosed ``[[[…`` counts as deep).
    """
    brackets = _STRING_RE.sub(b"", body).translate(None, _NOT_A_BRACKET)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False  # the common case: too few openers to nest that deep
    depth = 0
    for byte in brackets:
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads(body: bytes, max_depth: int) -> Any:
    """Parse UTF-8 JSON nested at most ``max_depth`` deep.

    Raises ``ValueError``: :class:`TooDeepError`, ``UnicodeDecodeError`` (not UTF-8; the
    JSON RFC requires it between systems, and Go's decoder, distribution's, assumes it)
    or ``json.JSONDecodeError``.
    """
    text = body.decode("utf-8")
    if nesting_exceeds(body, max_depth):
        raise TooDeepError(f"nested deeper than {max_depth} levels")
    return json.loads(text)
