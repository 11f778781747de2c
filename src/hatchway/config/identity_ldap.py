"""``identity.ldap``: sign-in against an LDAP directory or Active Directory.

Checked when the configuration loads: the URL's scheme, StartTLS only over ``ldap://``,
the filters' syntax (RFC 4515) and their placeholders. The bind password is read from
``bindpasswordfile`` when the server starts, never kept in the configuration.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

# AD's LDAP_MATCHING_RULE_IN_CHAIN: the server follows nested group membership itself.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_DN_ITEM_RE = re.compile(r"\(([A-Za-z][A-Za-z0-9-]*)=\{dn\}\)")


def _duration(value: Any) -> float:
    from hatchway.config.model import parse_duration  # model.py imports this module

    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]


def _dn_list(value: Any) -> Any:
    """From the environment: a YAML/JSON list (``["cn=a,dc=x", "cn=b,dc=x"]``), or one DN
    (DNs hold commas, so no comma-separated form)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import yaml

            return yaml.safe_load(text)
        return [text] if text else []
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilterError(ValueError):
    """Not an RFC 4515 search filter; the message says where."""


def check_filter(text: str) -> None:
    """Raise :class:`FilterError` unless ``text`` is one RFC 4515 filter: balanced,
    parenthesized items, each ``attr op value`` with ``=``, ``~=``, ``>=``, ``<=`` or an
    extensible ``attr:rule:=``, values with ``\\HH`` escapes only."""
    pos = _filter(text, 0)
    if pos != len(text):
        raise FilterError(f"unexpected text at offset {pos}: {text[pos : pos + 20]!r}")


def _filter(text: str, pos: int) -> int:
    if pos >= len(text) or text[pos] != "(":
        raise FilterError(f"expected '(' at offset {pos}")
    pos += 1
    if pos < len(text) and text[pos] in "&|":
        pos += 1
        count = 0
        while pos < len(text) and text[pos] == "(":
            pos = _filter(text, pos)
            count += 1
        if count == 0:
            raise FilterError(f"'&' or '|' with no filters at offset {pos}")
    elif pos < len(text) and text[pos] == "!":
        pos = _filter(text, pos + 1)
    else:
        pos = _item(text, pos)
    if pos >= len(text) or text[pos] != ")":
        raise FilterError(f"expected ')' at offset {pos}")
    return pos + 1


_ITEM_RE = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*"  # attribute
    r"(?::dn)?(?::(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+))?"  # extensible match
    r"(?:=|~=|>=|<=|:=)"
    r"|:(?:dn:)?(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+):="
)


def _item(text: str, pos: int) -> int:
    found = _ITEM_RE.match(text, pos)
    if found is None:
        raise FilterError(f"expected attribute and operator at offset {pos}")
    pos = found.end()
    while pos < len(text) and text[pos] != ")":
        char = text[pos]
        if char == "(":
            raise FilterError(f"unescaped '(' in a value at offset {pos} (write \\28)")
        if char == "\\":
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", text[pos + 1 : pos + 3]):
                raise FilterError(f"bad escape at offset {pos}: expected \\ and two hex digits")
            pos += 3
            continue
        if char == "\x00":
            raise FilterError(f"NUL at offset {pos}")
        pos += 1
    return pos


def _check_template(value: str, key: str, allowed: set[str], required: set[str]) -> str:
    names = set(_PLACEHOLDER_RE.findall(value))
    unknown = names - allowed
    if unknown:
        raise ValueError(
            f"{key}: unknown placeholder {{{sorted(unknown)[0]}}}; "
            f"use {' or '.join('{' + n + '}' for n in sorted(allowed))}"
        )
    missing = required - names
    if missing:
        raise ValueError(f"{key}: must contain {{{sorted(missing)[0]}}}")
    # Every placeholder stands for an escaped value: any plain value checks the shape.
    sample = _PLACEHOLDER_RE.sub("x", value)
    try:
        check_filter(sample)
    except FilterError as exc:
        raise ValueError(f"{key}: not an LDAP search filter (RFC 4515): {exc}") from None
    return value


