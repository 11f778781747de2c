"""Latency of the web UI's pages over a big registry (issue 8's target: a UI page in under
100 ms): the same registry as ``api_bench.py`` (10,000 repositories and one of 5,000 tags,
written to storage and indexed with ``hatchway index rebuild``), then each page measured
with ``wrk --latency`` as a browser signed in to the UI (the session cookie), beside the
``/api/v1`` answer with the same content for scale (same run, same machine: the ratio is
what the HTML costs). The client runs on the same machine and competes for its cores.

    .venv/bin/python bench/ui_bench.py                    # about 2 minutes
    .venv/bin/python bench/ui_bench.py --repos 2000 --tags 1000 --duration 3 --conc 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from api_bench import ADMIN_PASSWORD, HATCHWAY, cli, fill, free_port, wait_ready

_LATENCY_RE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RATE_RE = re.compile(r"Requests/sec:\s+([\d.]+)")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def sign_in(url: str, user: str, password: str) -> str:
    """The ``Cookie`` header of a browser signed in to the UI as ``user``."""
    with httpx.Client(base_url=url) as client:
        page = client.get("/ui/sign-in")
        found = _CSRF_RE.search(page.text)
        assert found is not None, page.text[:200]
        done = client.post(
            "/ui/sign-in",
            data={"username": user, "password": password, "csrf": found.group(1)},
        )
        if done.status_code != 303:
            raise SystemExit(f"sign-in failed: {done.status_code}")
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items() if k == "hatchway_session")


def run_wrk(url: str, header: str, conc: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, conc)}",
            f"-c{conc}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-H",
            header,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors for {url}:\n{out}")
    found = {f"p{p}": float(v) * _UNITS[u] for p, v, u in _LATENCY_RE.findall(out)}
    rate = _RATE_RE.search(out)
    found["rps"] = float(rate.group(1)) if rate else 0.0
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=5_000, help="tags in big/app")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--conc", default="1,8", help="wrk connections, comma-separated")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="hw-ui-bench-"))
    data = tmp / "data"
    config = tmp / "hatchway.yml"
    config.write_text(
        json.dumps(
            {
                "version": "0.1",
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "auth": {"token": {}},
                "storage": {"delete": {"enabled": True}},
                "access": [
                    {"repository": "${account}/*", "action": "*"},
                    {"name": "dev", "repository": "team1*/*", "action": "pull"},
                ],
            }
        )
    )
    common = ["--config", str(config), "--data", str(data)]
    server: subprocess.Popen[bytes] | None = None
    rows = []
    try:
        repos, tags = fill(data, args.repos, args.tags)
        cli("index", "rebuild", *common)
        print(f"{repos} repositories, {tags} tags, indexed")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                HATCHWAY,
                "serve",
                "--addr",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                *common,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
            start_new_session=True,
        )
        wait_ready(url, server)
        cli("user", "add", "dev", "--password-stdin", *common, stdin="dev-Pw-12345\n")
        cookies = {
            "admin": "Cookie: " + sign_in(url, "admin", ADMIN_PASSWORD),
            "dev": "Cookie: " + sign_in(url, "dev", "dev-Pw-12345"),
        }
        ui, api = f"{url}/ui", f"{url}/api/v1"
        big = "repositories/big/app"
        cases = [
            (
                "repositories (50 per page)",
                "admin",
                f"{ui}/repositories",
                f"{api}/repositories?n=50",
            ),
            (
                "repositories ?q=app12",
                "admin",
                f"{ui}/repositories?q=app12",
                f"{api}/repositories?q=app12&n=50",
            ),
            ("repositories, filtered by rules", "dev", f"{ui}/repositories", None),
            ("tag table of big/app (100 rows)", "admin", f"{ui}/{big}", f"{api}/{big}/tags?n=100"),
            (
                "tag table by size, desc",
                "admin",
                f"{ui}/{big}?sort=size&order=desc",
                f"{api}/{big}/tags?n=100&sort=size&order=desc",
            ),
            (
                "manifest view",
                "admin",
                f"{ui}/{big}/-/manifests/v0.1",
                f"{api}/{big}/manifests/v0.1",
            ),
            ("my account", "admin", f"{ui}/account", f"{api}/me/tokens"),
        ]
        for conc in [int(c) for c in args.conc.split(",")]:
            for label, user, page, twin in cases:
                found = run_wrk(page, cookies[user], conc, args.duration)
                row: dict[str, object] = {"case": label, "as": user, "c": conc, **found}
                line = (
                    f"{label:34} {user:5} c={conc:<2} p50 {found.get('p50', 0):7.2f} ms  "
                    f"p99 {found.get('p99', 0):7.2f} ms  {found['rps']:7.0f} req/s"
                )
                if twin is not None:
                    same = run_wrk(twin, cookies[user], conc, args.duration)
                    row["api"] = same
                    ratio = found.get("p99", 0) / max(same.get("p99", 0), 0.001)
                    line += f"   API p99 {same.get('p99', 0):6.2f} ms  (x{ratio:.2f})"
                rows.append(row)
                print(line, flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    began = time.monotonic()
    code = main()
    print(f"({time.monotonic() - began:.0f} s)")
    sys.exit(code)
