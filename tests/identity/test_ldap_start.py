"""``hatchway serve`` with ``identity.ldap``: a bad filter stops the start, a directory that
does not answer is only a warning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.identity.conftest import ldap_settings
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, SERVICE
from tests.support.server import HATCHWAY, free_port, start_server
from tests.support.slapd import Slapd


def _config(tmp_path: Path, ldap: dict[str, object]) -> Path:
    path = tmp_path / "config.yml"
    doc = {"auth": {"token": {}}, "identity": {"ldap": ldap}}
    path.write_text(json.dumps(doc))
    return path


def test_bad_filter_stops_the_start(slapd: Slapd, tmp_path: Path) -> None:
    config = _config(tmp_path, ldap_settings(slapd, userfilter="(&(uid={username})"))
    done = subprocess.run(
        [HATCHWAY, "serve", "--config", str(config), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "identity.ldap.userfilter" in done.stderr
    assert "RFC 4515" in done.stderr


def test_unreadable_password_file_stops_the_start(slapd: Slapd, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-file")
    config = _config(tmp_path, ldap_settings(slapd, bindpasswordfile=missing))
    done = subprocess.run(
        [HATCHWAY, "serve", "--config", str(config), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "identity.ldap.bindpasswordfile" in done.stderr


def test_unreachable_directory_is_a_warning(slapd: Slapd, tmp_path: Path) -> None:
    settings = ldap_settings(slapd, url=f"ldap://127.0.0.1:{free_port()}", timeout="1s")
    doc = {"version": "0.1", "auth": {"token": {}}, "identity": {"ldap": settings}}
    server = start_server(
        tmp_path, config=json.dumps(doc), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    try:
        assert "identity.ldap" in server.log()
        assert "WARNING" in server.log().upper()
        response = server.client.get(
            "/auth/token", params={"service": SERVICE}, auth=(ADMIN, ADMIN_PASSWORD)
        )
        assert response.status_code == 200
        response = server.client.get(
            "/auth/token", params={"service": SERVICE}, auth=("alice", "alice-Pw-1")
        )
        assert response.status_code == 503
    finally:
        server.stop()
