"""Redis holds only what may be lost: flush it mid-run (a private redis-server) and every
image, account, access token and refresh token is still there; the throttle counters
start over, and throttling works again at once."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx

from tests.observability.scrape import burst
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, add_user, create_pat, get_token
from tests.support.images import make_image
from tests.support.oci import OCI_MANIFEST, push_blob, push_manifest
from tests.support.redisserver import start_redis
from tests.support.server import start_server

REPO = "team/app"
PASSWORD = "alice-Pw-0123"
DB = 4  # a dedicated database number of the private server


def grant(url: str, user: str, secret: str) -> int:
    return httpx.get(url, auth=(user, secret), timeout=60).status_code


def lock_out(url: str, user: str) -> None:
    statuses = burst(url, (user, "guess"))
    assert 429 in statuses, statuses


def test_flushing_redis_loses_only_counters(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis")
    config = {
        "version": "0.1",
        "auth": {"token": {"service": "hatchway", "issuer": "hatchway"}},
        "redis": {"addr": redis.addr, "db": DB},
    }
    server = start_server(
        tmp_path,
        workers=2,
        config=json.dumps(config),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    token_url = server.url + "/auth/token?service=hatchway"
    conn = redis.client(db=DB)
    try:
        # Before: an image, an account with an access token and a refresh token.
        push = get_token(server, [f"repository:{REPO}:push,pull"], auth=(ADMIN, ADMIN_PASSWORD))
        image = make_image("flush")
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {push}"}, timeout=60
        ) as client:
            for blob in (image.config, *image.layers):
                push_blob(client, REPO, blob.data)
            assert push_manifest(client, REPO, "v1", image.manifest.data).status_code == 201
        add_user(server, "alice", PASSWORD)
        pat = create_pat(server, "alice", "laptop", ["repository:alice/*:pull"])
        admin_pat = create_pat(server, ADMIN, "ci", ["repository:team/*:pull"])
        form = {
            "grant_type": "password",
            "username": "alice",
            "password": PASSWORD,
            "client_id": "e2e",
            "access_type": "offline",
            "service": "hatchway",
        }
        refresh = httpx.post(server.url + "/auth/token", data=form, timeout=60).json()
        assert "refresh_token" in refresh

        # Guesses lock alice out at this address; the counters are in Redis, not the DB.
        lock_out(token_url, "alice")
        assert conn.keys("hatchway:attempt:pair:alice*")
        with sqlite3.connect(server.data / "hatchway.db") as db:
            rows = db.execute("SELECT count(*) FROM login_attempts").fetchone()[0]
        assert rows == 0

        conn.flushall()  # mid-run, with both workers serving
        assert conn.dbsize() == 0

        # Nothing that lasts was in Redis.
        assert grant(token_url, "alice", pat) == 200
        pull = get_token(server, [f"repository:{REPO}:pull"], auth=(ADMIN, admin_pat))
        r = httpx.get(
            f"{server.url}/v2/{REPO}/manifests/v1",
            headers={"Authorization": f"Bearer {pull}", "Accept": OCI_MANIFEST},
        )
        assert r.status_code == 200
        assert r.content == image.manifest.data
        for blob in (image.config, *image.layers):
            r = httpx.get(
                f"{server.url}/v2/{REPO}/blobs/{blob.digest}",
                headers={"Authorization": f"Bearer {pull}"},
            )
            assert r.content == blob.data
        again = {
            "grant_type": "refresh_token",
            "refresh_token": refresh["refresh_token"],
            "client_id": "e2e",
            "service": "hatchway",
        }
        assert httpx.post(server.url + "/auth/token", data=again, timeout=60).status_code == 200
        assert grant(token_url, ADMIN, ADMIN_PASSWORD) == 200

        # The counters were lost: alice's block is gone (each worker forgets it within
        # its one-second sync), so her password works again.
        deadline = time.monotonic() + 10
        while grant(token_url, "alice", PASSWORD) != 200:
            assert time.monotonic() < deadline, "the flushed block never went away"
            time.sleep(0.3)

        # And throttling works again from scratch, in Redis.
        lock_out(token_url, "alice")
        assert conn.keys("hatchway:attempt:pair:alice*")
    finally:
        conn.close()
        server.stop()
        redis.stop()
