"""``identity.oidc`` is checked when the configuration loads (unknown keys, an issuer
that is not https, scopes without openid) and when the server starts (an unreadable
client secret stops it; a provider that does not answer is only a warning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hatchway.config.load import load
from hatchway.errors import ConfigError
from tests.oidc.conftest import oidc_server_config
from tests.support.authkit import ADMIN_PASSWORD
from tests.support.oidc_provider import client_secret_file
from tests.support.server import free_port, start_server

README: dict[str, Any] = {
    "issuer": "https://id.example.com",
    "clientid": "hatchway",
    "clientsecretfile": "/run/secrets/oidc",
    "scopes": ["openid", "profile", "email", "groups"],
    "usernameclaim": "preferred_username",
    "groupsclaim": "groups",
    "admingroups": ["registry-admins"],
}


def _load(tmp_path: Path, oidc: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"auth": {"token": {}}, "identity": {"oidc": oidc}}))
    return load(path, environ=environ or {})


def test_the_readme_example_loads(tmp_path: Path) -> None:
    oidc = _load(tmp_path, README).identity.oidc
    assert oidc.issuer == "https://id.example.com"
    assert oidc.scopes == ["openid", "profile", "email", "groups"]
    assert oidc.admingroups == ["registry-admins"]
    assert oidc.display_name == "id.example.com"
    assert oidc.discovery_url == "https://id.example.com/.well-known/openid-configuration"


def test_defaults(tmp_path: Path) -> None:
    oidc = _load(
        tmp_path, {"issuer": "https://id.example.com/", "clientid": "h", "clientsecretfile": "/s"}
    ).identity.oidc
    assert oidc.scopes == ["openid", "profile", "email"]
    assert oidc.usernameclaim == "preferred_username"
    assert oidc.groupsclaim == "groups"
    assert oidc.admingroups == []
    assert oidc.discovery_url == "https://id.example.com/.well-known/openid-configuration"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clientsecret": "in-the-file"}, "identity.oidc.clientsecret: unknown key"),
        ({"issuer": "http://id.example.com"}, "https"),
        ({"issuer": "https://user:pw@id.example.com"}, "no credentials"),
        ({"issuer": "ftp://id.example.com"}, "https"),
        ({"scopes": ["profile", "email"]}, "must include openid"),
        ({"scopes": ["openid", "two words"]}, "is not a scope"),
        ({"clientid": ""}, "clientid"),
        ({"usernameclaim": ""}, "usernameclaim"),
        ({"admingroups": [""]}, "must not be empty"),
    ],
)
def test_bad_sections_are_refused_naming_the_key(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, {**README, **change})


def test_a_missing_key_is_refused(tmp_path: Path) -> None:
    section = {k: v for k, v in README.items() if k != "clientid"}
    with pytest.raises(ConfigError, match=r"identity\.oidc\.clientid"):
        _load(tmp_path, section)


def test_http_is_allowed_to_a_loopback_provider_only(tmp_path: Path) -> None:
    for issuer in ("http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:9000/op"):
        assert _load(tmp_path, {**README, "issuer": issuer}).identity.oidc.issuer == issuer
    with pytest.raises(ConfigError, match="loopback"):
        _load(tmp_path, {**README, "issuer": "http://10.0.0.1"})


def test_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "HATCHWAY_IDENTITY_OIDC_SCOPES": "openid, profile groups",
        "HATCHWAY_IDENTITY_OIDC_ADMINGROUPS": '["registry-admins", "ops"]',
    }
    oidc = _load(tmp_path, README, environ).identity.oidc
    assert oidc.scopes == ["openid", "profile", "groups"]
    assert oidc.admingroups == ["registry-admins", "ops"]


def test_an_unreadable_client_secret_stops_the_server(tmp_path: Path) -> None:
    settings = {**README, "issuer": "http://127.0.0.1:9", "clientsecretfile": str(tmp_path / "no")}
    with pytest.raises(RuntimeError, match=r"identity\.oidc\.clientsecretfile: cannot read"):
        start_server(
            tmp_path,
            config=oidc_server_config(settings),
            env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )


def test_a_provider_down_at_start_is_a_warning_and_a_clear_page(tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = {**README, "issuer": issuer, "clientsecretfile": str(client_secret_file(tmp_path))}
    server = start_server(
        tmp_path,
        config=oidc_server_config(settings),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        assert "identity.oidc" in server.log()
        assert "OIDC sign-ins fail until it answers" in server.log()
        page = httpx.get(server.url + "/ui/sign-in")
        assert "Sign in with 127.0.0.1" in page.text
        started = httpx.get(server.url + "/ui/sign-in/oidc")
        assert started.status_code == 503
        assert "cannot be reached right now" in started.text
        assert started.headers["Content-Type"].startswith("text/html")
        # Password sign-in keeps working meanwhile.
        token = httpx.get(server.url + "/auth/token", auth=("admin", ADMIN_PASSWORD))
        assert token.status_code == 200
    finally:
        server.stop()


def test_without_the_section_there_is_no_button(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        config='{"version": "0.1", "auth": {"token": {}}}',
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        assert "Sign in with" not in httpx.get(server.url + "/ui/sign-in").text
        assert httpx.get(server.url + "/ui/sign-in/oidc").status_code == 404
    finally:
        server.stop()


def test_the_readme_section_loads_as_written(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("## Identity: OIDC single sign-on", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.yml"
    path.write_text(block)
    identity = load(path, environ={}).identity
    assert identity is not None
    assert {k: getattr(identity.oidc, k) for k in README} == README
