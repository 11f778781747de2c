"""One row of the route table: what the router and the OpenAPI document both read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, eq=False)  # hashed by identity: the OpenAPI cache keys on it
class Route:
    method: str
    path: str  # under PREFIX
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    authenticated: bool = True
    errors: tuple[int, ...] = ()
    # Query parameters: the model's fields (validated by it, documented from it).
    query: type[BaseModel] | None = None
    # Other media types of the 200 answer (an export as text), documented as strings.
    alternates: tuple[str, ...] = ()
