"""The registry API tests run on each storage driver: the filesystem, and S3 (a real
SeaweedFS on loopback, a bucket of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import seaweedfs
from tests.support.server import OPEN_CONFIG, Server, start_server


def s3_config(base: str = OPEN_CONFIG) -> str:
    """``base`` (whose storage section comes last) with ``storage.s3`` on a new bucket."""
    weed = seaweedfs.server()
    return base + weed.config_yaml(weed.new_bucket())


@pytest.fixture(scope="session", params=["filesystem", "s3"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One shared registry (2 workers) per driver for tests that use their own repositories."""
    config = s3_config() if request.param == "s3" else None
    srv = start_server(tmp_path_factory.mktemp(f"shared-{request.param}"), workers=2, config=config)
    yield srv
    srv.stop()
