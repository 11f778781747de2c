"""``identity.federation`` is checked before use: at load (keys, audience, URLs, globs) and
at start (the token service, robot accounts, JWKS files)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hatchway.config.load import load
from hatchway.errors import ConfigError
from tests.support.authkit import ADMIN_PASSWORD, hatchway_cli
from tests.support.server import HATCHWAY

GITHUB = "https://token.actions.githubusercontent.com"


def write(tmp_path: Path, entries: list[dict[str, Any]], **top: Any) -> Path:
    doc: dict[str, Any] = {
        "version": "0.1",
        "auth": {"token": {}},
        "identity": {"federation": entries},
        **top,
    }
    path = tmp_path / "config.yml"
    path.write_text(json.dumps(doc))
    return path


def entry(**fields: Any) -> dict[str, Any]:
    return {"issuer": GITHUB, "audience": "hatchway", "account": "ci-acme", **fields}


def load_error(tmp_path: Path, entries: list[dict[str, Any]], **top: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, entries, **top), environ={})
    return str(info.value)


def test_a_github_entry_loads(tmp_path: Path) -> None:
    config = load(write(tmp_path, [entry(match={"repository": "acme/*"})]), environ={})
    assert config.identity is not None
    (loaded,) = config.identity.federation
    assert loaded.discovery_url == f"{GITHUB}/.well-known/openid-configuration"
    assert loaded.match == {"repository": "acme/*"}
    assert load(None, environ={}).identity is None


def test_bad_entries_are_refused_naming_the_key(tmp_path: Path) -> None:
    assert "identity.federation.0.bogus: unknown key" in load_error(tmp_path, [entry(bogus=1)])
    no_audience = entry()
    del no_audience["audience"]
    assert "identity.federation.0.audience: Field required" in load_error(tmp_path, [no_audience])
    assert "identity.federation.0.audience" in load_error(tmp_path, [entry(audience="")])
    error = load_error(tmp_path, [entry(issuer="http://id.example.com")])
    assert "http:// is not safe for signing keys" in error
    error = load_error(tmp_path, [entry(issuer="http://id.example.com", jwksinsecure=True)])
    assert "loopback" in error
    error = load_error(tmp_path, [entry(jwks="http://id.example.com/jwks")])
    assert "identity.federation.0" in error
    assert "jwks" in error
    assert "quote it" in load_error(tmp_path, [entry(match={"run_attempt": 1})])
    assert "account" in load_error(tmp_path, [entry(account="no/slashes")])
    twice = [entry(), entry(jwks="/etc/hatchway/jwks.json")]
    assert "one key set per issuer" in load_error(tmp_path, twice)
    same_name = [entry(name="a"), entry(name="a", account="other")]
    assert "used twice" in load_error(tmp_path, same_name)
    # A file path issuer needs no URL form: a cluster's issuer is checked by string only.
    load(write(tmp_path, [entry(issuer="kubernetes/serviceaccount", jwks="/x")]), environ={})


def serve(config: Path, data: Path) -> subprocess.CompletedProcess[str]:
    """``hatchway serve`` that must stop at once (configuration refused)."""
    return subprocess.run(
        [HATCHWAY, "serve", "--config", str(config), "--data", str(data), "--addr", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD, "PATH": "/usr/bin:/bin"},
    )


def test_start_refuses_a_person_account_and_federation_without_the_token_service(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    config = write(tmp_path, [entry(account="admin", jwks=str(jwks))])
    hatchway_cli(data, "user", "add", "admin", "--password-stdin", stdin="pw-0123456789\n")
    done = serve(config, data)
    assert done.returncode == 2, done.stderr
    assert "identity.federation[0].account: admin is a person's account" in done.stderr

    config = write(tmp_path, [entry(jwks=str(jwks))], auth={"htpasswd": {"path": "/nonexistent"}})
    done = serve(config, data)
    assert done.returncode == 2, done.stderr
    assert "identity.federation: needs the built-in token service" in done.stderr

    config = write(tmp_path, [entry(jwks=str(tmp_path / "missing.json"))])
    done = serve(config, data)
    assert done.returncode == 2, done.stderr
    assert "cannot read JWKS file" in done.stderr

    jwks.write_text("not json")
    config = write(tmp_path, [entry(jwks=str(jwks))])
    done = serve(config, data)
    assert done.returncode == 2, done.stderr
    assert "identity.federation: JWKS file" in done.stderr
