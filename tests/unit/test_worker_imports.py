"""A ``hatchway serve`` worker loads only what its configuration uses.

Every worker is a process of its own (forked), so a library imported at start for a
feature that is not configured costs its memory once per worker: S3 (aiobotocore,
botocore), metrics (prometheus-client), Redis, LDAP, the mirror's HTTP client (httpx),
the UI's templates. Structural, not timed (``bench/bench.py``'s "rss after setup" row
measures the memory): ``hatchway serve`` runs in a fresh interpreter through its real
command, up to where it would fork; there the worker's app is built by the same factory
a worker uses and started (``AppRunner.setup()``), and the modules loaded are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

OPTIONAL = ("aiobotocore", "botocore", "prometheus_client", "redis", "ldap", "httpx", "jinja2")

_RUN = """
import asyncio, json, sys
from aiohttp import web
from hatchway.cli.commands import serve as serve_command
out, argv = sys.argv[1], sys.argv[2:]

def run_server(config, factory, workers):
    # Instead of binding and forking: what each worker does first.
    async def start():
        runner = web.AppRunner(factory(config, 0))
        await runner.setup()
        with open(out, "w") as f:
            json.dump(sorted(sys.modules), f)
        await runner.cleanup()
    asyncio.run(start())

serve_command.run_server = run_server
sys.argv = ["hatchway", "serve", *argv]
from hatchway.cli.main import main
try:
    main()
except SystemExit as exc:
    if exc.code:
        raise
"""


def worker_modules(tmp_path: Path, config: dict[str, object] | None = None) -> set[str]:
    out = tmp_path / "modules.json"
    argv = ["--data", str(tmp_path / "data"), "--addr", "127.0.0.1:9", "--workers", "2"]
    if config is not None:
        path = tmp_path / "config.yml"
        path.write_text(yaml.safe_dump(config))
        argv += ["--config", str(path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHWAY")}
    env["HATCHWAY_ADMIN_PASSWORD"] = "not-a-real-secret-1"
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(out), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: list[str] = json.loads(out.read_text())
    assert "hatchway.http.app" in loaded  # the app was built
    return {name.split(".", 1)[0] for name in loaded}


def optional_loaded(loaded: set[str]) -> list[str]:
    return [name for name in OPTIONAL if name in loaded]


def test_a_default_worker_loads_no_optional_subsystem(tmp_path: Path) -> None:
    # No config file: built-in token auth, the UI, the management API.
    assert optional_loaded(worker_modules(tmp_path)) == []


def test_an_open_worker_loads_no_optional_subsystem(tmp_path: Path) -> None:
    config = {"version": 0.1, "storage": {"delete": {"enabled": True}}}
    assert optional_loaded(worker_modules(tmp_path, config)) == []


@pytest.mark.parametrize(
    ("section", "module"),
    [
        ({"http": {"debug": {"prometheus": {"enabled": True}}}}, "prometheus_client"),
        ({"redis": {"addr": "127.0.0.1:9"}}, "redis"),
        ({"proxy": {"remoteurl": "http://127.0.0.1:9"}}, "httpx"),
    ],
    ids=["metrics", "redis", "mirror"],
)
def test_a_configured_subsystem_is_loaded(
    tmp_path: Path, section: dict[str, object], module: str
) -> None:
    """The check above can see a loaded subsystem: configured, each one is there."""
    config: dict[str, object] = {"version": 0.1, **section}
    assert module in worker_modules(tmp_path, config)
