"""Where registry credentials live: config.json itself, or a docker credential helper.

Routing follows docker's ``GetCredentialsStore``: ``credHelpers[server]`` first, then
``credsStore``, then the file. A helper is the program ``docker-credential-<name>`` spoken
to over stdin/stdout (docker-credential-helpers' protocol), so a secret never appears in
argv. With a helper, config.json keeps only the empty ``"auths": {"server": {}}`` entry,
as docker leaves it, so other tools still see which registries have logins.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Protocol

from hatchway.client.dockerconfig import Credentials, DockerConfig, hostname

__all__ = [
    "NOT_FOUND",
    "CredentialStore",
    "CredentialStoreError",
    "FileStore",
    "HelperStore",
    "credentials_lookup",
    "store_for",
]

NOT_FOUND = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"  # noqa: S105 - docker's marker: the Secret is an identity token
HELPER_TIMEOUT = 120.0  # a helper may wait for a keychain unlock prompt


class CredentialStoreError(Exception):
    """A store failed; one line, never a secret."""


class CredentialStore(Protocol):
    """docker-py's ``Store`` shape: per-server get/store/erase, and list."""

    @property
    def description(self) -> str:
        """Where the secrets go, for messages ("/root/.docker/config.json")."""
        ...

    def get(self, server: str) -> Credentials | None: ...

    def store(self, server: str, credentials: Credentials) -> None: ...

    def erase(self, server: str) -> bool:
        """Remove ``server``'s credentials; False when there were none."""
        ...

    def list(self) -> dict[str, str]:
        """``{server: username}`` for every stored login."""
        ...


class FileStore:
    """Credentials in config.json, base64 and unencrypted (docker's default)."""

    def __init__(self, config: DockerConfig) -> None:
        self.config = config

    @property
    def description(self) -> str:
        return str(self.config.path)

    def get(self, server: str) -> Credentials | None:
        found = self.config.get_auth(server)
        return found if found else None

    def store(self, server: str, credentials: Credentials) -> None:
        self.config.set_auth(server, credentials)
        self.config.save()

    def erase(self, server: str) -> bool:
        found = self.get(server) is not None
        if self.config.remove_auth(server):
            self.config.save()
        return found

    def list(self) -> dict[str, str]:
        listed = {}
        for server in self.config.servers():
            found = self.config.get_auth(server)
            if found:
                listed[server] = found.username
        return listed


class HelperStore:
    """``docker-credential-<name>``; with ``config``, the empty entry is kept there too."""

    def __init__(self, name: str, config: DockerConfig | None = None) -> None:
        self.name = name
        self.program = f"docker-credential-{name}"
        self.config = config

    @property
    def description(self) -> str:
        return f"the credential helper {self.program}"

    def _run(self, action: str, stdin: str = "") -> str:
        """Run one helper action; its answer, or CredentialStoreError (NOT_FOUND kept exact)."""
        path = shutil.which(self.program)
        if path is None:
            raise CredentialStoreError(f"{self.program} not found in PATH (credsStore/credHelpers)")
        try:
            done = subprocess.run(  # noqa: S603 - a program docker's config names, no shell
                [path, action],
                input=stdin.encode(),
                capture_output=True,
                timeout=HELPER_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialStoreError(f"{self.program} {action}: {exc}") from None
        out = done.stdout.decode("utf-8", errors="replace").strip()
        if done.returncode != 0:
            message = out or done.stderr.decode("utf-8", errors="replace").strip()
            message = (message.splitlines() or [f"exit status {done.returncode}"])[0]
            if message == NOT_FOUND:
                raise CredentialStoreError(NOT_FOUND)
            raise CredentialStoreError(f"{self.program} {action}: {message[:300]}")
        return out

    def get(self, server: str) -> Credentials | None:
        try:
            out = self._run("get", server)
        except CredentialStoreError as exc:
            if str(exc) == NOT_FOUND:
                return None
            raise
        try:
            answer = json.loads(out)
            username, secret = str(answer.get("Username", "")), str(answer["Secret"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CredentialStoreError(
                f"{self.program} get: answer is not JSON credentials"
            ) from None
        if username == TOKEN_USERNAME:
            return Credentials(identity_token=secret)
        return Credentials(username, secret)

    def store(self, server: str, credentials: Credentials) -> None:
        username, secret = credentials.username, credentials.password
        if credentials.identity_token:
            username, secret = TOKEN_USERNAME, credentials.identity_token
        payload = {"ServerURL": server, "Username": username, "Secret": secret}
        self._run("store", json.dumps(payload))
        if self.config is not None:
            self.config.set_auth(server, None)
            self.config.save()

    def erase(self, server: str) -> bool:
        try:
            self._run("erase", server)
            found = True
        except CredentialStoreError as exc:
            if str(exc) != NOT_FOUND:
                raise
            found = False
        if self.config is not None and self.config.remove_auth(server):
            self.config.save()
            found = True  # an entry (maybe from before the helper was configured) is gone
        return found

    def list(self) -> dict[str, str]:
        out = self._run("list")
        try:
            listed = json.loads(out or "{}")
        except ValueError:
            raise CredentialStoreError(f"{self.program} list: answer is not JSON") from None
        if not isinstance(listed, dict):
            raise CredentialStoreError(f"{self.program} list: answer is not a JSON object")
        return {str(k): str(v) for k, v in listed.items()}


def helper_name(config: DockerConfig, server: str) -> str:
    """The helper docker would use for ``server`` ("" for the file)."""
    helpers = config.cred_helpers
    return helpers.get(server) or helpers.get(hostname(server)) or config.creds_store


def store_for(config: DockerConfig, server: str) -> CredentialStore:
    """``credHelpers[server]`` > ``credsStore`` > config.json, as docker picks."""
    name = helper_name(config, server)
    if name:
        return HelperStore(name, config)
    return FileStore(config)


def credentials_lookup(config: DockerConfig | None = None) -> Callable[[str], Credentials | None]:
    """``server -> Credentials`` as docker finds them, for ``RegistryAuth(credentials=…)``.
    config.json is read and each helper asked once, when a registry first challenges."""
    found: dict[str, Credentials | None] = {}
    lock = threading.Lock()

    def lookup(server: str) -> Credentials | None:
        with lock:
            if server not in found:
                cfg = config or DockerConfig.load()
                found[server] = store_for(cfg, server).get(server)
            return found[server]

    return lookup
