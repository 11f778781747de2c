"""Workload identity end to end: a real ``hatchway serve`` trusting a local issuer served
on loopback; skopeo logs in with a GitHub-Actions-shaped ID token and pushes and pulls,
httpx exchanges tokens (RFC 8693), and every attack is answered 401, never 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    SERVICE,
    Skopeo,
    access_claim,
    assert_refused,
    create_pat,
    hatchway_cli,
    jwt_payload,
    log_mark,
    stderr,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.oidc_issuer import JWKS_PATH, LocalIssuer, local_issuer, new_key
from tests.support.server import HATCHWAY, Server, start_server

pytestmark = [pytest.mark.e2e]

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def federated_config(issuer: LocalIssuer) -> str:
    doc: dict[str, Any] = {
        "version": "0.1",
        "storage": {"delete": {"enabled": True}},
        "auth": {"token": {"expiration": 300}},
        "access": [
            {"name": "ci-acme", "repository": "acme/*", "action": ["pull", "push"]},
            {"name": "k8s-builder", "repository": "cluster/*", "action": ["pull"]},
        ],
        "identity": {
            "federation": [
                {
                    "issuer": issuer.url,
                    "audience": "hatchway",
                    "jwksinsecure": True,
                    "match": {"repository": "acme/*", "ref": "refs/heads/main"},
                    "account": "ci-acme",
                    "name": "github-acme",
                },
                {
                    "issuer": issuer.url,
                    "audience": "hatchway",
                    "jwksinsecure": True,
                    "match": {"kubernetes.io.namespace": "ci", "sub": "system:serviceaccount:*"},
                    "account": "k8s-builder",
                },
            ]
        },
    }
    return json.dumps(doc)


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("federation"),
        config=federated_config(issuer),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        # The robots do not exist at start: a warning, not a refusal to start.
        assert "no account ci-acme yet" in server.log()
        for robot in ("ci-acme", "k8s-builder"):
            hatchway_cli(server.data, "user", "add-robot", robot)
        time.sleep(1.1)  # past the server's one-second memory of the missing accounts
        yield server
    finally:
        server.stop()


def exchange(server: Server, subject_token: str, scope: str = "", **extra: str) -> httpx.Response:
    form = {
        "grant_type": EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ID_TOKEN,
        "service": SERVICE,
        **extra,
    }
    if scope:
        form["scope"] = scope
    return httpx.post(server.url + "/auth/token", data=form, timeout=30)


def basic_grant(server: Server, password: str, scope: str, user: str = "x") -> httpx.Response:
    params = {"service": SERVICE, "scope": scope, "offline_token": "true"}
    return httpx.get(server.url + "/auth/token", params=params, auth=(user, password), timeout=30)


def test_skopeo_login_with_an_id_token_pushes_and_pulls(
    registry: Server, issuer: LocalIssuer, tmp_path: Path
) -> None:
    src = tmp_path / "layout"
    write_oci_layout(src, make_image("federated", layer_sizes=(20_000,)), tag="1.0")
    skopeo = Skopeo(tmp_path / "skopeo")
    ok = skopeo.login(registry.addr, "github-actions", issuer.github(repository="acme/app"))
    assert b"Login Succeeded" in ok.stdout
    ref = f"docker://{registry.addr}/acme/app:1.0"
    skopeo.push(src, "1.0", ref)
    out = tmp_path / "out"
    skopeo.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)
    # The robot's rules bound it: nothing outside acme/*.
    mark = log_mark(registry)
    result = skopeo.push(src, "1.0", f"docker://{registry.addr}/other/app:1.0", check=False)
    assert result.returncode != 0, stderr(result)
    assert_refused(registry, "other/app", since=mark)
    # A token from a branch the entry does not trust cannot log in.
    bad = Skopeo(tmp_path / "skopeo-feature")
    result = bad.login(registry.addr, "x", issuer.github(ref="refs/heads/feature"), check=False)
    assert result.returncode != 0


def test_token_exchange_answers_as_rfc_8693(registry: Server, issuer: LocalIssuer) -> None:
    id_token = issuer.github(repository="acme/app", lifetime=120)
    id_exp = jwt_payload(id_token)["exp"]
    scope = "repository:acme/app:pull,push,delete repository:other/x:pull"
    r = exchange(registry, id_token, scope)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "Bearer"
    assert body["token"] == body["access_token"]
    assert "refresh_token" not in body
    assert 0 < body["expires_in"] <= 120
    assert body["scope"] == "repository:acme/app:pull,push"
    assert r.headers["Cache-Control"] == "no-store"
    claims = jwt_payload(body["access_token"])
    assert claims["sub"] == "ci-acme"
    assert claims["exp"] <= id_exp  # never longer-lived than the ID token
    assert access_claim(body["access_token"]) == {("repository", "acme/app"): {"pull", "push"}}
    # The registry takes it.
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    r = httpx.get(registry.url + "/v2/acme/app/tags/list", headers=bearer, timeout=30)
    assert r.status_code in (200, 404), r.text
    # A Kubernetes token, as :jwt, for the other entry.
    k8s = issuer.kubernetes(namespace="ci", serviceaccount="builder")
    r = exchange(registry, k8s, "repository:cluster/base:pull,push", subject_token_type=JWT_TYPE)
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "repository:cluster/base:pull"
    assert jwt_payload(r.json()["access_token"])["sub"] == "k8s-builder"


def test_basic_login_with_an_id_token_has_no_refresh_token(
    registry: Server, issuer: LocalIssuer
) -> None:
    id_token = issuer.github(repository="acme/app", lifetime=90)
    r = basic_grant(registry, id_token, "repository:acme/app:pull", user="anything-at-all")
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    assert r.json()["expires_in"] <= 90
    assert jwt_payload(r.json()["token"])["sub"] == "ci-acme"
    form = {
        "grant_type": "password",
        "username": "ci",
        "password": id_token,
        "client_id": "test",
        "access_type": "offline",
        "service": SERVICE,
        "scope": "repository:acme/app:pull",
    }
    r = httpx.post(registry.url + "/auth/token", data=form, timeout=30)
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    # Passwords still work as passwords.
    r = basic_grant(registry, ADMIN_PASSWORD, "repository:acme/app:pull", user=ADMIN)
    assert r.status_code == 200, r.text
    assert jwt_payload(r.json()["token"])["sub"] == ADMIN


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def attacks(issuer: LocalIssuer) -> dict[str, str]:
    good = issuer.github(repository="acme/app")
    claims = jwt.decode(good, options={"verify_signature": False})
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.signing.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    secret = json.dumps(issuer.jwks()).encode()
    hs256 = (
        f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    )
    head, _, signature = good.split(".")
    tampered_claims = {**claims, "repository": "acme/other"}
    tampered = f"{head}.{b64(json.dumps(tampered_claims).encode())}.{signature}"
    now = int(time.time())
    return {
        "alg none": jwt.encode(claims, "", algorithm="none", headers={"kid": header["kid"]}),
        "HS256 keyed with the JWKS": hs256,
        "unknown issuer": issuer.github(claims={"iss": "https://token.actions.example"}),
        "wrong audience": issuer.github(audience="sigstore"),
        "expired": issuer.github(claims={"exp": now - 120}),
        "not yet valid": issuer.github(claims={"nbf": now + 300}),
        "kid not in the JWKS": issuer.github(key=new_key()),
        "claim mismatch": issuer.github(repository="evil/app"),
        "tampered signature": tampered,
    }


def test_every_attack_is_refused_with_401(registry: Server, issuer: LocalIssuer) -> None:
    scope = "repository:acme/app:pull,push"
    for name, token in attacks(issuer).items():
        r = exchange(registry, token, scope)
        assert r.status_code == 401, (name, r.status_code, r.text)
        body = r.json()
        assert body["error"] == "invalid_request", (name, body)
        assert token not in r.text
        assert "access_token" not in body
        r = basic_grant(registry, token, scope)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_refusals_do_not_throttle_the_robots_other_credentials(
    registry: Server, issuer: LocalIssuer
) -> None:
    pat = create_pat(registry, "ci-acme", "fallback", ["repository:acme/*:pull"])
    wrong = issuer.github(audience="elsewhere")
    for _ in range(30):  # beyond every throttle threshold (5 per pair, 20 per address)
        assert (
            basic_grant(registry, wrong, "repository:acme/app:pull", "ci-acme").status_code == 401
        )
    r = basic_grant(registry, pat, "repository:acme/app:pull", "ci-acme")
    assert r.status_code == 200, r.text
    r = basic_grant(registry, issuer.github(), "repository:acme/app:pull", "ci-acme")
    assert r.status_code == 200, r.text
    r = basic_grant(registry, ADMIN_PASSWORD, "repository:acme/app:pull", ADMIN)
    assert r.status_code == 200, r.text


def test_audit_records_issuer_subject_and_entry(registry: Server, issuer: LocalIssuer) -> None:
    token = issuer.github(repository="acme/audited")
    assert exchange(registry, token, "repository:acme/audited:pull").status_code == 200
    refused = issuer.github(repository="acme/audited", audience="sigstore")
    assert exchange(registry, refused, "repository:acme/audited:pull").status_code == 401
    deadline = time.monotonic() + 10
    while True:
        out = hatchway_cli(
            registry.data, "audit", "--account", "ci-acme", "--json", "--since", "1h"
        ).stdout
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        grants = [e for e in events if e["event"] == "token" and "acme/audited" in str(e)]
        failures = [
            e
            for e in events
            if e["event"] == "login" and "another audience" in json.dumps(e.get("detail"))
        ]
        if (grants and failures) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert grants, events
    detail = grants[0]["detail"]
    assert detail["issuer"] == issuer.url
    assert detail["subject"] == "repo:acme/audited:ref:refs/heads/main"
    assert detail["federation"] == "github-acme"
    assert detail["method"] == "token-exchange"
    assert failures, events
    assert failures[0]["detail"]["issuer"] == issuer.url
    assert token not in out
    assert refused not in out


def test_exchange_form_errors(registry: Server, issuer: LocalIssuer) -> None:
    token = issuer.github()
    cases = {
        "no subject token": ({"subject_token": ""}, "invalid_request"),
        "access token type": ({"subject_token_type": ACCESS_TOKEN}, "invalid_request"),
        "actor": ({"actor_token": token, "actor_token_type": ID_TOKEN}, "invalid_request"),
        "refresh wanted": (
            {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
            "invalid_request",
        ),
        "other audience": ({"audience": "someone-else"}, "invalid_target"),
    }
    for name, (extra, error) in cases.items():
        subject = extra.pop("subject_token", token)
        r = exchange(registry, subject, "repository:acme/app:pull", **extra)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"] == error, (name, r.text)
    r = exchange(registry, token, "repository:acme/app")
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_scope"


def test_an_entry_whose_account_is_missing_or_a_person_grants_nothing(
    tmp_path: Path, issuer: LocalIssuer
) -> None:
    config = json.loads(federated_config(issuer))
    config["identity"]["federation"] = [
        {**config["identity"]["federation"][0], "account": "ghost", "name": "ghost"}
    ]
    server = start_server(
        tmp_path, config=json.dumps(config), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    try:
        token = issuer.github(repository="acme/app")
        r = exchange(server, token, "repository:acme/app:pull")
        assert r.status_code == 401, r.text
        assert r.json()["error_description"] == "no robot account for this identity"
        # Made a person's account while serving: still no grant (a robot's only).
        hatchway_cli(server.data, "user", "add", "ghost", "--password-stdin", stdin="pw-0123-x\n")
        time.sleep(1.1)
        r = exchange(server, token, "repository:acme/app:pull")
        assert r.status_code == 401, r.text
        assert "is not a robot account" in server.log()
    finally:
        server.stop()


def test_rotation_and_a_jwks_file_on_a_running_server(tmp_path: Path) -> None:
    """The issuer adds a key: the server fetches its JWKS once more and takes the new kid;
    made-up kids after that fetch nothing for a minute. A cluster with no reachable issuer
    is trusted through a JWKS file."""
    cluster = LocalIssuer(url="https://kubernetes.default.svc.cluster.local", keys=[new_key()])
    jwks_file = tmp_path / "cluster-jwks.json"
    jwks_file.write_text(json.dumps(cluster.jwks()))
    with local_issuer() as issuer:
        config = json.loads(federated_config(issuer))
        config["identity"]["federation"] = [
            config["identity"]["federation"][0],
            {
                "issuer": cluster.url,
                "audience": "hatchway",
                "jwks": str(jwks_file),
                "match": {"sub": "system:serviceaccount:ci:builder"},
                "account": "k8s-builder",
            },
        ]
        server = start_server(
            tmp_path, config=json.dumps(config), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
        )
        try:
            for robot in ("ci-acme", "k8s-builder"):
                hatchway_cli(server.data, "user", "add-robot", robot)
            time.sleep(1.1)
            scope = "repository:acme/app:pull"
            assert exchange(server, issuer.github(), scope).status_code == 200
            assert issuer.hits[JWKS_PATH] == 1
            issuer.rotate()
            for _ in range(3):
                r = exchange(server, issuer.github(), scope)
                assert r.status_code == 200, r.text
            assert issuer.hits[JWKS_PATH] == 2
            stranger = new_key()
            for _ in range(3):
                r = exchange(server, issuer.github(key=stranger), scope)
                assert r.status_code == 401, r.text
            assert issuer.hits[JWKS_PATH] == 2

            k8s = cluster.kubernetes(namespace="ci", serviceaccount="builder")
            r = exchange(server, k8s, "repository:cluster/base:pull", subject_token_type=JWT_TYPE)
            assert r.status_code == 200, r.text
            assert jwt_payload(r.json()["access_token"])["sub"] == "k8s-builder"
        finally:
            server.stop()


def test_docker_login_with_an_id_token_as_the_readme_workflow_does(
    registry: Server, issuer: LocalIssuer, tmp_path: Path
) -> None:
    """``echo $ID_TOKEN | docker login -u github-actions --password-stdin`` (the docker CLI
    logs in client-side, no engine): no refresh token, so docker keeps the ID token itself,
    and uses it for the next token grant."""
    src = tmp_path / "layout"
    write_oci_layout(src, make_image("docker-login", layer_sizes=(10_000,)), tag="1.0")
    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.login(registry.addr, "ci", issuer.github(repository="acme/app"))
    skopeo.push(src, "1.0", f"docker://{registry.addr}/acme/docker:1.0")

    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DOCKER_CONFIG": str(config_dir),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
    }
    id_token = issuer.github(repository="acme/app")

    def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", *args]
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
        )

    login = docker(
        "login", "-u", "github-actions", "--password-stdin", registry.addr, stdin=id_token
    )
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    auth = json.loads((config_dir / "config.json").read_text())["auths"][registry.addr]
    assert "identitytoken" not in auth
    assert base64.b64decode(auth["auth"]).decode() == f"github-actions:{id_token}"
    inspect = docker("manifest", "inspect", "--insecure", f"{registry.addr}/acme/docker:1.0")
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["schemaVersion"] == 2

    refused = docker(
        "login", "-u", "x", "--password-stdin", registry.addr, stdin=issuer.github(audience="aws")
    )
    assert refused.returncode != 0
    assert "the ID token is for another audience" in refused.stderr


def test_hatchway_login_and_push_with_an_id_token(
    registry: Server, issuer: LocalIssuer, tmp_path: Path
) -> None:
    src = tmp_path / "layout"
    write_oci_layout(src, make_image("hatchway-cli", layer_sizes=(5_000,)), tag="1.0")
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker"), "HOME": str(tmp_path)}

    def hatchway(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [HATCHWAY, *args]
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
        )

    login = hatchway(
        "login", "-u", "ci", "--password-stdin", "--insecure", registry.addr, stdin=issuer.github()
    )
    assert login.returncode == 0, login.stderr
    push = hatchway("push", "--insecure", f"{src}:1.0", f"{registry.addr}/acme/cli:1.0")
    assert push.returncode == 0, push.stderr
    denied = hatchway("push", "--insecure", f"{src}:1.0", f"{registry.addr}/other/cli:1.0")
    assert denied.returncode != 0