def in_chain(groupfilter: str) -> str:
    """``(member={dn})`` -> ``(member:1.2.840.113556.1.4.1941:={dn})``: AD then answers
    with every group the user is in, directly or through other groups."""
    return _DN_ITEM_RE.sub(lambda m: f"({m.group(1)}:{IN_CHAIN_RULE}:={{dn}})", groupfilter)


class LdapConfig(_Section):
    url: str
    starttls: bool = False
    cacert: str | None = None  # PEM bundle to trust; default: the system's CAs
    binddn: str | None = None  # none: searches run as an anonymous bind
    bindpasswordfile: str | None = None
    userbase: str
    userfilter: str = "(&(objectClass=person)(uid={username}))"
    groupbase: str | None = None
    groupfilter: str | None = None  # e.g. (member={dn}); {username} may appear too
    # Membership from an attribute of the user entry (memberOf; AD, OpenLDAP's overlay).
    groupattribute: str | None = None
    admingroups: Annotated[list[str], BeforeValidator(_dn_list)] = Field(default_factory=list)
    # none: direct groups only; inchain: AD resolves nesting (1.2.840.113556.1.4.1941);
    # recursive: hatchway follows groups of groups, at most ``nestingdepth`` levels.
    nestedgroups: Literal["none", "inchain", "recursive"] = "none"
    nestingdepth: int = Field(default=8, ge=1, le=32)
    timeout: Duration = 5.0  # each directory operation, and connecting
    poolsize: int = Field(default=8, ge=1, le=64)
    # Token-only accounts (PATs, refresh tokens) are checked against the directory at
    # least this often: removed or disabled users' tokens stop within it.
    refreshinterval: Duration = 900.0
    # A login within this time of the user's last full check reuses its groups: a
    # returning user's grant is then one bind.
    membershipcache: Duration = 60.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError(f"expected ldap://HOST[:PORT] or ldaps://HOST[:PORT], got {value!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("the URL names the server only (no path, query or credentials)")
        return value

    @field_validator("userfilter")
    @classmethod
    def _userfilter(cls, value: str) -> str:
        return _check_template(value, "userfilter", {"username"}, {"username"})

    @field_validator("groupfilter")
    @classmethod
    def _groupfilter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        checked = _check_template(value, "groupfilter", {"dn", "username"}, set())
        if not _PLACEHOLDER_RE.search(checked):
            raise ValueError("groupfilter: must contain {dn} (or {username})")
        return checked

    @field_validator("timeout", "refreshinterval", "membershipcache")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    @field_validator("refreshinterval")
    @classmethod
    def _at_most_15m(cls, value: float) -> float:
        if value > 900:
            raise ValueError("at most 15m: tokens of removed users must stop within it")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LdapConfig:
        if self.starttls and self.url.startswith("ldaps:"):
            raise ValueError("starttls: use it with ldap:// (ldaps:// is TLS from the start)")
        if (self.binddn is None) != (self.bindpasswordfile is None):
            raise ValueError("binddn and bindpasswordfile go together")
        if self.groupfilter is not None and self.groupbase is None:
            raise ValueError("groupfilter needs groupbase")
        if self.groupfilter is not None and self.groupattribute is not None:
            raise ValueError("set groupfilter (search) or groupattribute (memberOf), not both")
        if self.nestedgroups == "inchain" and (
            self.groupfilter is None or in_chain(self.groupfilter) == self.groupfilter
        ):
            raise ValueError(
                "nestedgroups: inchain needs a groupfilter with an item like (member={dn})"
            )
        if (
            self.nestedgroups == "recursive"
            and self.groupfilter is not None
            and "{dn}" not in self.groupfilter
        ):
            raise ValueError("nestedgroups: recursive needs {dn} in groupfilter")
        if self.nestedgroups != "none" and self.groupfilter is None and self.groupattribute is None:
            raise ValueError("nestedgroups needs groupfilter or groupattribute")
        for dn in self.admingroups:
            if "=" not in dn:
                raise ValueError(f"admingroups: {dn!r} is not a DN (cn=...,ou=...,dc=...)")
        return self
