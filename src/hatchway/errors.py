"""Errors every layer may raise, with the OCI error codes as data.

The HTTP layer renders any :class:`HatchwayError` as the distribution-spec error body
``{"errors": [{"code", "message", "detail"}]}`` with the status given here; nothing below
the HTTP layer knows about requests or responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorCode:
    code: str
    message: str
    status: int


# One table, in the order of the distribution-spec's error-code list, then the extras
# distribution itself uses. The status is part of the code's definition, as in
# distribution's errcode/register.go.
BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", "blob unknown to registry", 404)
BLOB_UPLOAD_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", "blob upload invalid", 400)
BLOB_UPLOAD_UNKNOWN = ErrorCode("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404)
DIGEST_INVALID = ErrorCode("DIGEST_INVALID", "provided digest did not match uploaded content", 400)
MANIFEST_BLOB_UNKNOWN = ErrorCode(
    "MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", 400
)
MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", "manifest invalid", 400)
MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", "manifest unknown to registry", 404)
NAME_INVALID = ErrorCode("NAME_INVALID", "invalid repository name", 400)
NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", "repository name not known to registry", 404)
SIZE_INVALID = ErrorCode("SIZE_INVALID", "provided length did not match content length", 400)
UNAUTHORIZED = ErrorCode("UNAUTHORIZED", "authentication required", 401)
DENIED = ErrorCode("DENIED", "requested access to the resource is denied", 403)
UNSUPPORTED = ErrorCode("UNSUPPORTED", "the operation is unsupported", 405)
TOOMANYREQUESTS = ErrorCode("TOOMANYREQUESTS", "too many requests", 429)
RANGE_INVALID = ErrorCode("BLOB_UPLOAD_INVALID", "requested range not satisfiable", 416)
PAGINATION_NUMBER_INVALID = ErrorCode(
    "PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400
)
TAG_INVALID = ErrorCode("TAG_INVALID", "manifest tag did not match URI", 400)
PAYLOAD_TOO_LARGE = ErrorCode("MANIFEST_INVALID", "payload too large", 413)
UNKNOWN = ErrorCode("UNKNOWN", "unknown error", 500)
UNAVAILABLE = ErrorCode("UNAVAILABLE", "service unavailable", 503)


class HatchwayError(Exception):
    """An error with a protocol-level meaning: an OCI code, a message and detail."""

    def __init__(self, code: ErrorCode, message: str | None = None, detail: Any = None) -> None:
        self.code = code
        self.message = message or code.message
        self.detail = detail
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return self.code.status

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class ConfigError(Exception):
    """The configuration is invalid; the message names the offending key."""
