"""Latency of the repository API over a big registry: 10,000 repositories and one
repository of 5,000 tags (issue 8's target: p99 < 50 ms for the list and the tag table).

How the registry is filled: the script writes the storage tree itself, in the layout
``hatchway serve`` uses (``docker/registry/v2``: blobs, revision links, tag links; 40
distinct images shared by all), then times ``hatchway index rebuild``, which makes the
repository index from that tree. That is minutes faster than 15,000 pushes and exercises
the rebuild path; the index rows are the same as pushes would make (but for who pushed).

Then it starts ``hatchway serve`` (token auth, ``--workers``, access log off) and measures
each endpoint with ``wrk --latency`` (keep-alive connections, ``-c`` concurrent clients, a
personal access token as ``Authorization: Bearer``), as the admin (sees everything) and as
an account the access rules give pull on 11 % of the repositories (the policy filters
every page). The client runs on the same machine and competes for its cores.

    .venv/bin/python bench/api_bench.py                  # about 2 minutes
    .venv/bin/python bench/api_bench.py --duration 5 --conc 1,8 --json /tmp/api.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HATCHWAY = str(Path(sys.executable).with_name("hatchway"))
ROOT = "docker/registry/v2"
ADMIN_PASSWORD = "bench-Admin-Pw-1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Stored:
    digest: str
    body: bytes


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_blob(data_dir: Path, data: bytes) -> str:
    digest = _digest(data)
    hexd = digest.split(":", 1)[1]
    _write(data_dir / ROOT / "blobs/sha256" / hexd[:2] / hexd / "data", data)
    return digest


def make_images(data_dir: Path, count: int) -> list[Stored]:
    """``count`` small OCI images (config with a created time, 1-3 layers) in the blob store."""
    found = []
    for i in range(count):
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        config_digest = write_blob(data_dir, config)
        layers = []
        for j in range(1 + i % 3):
            layer = hashlib.sha256(f"{i}-{j}".encode()).digest() * (64 * (i + 1) * (j + 1))
            layers.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": write_blob(data_dir, layer),
                    "size": len(layer),
                }
            )
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": layers,
            }
        ).encode()
        found.append(Stored(write_blob(data_dir, body), body))
    return found


def link(data_dir: Path, repo: str, image: Stored, tags: list[str]) -> None:
    base = data_dir / ROOT / "repositories" / repo / "_manifests"
    hexd = image.digest.split(":", 1)[1]
    _write(base / "revisions/sha256" / hexd / "link", image.digest.encode())
    for tag in tags:
        _write(base / "tags" / tag / "current/link", image.digest.encode())


def fill(data_dir: Path, repos: int, big_tags: int) -> tuple[int, int]:
    """The storage tree: ``repos`` repositories (team<k>/app<i>, two tags each) and
    ``big/app`` with ``big_tags`` tags over 40 images. Returns (repositories, tags)."""
    images = make_images(data_dir, 40)
    for i in range(repos - 1):
        link(data_dir, f"team{i % 100}/app{i}", images[i % len(images)], ["latest", "v1"])
    for k in range(big_tags):
        link(data_dir, "big/app", images[k % len(images)], [f"v{k // 100}.{k % 100}"])
    return repos, 2 * (repos - 1) + big_tags


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [HATCHWAY, *args], input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"hatchway {' '.join(args[:3])} failed: {done.stderr}")
    return done.stdout


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("hatchway serve exited")
        try:
            urllib.request.urlopen(url + "/v2/", timeout=1)
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
            continue
        return
    raise SystemExit("hatchway serve did not start")


_LATENCY_RE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RATE_RE = re.compile(r"Requests/sec:\s+([\d.]+)")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, token: str, conc: int, duration: float) -> dict[str, float]:
    threads = min(2, conc)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conc}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
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
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="hw-api-bench-"))
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
    figures: dict[str, object] = {}
    try:
        began = time.monotonic()
        repos, tags = fill(data, args.repos, args.tags)
        figures["fill_s"] = round(time.monotonic() - began, 1)
        began = time.monotonic()
        print(cli("index", "rebuild", *common).strip())
        figures["rebuild_s"] = round(time.monotonic() - began, 1)
        print(
            f"storage written in {figures['fill_s']} s ({repos} repositories, {tags} tags); "
            f"hatchway index rebuild: {figures['rebuild_s']} s"
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
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
            env=env,
            start_new_session=True,
        )
        wait_ready(url, server)  # it made the admin account: the database had none
        cli("user", "add", "dev", "--password-stdin", *common, stdin="dev-Pw-12345\n")
        tokens = {}
        for user in ("admin", "dev"):
            out = cli(
                "token",
                "create",
                "--user",
                user,
                "--name",
                "bench",
                "--scope",
                "repository:*:pull",
                *common,
            )
            tokens[user] = out.strip().splitlines()[-1]
        api = f"{url}/api/v1"
        cases = [
            ("GET /me (signing in alone, for scale)", "admin", f"{api}/me"),
            ("repositories ?q= (first page, n=100)", "admin", f"{api}/repositories?q="),
            ("repositories ?q=app12 (substring)", "admin", f"{api}/repositories?q=app12"),
            ("repositories ?q=, filtered by rules", "dev", f"{api}/repositories?q="),
            ("repositories ?q=app12, filtered", "dev", f"{api}/repositories?q=app12"),
            ("tags of big/app (5,000; n=100)", "admin", f"{api}/repositories/big/app/tags"),
            (
                "tags of big/app by size, desc, page 2",
                "admin",
                f"{api}/repositories/big/app/tags?sort=size&order=desc&last=v9.99",
            ),
            (
                "manifest view (big/app:v0.1)",
                "admin",
                f"{api}/repositories/big/app/manifests/v0.1",
            ),
        ]
        rows = []
        for conc in [int(c) for c in args.conc.split(",")]:
            for label, user, target in cases:
                found = run_wrk(target, tokens[user], conc, args.duration)
                rows.append({"case": label, "as": user, "c": conc, **found})
                print(
                    f"{label:42} {user:5} c={conc:<3} p50 {found.get('p50', 0):7.2f} ms  "
                    f"p99 {found.get('p99', 0):7.2f} ms  {found['rps']:8.0f} req/s",
                    flush=True,
                )
        figures["rows"] = rows
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
