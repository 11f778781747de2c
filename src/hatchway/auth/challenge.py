"""``WWW-Authenticate`` challenges, Basic and Bearer (Docker token-auth spec)."""

from __future__ import annotations

from dataclasses import dataclass

from hatchway.auth.access import Access, format_scopes


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Challenge(Exception):
    """Authentication is needed (or more of it): answer 401 with this header.

    ``denied`` marks a signed-in account the policy refuses (403 in Basic mode, where
    asking again cannot help). ``failed`` marks credentials that did not check out (bad
    password, invalid or revoked token); ``account`` names who asked, when known. Both are
    for the audit trail only. ``retry_after`` marks a client throttled after failed logins.
    """

    header: str
    message: str = "authentication required"
    denied: bool = False
    needed: tuple[Access, ...] = ()
    failed: bool = False
    account: str | None = None
    retry_after: float | None = None  # throttled: answer 429 with Retry-After

    def __str__(self) -> str:
        return self.message


def basic(realm: str) -> str:
    return f"Basic realm={_quote(realm)}"


def bearer(realm: str, service: str, needed: list[Access], error: str | None = None) -> str:
    parts = [f"realm={_quote(realm)}", f"service={_quote(service)}"]
    if needed:
        parts.append(f"scope={_quote(format_scopes(needed))}")
    if error:
        parts.append(f"error={_quote(error)}")
    return "Bearer " + ",".join(parts)
