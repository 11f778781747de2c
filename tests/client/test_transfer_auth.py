"""push/pull against hatchway's token service: credentials from ``-u --password-stdin`` or
from what ``hatchway login`` stored; streamed uploads carry their token from the start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.authkit import ADMIN, ADMIN_PASSWORD, start_token_server
from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.server import HATCHWAY

pytestmark = pytest.mark.e2e


def run(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HATCHWAY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_push_and_pull_with_a_token_registry(tmp_path: Path) -> None:
    server = start_token_server(tmp_path)
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    image = make_image("auth-push", layer_sizes=(3 * 1024 * 1024, 100))
    src = tmp_path / "src"
    write_oci_layout(src, image)
    ref = f"{server.addr}/team/app:1"
    try:
        pushed = run(
            "push",
            str(src),
            ref,
            "-u",
            ADMIN,
            "--password-stdin",
            "--chunk-size",
            "1M",
            env=env,
            stdin=ADMIN_PASSWORD + "\n",
        )
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.strip() == image.manifest.digest

        anonymous = run("pull", ref, str(tmp_path / "anon"), env=env)
        assert anonymous.returncode == 1
        assert "Traceback" not in anonymous.stderr
        assert "unauthorized" in anonymous.stderr.lower() or "denied" in anonymous.stderr.lower()

        login = run(
            "login",
            server.addr,
            "-u",
            ADMIN,
            "--password-stdin",
            env=env,
            stdin=ADMIN_PASSWORD + "\n",
        )
        assert login.returncode == 0, login.stderr
        out = tmp_path / "out"
        pulled = run("pull", ref, str(out), env=env)  # stored credentials
        assert pulled.returncode == 0, pulled.stderr
        assert layout_blobs(out) == layout_blobs(src)
        tags = run("tags", f"{server.addr}/team/app", env=env)
        assert tags.stdout.split() == ["1"]
    finally:
        server.stop()
