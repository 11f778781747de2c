"""Docker's ``config.json``, read and written the way the docker CLI does.

Other tools (docker, skopeo, podman, buildx) share this file, so hatchway touches only the
entries it changes and keeps every other key, even ones it does not know (docker itself
drops them). Output matches docker's ``json.MarshalIndent(cfg, "", "\\t")`` byte for byte
for the keys docker knows: tab indent, no final newline, ``auths`` sorted, ``<>&`` escaped.
Writes are atomic (temp file, fsync, rename) with mode 0600, since the file holds secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DOCKER_HUB",
    "Credentials",
    "DockerConfig",
    "DockerConfigError",
    "config_path",
    "hostname",
    "normalize_server",
]

DOCKER_HUB = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
# Go's encoder escapes these inside strings; they can appear nowhere else in JSON text.
_GO_ESCAPES = {c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}
# Entry fields that hold credentials: replaced together, never left half-updated.
_SECRET_FIELDS = ("username", "password", "auth", "identitytoken", "registrytoken")


class DockerConfigError(Exception):
    """config.json cannot be read or written (never carries a secret)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a registry login needs. An ``identity_token`` (an OAuth2 refresh token) stands
    in for the password, as in docker's ``identitytoken``."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)


def hostname(server: str) -> str:
    """docker's ``ConvertToHostname``: drop the scheme and any path, keep ``host:port``."""
    for scheme in ("http://", "https://"):
        if server.startswith(scheme):
            server = server[len(scheme) :]
            break
    return server.split("/", 1)[0]


def normalize_server(server: str | None) -> str:
    """The key docker files credentials under: Docker Hub's names all become
    ``https://index.docker.io/v1/``; any other server is its bare ``host[:port]``."""
    if not server or server == DOCKER_HUB:
        return DOCKER_HUB
    host = hostname(server.strip())
    if host.lower() in _HUB_NAMES:
        return DOCKER_HUB
    return host


def config_path(env: dict[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (``$HOME`` as docker)."""
    environ = os.environ if env is None else env
    directory = environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def go_json(data: Any) -> str:
    """JSON text as Go's ``json.MarshalIndent(v, "", "\\t")`` writes it."""
    text = json.dumps(data, indent="\t", ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def _decode_auth(server: str, encoded: str) -> tuple[str, str]:
    if not encoded:
        return "", ""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise DockerConfigError(f'invalid "auth" for {server!r} in config.json') from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise DockerConfigError(f'invalid "auth" for {server!r} in config.json')
    return username, password.strip("\x00")


class DockerConfig:
    """One config.json: the whole document in ``data``, with typed accessors for the keys
    logins use. ``save()`` writes back everything, changed or not."""

    def __init__(self, path: Path, data: dict[str, Any] | None = None) -> None:
        self.path = path
        self.data: dict[str, Any] = data if data is not None else {}

    @classmethod
    def load(cls, path: Path | None = None) -> DockerConfig:
        path = path or config_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise DockerConfigError(f"cannot read {path}: {exc.strerror}") from None
        if not text.strip():
            return cls(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DockerConfigError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise DockerConfigError(f"{path} does not hold a JSON object")
        return cls(path, data)

    # -- what logins read -------------------------------------------------------------

    @property
    def creds_store(self) -> str:
        value = self.data.get("credsStore")
        return value if isinstance(value, str) else ""

    @property
    def cred_helpers(self) -> dict[str, str]:
        value = self.data.get("credHelpers")
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if isinstance(v, str)}

    def _auths(self) -> dict[str, Any]:
        auths = self.data.get("auths")
        if not isinstance(auths, dict):
            auths = {}
            # First, where docker's struct puts it (the rest keeps the file's order).
            self.data = {"auths": auths, **{k: v for k, v in self.data.items() if k != "auths"}}
        return auths

    def _key(self, server: str) -> str | None:
        """The ``auths`` key for ``server``: exact, else a legacy key with a scheme or path
        that names the same host (docker's file store does the same)."""
        auths = self.data.get("auths")
        if not isinstance(auths, dict):
            return None
        if server in auths:
            return server
        wanted = hostname(server)
        return next((k for k in auths if hostname(k) == wanted), None)

    def servers(self) -> list[str]:
        auths = self.data.get("auths")
        return list(auths) if isinstance(auths, dict) else []

    def get_auth(self, server: str) -> Credentials | None:
        """Credentials stored in the file for ``server`` (None if there is no entry)."""
        key = self._key(server)
        if key is None:
            return None
        entry = self.data["auths"][key]
        if not isinstance(entry, dict):
            return None
        username, password = _decode_auth(key, str(entry.get("auth") or ""))
        token = entry.get("identitytoken")
        return Credentials(username, password, token if isinstance(token, str) else "")

    # -- what logins change -----------------------------------------------------------

    def set_auth(self, server: str, credentials: Credentials | None) -> None:
        """File ``credentials`` under ``server`` as docker encodes them (``auth`` =
        base64 "user:password", ``identitytoken``); None leaves the empty entry docker
        keeps when a helper holds the secret. Other fields of the entry stay."""
        auths = self._auths()
        old = auths.get(server)
        entry = (
            {k: v for k, v in old.items() if k not in _SECRET_FIELDS}
            if isinstance(old, dict)
            else {}
        )
        if credentials is not None:
            if credentials.username or credentials.password:
                raw = f"{credentials.username}:{credentials.password}".encode()
                entry["auth"] = base64.b64encode(raw).decode("ascii")
            if credentials.identity_token:
                entry["identitytoken"] = credentials.identity_token
        auths[server] = entry
        self.data["auths"] = dict(sorted(auths.items()))

    def remove_auth(self, server: str) -> bool:
        """Drop the entry for ``server`` (and legacy spellings of it); True if one existed."""
        removed = False
        while (key := self._key(server)) is not None:
            del self.data["auths"][key]
            removed = True
        return removed

    def save(self) -> None:
        """Write atomically: a reader sees the old file or the new one, never a part."""
        target = Path(os.path.realpath(self.path))  # a symlinked config.json stays a link
        try:
            _make_dirs(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        except OSError as exc:
            raise DockerConfigError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(go_json(self.data))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise DockerConfigError(f"cannot write {self.path}: {exc.strerror}") from None
        _fsync_dir(target.parent)


def _make_dirs(directory: Path) -> None:
    """``mkdir -p`` with 0700 for every directory created (docker: ``MkdirAll(dir, 0700)``)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
