from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server, start_server


@pytest.fixture(autouse=True)
def _private_client_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test's client commands remember uploads and mount sources in a cache of their
    own (``$XDG_CACHE_HOME/hatchway``), never the user's, and never another test's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared registry (2 workers) for tests that use their own repositories."""
    srv = start_server(tmp_path_factory.mktemp("shared"), workers=2)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> httpx.Client:
    return server.client


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name unique to the test."""
    name = request.node.name.lower()
    cleaned = "".join(c if c.isalnum() else "-" for c in name).strip("-")
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return f"t/{cleaned[:100]}"


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
