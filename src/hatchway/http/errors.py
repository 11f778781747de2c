"""Render every error as the distribution-spec JSON body; bad input never becomes a 500."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import OperationalError

from hatchway.errors import UNAVAILABLE, UNKNOWN, UNSUPPORTED, ErrorCode, HatchwayError
from hatchway.storage.driver import InvalidPathError

log = logging.getLogger("hatchway.http")

NOT_FOUND = ErrorCode("UNSUPPORTED", "unknown endpoint", 404)


def error_response(err: HatchwayError, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"errors": [err.as_dict()]})
    return web.Response(
        status=err.status,
        body=body.encode(),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HatchwayError as err:
        return error_response(err, getattr(err, "headers", None))
    except InvalidPathError:
        return error_response(HatchwayError(UNSUPPORTED, "invalid path"))
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(HatchwayError(NOT_FOUND, detail={"path": request.path[:200]}))
        if exc.status == 405:
            return error_response(HatchwayError(UNSUPPORTED, "method not allowed"))
        if exc.status < 400:
            raise
        code = ErrorCode("UNKNOWN", exc.reason, exc.status)
        return error_response(HatchwayError(code))
    except OperationalError as exc:
        # The database is unreachable (/readyz says so too): retry later, not a 500.
        log.warning(
            "database unavailable in %s %s: %s",
            request.method,
            request.path[:200],
            type(exc.orig).__name__,
        )
        return error_response(
            HatchwayError(UNAVAILABLE, "database unavailable"), {"Retry-After": "5"}
        )
    except (ConnectionResetError, OSError) as exc:
        # The client went away or the disk failed; log without request secrets.
        log.warning("request %s %s failed: %s", request.method, request.path[:200], exc)
        return error_response(HatchwayError(UNKNOWN, "I/O error"))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path[:200])
        return error_response(HatchwayError(UNKNOWN))
