"""Mirror metrics on /metrics: hits, misses, upstream errors, and Docker Hub's
``ratelimit-remaining`` (added here by a real nginx in front of the upstream)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.observability.scrape import Scrape, settled
from tests.support.images import make_image
from tests.support.nginx import start_nginx
from tests.support.oci import push_image
from tests.support.server import start_server


def test_hits_misses_errors_and_ratelimit(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    (tmp_path / "mirror").mkdir()
    upstream = start_server(tmp_path / "up")
    nginx = start_nginx(
        tmp_path / "nginx",
        upstream.addr,
        extra='add_header ratelimit-remaining "42;w=21600" always;',
    )
    config = {
        "version": "0.1",
        "http": {"debug": {"prometheus": {"enabled": True}}},
        "proxy": {
            "upstreams": [{"prefix": "hub", "remoteurl": nginx.url, "freshness": 0, "timeout": 2}]
        },
    }
    mirror = start_server(tmp_path / "mirror", config=json.dumps(config))
    try:
        image = make_image("metrics")
        push_image(upstream.client, "lib/m", image, "1")
        assert mirror.client.get("/v2/hub/lib/m/manifests/1").status_code == 200
        layer = f"/v2/hub/lib/m/blobs/{image.layers[0].digest}"
        assert mirror.client.get(layer).status_code == 200
        assert mirror.client.get(layer).status_code == 200
        nginx.stop()
        assert mirror.client.get("/v2/hub/lib/m/manifests/1").status_code == 200

        def check(found: Scrape) -> None:
            name = "hatchway_mirror_requests_total"
            assert found.value(name, upstream="hub", result="miss") >= 2
            assert found.value(name, upstream="hub", result="hit") >= 1
            assert found.value(name, upstream="hub", result="stale") >= 1
            assert found.value("hatchway_mirror_upstream_errors_total", upstream="hub") >= 1
            gauge = "hatchway_mirror_upstream_ratelimit_remaining"
            assert found.value(gauge, upstream="hub") == 42

        settled(mirror.url + "/metrics", check)
    finally:
        mirror.stop()
        nginx.stop()
        upstream.stop()
