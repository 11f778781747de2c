"""Hypothesis settings and strategies shared by the fuzz tests (``tests/fuzz``).

Runs are deterministic (``derandomize``, no example database), so CI sees the same
inputs every time and a failure reproduces by rerunning the test; a new endpoint gets
the same treatment by adding its requests to ``tests/fuzz/test_live.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Pure parsers: many cheap examples.
PARSER = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
# A live server: each example is an HTTP request (a few ms), so fewer of them.
LIVE = settings(PARSER, max_examples=120)

# Strings that tend to break grammars: separators, unicode digits, NUL, surrogate-free
# non-ASCII, and long runs (for backtracking).
NASTY = st.sampled_from(
    [
        "",
        ":",
        "/",
        "//",
        "..",
        ",",
        "*",
        "-",
        "__",
        "\x00",
        "é",
        "٣",
        "\u202e",
        "a" * 70 + "!",
        "a-" * 40 + "!",
        "%00",
        "%ff",
        " ",
        "\t",
    ]
)
TEXT = st.one_of(st.text(max_size=40), NASTY, st.lists(NASTY, max_size=6).map("".join))
ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def depth_of(value: Any) -> int:
    """How deep arrays and objects nest in a JSON value (a scalar is 0)."""
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    return 0


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


T = TypeVar("T")


def attempt(
    call: Callable[..., T], *args: Any, errors: type[Exception]
) -> tuple[T | None, Exception | None]:
    """``call(*args)``'s result, or the ``errors`` it raised (anything else propagates)."""
    try:
        return call(*args), None
    except errors as exc:
        return None, exc


ALNUM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
# A repository path component by the spec's grammar, built rather than drawn from the
# regular expression (much faster): alphanumeric runs joined by separators.
COMPONENT = st.builds(
    lambda first, rest: first + "".join(sep + run for sep, run in rest),
    ALNUM,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "--"]), ALNUM), max_size=3),
)
HEX64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
