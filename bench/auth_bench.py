"""What authentication costs: token grants per second, and manifest GET with and without auth.

hatchway and Debian's distribution 2.8 run side by side on 127.0.0.1, each open and with
token auth; distribution's token mode trusts hatchway's own token service (its
``rootcertbundle`` is ``hatchway keys cert``), so both verify the same JWTs. Rates come
from wrk (the client that costs the least CPU on this 2-core machine).

    .venv/bin/python bench/auth_bench.py [--duration 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from benchkit import (
    CONFIG,
    HATCHWAY_OPEN_CONFIG,
    LAYER,
    OCI_MANIFEST,
    OCTET,
    Server,
    Spec,
    manifest,
    run_wrk,
    sha,
    start_distribution,
    start_hatchway,
    wait_ready,
)
from localissuer import DISTINCT_LUA, LocalIssuer

PASSWORD = "bench-admin-password"
BASIC = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
REPO = "admin/bench"
SCOPE = f"repository:{REPO}:pull,push"
TOKEN_CONFIG: dict[str, object] = {
    **HATCHWAY_OPEN_CONFIG,
    "auth": {"token": {"service": "hatchway", "issuer": "hatchway", "expiration": 3600}},
}


async def token(session: aiohttp.ClientSession, hatchway: Server) -> str:
    url = f"{hatchway.base}/auth/token?service=hatchway&scope={SCOPE}"
    async with session.get(url, headers={"Authorization": BASIC}) as r:
        r.raise_for_status()
        return str((await r.json())["token"])


async def push_manifest(session: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
    for blob in (CONFIG, LAYER):
        url = f"{base}/v2/{REPO}/blobs/uploads/?digest={sha(blob)}"
        async with session.post(url, data=blob, headers={**headers, "Content-Type": OCTET}) as r:
            if r.status == 202:  # distribution ignores ?digest= on POST: finish the upload
                location = r.headers["Location"]
                sep = "&" if "?" in location else "?"
                put = f"{location}{sep}digest={sha(blob)}"
                if put.startswith("/"):
                    put = base + put
                async with session.put(put, data=blob, headers=headers) as done:
                    done.raise_for_status()
            else:
                r.raise_for_status()
    url = f"{base}/v2/{REPO}/manifests/latest"
    body = manifest("auth-bench")
    async with session.put(url, data=body, headers={**headers, "Content-Type": OCI_MANIFEST}) as r:
        r.raise_for_status()


ROBOT = "bench-ci"


async def federated_rows(
    args: argparse.Namespace,
    tmp: Path,
    hatchway_bin: str,
    session: aiohttp.ClientSession,
    servers: list[Server],
) -> list[tuple[str, float, float | None]]:
    """Federated grants: a GitHub-Actions-shaped ID token as the password, one worker, the
    issuer's JWKS cached (fetched once at start), for the entry's robot account."""
    issuer = LocalIssuer()
    try:
        config = {
            **TOKEN_CONFIG,
            "identity": {
                "federation": [
                    {
                        "issuer": issuer.url,
                        "audience": "hatchway",
                        "jwksinsecure": True,
                        "match": {"repository": "acme/*", "ref": "refs/heads/main"},
                        "account": ROBOT,
                    }
                ]
            },
        }
        env = {"HATCHWAY_ADMIN_PASSWORD": PASSWORD}
        fed = start_hatchway(hatchway_bin, tmp / "hf", 1, config, env)
        servers.append(fed)
        await wait_ready(fed, session)
        where = ["--config", str(tmp / "hf" / "hatchway.yml"), "--data", str(tmp / "hf" / "data")]
        cli = [hatchway_bin, "user", "add-robot", ROBOT, *where]
        subprocess.run(cli, capture_output=True, check=True)
        await asyncio.sleep(1.2)  # past the server's memory of the account being missing
        id_token = issuer.github_token("acme/app", "hatchway")
        basic = "Basic " + base64.b64encode(f"ci:{id_token}".encode()).decode()
        url = f"{fed.base}/auth/token?service=hatchway&scope=repository:{ROBOT}/app:pull,push"
        async with session.get(url, headers={"Authorization": basic}) as r:
            r.raise_for_status()
        grant = Spec("GET", url, {"Authorization": basic}, 200)
        rows: list[tuple[str, float, float | None]] = []
        for conc in (1, 32):
            got, cpu = rate_and_cpu(grant, conc, args.duration, tmp, fed)
            rows.append((f"federated grants/s, 1 worker, c={conc}", got, None))
        rows.append(("federated grant, server CPU ms per grant, c=32", cpu, None))
        before = tree_cpu(fed)
        got, done = distinct_rate(issuer, url, args.duration, tmp)
        fresh_cpu = 1000 * (tree_cpu(fed) - before) / max(1, done)
        rows.append(("federated grants/s, a new ID token each, c=32", got, None))
        rows.append(("  same, server CPU ms per grant", fresh_cpu, None))
        fed.stop()
        return rows
    finally:
        issuer.close()


def distinct_rate(issuer: LocalIssuer, url: str, duration: float, tmp: Path) -> tuple[float, int]:
    """Grants/s when no ID token repeats, so each is verified in full (signature and all),
    not answered from the verified-token memory: wrk sends each of many tokens once."""
    count = 12_000
    path = tmp / "basic-tokens.txt"
    with path.open("w") as out:
        for _ in range(count):
            token = issuer.github_token("acme/app", "hatchway")
            out.write("Basic " + base64.b64encode(f"ci:{token}".encode()).decode() + "\n")
    script = tmp / "distinct.lua"
    script.write_text(DISTINCT_LUA % {"path": path, "threads": 2})
    argv = ["wrk", "-t2", "-c32", f"-d{max(1, round(duration))}s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s)\b", out)
    if m is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk: unexpected output\n{out}")
    done = int(m.group(1))
    if done > count:
        print(f"  warning: {done} requests for {count} tokens; some repeated", file=sys.stderr)
    return done / (float(m.group(2)) * (1e-3 if m.group(3) == "ms" else 1.0)), done


def tree_cpu(server: Server) -> float:
    """CPU seconds used so far by the server's processes (supervisor and its workers)."""
    assert server.proc is not None
    root, total = server.proc.pid, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat.parent.name) == root or int(fields[1]) == root:
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def rate_and_cpu(
    spec: Spec, conc: int, duration: float, tmp: Path, server: Server
) -> tuple[float, float]:
    """Requests/s, and the server's CPU milliseconds per request: under load from other
    programs the rate falls, the CPU per request much less (1000 / it = one core's rate)."""
    before = tree_cpu(server)
    got = run_wrk(spec, conc, duration, 2, tmp)
    used = tree_cpu(server) - before
    if got.errors:
        print(f"  warning: {got.errors} failed requests for {spec.url}", file=sys.stderr)
    return got.ok / got.elapsed, 1000 * used / max(1, got.ok)


