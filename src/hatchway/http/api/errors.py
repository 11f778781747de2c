"""The management API's one error format, and the middleware that renders every failure in it.

``{"errors": [{"code": "...", "message": "...", "detail": ...}]}`` (the shape the registry's
own errors have), for every status under ``/api/v1``: unknown paths, wrong methods, bad
bodies, refusals, and anything unexpected (logged, answered as a JSON 500).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

log = logging.getLogger("hatchway.http.api")

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}
BASIC_CHALLENGE = 'Basic realm="hatchway"'
M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error the API answers with: status, code, message, optional detail and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": BASIC_CHALLENGE})


def throttled(retry_after: float | None) -> ApiError:
    wait = max(1, math.ceil(retry_after or 1))
    return ApiError(
        429,
        "TOO_MANY_REQUESTS",
        "too many failed logins; try again later",
        headers={"Retry-After": str(wait)},
    )


# (exception types, status, code): how a service's refusal becomes an API error.
Refusal = tuple[type[Exception] | tuple[type[Exception], ...], int, str]


@contextmanager
def refusals(table: Sequence[Refusal], *, wait: type[Exception] | None = None) -> Iterator[None]:
    """Turn the refusals a service raises into API errors, first matching row wins.

    ``wait`` names the throttling exception (its ``wait`` attribute becomes Retry-After)."""
    try:
        yield
    except Exception as exc:
        if wait is not None and isinstance(exc, wait):
            raise throttled(getattr(exc, "wait", None)) from None
        for kinds, status, code in table:
            if isinstance(exc, kinds):
                raise ApiError(status, code, str(exc)) from None
        raise


def render(err: ApiError) -> web.Response:
    item: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.detail is not None:
        item["detail"] = err.detail
    return web.Response(
        status=err.status,
        body=json.dumps({"errors": [item]}).encode(),
        content_type="application/json",
        headers={**NO_STORE, **err.headers},
    )


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=model.model_dump_json().encode(),
        content_type="application/json",
        headers=NO_STORE,
    )


def _is_api(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/v1 only: every failure in the API's format (the registry keeps OCI's)."""
    if not _is_api(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as err:
        return render(err)
    except web.HTTPException as exc:
        if exc.status == 404:
            return render(ApiError(404, "NOT_FOUND", "no such endpoint"))
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            return render(
                ApiError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"method {request.method[:20]} not allowed here",
                    headers={"Allow": allowed} if allowed else None,
                )
            )
        if exc.status < 400:
            raise
        return render(ApiError(exc.status, "BAD_REQUEST", exc.reason))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path[:200])
        return render(ApiError(500, "INTERNAL", "internal error"))


async def read_model(request: web.Request, model: type[M]) -> M:
    """The JSON body as ``model``: 415, 413, 400 (malformed JSON) or 422 (wrong fields)."""
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/json")
    if (request.content_length or 0) > MAX_BODY:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"the body is over {MAX_BODY} bytes")
    data = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(data)):
        data += chunk
        if len(data) > MAX_BODY:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"the body is over {MAX_BODY} bytes")
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        raise ApiError(400, "INVALID_JSON", "the body is not valid JSON") from None
    try:
        return model.model_validate(parsed, strict=True)
    except ValidationError as exc:
        # loc and msg only: the input may be a password and must not be echoed.
        detail = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)[:20]
        ]
        raise ApiError(422, "INVALID_REQUEST", "the body does not fit the schema", detail) from None
