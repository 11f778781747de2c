"""Image references as the client takes them: ``host[:port]/name[:tag|@digest]``.

The registry host is always explicit (no docker.io default): hatchway's client talks to the
registry it is told, and a reference that starts with a repository path is a mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_HOST_RE = re.compile(r"(?:[a-zA-Z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d{1,5})?")


class InvalidReference(ValueError):
    """A reference that does not parse; the message says which part is wrong."""


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str, *, allow_bare: bool = False) -> Reference:
    """Parse ``host[:port]/name[:tag][@digest]``; a missing tag means ``latest``.

    ``allow_bare`` accepts a repository with neither tag nor digest and leaves both empty
    (``hatchway tags`` takes a repository, not an image).
    """
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference(f"invalid digest {digest!r} in {text!r}")
    host, sep, path = rest.partition("/")
    if not sep or not path:
        raise InvalidReference(f"{text!r} names no registry: use host[:port]/name[:tag]")
    if not _HOST_RE.fullmatch(host):
        raise InvalidReference(f"invalid registry host {host!r} in {text!r}")
    tag = None
    name, colon, maybe_tag = path.rpartition(":")
    if colon and "/" not in maybe_tag:
        if not _TAG_RE.fullmatch(maybe_tag):
            raise InvalidReference(f"invalid tag {maybe_tag!r} in {text!r}")
        path, tag = name, maybe_tag
    if not _NAME_RE.fullmatch(path) or len(path) > 255:
        raise InvalidReference(f"invalid repository name {path!r} in {text!r}")
    if tag is None and digest is None and not allow_bare:
        tag = "latest"
    return Reference(host, path, tag, digest)
