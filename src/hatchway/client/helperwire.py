"""The credential-helper wire format, byte for byte as docker/docker-credential-helpers has it.

The reference helpers are Go programs: they read stdin with a ``bufio.Scanner`` (lines joined
without their newlines), decode with ``encoding/json`` (field names matched case-insensitively,
unknown fields ignored, only the first value read) and answer with ``json.Encoder`` (compact,
``<``, ``>`` and ``&`` escaped as ``\\u003c``…, one trailing newline). This module copies those
rules so that a client cannot tell this helper from theirs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize
CREDENTIAL_FIELDS = ("ServerURL", "Username", "Secret")

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")
_WHITESPACE = " \t\r\n"


class WireError(Exception):
    """Input the reference helper would refuse; the message is the one it prints."""


@dataclass(frozen=True)
class Credentials:
    server_url: str
    username: str
    secret: str


def scan_lines(data: bytes) -> str:
    """What the reference gets from its scanner loop: the lines of ``data`` concatenated,
    each without its ``\\n`` and a ``\\r`` before it; invalid UTF-8 becomes U+FFFD."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    joined = bytearray()
    for line in lines:
        if len(line) >= MAX_LINE:
            raise WireError("bufio.Scanner: token too long")
        joined += line.removesuffix(b"\r")
    return joined.decode("utf-8", errors="replace")


def server_url(data: bytes) -> str:
    """The server URL of a ``get``/``erase`` request (surrounding whitespace removed)."""
    return scan_lines(data).strip()


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _go_string(value: str) -> str:
    """Lone surrogates (from ``\\ud800`` escapes) become U+FFFD, as Go's decoder does."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def _syntax_error(text: str, pos: int) -> WireError:
    if pos >= len(text):
        return WireError("unexpected EOF")
    char = text[pos]
    shown = "'\\''" if char == "'" else f"'{char}'"
    if pos == len(text) - len(text.lstrip(_WHITESPACE)):
        return WireError(f"invalid character {shown} looking for beginning of value")
    return WireError(f"invalid character {shown} in JSON input")


def parse_credentials(data: bytes) -> Credentials:
    """Decode a ``store`` request as ``json.NewDecoder(buffer).Decode(&creds)`` does."""
    text = scan_lines(data)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if start == len(text):
        raise WireError("EOF")
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    try:
        value, _ = decoder.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Unterminated string"):
            raise WireError("unexpected EOF") from None
        raise _syntax_error(text, exc.pos) from None
    except ValueError:
        raise _syntax_error(text, start) from None
    if value is None:
        return Credentials("", "", "")
    if not isinstance(value, dict):
        kind = _type_name(value)
        raise WireError(
            f"json: cannot unmarshal {kind} into Go value of type credentials.Credentials"
        )
    fields = {"ServerURL": "", "Username": "", "Secret": ""}
    for key, item in value.items():
        name = _field_for(key)
        if name is None or item is None:
            continue
        if not isinstance(item, str):
            raise WireError(
                f"json: cannot unmarshal {_type_name(item)} into Go struct field "
                f"Credentials.{name} of type string"
            )
        fields[name] = _go_string(item)
    return Credentials(fields["ServerURL"], fields["Username"], fields["Secret"])


def _field_for(key: str) -> str | None:
    if key in CREDENTIAL_FIELDS:
        return key
    folded = key.casefold()
    return next((f for f in CREDENTIAL_FIELDS if f.casefold() == folded), None)


def go_json(value: dict[str, str]) -> bytes:
    """``json.NewEncoder(w).Encode(value)``: compact, HTML-escaped, newline-terminated.

    Keys keep their order (Go writes struct fields in declaration order); sort a map first.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text)
    return text.encode("utf-8", errors="replace") + b"\n"


def encode_credentials(creds: Credentials) -> bytes:
    """The answer to ``get``."""
    return go_json(
        {"ServerURL": creds.server_url, "Username": creds.username, "Secret": creds.secret}
    )


def encode_list(entries: dict[str, str]) -> bytes:
    """The answer to ``list``: a JSON object server URL → username, keys sorted (Go maps)."""
    return go_json({key: entries[key] for key in sorted(entries, key=_go_order)})


def _go_order(key: str) -> bytes:
    return key.encode("utf-8", errors="replace")
