"""Federated logins (an ID token exchanged for a registry token) in the auth metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.observability.scrape import Scrape, settled
from tests.support.authkit import ADMIN_PASSWORD, hatchway_cli
from tests.support.oidc_issuer import local_issuer
from tests.support.server import free_port, start_server

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


def test_federated_outcomes_are_counted(tmp_path: Path) -> None:
    debug = f"127.0.0.1:{free_port()}"
    with local_issuer() as issuer:
        config = {
            "version": "0.1",
            "auth": {"token": {"expiration": 300}},
            "http": {"debug": {"addr": debug, "prometheus": {"enabled": True}}},
            "access": [{"name": "ci-acme", "repository": "acme/*", "action": ["pull"]}],
            "identity": {
                "federation": [
                    {
                        "issuer": issuer.url,
                        "audience": "hatchway",
                        "jwksinsecure": True,
                        "match": {"repository": "acme/*", "ref": "refs/heads/main"},
                        "account": "ci-acme",
                    }
                ]
            },
        }
        server = start_server(
            tmp_path,
            config=json.dumps(config),
            env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
        try:
            hatchway_cli(server.data, "user", "add-robot", "ci-acme")
            time.sleep(1.1)  # past the server's one-second memory of the missing account

            def exchange(token: str) -> int:
                form = {
                    "grant_type": EXCHANGE,
                    "subject_token": token,
                    "subject_token_type": ID_TOKEN,
                    "service": "hatchway",
                    "scope": "repository:acme/app:pull",
                }
                return httpx.post(server.url + "/auth/token", data=form, timeout=30).status_code

            assert exchange(issuer.github()) == 200
            assert exchange(issuer.github(ref="refs/heads/evil")) == 401

            def check(found: Scrape) -> None:
                def federated(outcome: str) -> float:
                    return found.value(
                        "hatchway_auth_attempts_total", kind="federated", outcome=outcome
                    )

                assert federated("success") == 1
                assert federated("failure") == 1
                assert found.value("hatchway_token_grants_total", grant="token-exchange") == 1
                assert "acme" not in found.text

            settled(f"http://{debug}/metrics", check)
        finally:
            server.stop()
