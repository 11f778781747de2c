"""Two ``hatchway serve`` replicas sharing one SeaweedFS bucket and one PostgreSQL schema,
each with its own port and local directory (one worker each), behind Debian's nginx
balancing round robin with no session affinity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.metadata.postgres import fresh_schema
from tests.support import seaweedfs
from tests.support.authkit import ADMIN_PASSWORD
from tests.support.nginx import Nginx, start_nginx
from tests.support.server import Server, start_server


def replica_config(
    bucket: str, dsn: str, *, token: bool = False, extra: dict[str, Any] | None = None
) -> str:
    """One replica's config file (JSON is YAML): the same for every replica."""
    doc: dict[str, Any] = {
        "version": "0.1",
        "storage": {"s3": seaweedfs.server().options(bucket), "delete": {"enabled": True}},
        "database": {"dsn": dsn},
    }
    if token:
        doc["auth"] = {"token": {}}
    doc.update(extra or {})
    return json.dumps(doc)


@dataclass
class Cluster:
    tmp: Path
    bucket: str
    dsn: str
    config: str
    replicas: list[Server] = field(default_factory=list)
    proxy: Nginx | None = None

    @property
    def lb(self) -> str:
        assert self.proxy is not None
        return self.proxy.url

    @property
    def lb_addr(self) -> str:
        return self.lb.split("://", 1)[1]

    def config_file(self) -> Path:
        path = self.tmp / "replica.yml"
        path.write_text(self.config)
        return path

    def start_replica(self, name: str) -> Server:
        (self.tmp / name).mkdir()
        server = start_server(
            self.tmp / name,
            config=self.config,
            env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
        self.replicas.append(server)
        return server

    def restart_replica(self, old: Server) -> Server:
        """Start a replica again on ``old``'s local directory (after it was killed)."""
        server = start_server(
            old.data.parent,
            config=self.config,
            env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
            data=old.data,
        )
        self.replicas.append(server)
        return server


@contextmanager
def cluster(
    tmp: Path, *, replicas: int = 2, token: bool = False, extra: dict[str, Any] | None = None
) -> Iterator[Cluster]:
    """``extra``: more top-level config sections (e.g. ``redis``)."""
    weed = seaweedfs.server()
    bucket = weed.new_bucket()
    with fresh_schema() as dsn:
        c = Cluster(tmp, bucket, dsn, replica_config(bucket, dsn, token=token, extra=extra))
        try:
            for i in range(replicas):
                c.start_replica(f"r{i}")
            c.proxy = start_nginx(tmp / "nginx", [s.addr for s in c.replicas])
            yield c
        finally:
            if c.proxy is not None:
                c.proxy.stop()
            for server in c.replicas:
                server.stop()
