"""Helpers for end-to-end tests of the gate: token-mode servers, the account CLI, skopeo
with logins, JWT inspection and the server's access log."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import HATCHWAY, Server, start_server

ADMIN = "admin"
ADMIN_PASSWORD = "admin-e2e-Secret-1"
SERVICE = "hatchway"

HAVE_SKOPEO = shutil.which("skopeo") is not None
HTPASSWD = shutil.which("htpasswd")


def token_config(access: Sequence[dict[str, Any]] | None = None, **token: Any) -> str:
    """A config file for the built-in token service (JSON is YAML)."""
    doc: dict[str, Any] = {
        "version": "0.1",
        "auth": {"token": dict(token)},
        "storage": {"delete": {"enabled": True}},
    }
    if access is not None:
        doc["access"] = list(access)
    return json.dumps(doc)


def start_token_server(
    tmp: Path, access: Sequence[dict[str, Any]] | None = None, **token: Any
) -> Server:
    """``hatchway serve`` in token mode, one worker, the admin's password from the env."""
    return start_server(
        tmp,
        config=token_config(access, **token),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )


def hatchway_cli(
    data: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a ``hatchway`` command against the data directory a server uses."""
    cmd = [HATCHWAY, *args, "--data", str(data)]
    result = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, (cmd, result.stdout, result.stderr)
    return result


def add_user(server: Server, name: str, password: str, *, admin: bool = False) -> None:
    extra = ["--admin"] if admin else []
    hatchway_cli(
        server.data, "user", "add", name, *extra, "--password-stdin", stdin=password + "\n"
    )


def create_pat(
    server: Server, user: str, name: str, scopes: Sequence[str], expires: str = "30d"
) -> str:
    """``hatchway token create``; the secret is the last line of its output."""
    args = ["token", "create", "--user", user, "--name", name, "--expires", expires]
    for scope in scopes:
        args += ["--scope", scope]
    out = hatchway_cli(server.data, *args).stdout
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("hw_"), out
    return secret


# -- tokens ------------------------------------------------------------------------------


def get_token(
    server: Server,
    scopes: Sequence[str] = (),
    auth: tuple[str, str] | None = None,
    **params: str,
) -> str:
    """A registry JWT from ``GET /auth/token`` (asserting it is issued)."""
    query: list[tuple[str, str]] = [("service", SERVICE)]
    query += [("scope", s) for s in scopes]
    query += list(params.items())
    r = httpx.get(server.url + "/auth/token", params=tuple(query), auth=auth, timeout=30)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert isinstance(token, str)
    return token


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_header(token: str) -> dict[str, Any]:
    """The JWT's header, not verified (for inspection only)."""
    decoded: dict[str, Any] = json.loads(b64url_decode(token.split(".", maxsplit=1)[0]))
    return decoded


def jwt_payload(token: str) -> dict[str, Any]:
    """The JWT's claims, not verified (for inspection only)."""
    decoded: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return decoded


def access_claim(token: str) -> dict[tuple[str, str], set[str]]:
    """``{(type, name): {actions}}`` from the token's ``access`` claim."""
    return {
        (entry["type"], entry["name"]): set(entry["actions"])
        for entry in jwt_payload(token)["access"]
    }


# -- challenges --------------------------------------------------------------------------

_PARAM = re.compile(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ParsedChallenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> ParsedChallenge:
    """``Bearer realm="…",service="…",scope="…",error="…"`` -> scheme and parameters."""
    scheme, _, rest = header.partition(" ")
    params = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _PARAM.findall(rest)}
    return ParsedChallenge(scheme, params)


def challenge_of(response: httpx.Response) -> ParsedChallenge:
    header = response.headers.get("WWW-Authenticate")
    assert header is not None, (response.status_code, dict(response.headers), response.text)
    return parse_challenge(header)


# -- the server's access log -------------------------------------------------------------

_ACCESS = re.compile(r'hatchway\.access: \S+ \[[^\]]*\] "(\S+) (\S+) HTTP/[0-9.]+" (\d{3}) ')


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    status: int


def access_log(server: Server, path_contains: str = "") -> list[Logged]:
    """Requests the server logged (in order), those whose path holds ``path_contains``."""
    found = []
    for line in server.log().splitlines():
        m = _ACCESS.search(line)
        if m and path_contains in m.group(2):
            found.append(Logged(m.group(1), m.group(2), int(m.group(3))))
    return found


# -- skopeo ------------------------------------------------------------------------------


class Skopeo:
    """skopeo with a private HOME, auth file (``REGISTRY_AUTH_FILE``), policy and config."""

    def __init__(self, home: Path) -> None:
        self.home = home
        (home / "registries.d").mkdir(parents=True)
        (home / "run").mkdir()
        (home / "registries.conf").write_text("")
        self.auth_file = home / "auth.json"
        self.auth_file.write_text('{"auths": {}}')
        policy = {"default": [{"type": "insecureAcceptAnything"}]}
        (home / "policy.json").write_text(json.dumps(policy))
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "REGISTRY_AUTH_FILE": str(self.auth_file),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
        }

    def run(
        self, *args: str, check: bool = True, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        cmd = [
            "skopeo",
            "--policy",
            str(self.home / "policy.json"),
            "--registries.d",
            str(self.home / "registries.d"),
            *args,
        ]
        result = subprocess.run(
            cmd, input=stdin, capture_output=True, env=self.env, timeout=120, check=False
        )
        if check:
            assert result.returncode == 0, (cmd, result.stderr.decode(errors="replace"))
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)

    def login(
        self, addr: str, user: str, password: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """``skopeo login --password-stdin`` (the password never on the command line)."""
        return self.run(
            "login",
            "--tls-verify=false",
            "-u",
            user,
            "--password-stdin",
            addr,
            stdin=(password + "\n").encode(),
            check=check,
        )

    def logout(self, addr: str) -> None:
        self.run("logout", addr)

    def push(
        self, layout: Path, tag: str, ref: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Copy ``oci:<layout>:<tag>`` to ``ref`` (a ``docker://`` reference)."""
        return self.run("copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}", ref, check=check)

    def pull(
        self, ref: str, layout: Path, tag: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Copy ``ref`` out to ``oci:<layout>:<tag>``."""
        return self.run("copy", "--src-tls-verify=false", ref, f"oci:{layout}:{tag}", check=check)


def stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode(errors="replace")


def log_mark(server: Server) -> int:
    """How many requests the server has logged so far (to look only at later ones)."""
    return len(access_log(server))


def requests_on(server: Server, repository: str, since: int = 0) -> list[Logged]:
    """Logged requests on ``repository`` (after the ``since``-th logged request)."""
    return [e for e in access_log(server)[since:] if e.path.startswith(f"/v2/{repository}/")]


def assert_refused(
    server: Server, repository: str, since: int = 0, *, reads_allowed: bool = False
) -> None:
    """The registry answered requests on ``repository`` (after ``since``) with 401 or 403:
    no 5xx, and no 2xx/404 that would mean the request got past the gate. With
    ``reads_allowed`` (the client may pull there), only writes must have been refused."""
    # aiohttp writes an access-log line after the response has gone out, so a client
    # may have exited before the line for its last (refused) request is in the log.
    deadline = time.monotonic() + 3
    while True:
        logged = requests_on(server, repository, since)
        checked = [e for e in logged if not reads_allowed or e.method not in ("GET", "HEAD")]
        if checked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert logged, f"no request on {repository} reached the registry"
    assert checked, (repository, logged)
    assert {e.status for e in checked} <= {401, 403}, (repository, logged)
    assert all(e.status < 500 for e in logged), (repository, logged)
