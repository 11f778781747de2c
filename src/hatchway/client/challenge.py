"""``WWW-Authenticate`` parsing (RFC 7235) and the Docker token scopes a request needs.

Registries quote realms that hold commas and escaped quotes, and some send several
challenges in one header, so this is a small tokenizer rather than a regular expression.
Scopes are ``type:name:action[,action]`` (Docker token spec); a name may itself hold
colons, so the type ends at the first colon and the actions start after the last.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Challenge",
    "is_loopback",
    "merge_scopes",
    "parse_challenges",
    "pick_challenge",
    "plain_realm_refused",
    "scopes_for",
]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_BARE = re.compile(r"[^,\s\"]*")
_ACTION_ORDER = {"pull": 0, "push": 1, "delete": 2, "*": 3}
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs|manifests|tags|referrers)/")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> list[str]:
        return self.params.get("scope", "").split()

    @property
    def error(self) -> str:
        return self.params.get("error", "")


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The quoted-string starting at ``text[pos] == '"'``; returns (value, end)."""
    out = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    return "".join(out), pos  # unterminated: take the rest, as browsers do


def _skip(text: str, pos: int, commas: bool = False) -> int:
    while pos < len(text) and (text[pos] in " \t" or (commas and text[pos] == ",")):
        pos += 1
    return pos


def _param(text: str, pos: int) -> tuple[str, str, int] | None:
    """``name = value`` at ``pos`` (value a token or quoted-string), else None."""
    name = _TOKEN.match(text, pos)
    if name is None:
        return None
    after = _skip(text, name.end())
    if after >= len(text) or text[after] != "=":
        return None
    start = _skip(text, after + 1)
    if start < len(text) and text[start] == '"':
        value, end = _quoted(text, start)
    else:
        bare = _BARE.match(text, start)  # lenient: an unquoted URL is not an RFC token
        value, end = (bare.group(), bare.end()) if bare else ("", start)
    return name.group().lower(), value, end


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one header value (``Bearer realm="a,b", service=x, Basic realm=y``)."""
    found: list[Challenge] = []
    pos = _skip(header, 0, commas=True)
    while pos < len(header):
        scheme = _TOKEN.match(header, pos)
        if scheme is None:
            break  # garbage: keep what was parsed
        pos = _skip(header, scheme.end())
        params: dict[str, str] = {}
        token68 = _TOKEN68.match(header, pos)
        if token68 and _param(header, pos) is None and token68.end() > pos:
            pos = token68.end()  # token68 form (e.g. "Negotiate abc=="): no params
        while pos < len(header):
            parsed = _param(header, _skip(header, pos, commas=True))
            if parsed is None:
                break
            name, value, pos = parsed
            params.setdefault(name, value)
            pos = _skip(header, pos)
            if pos < len(header) and header[pos] != ",":
                break
        found.append(Challenge(scheme.group().lower(), params))
        pos = _skip(header, pos, commas=True)
    return found


def pick_challenge(headers: list[str]) -> Challenge | None:
    """The challenge to answer: Bearer (it has a realm) before Basic; others ignored."""
    challenges = [c for h in headers for c in parse_challenges(h)]
    bearer = [c for c in challenges if c.scheme == "bearer" and c.realm]
    basic = [c for c in challenges if c.scheme == "basic"]
    return next(iter(bearer or basic), None)


def _split_scope(scope: str) -> tuple[str, str, list[str]] | None:
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


def merge_scopes(*groups: list[str]) -> list[str]:
    """One scope per resource with the union of its actions, in a stable order, so that
    a token asked for once covers every request a pull or push makes on the repository."""
    merged: dict[tuple[str, str], set[str]] = {}
    others: list[str] = []
    for scope in (s for group in groups for s in group):
        split = _split_scope(scope)
        if split is None:
            if scope not in others:
                others.append(scope)
            continue
        kind, name, actions = split
        merged.setdefault((kind, name), set()).update(actions)
    formatted = [
        f"{kind}:{name}:{','.join(sorted(acts, key=lambda a: (_ACTION_ORDER.get(a, 9), a)))}"
        for (kind, name), acts in merged.items()
    ]
    return sorted(formatted) + others


def scopes_for(method: str, path: str, query: bytes = b"") -> list[str]:
    """The scopes a registry asks for ``method path``, guessed before it asks, so a request
    with a one-shot body (a streamed blob) can carry the right token the first time."""
    if path.rstrip("/") == "/v2/_catalog":
        return ["registry:catalog:*"]
    found = _REPO_PATH.match(path)
    if found is None:
        return []
    name = found.group("name")
    method = method.upper()
    if method in ("GET", "HEAD"):
        actions = "pull"
    elif method == "DELETE":
        actions = "delete"
    else:
        actions = "pull,push"
    scopes = [f"repository:{name}:{actions}"]
    source = parse_qs(query.decode("ascii", errors="replace")).get("from")
    if method == "POST" and source:
        scopes.append(f"repository:{source[0]}:pull")  # cross-repository mount
    return scopes


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_loopback(host: str) -> bool:
    """``host[:port]`` names this machine by its text alone (127.0.0.0/8, ::1, localhost),
    never by what a name resolves to: docker lets those speak plain HTTP."""
    name = host
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_realm_refused(registry_url: str, realm: str, *, insecure: bool) -> str | None:
    """Why credentials must not go to ``realm``, or None when they may.

    A registry reached over HTTPS that names a token service over plain HTTP would have
    the password or refresh token cross the network in clear text (or be a downgrade by
    whoever wrote that header). Refused unless ``--insecure`` or the registry itself is on
    this machine (its host is loopback).
    """
    registry, token_service = urlsplit(registry_url), urlsplit(realm)
    if registry.scheme != "https" or token_service.scheme.lower() != "http":
        return None
    if insecure or is_loopback(registry.netloc):
        return None
    return (
        f"{registry.netloc} (HTTPS) names a token service over plain HTTP "
        f"(http://{token_service.netloc}): not sending credentials in clear text "
        "(--insecure allows it)"
    )
