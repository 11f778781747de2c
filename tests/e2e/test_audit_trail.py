"""The audit trail against a real ``hatchway serve``: an acknowledged push or delete has
its event even after ``kill -9``, and a login flood leaves a few rows that count it all."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.authkit import ADMIN, ADMIN_PASSWORD, get_token, hatchway_cli, token_config
from tests.support.images import make_image
from tests.support.oci import errors, push_blob, push_manifest
from tests.support.server import Server, start_server

REPO = "audit/app"


def audit_events(data: Path, *filters: str) -> list[dict[str, Any]]:
    out = hatchway_cli(data, "audit", "--json", "--limit", "100000", *filters).stdout
    return [json.loads(line) for line in out.splitlines()]


def token_server(tmp: Path, workers: int) -> Server:
    return start_server(
        tmp,
        workers=workers,
        config=token_config(),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )


def test_acknowledged_pushes_and_deletes_survive_kill_9(tmp_path: Path) -> None:
    server = token_server(tmp_path, workers=2)
    pushed: list[str] = []
    deleted: list[str] = []
    try:
        token = get_token(
            server, [f"repository:{REPO}:pull,push,delete"], auth=(ADMIN, ADMIN_PASSWORD)
        )
        headers = {"Authorization": f"Bearer {token}"}
        images = [make_image(f"audit-{i}", layer_sizes=(64,)) for i in range(24)]
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for blob in {b.digest: b for im in images for b in (im.config, *im.layers)}.values():
                push_blob(client, REPO, blob.data)

        def put(index: int) -> str:
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
                image = images[index]
                r = push_manifest(c, REPO, f"t{index}", image.manifest.data)
                assert r.status_code == 201, r.text
                return image.manifest.digest

        # Concurrent PUTs (several requests waiting on one commit), then deletes, then the
        # kill right after the last acknowledgement: nothing had time to be flushed late.
        with ThreadPoolExecutor(8) as pool:
            pushed = list(pool.map(put, range(len(images))))
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for digest in pushed[:6]:
                r = client.delete(f"/v2/{REPO}/manifests/{digest}")
                assert r.status_code == 202, r.text
                deleted.append(digest)
            os.killpg(server.process.pid, signal.SIGKILL)
    finally:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        server.client.close()

    pushes = audit_events(server.data, "--event", "push", "--repository", REPO)
    assert sorted(e["detail"]["digest"] for e in pushes) == sorted(pushed)
    assert {(e["outcome"], e["account"]) for e in pushes} == {("success", ADMIN)}
    deletes = audit_events(server.data, "--event", "delete", "--repository", REPO)
    assert sorted(e["detail"]["reference"] for e in deletes) == sorted(deleted)


def test_a_login_flood_is_a_few_rows_that_count_every_attempt(tmp_path: Path) -> None:
    server = token_server(tmp_path, workers=1)
    statuses: list[int] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(60):
                r = client.get(
                    "/auth/token", params={"service": "hatchway"}, auth=("mallory", "guess")
                )
                statuses.append(r.status_code)
    finally:
        assert server.stop() == 0  # a clean stop flushes what is queued
    assert set(statuses) <= {401, 429}
    rows = audit_events(server.data, "--event", "login", "--account", "mallory")
    by_outcome = {"failure": statuses.count(401), "throttled": statuses.count(429)}
    assert sorted(r["outcome"] for r in rows) == sorted(o for o, n in by_outcome.items() if n)
    for row in rows:
        assert row["client_addr"] == "127.0.0.1"
        assert row["detail"].get("count", 1) == by_outcome[row["outcome"]], row


def test_a_change_that_cannot_be_audited_is_not_acknowledged(tmp_path: Path) -> None:
    server = token_server(tmp_path, workers=1)
    try:
        token = get_token(server, [f"repository:{REPO}:pull,push"], auth=(ADMIN, ADMIN_PASSWORD))
        headers = {"Authorization": f"Bearer {token}"}
        image = make_image("unaudited", layer_sizes=(64,))
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for blob in (image.config, *image.layers):
                push_blob(client, REPO, blob.data)
            with sqlite3.connect(server.data / "hatchway.db") as db:  # the audit table is gone
                db.execute("DROP TABLE audit_events")
            r = push_manifest(client, REPO, "1.0", image.manifest.data)
            assert r.status_code == 503, r.text
            assert errors(r) == ["UNAVAILABLE"]
            assert "could not be audited" in r.json()["errors"][0]["message"]
            assert client.get("/v2/").status_code == 200  # still serving
    finally:
        server.stop()
    assert "could not write 1 audit events of changes" in server.log()
