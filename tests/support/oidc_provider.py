"""A real OpenID provider for the OIDC sign-in tests: the npm package ``oidc-provider``
(version 8, under Debian's node 20) run by ``oidcprovider/provider.mjs`` on 127.0.0.1.

    provider = start_oidc_provider(tmp, port, redirect_uris=[server.url + CALLBACK])
    provider.set_user("alice", groups=["registry-admins"])   # claims at the next sign-in
    provider.set_user("alice", disabled=True)                # the provider drops her

Its dev interactions give a login form that accepts any login (the password is ignored)
and a consent page. ``scripts/test`` installs it with ``npm ci`` from the lock file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent / "oidcprovider"
SCRIPT = HERE / "provider.mjs"
MODULES = HERE / "node_modules" / "oidc-provider"
CLIENT_ID = "hatchway"
CLIENT_SECRET = "hatchway-test-client-secret-0123456789"


def have_provider() -> bool:
    return shutil.which("node") is not None and MODULES.is_dir()


@dataclass
class OidcProvider:
    issuer: str
    users_file: Path
    secret_file: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def set_user(
        self,
        login: str,
        *,
        groups: list[str] | None = None,
        disabled: bool = False,
        username: str | None = None,
    ) -> None:
        """What the provider says about ``login`` from now on (read at each lookup)."""
        users: dict[str, Any] = json.loads(self.users_file.read_text())
        entry: dict[str, Any] = {"groups": groups or [], "disabled": disabled}
        if username is not None:
            entry["username"] = username
        users[login] = entry
        temporary = self.users_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(users))
        temporary.replace(self.users_file)  # atomic: the provider never reads half a file

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The ``identity.oidc`` section for hatchway."""
        found: dict[str, Any] = {
            "issuer": self.issuer,
            "clientid": CLIENT_ID,
            "clientsecretfile": str(self.secret_file),
            "scopes": ["openid", "profile", "email", "groups"],
            "usernameclaim": "preferred_username",
            "groupsclaim": "groups",
            "admingroups": ["registry-admins"],
        }
        found.update(extra)
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def client_secret_file(directory: Path) -> Path:
    path = directory / "oidc-client-secret"
    path.write_text(CLIENT_SECRET + "\n")
    os.chmod(path, 0o600)
    return path


def start_oidc_provider(
    directory: Path, port: int, *, redirect_uris: list[str], refresh_tokens: bool = True
) -> OidcProvider:
    """Start the provider on ``127.0.0.1:port`` (issuer ``http://127.0.0.1:port``);
    ``refresh_tokens=False``: a client without the refresh_token grant."""
    if not have_provider():
        raise RuntimeError(
            "the OIDC tests need node and oidc-provider: run ./scripts/test "
            "(npm ci in tests/support/oidcprovider)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    users = directory / "users.json"
    users.write_text("{}")
    config = directory / "provider.json"
    config.write_text(
        json.dumps(
            {
                "port": port,
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "redirectUris": redirect_uris,
                "usersFile": str(users),
                "refreshTokens": refresh_tokens,
            }
        )
    )
    log_path = directory / "provider.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["node", str(SCRIPT), str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=HERE,
            start_new_session=True,
        )
    issuer = f"http://127.0.0.1:{port}"
    found = OidcProvider(issuer, users, client_secret_file(directory), process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oidc-provider exited: {log_path.read_text()}")
        try:
            if httpx.get(issuer + "/.well-known/openid-configuration", timeout=1).is_success:
                return found
        except httpx.HTTPError:
            time.sleep(0.1)
    found.stop()
    raise RuntimeError(f"oidc-provider did not start: {log_path.read_text()}")
