"""The OpenAPI 3.1 document of ``/api/v1``, generated from the route table and the models.

Schemas are pydantic's JSON Schemas (draft 2020-12, which OpenAPI 3.1 uses as is); request
bodies get the validation form, response bodies the serialization form.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hatchway.http.api import adminmodels, models
from hatchway.http.api.errors import MAX_BODY, PREFIX

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hatchway.http.api.route import Route

_REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed JSON, or a bad parameter (name, digest, tag, n, last, unknown ones)",
    401: 'No or bad credentials (WWW-Authenticate: Basic realm="hatchway")',
    403: "Authenticated, but this credential may not do that",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict (name taken, or not applicable to this account)",
    413: f"Body over {MAX_BODY} bytes",
    415: "Body is not application/json",
    422: "Body does not fit the schema (unknown field, wrong type, bad name or scope)",
    429: "Too many failed logins (Retry-After)",
    503: "The change was made but could not be audited; retry",
}
_PATH_PARAM_RE = re.compile(r"\{([a-z_]+)\}")


def _schemas() -> dict[str, Any]:
    requests = (*models.REQUEST_MODELS, *adminmodels.REQUEST_MODELS)
    pairs: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in requests]
    pairs += [(m, "serialization") for m in (*models.RESPONSE_MODELS, *adminmodels.RESPONSE_MODELS)]
    _, top = models_json_schema(pairs, ref_template=_REF)
    return dict(top.get("$defs", {}))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in route.responses.items():
        entry: dict[str, Any] = {"description": "OK" if status < 300 else str(status)}
        if status == 201:
            entry["description"] = "Created"
        if status == 204:
            entry["description"] = "Done, no content"
        if model is not None:
            entry["content"] = _json(model)
            if status == 200:
                for media in route.alternates:
                    entry["content"][media] = {"schema": {"type": "string"}}
        elif route.path == "/openapi.json":
            entry["content"] = {"application/json": {"schema": {"type": "object"}}}
        responses[str(status)] = entry
    statuses = set(route.errors) | {405}
    if route.authenticated:
        statuses |= {401, 429}
        if route.method not in ("GET", "HEAD"):
            statuses |= {403}  # also: the session cookie without its X-CSRF-Token
    if route.body is not None:
        statuses |= {400, 413, 415, 422}
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _ERROR_TEXT[status],
            "content": _json(models.ErrorBody),
        }
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "responses": responses,
    }
    if not route.authenticated:
        operation["security"] = []
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": _json(route.body)}
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM_RE.findall(route.path)
    ]
    parameters += [
        {"name": p.name, "in": "query", "required": False, "schema": p.schema}
        | ({"description": p.description} if p.description else {})
        for p in route.query
    ]
    if route.query_model is not None:
        schema = route.query_model.model_json_schema(ref_template=_REF)
        for name, prop in schema.get("properties", {}).items():
            entry = {"name": name, "in": "query", "required": False, "schema": prop}
            if "description" in prop:
                entry["description"] = prop["description"]
            parameters.append(entry)
    if parameters:
        operation["parameters"] = parameters
    if route.description:
        operation["description"] = route.description
    return operation


@functools.cache
def _build(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hatchway management API",
            "version": "1",
            "description": 'Every error is {"errors": [{"code", "message", "detail"?}]}.',
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "an hw_ token"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "hatchway_session",
                    "description": "The web UI's session (__Host-hatchway_session over TLS); "
                    "a method other than GET needs the session's CSRF token in X-CSRF-Token.",
                },
            },
        },
        "security": [{"basic": []}, {"bearer": []}, {"session": []}],
    }


def document(routes: Sequence[Route]) -> dict[str, Any]:
    return _build(tuple(routes))
