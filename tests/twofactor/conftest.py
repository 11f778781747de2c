"""A real ``hatchway serve`` (built-in token service) for the two-factor tests, one per
``identity.twofactor.required`` value, and helpers computing codes with pyotp."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.mgmt.conftest import API, Checker
from tests.support.authkit import ADMIN_PASSWORD, add_user
from tests.support.server import Server, start_server

PASSWORD = "user-Pw-0123"
STEP = 30


def config(required: str) -> str:
    doc: dict[str, Any] = {
        "version": "0.1",
        "auth": {"token": {}},
        "storage": {"delete": {"enabled": True}},
        "identity": {"twofactor": {"required": required}},
    }
    return json.dumps(doc)


def start(tmp: Path, required: str = "none") -> Server:
    return start_server(
        tmp, config=config(required), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("twofactor"))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="package")
def check(server: Server) -> Checker:
    return Checker(server)


_users = iter(range(1_000_000))


@pytest.fixture
def user(server: Server) -> str:
    name = f"tf{next(_users)}"
    add_user(server, name, PASSWORD)
    return name


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The code of the step ``offset_steps`` from now, away from a step boundary (so the
    server, a moment later, sees the same step)."""
    into = time.time() % STEP
    if into > STEP - 3:
        time.sleep(STEP - into + 0.5)
    return pyotp.TOTP(secret, interval=STEP).at(time.time() + offset_steps * STEP)


def enrol(
    server: Server, check: Checker, user: str, offset_steps: int = 0
) -> tuple[str, list[str]]:
    """Enrol ``user`` over the API; its secret and recovery codes."""
    auth = (user, PASSWORD)
    started = check(server.client.post(f"{API}/me/twofactor/totp", auth=auth), 201)
    secret = started["secret"]
    done = check(
        server.client.post(
            f"{API}/me/twofactor/totp/confirm",
            json={"code": code_at(secret, offset_steps)},
            auth=auth,
        ),
        200,
    )
    return secret, list(done["recovery_codes"])