def rate(spec: Spec, conc: int, duration: float, tmp: Path) -> float:
    got = run_wrk(spec, conc, duration, 2, tmp)
    if got.errors:
        print(f"  warning: {got.errors} failed requests for {spec.url}", file=sys.stderr)
    return got.ok / got.elapsed


async def run(args: argparse.Namespace, tmp: Path) -> list[tuple[str, float, float | None]]:
    hatchway_bin = str(Path(sys.executable).with_name("hatchway"))
    env = {"HATCHWAY_ADMIN_PASSWORD": PASSWORD}
    servers: list[Server] = []
    rows: list[tuple[str, float, float | None]] = []
    try:
        async with aiohttp.ClientSession() as session:
            one = start_hatchway(hatchway_bin, tmp / "h1", 1, TOKEN_CONFIG, env)
            servers.append(one)
            await wait_ready(one, session)
            grant = Spec(
                "GET",
                f"{one.base}/auth/token?service=hatchway&scope={SCOPE}",
                {"Authorization": BASIC},
                200,
            )
            for conc in (1, 32):
                rows.append(
                    (
                        f"token grants/s, 1 worker, c={conc}",
                        rate(grant, conc, args.duration, tmp),
                        None,
                    )
                )
            _, password_cpu = rate_and_cpu(grant, 32, args.duration, tmp, one)
            rows.append(("token grant, server CPU ms per grant, c=32", password_cpu, None))
            one.stop()
            rows += await federated_rows(args, tmp, hatchway_bin, session, servers)

            h_open = start_hatchway(hatchway_bin, tmp / "ho", args.workers)
            h_auth = start_hatchway(hatchway_bin, tmp / "ha", args.workers, TOKEN_CONFIG, env)
            servers += [h_open, h_auth]
            for srv in (h_open, h_auth):
                await wait_ready(srv, session)
            bearer = {"Authorization": "Bearer " + await token(session, h_auth)}
            bundle = tmp / "bundle.pem"
            bundle.write_text(
                subprocess.run(
                    [
                        hatchway_bin,
                        "keys",
                        "cert",
                        "--config",
                        str(tmp / "ha" / "hatchway.yml"),
                        "--data",
                        str(tmp / "ha" / "data"),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            dist_auth = {
                "token": {
                    "realm": f"{h_auth.base}/auth/token",
                    "service": "hatchway",
                    "issuer": "hatchway",
                    "rootcertbundle": str(bundle),
                }
            }
            d_open = start_distribution(args.distribution_bin, tmp / "do", "inmemory")
            d_auth = start_distribution(args.distribution_bin, tmp / "da", "inmemory", dist_auth)
            servers += [d_open, d_auth]
            for srv in (d_open, d_auth):
                await wait_ready(srv, session)
            for srv, headers in ((h_open, {}), (h_auth, bearer), (d_open, {}), (d_auth, bearer)):
                await push_manifest(session, srv.base, headers)
            accept = {"Accept": OCI_MANIFEST}
            figures = {}
            for label, srv, headers in (
                ("hatchway open", h_open, accept),
                ("hatchway token", h_auth, {**accept, **bearer}),
                ("distribution open", d_open, accept),
                ("distribution token", d_auth, {**accept, **bearer}),
            ):
                spec = Spec("GET", f"{srv.base}/v2/{REPO}/manifests/latest", headers, 200)
                figures[label] = rate(spec, 32, args.duration, tmp)
            for name in ("hatchway", "distribution"):
                rows.append((f"manifest GET/s c=32, {name} open", figures[f"{name} open"], None))
                auth = figures[f"{name} token"]
                rows.append(
                    (
                        f"manifest GET/s c=32, {name} token auth",
                        auth,
                        auth / figures[f"{name} open"],
                    )
                )
            rows.append(
                (
                    "token-auth GET, hatchway / distribution",
                    figures["hatchway token"],
                    figures["hatchway token"] / figures["distribution token"],
                )
            )
    finally:
        for srv in servers:
            srv.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--distribution-bin", default="/usr/bin/docker-registry")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("auth_bench needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hatchway-auth-bench-") as tmp:
        rows = asyncio.run(run(args, Path(tmp)))
    print(f"{'workload':52} {'figure':>10} {'ratio':>8}")
    for label, figure, ratio in rows:
        shown = f"{ratio:8.2f}" if ratio is not None else " " * 8
        value = f"{figure:10.0f}" if figure >= 100 else f"{figure:10.3f}"  # ms per grant
        print(f"{label:52} {value} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
