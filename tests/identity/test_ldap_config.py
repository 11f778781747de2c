"""``identity.ldap`` is checked when the configuration loads: unknown keys, bad filters,
wrong placeholders, StartTLS over ldaps, and so on are errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hatchway.auth.identity.ldapclient import escape
from hatchway.config.identity_ldap import FilterError, check_filter, in_chain
from hatchway.config.load import load
from hatchway.errors import ConfigError

BASE: dict[str, Any] = {
    "url": "ldaps://ldap.example.com",
    "binddn": "cn=hatchway,ou=services,dc=example,dc=com",
    "bindpasswordfile": "/run/secrets/ldap",
    "userbase": "ou=people,dc=example,dc=com",
    "userfilter": "(&(objectClass=person)(uid={username}))",
    "groupbase": "ou=groups,dc=example,dc=com",
    "groupfilter": "(member={dn})",
    "admingroups": ["cn=registry-admins,ou=groups,dc=example,dc=com"],
}


def _load(tmp_path: Path, ldap: dict[str, Any]) -> Any:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"auth": {"token": {}}, "identity": {"ldap": ldap}}))
    return load(path, environ={})


def test_the_readme_example_loads(tmp_path: Path) -> None:
    config = _load(tmp_path, {**BASE, "starttls": False, "cacert": "/etc/hatchway/ldap-ca.pem"})
    ldap = config.identity.ldap
    assert ldap.refreshinterval == 900
    assert ldap.poolsize == 8
    assert ldap.nestedgroups == "none"


def test_from_the_environment() -> None:
    environ = {
        "HATCHWAY_AUTH_TOKEN_SERVICE": "hatchway",
        "HATCHWAY_IDENTITY_LDAP_URL": "ldap://ldap.example.com",
        "HATCHWAY_IDENTITY_LDAP_STARTTLS": "true",
        "HATCHWAY_IDENTITY_LDAP_USERBASE": "ou=people,dc=example,dc=com",
        "HATCHWAY_IDENTITY_LDAP_ADMINGROUPS": '["cn=a,dc=example,dc=com", "cn=b,dc=example,dc=com"]',  # noqa: E501
    }
    ldap: Any = _section(environ)
    assert ldap.starttls is True
    assert ldap.admingroups == ["cn=a,dc=example,dc=com", "cn=b,dc=example,dc=com"]
    one = {**environ, "HATCHWAY_IDENTITY_LDAP_ADMINGROUPS": "cn=a,dc=example,dc=com"}
    assert _section(one).admingroups == ["cn=a,dc=example,dc=com"]


def _section(environ: dict[str, str]) -> Any:
    identity = load(None, environ=environ).identity
    assert identity is not None
    return identity.ldap


def test_durations(tmp_path: Path) -> None:
    ldap = _load(tmp_path, {**BASE, "timeout": "2s", "refreshinterval": "5m"}).identity.ldap
    assert (ldap.timeout, ldap.refreshinterval) == (2.0, 300.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bindpassword": "x"}, "identity.ldap.bindpassword: unknown key"),
        ({"url": "http://ldap.example.com"}, "ldap://HOST[:PORT] or ldaps://"),
        ({"url": "ldap://u:p@ldap.example.com"}, "no path, query or credentials"),
        ({"starttls": True}, "starttls"),
        ({"userfilter": "(uid=alice)"}, "must contain {username}"),
        ({"userfilter": "(uid={user})"}, "unknown placeholder {user}"),
        ({"userfilter": "(&(uid={username})"}, "not an LDAP search filter"),
        ({"userfilter": "uid={username}"}, "not an LDAP search filter"),
        ({"userfilter": "(uid={username}))"}, "not an LDAP search filter"),
        ({"userfilter": "(uid=a(b{username})"}, "unescaped '('"),
        ({"groupfilter": "(objectClass=group)"}, "must contain {dn}"),
        ({"groupfilter": "(member={dn})(x=y)"}, "not an LDAP search filter"),
        ({"groupbase": None}, "groupfilter needs groupbase"),
        ({"groupattribute": "memberOf"}, "not both"),
        ({"binddn": None}, "binddn and bindpasswordfile go together"),
        ({"refreshinterval": "1h"}, "at most 15m"),
        ({"timeout": 0}, "more than 0"),
        ({"poolsize": 0}, "poolsize"),
        ({"admingroups": ["registry-admins"]}, "not a DN"),
        ({"nestedgroups": "inchain", "groupfilter": "(memberUid={username})"}, "inchain"),
        ({"nestedgroups": "deep"}, "nestedgroups"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    settings = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, settings)
    assert message in str(err.value)
    assert "identity.ldap" in str(err.value)


def test_unknown_identity_source_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"identity": {"kerberos": {}}}))
    with pytest.raises(ConfigError, match=r"identity\.kerberos: unknown key"):
        load(path, environ={})


@pytest.mark.parametrize(
    "text",
    [
        "(uid=alice)",
        "(&(objectClass=person)(|(uid=a)(mail=a@b)))",
        "(!(employeeType=disabled))",
        "(cn=a\\2ab)",
        "(member:1.2.840.113556.1.4.1941:=cn=x)",
        "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        "(cn>=a)",
        "(cn~=a)",
        "(cn=*)",
        "(cn=jürgen)",
    ],
)
def test_valid_filters(text: str) -> None:
    check_filter(text)


@pytest.mark.parametrize(
    "text", ["", "uid=a", "(uid=a", "(uid=a))", "(&)", "(=a)", "(uid=\\zz)", "(a=b)(c=d)"]
)
def test_invalid_filters(text: str) -> None:
    with pytest.raises(FilterError):
        check_filter(text)


def test_in_chain_rewrites_member_items() -> None:
    assert in_chain("(&(objectClass=group)(member={dn}))") == (
        "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={dn}))"
    )


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("*", "\\2a"),
        (")(uid=*", "\\29\\28uid=\\2a"),
        ("a\x00b", "a\\00b"),
        ("back\\slash", "back\\5cslash"),
        ("jürgen", "jürgen"),
    ],
)
def test_escape(value: str, escaped: str) -> None:
    assert escape(value) == escaped
    check_filter(f"(uid={escape(value)})")
