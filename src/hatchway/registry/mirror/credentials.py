"""Where an upstream's credentials come from: the config (``username``/``password``) or a
docker credential helper (``credentialhelper: NAME``).

A helper is the program ``docker-credential-NAME`` on the server's PATH, spoken to as
docker does: ``get`` with the registry on stdin (its host, ``HOST[:PORT]``; Docker Hub's
is ``https://index.docker.io/v1/``, the name ``docker login`` stores it under), JSON
``{"Username": ..., "Secret": ...}`` on stdout. ``credentials not found`` (any exit with
that message) means anonymous. A username of ``<token>`` means the secret is an identity
token (an OAuth2 refresh token for the upstream's token service), as docker reads it.

The answer is kept for :data:`KEEP` seconds (cloud helpers hand out tokens that last
hours) and asked for again at once when the upstream refuses it. Nothing a helper says is
logged or put into an error: a failure names the helper and its exit status only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass

from hatchway.config.proxy import Upstream

KEEP = 300.0
IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 - docker's marker, not a secret
_NOT_FOUND = b"credentials not found"
_DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset({"registry-1.docker.io", "index.docker.io", "docker.io"})
_MAX_OUTPUT = 64 * 1024


class HelperFailed(Exception):
    """The credential helper gave no usable answer (the message names no secret)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    secret: str = ""

    @property
    def identity_token(self) -> bool:
        """The secret is an OAuth2 refresh token, not a password."""
        return self.username == IDENTITY_TOKEN_USER

    def __repr__(self) -> str:  # never the secret
        return f"Credentials(username={self.username!r})"


def helper_server(upstream: Upstream) -> str:
    """What the helper is asked about: Docker Hub's index URL, else ``HOST[:PORT]``."""
    host = upstream.host
    return _DOCKER_HUB_SERVER if host in _DOCKER_HUB_HOSTS else host


class CredentialSource:
    """The credentials for one upstream, or None (anonymous)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._kept: tuple[Credentials | None, float] | None = None
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        u = self.upstream
        return u.credentialhelper is not None or (u.username is not None and bool(u.password))

    async def get(self) -> Credentials | None:
        u = self.upstream
        if u.credentialhelper is None:
            if u.username is not None and u.password:
                return Credentials(u.username, u.password)
            return None
        async with self._lock:
            if self._kept is not None and self._kept[1] > time.monotonic():
                return self._kept[0]
            found = await self._ask(u.credentialhelper)
            self._kept = (found, time.monotonic() + KEEP)
            return found

    def refused(self) -> None:
        """The upstream refused what we sent: ask the helper again next time."""
        self._kept = None

    async def _ask(self, name: str) -> Credentials | None:
        program = f"docker-credential-{name}"
        path = shutil.which(program)
        if path is None:
            raise HelperFailed(f"credential helper {program} not found on PATH")
        try:
            process = await asyncio.create_subprocess_exec(
                path,
                "get",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=dict(os.environ),
            )
        except OSError as exc:
            raise HelperFailed(
                f"credential helper {program} could not run: {exc.strerror}"
            ) from None
        try:
            async with asyncio.timeout(self.upstream.timeout):
                out, _ = await process.communicate(helper_server(self.upstream).encode() + b"\n")
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise HelperFailed(f"credential helper {program} did not answer in time") from None
        return _parse(program, process.returncode, out[:_MAX_OUTPUT])


def _parse(program: str, status: int | None, out: bytes) -> Credentials | None:
    """The one place that reads a helper's answer."""
    if _NOT_FOUND in out.lower():
        return None
    if status != 0:
        raise HelperFailed(f"credential helper {program} failed (exit status {status})")
    try:
        doc = json.loads(out)
        username, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise HelperFailed(f"credential helper {program} answered no credentials") from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise HelperFailed(f"credential helper {program} answered no credentials")
    if not secret:
        return None
    return Credentials(username, secret)
