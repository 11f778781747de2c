"""Token auth across replicas sharing one PostgreSQL database: a token one issues the
other accepts, ``hatchway keys rotate`` run beside one reaches both, and failed logins
counted on one throttle the other."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.replicas.support import Cluster, cluster
from tests.support.authkit import SERVICE, jwt_header
from tests.support.server import HATCHWAY, Server

pytestmark = pytest.mark.e2e

PASSWORD = "replica-Pw-0123"
T = TypeVar("T")


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, token=True) as c:
        yield c


def cli(c: Cluster, replica: Server, *args: str, stdin: str | None = None) -> str:
    """A ``hatchway`` command with the replicas' config, beside ``replica``."""
    cmd = [HATCHWAY, *args, "--config", str(c.config_file()), "--data", str(replica.data)]
    result = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, (cmd, result.stdout, result.stderr)
    return result.stdout


def token_from(replica: Server, auth: tuple[str, str]) -> str:
    r = httpx.get(
        replica.url + "/auth/token",
        params={"service": SERVICE, "scope": "repository:alice/app:pull"},
        auth=auth,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert isinstance(token, str)
    return token


def accepted_by(replica: Server, token: str) -> bool:
    r = replica.client.get("/v2/alice/app/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (200, 401, 404), r.text
    return r.status_code != 401


def eventually(probe: Callable[[], T], want: object) -> T:
    """``probe()`` until it gives ``want`` (or a token signed by ``want``): replicas
    re-read the keys within seconds."""
    deadline = time.monotonic() + 30
    while True:
        got = probe()
        if got == want or (isinstance(got, str) and jwt_header(got).get("kid") == want):
            return got
        assert time.monotonic() < deadline, (got, want)
        time.sleep(0.1)


def test_tokens_and_rotation_reach_every_replica(two: Cluster) -> None:
    a, b = two.replicas
    cli(two, a, "user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    first = token_from(a, ("alice", PASSWORD))
    assert accepted_by(b, first)
    assert accepted_by(a, token_from(b, ("alice", PASSWORD)))
    assert not accepted_by(b, first[:-4] + ("AAAA" if not first.endswith("AAAA") else "BBBB"))
    # Rotated beside B: A signs with the new key at once, B accepts it; the old
    # token still verifies on both within the overlap.
    new_kid = cli(two, b, "keys", "rotate").strip().splitlines()[-1]
    assert new_kid != jwt_header(first)["kid"]
    rotated = eventually(lambda: token_from(a, ("alice", PASSWORD)), new_kid)
    for replica in (a, b):
        assert accepted_by(replica, rotated)
        assert accepted_by(replica, first)
    # Retired at once (a leaked key): refused by both.
    old_kid = jwt_header(first)["kid"]
    cli(two, a, "keys", "retire", old_kid, "--now")
    for replica in (a, b):
        eventually(lambda r=replica: accepted_by(r, first), False)  # type: ignore[misc]
        assert accepted_by(replica, rotated)
    # No replica wrote a key file: the keys are in the database.
    assert not list(two.tmp.glob("r*/data/keys/*.pem"))


def test_failed_logins_count_across_replicas(two: Cluster) -> None:
    """Wrong guesses alternate between the replicas: the guesser is made to wait after
    the threshold (5) of them in all, not after 5 on each replica (10 in all)."""
    params = {"service": SERVICE}
    statuses = []
    for attempt in range(12):
        replica = two.replicas[attempt % 2]
        r = httpx.get(
            replica.url + "/auth/token", params=params, auth=("mallory", "guess"), timeout=30
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert statuses.count(401) <= 6, statuses
