"""config.json as docker reads and writes it: names, encoding, byte-exact output, unknown
keys kept, atomic 0600 writes."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hatchway.client.dockerconfig import (
    DOCKER_HUB,
    Credentials,
    DockerConfig,
    DockerConfigError,
    config_path,
    go_json,
    hostname,
    normalize_server,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("given", "key"),
    [
        (None, DOCKER_HUB),
        ("", DOCKER_HUB),
        ("docker.io", DOCKER_HUB),
        ("index.docker.io", DOCKER_HUB),
        ("registry-1.docker.io", DOCKER_HUB),
        ("https://index.docker.io/v1/", DOCKER_HUB),
        ("https://registry-1.docker.io/v2/", DOCKER_HUB),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
        ("https://reg.example.com:8443/v2/", "reg.example.com:8443"),
        ("reg.example.com", "reg.example.com"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_server_names_as_docker_files_them(given: str | None, key: str) -> None:
    assert normalize_server(given) == key


def test_hostname_is_convert_to_hostname() -> None:
    assert hostname("https://h:1/v1/") == "h:1"
    assert hostname("http://h") == "h"
    assert hostname("h:1/x") == "h:1"


def test_config_path_follows_docker_config_then_home(tmp_path: Path) -> None:
    assert config_path({"DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert config_path({"HOME": str(tmp_path)}) == tmp_path / ".docker" / "config.json"


def test_fresh_file_is_byte_for_byte_docker(tmp_path: Path) -> None:
    """docker writes MarshalIndent with tabs, no final newline, auths keys sorted."""
    path = tmp_path / "d" / "config.json"
    cfg = DockerConfig.load(path)
    cfg.set_auth("reg.b:5000", Credentials("bob", "pw:with:colons"))
    cfg.set_auth("reg.a:5000", Credentials("alice", "", "hwr_refresh"))
    cfg.save()
    auth_b = base64.b64encode(b"bob:pw:with:colons").decode()
    auth_a = base64.b64encode(b"alice:").decode()
    assert path.read_text() == (
        "{\n"
        '\t"auths": {\n'
        '\t\t"reg.a:5000": {\n'
        f'\t\t\t"auth": "{auth_a}",\n'
        '\t\t\t"identitytoken": "hwr_refresh"\n'
        "\t\t},\n"
        '\t\t"reg.b:5000": {\n'
        f'\t\t\t"auth": "{auth_b}"\n'
        "\t\t}\n"
        "\t}\n"
        "}"
    )
    again = DockerConfig.load(path)
    assert again.get_auth("reg.b:5000") == Credentials("bob", "pw:with:colons")
    assert again.get_auth("reg.a:5000") == Credentials("alice", "", "hwr_refresh")
    assert again.get_auth("reg.c") is None


def test_unknown_keys_and_order_survive(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    other = {"auth": base64.b64encode(b"o:p").decode(), "email": "o@x"}
    original: dict[str, Any] = {
        "psFormat": "table {{.ID}}",
        "auths": {
            "other:1": other,
            "mine:2": {"auth": "bWU6b2xk", "email": "me@x", "x-custom": [1, 2]},
        },
        "credHelpers": {"gcr.io": "gcloud"},
        "currentContext": "remote",
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        "weird": {"nested": [True, None, 1.5, "<&>"]},
    }
    path.write_text(json.dumps(original))
    cfg = DockerConfig.load(path)
    cfg.set_auth("mine:2", Credentials("me", "new"))
    cfg.save()
    data = json.loads(path.read_text())
    assert list(data) == list(original)
    for key in ("psFormat", "credHelpers", "currentContext", "proxies", "weird"):
        assert data[key] == original[key]
    assert data["auths"]["other:1"] == other
    # The entry keeps its non-credential fields; the credential fields are replaced.
    assert data["auths"]["mine:2"] == {
        "email": "me@x",
        "x-custom": [1, 2],
        "auth": base64.b64encode(b"me:new").decode(),
    }
    assert "\\u003c\\u0026\\u003e" in path.read_text()  # Go's HTML-safe escaping


def test_go_json_escapes_like_encoding_json() -> None:
    assert go_json({"a": "<x>&\u2028é"}) == '{\n\t"a": "\\u003cx\\u003e\\u0026\\u2028é"\n}'
    assert go_json({}) == "{}"
    assert go_json({"auths": {}}) == '{\n\t"auths": {}\n}'


def test_written_0600_dirs_0700_nothing_left_behind(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.json"
    cfg = DockerConfig.load(path)
    cfg.set_auth("h:1", Credentials("u", "p"))
    cfg.save()
    assert mode(path) == 0o600
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700
    assert os.listdir(path.parent) == ["config.json"]


def test_existing_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{}")
    path.chmod(0o644)
    cfg = DockerConfig.load(path)
    cfg.set_auth("h:1", Credentials("u", "p"))
    cfg.save()
    assert mode(path) == 0o600
    assert mode(tmp_path) == stat.S_IMODE(tmp_path.stat().st_mode)  # not our dir to change


def test_symlinked_config_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "docker.json"
    real.parent.mkdir()
    real.write_text('{"auths": {}}')
    link = tmp_path / "config.json"
    link.symlink_to(real)
    cfg = DockerConfig.load(link)
    cfg.set_auth("h:1", Credentials("u", "p"))
    cfg.save()
    assert link.is_symlink()
    assert json.loads(real.read_text())["auths"]["h:1"]["auth"]


def test_invalid_json_is_an_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"auths": ')
    with pytest.raises(DockerConfigError, match="not valid JSON"):
        DockerConfig.load(path)
    assert path.read_text() == '{"auths": '


def test_bad_auth_field_names_the_server_not_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"h:1": {"auth": "not base64!"}}}))
    with pytest.raises(DockerConfigError, match="h:1") as err:
        DockerConfig.load(path).get_auth("h:1")
    assert "not base64" not in str(err.value)


def test_missing_and_empty_files_are_empty_configs(tmp_path: Path) -> None:
    assert DockerConfig.load(tmp_path / "none.json").data == {}
    (tmp_path / "empty.json").write_text("  \n")
    assert DockerConfig.load(tmp_path / "empty.json").data == {}


def test_legacy_spellings_are_found_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    auth = base64.b64encode(b"u:p").decode()
    path.write_text(json.dumps({"auths": {"https://h:1": {"auth": auth}, "x:2": {}}}))
    cfg = DockerConfig.load(path)
    assert cfg.get_auth("h:1") == Credentials("u", "p")
    assert cfg.remove_auth("h:1")
    assert not cfg.remove_auth("h:1")
    assert cfg.data["auths"] == {"x:2": {}}


def test_empty_entry_for_helpers(tmp_path: Path) -> None:
    cfg = DockerConfig.load(tmp_path / "config.json")
    cfg.set_auth("h:1", Credentials("u", "p"))
    cfg.set_auth("h:1", None)
    assert cfg.data == {"auths": {"h:1": {}}}
    assert cfg.get_auth("h:1") == Credentials()
    assert not cfg.get_auth("h:1")


def test_credentials_repr_hides_secrets() -> None:
    text = repr(Credentials("alice", "s3cret-pw", "hwr_tok"))
    assert "alice" in text
    assert "s3cret" not in text
    assert "hwr_tok" not in text
