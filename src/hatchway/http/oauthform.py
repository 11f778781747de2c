"""The OAuth2 request body (RFC 6749 appendix B), read strictly and within bounds.

``application/x-www-form-urlencoded`` in UTF-8 and nothing else. Another charset, bytes
that are not UTF-8 (raw or percent-encoded), a body over :data:`MAX_FORM` bytes, too
many fields, a NUL character, or a parameter given twice (section 3.2: parameters "MUST
NOT be included more than once") is an ``invalid_request``, answered in OAuth2's error
JSON by the endpoint. ``scope`` is the exception: Docker clients may send it once per
resource, so repeated values are joined with spaces, as one OAuth2 scope list.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from hatchway.auth.service import TokenRequestError

MAX_FORM = 64 * 1024
MAX_FIELDS = 64
_FORM_TYPE = "application/x-www-form-urlencoded"
# ASCII is a subset of UTF-8; any other declared charset contradicts the RFC.
_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_REPEATABLE = frozenset({"scope"})


def _invalid(description: str, status: int = 400) -> TokenRequestError:
    return TokenRequestError("invalid_request", description, status)


async def _body(request: web.Request) -> bytes:
    if (request.content_length or 0) > MAX_FORM:
        raise _invalid("request body too large", 413)
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_FORM:
            raise _invalid("request body too large", 413)
    return bytes(body)


def parse_form(body: bytes, content_type: str, charset: str | None) -> dict[str, str]:
    """The form's parameters, one value each (``scope`` values joined by spaces)."""
    if content_type != _FORM_TYPE:
        raise _invalid(f"Content-Type must be {_FORM_TYPE}")
    if charset is not None and charset.strip().lower() not in _CHARSETS:
        raise _invalid("the form must be UTF-8 (unsupported charset)")
    try:
        text = body.decode(charset.strip().lower() if charset else "utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError, or more than MAX_FIELDS fields
        raise _invalid("malformed form body (not UTF-8, or too many fields)") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        check_text(name, value)
        if name not in form:
            form[name] = value
        elif name in _REPEATABLE:
            form[name] = f"{form[name]} {value}"
        else:
            raise _invalid(f"parameter {name[:50]!r} is given more than once")
    return form


def check_text(name: str, value: str) -> None:
    """A parameter is text, so never holds a NUL: no account, client or scope has one,
    and PostgreSQL cannot store it (a username with NUL was a 500 in the login query)."""
    if "\x00" in value or "\x00" in name:
        raise _invalid(f"parameter {name[:50]!r} contains a NUL character")


async def read_form(request: web.Request) -> dict[str, str]:
    """The request's form, or a ``TokenRequestError`` saying what is wrong with it."""
    return parse_form(await _body(request), request.content_type, request.charset)
