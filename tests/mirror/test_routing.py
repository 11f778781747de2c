"""Which upstream, and which name upstream, a local repository name means."""

from __future__ import annotations

import asyncio

from hatchway.config.proxy import Proxy
from hatchway.registry.mirror import Mirror
from hatchway.registry.service import Registry
from hatchway.storage import drivers


def _mirror(proxy: dict[str, object]) -> Mirror:
    registry = Registry(drivers.create("inmemory", {}))
    return Mirror(Proxy.model_validate(proxy).all(), registry)


def test_prefixes_docker_hub_library_and_ns() -> None:
    mirror = _mirror(
        {
            "upstreams": [
                {"prefix": "dockerhub", "remoteurl": "https://registry-1.docker.io"},
                {"prefix": "ghcr", "remoteurl": "https://ghcr.io"},
                {"prefix": "lan", "remoteurl": "http://127.0.0.1:5001"},
            ]
        }
    )
    try:
        route = mirror.route("dockerhub/alpine")
        assert route is not None
        assert route.remote == "library/alpine"
        assert route.scope == "repository:library/alpine:pull"
        route = mirror.route("ghcr/org/tool")
        assert route is not None
        assert (route.upstream.prefix, route.remote) == ("ghcr", "org/tool")
        assert mirror.route("team/app") is None
        assert mirror.route("dockerhubx/app") is None
        assert mirror.local_name("library/alpine", "docker.io") == "dockerhub/library/alpine"
        assert mirror.local_name("org/tool", "ghcr.io") == "ghcr/org/tool"
        assert mirror.local_name("x/y", "127.0.0.1:5001") == "lan/x/y"
        assert mirror.local_name("x/y", "other.example") == "x/y"
        assert mirror.local_name("x/y", None) == "x/y"
    finally:
        asyncio.run(mirror.close())


def test_single_form_mirrors_every_repository() -> None:
    mirror = _mirror({"remoteurl": "https://quay.io"})
    try:
        route = mirror.route("org/tool")
        assert route is not None
        assert (route.local, route.remote) == ("org/tool", "org/tool")
        assert mirror.local_name("org/tool", "quay.io") == "org/tool"
    finally:
        asyncio.run(mirror.close())
