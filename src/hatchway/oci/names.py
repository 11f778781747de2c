"""Repository names and tags, by the distribution-spec's grammar."""

from __future__ import annotations

import re

from hatchway.errors import NAME_INVALID, TAG_INVALID, HatchwayError

# distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and NAME_RE.fullmatch(name) is not None


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise ``NAME_INVALID``.

    The grammar admits no ``..``, no leading ``/`` and no empty component, so a valid
    name is always safe to use as a relative storage path.
    """
    if not is_valid_name(name):
        raise HatchwayError(NAME_INVALID, "invalid repository name", {"name": name[:300]})
    return name


def is_valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def validate_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise HatchwayError(TAG_INVALID, "invalid tag", {"tag": tag[:200]})
    return tag
