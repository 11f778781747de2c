"""What the admin endpoint tests share: the admin's credentials, calls, fresh names."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.mgmt.conftest import API
from tests.support.authkit import ADMIN, ADMIN_PASSWORD
from tests.support.server import Server

ROOT = (ADMIN, ADMIN_PASSWORD)
_names = itertools.count()


def fresh(prefix: str) -> str:
    """A name no other test uses (the package shares one server)."""
    return f"{prefix}{next(_names)}x{time.monotonic_ns() % 10**6}"


def call(
    server: Server,
    method: str,
    path: str,
    auth: Any = ROOT,
    **kwargs: Any,
) -> httpx.Response:
    """``auth``: (user, password), an ``hw_``/``hwr_`` secret (Bearer), or None."""
    if isinstance(auth, str):
        kwargs.setdefault("headers", {})["Authorization"] = f"Bearer {auth}"
        auth = None
    return server.client.request(method, API + path, auth=auth, **kwargs)


def eventually(probe: Callable[[], bool], seconds: float = 20.0) -> bool:
    """Poll ``probe`` until true (caches in the server expire within seconds)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.2)
    return probe()
