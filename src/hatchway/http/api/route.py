"""One row of the management API's route table (``routes.ROUTES``): the router and the
OpenAPI document are both made from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hatchway.auth.selfservice import SelfService

SELF_SERVICE = web.AppKey("self_service", SelfService)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Param:
    """A documented query parameter."""

    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True, eq=False)  # hashed by identity: the OpenAPI cache keys on it
class Route:
    method: str
    path: str  # under PREFIX, as documented: "{name}" for each path parameter
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    authenticated: bool = True
    errors: tuple[int, ...] = ()
    query: tuple[Param, ...] = ()
    # Query parameters as a model's fields (validated by it, documented from it); an
    # alternative to ``query`` for routes that read the query with ``read_query``.
    query_model: type[BaseModel] | None = None
    # Other media types of the 200 answer (an export as text), documented as strings.
    alternates: tuple[str, ...] = ()
    # The router's pattern when it differs from ``path`` (a parameter holding slashes:
    # "{name:.+}"); the document always shows ``path``.
    pattern: str | None = None
    description: str | None = None
