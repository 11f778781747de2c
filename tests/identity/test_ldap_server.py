"""``hatchway serve`` with ``identity.ldap`` against a real slapd: logins from skopeo,
federated accounts, access rules by group DN, admingroups both ways, hostile names, the
directory going down, and tokens of users the directory drops."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hatchway.metadata import MetadataStore
from tests.identity.conftest import ldap_settings
from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    HAVE_SKOPEO,
    SERVICE,
    Skopeo,
    access_claim,
    add_user,
    create_pat,
    hatchway_cli,
    stderr,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.server import Server, start_server
from tests.support.slapd import (
    ADMINS,
    DEVS,
    PASSWORDS,
    SUFFIX,
    TEAM_DEVS,
    Slapd,
)

CATALOG = "registry:catalog:*"
RULES = [
    # Groups by full DN: alice's devs (ou=groups) may push devs/*, bob's (ou=teams) may not.
    {"group": DEVS, "repository": "devs/*", "action": "*"},
    {"group": TEAM_DEVS, "repository": "teams/*", "action": "pull"},
    {"group": "qa", "repository": "qa/*", "action": "*"},  # a local group
]


def ldap_server(tmp: Path, slapd: Slapd, mode: str = "token", **ldap: Any) -> Server:
    settings = ldap_settings(slapd, admingroups=[ADMINS], **ldap)
    doc: dict[str, Any] = {
        "version": "0.1",
        "storage": {"delete": {"enabled": True}},
        "access": RULES,
        "identity": {"ldap": settings},
        # Each request names its own client address (X-Forwarded-For from the loopback
        # "proxy"), so the many refused logins here do not throttle one another.
        "http": {"trustedproxies": ["127.0.0.1/32"]},
    }
    if mode == "token":
        doc["auth"] = {"token": {}}
    else:
        doc["auth"] = {"htpasswd": {"path": str(tmp / "htpasswd")}}
    return start_server(
        tmp, config=json.dumps(doc), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )


def client_address() -> str:
    return "10." + ".".join(str(secrets.randbelow(250) + 1) for _ in range(3))


def grant(
    server: Server, user: str, password: str, *scopes: str, addr: str | None = None, **params: str
) -> httpx.Response:
    query: list[tuple[str, str | int | float | bool | None]] = [
        ("service", SERVICE),
        *(("scope", s) for s in scopes),
        *params.items(),
    ]
    return httpx.get(
        server.url + "/auth/token",
        params=query,
        auth=(user, password),
        headers={"X-Forwarded-For": addr or client_address()},
        timeout=60,
    )


def password_grant(server: Server, user: str, password: str, **form: str) -> httpx.Response:
    data = {
        "grant_type": "password",
        "username": user,
        "password": password,
        "client_id": "tests",
        "service": SERVICE,
        **form,
    }
    return httpx.post(
        server.url + "/auth/token",
        data=data,
        headers={"X-Forwarded-For": client_address()},
        timeout=60,
    )


def granted(response: httpx.Response) -> dict[tuple[str, str], set[str]]:
    assert response.status_code == 200, response.text
    return access_claim(response.json()["token"])


def store_of(server: Server) -> MetadataStore:
    return MetadataStore(f"sqlite:///{server.data}/hatchway.db")


@pytest.fixture(scope="module")
def server(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = ldap_server(tmp_path_factory.mktemp("ldap-server"), slapd)
    try:
        yield found
    finally:
        found.stop()


@pytest.mark.e2e
@pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed")
def test_skopeo_login_and_copy_with_an_ldap_account(server: Server, tmp_path: Path) -> None:
    image = make_image("ldap-skopeo", layer_sizes=(20_000,))
    layout = tmp_path / "layout"
    write_oci_layout(layout, image, tag="1")
    alice = Skopeo(tmp_path / "alice")
    alice.login(server.addr, "alice", PASSWORDS["alice"])
    alice.push(layout, "1", f"docker://{server.addr}/devs/app:1")
    alice.pull(f"docker://{server.addr}/devs/app:1", tmp_path / "back", "1")
    # bob is in a group called devs too, but another one (ou=teams): no push here.
    bob = Skopeo(tmp_path / "bob")
    bob.login(server.addr, "bob", PASSWORDS["bob"])
    refused = bob.push(layout, "1", f"docker://{server.addr}/devs/app:2", check=False)
    assert refused.returncode != 0
    assert "denied" in stderr(refused).lower() or "unauthorized" in stderr(refused).lower()
    wrong = Skopeo(tmp_path / "wrong").login(server.addr, "alice", "nope", check=False)
    assert wrong.returncode != 0


def test_first_login_makes_a_federated_account(server: Server) -> None:
    assert grant(server, "alice", PASSWORDS["alice"]).status_code == 200
    store = store_of(server)
    try:
        account = store.accounts.get("alice")
        assert account is not None
        assert account.source == "ldap"
        assert account.password_hash is None
        link = store.external.get("alice")
        assert link is not None
        assert link.external_id == f"uid=alice,ou=people,{SUFFIX}"
        assert link.groups == {DEVS}
    finally:
        store.dispose()
    # Logging in again (any spelling the directory matches) is the same account.
    again = grant(server, "ALICE", PASSWORDS["alice"], "repository:devs/x:push")
    assert granted(again) == {("repository", "devs/x"): {"push"}}
    assert access_claim(again.json()["token"])
    assert (
        httpx.get(server.url + "/api/v1/me", auth=("alice", PASSWORDS["alice"]), timeout=30).json()[
            "name"
        ]
        == "alice"
    )


def test_group_rules_by_dn_and_local_groups(server: Server) -> None:
    assert granted(grant(server, "alice", PASSWORDS["alice"], "repository:devs/a:push")) == {
        ("repository", "devs/a"): {"push"}
    }
    assert granted(grant(server, "bob", PASSWORDS["bob"], "repository:devs/a:push")) == {}
    assert granted(grant(server, "bob", PASSWORDS["bob"], "repository:teams/a:pull")) == {
        ("repository", "teams/a"): {"pull"}
    }
    # A local group still works, for a local account and for an LDAP account put in it.
    add_user(server, "quinn", "quinn-Pw-123")
    hatchway_cli(server.data, "group", "add", "qa")
    hatchway_cli(server.data, "group", "member", "add", "qa", "quinn")
    hatchway_cli(server.data, "group", "member", "add", "qa", "alice")
    time.sleep(1.1)  # accounts are remembered for a second
    for user, password in (("quinn", "quinn-Pw-123"), ("alice", PASSWORDS["alice"])):
        assert granted(grant(server, user, password, "repository:qa/x:push")) == {
            ("repository", "qa/x"): {"push"}
        }


def test_admin_and_local_accounts_come_first(server: Server, slapd: Slapd) -> None:
    assert granted(grant(server, ADMIN, ADMIN_PASSWORD, CATALOG)) == {
        ("registry", "catalog"): {"*"}
    }
    assert grant(server, ADMIN, "wrong").status_code == 401
    # A directory entry named like the local admin cannot take the account over, in any case.
    slapd.ldap(
        "ldapadd",
        stdin=f"dn: uid=Admin,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: Admin\n"
        "cn: Admin\nsn: Admin\nuserPassword: directory-Admin-1\n",
    )
    for name in ("admin", "Admin", "ADMIN"):
        assert grant(server, name, "directory-Admin-1").status_code == 401, name
    store = store_of(server)
    try:
        account = store.accounts.get(ADMIN)
        assert account is not None
        assert account.source == "local"
        assert store.accounts.get("Admin") is None
    finally:
        store.dispose()


@pytest.mark.parametrize(
    "name", ["*", "al*", ")(uid=*", "alice)(uid=*", "*)(|(uid=*", "alice*", "a\\2a"]
)
def test_injection_attempts_fail(server: Server, name: str) -> None:
    response = grant(server, name, PASSWORDS["alice"])
    assert response.status_code == 401, response.text
    assert password_grant(server, name, PASSWORDS["alice"]).status_code in (400, 401)


def test_nul_and_non_ascii_names(server: Server) -> None:
    response = password_grant(server, "alice\x00", PASSWORDS["alice"])
    assert response.status_code in (400, 401), response.text
    assert "error" in response.json()
    # jürgen is in the directory, but cannot be a hatchway account name: refused, cleanly.
    response = grant(server, "jürgen", PASSWORDS["jürgen"])
    assert response.status_code == 401, response.text
    assert "incorrect username or password" in response.text


def test_empty_password_never_reaches_the_directory(server: Server, slapd: Slapd) -> None:
    before = slapd.operations()
    auth = "Basic " + base64.b64encode(b"alice:").decode()
    response = httpx.get(
        server.url + "/auth/token",
        params={"service": SERVICE},
        headers={"Authorization": auth, "X-Forwarded-For": client_address()},
        timeout=30,
    )
    assert response.status_code in (400, 401)
    assert password_grant(server, "alice", "").status_code == 400
    assert slapd.operations() == before


def test_returning_users_grant_is_one_round_trip(server: Server, slapd: Slapd) -> None:
    """Counted in slapd's own log: a returning user's grant is at most one BIND and no
    search (none at all when the same password just succeeded)."""
    assert grant(server, "carol", PASSWORDS["carol"]).status_code == 200
    for _ in range(3):
        binds, searches = slapd.operations()
        response = grant(server, "carol", PASSWORDS["carol"], "repository:carol/x:pull")
        assert response.status_code == 200
        after_binds, after_searches = slapd.operations()
        assert after_binds - binds <= 1
        assert after_searches == searches
    # A wrong password of a returning user: one bind, refused.
    assert grant(server, "carol", "wrong").status_code == 401
    assert slapd.operations() == (after_binds + 1, after_searches)


def test_admingroups_both_ways(own_slapd: Slapd, tmp_path: Path) -> None:
    server = ldap_server(tmp_path, own_slapd, membershipcache="1s")
    try:
        assert granted(grant(server, "carol", PASSWORDS["carol"], CATALOG)) == {
            ("registry", "catalog"): {"*"}
        }
        assert granted(grant(server, "alice", PASSWORDS["alice"], CATALOG)) == {}
        own_slapd.modify(
            f"dn: {ADMINS}\nchangetype: modify\n"
            f"add: member\nmember: uid=alice,ou=people,{SUFFIX}\n-\n"
            f"delete: member\nmember: uid=carol,ou=people,{SUFFIX}\n"
        )
        time.sleep(1.2)  # past membershipcache: the next login reads the groups again
        assert granted(grant(server, "carol", PASSWORDS["carol"], CATALOG)) == {}
        assert granted(grant(server, "alice", PASSWORDS["alice"], CATALOG)) == {
            ("registry", "catalog"): {"*"}
        }
        store = store_of(server)
        try:
            carol, alice = store.accounts.get("carol"), store.accounts.get("alice")
            assert carol is not None
            assert alice is not None
            assert (carol.admin, alice.admin) == (False, True)
            deadline = time.monotonic() + 10  # the audit sink writes in batches
            while True:
                events = [e.event for e in store.audit.list(account="carol")]
                if "account.admin" in events or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert "account.create" in events
            assert "account.admin" in events
        finally:
            store.dispose()
    finally:
        server.stop()


def test_directory_down_gives_503_while_local_accounts_work(
    own_slapd: Slapd, tmp_path: Path
) -> None:
    server = ldap_server(tmp_path, own_slapd, timeout="2s", membershipcache="1s")
    try:
        assert grant(server, "alice", PASSWORDS["alice"]).status_code == 200
        own_slapd.kill()
        for user in ("alice", "nobody"):
            response = grant(server, user, "some-password")
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["errors"][0]["code"] == "UNAVAILABLE"
            assert "unavailable" in body["errors"][0]["message"]
            assert response.headers["Retry-After"]
            response = password_grant(server, user, "some-password")
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"
        response = httpx.get(
            server.url + "/api/v1/me", auth=("alice", PASSWORDS["alice"]), timeout=30
        )
        assert response.status_code == 503
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert response.headers["Retry-After"]
        # The local admin is never looked up in the directory.
        assert granted(grant(server, ADMIN, ADMIN_PASSWORD, CATALOG)) == {
            ("registry", "catalog"): {"*"}
        }
        assert "unavailable" in server.log()
        own_slapd.start()
        assert grant(server, "alice", PASSWORDS["alice"]).status_code == 200
    finally:
        server.stop()


def test_htpasswd_mode_basic_on_v2(own_slapd: Slapd, tmp_path: Path) -> None:
    """auth.htpasswd with identity.ldap: /v2 takes Basic; the directory down is an OCI 503."""
    import bcrypt

    hashed = bcrypt.hashpw(b"hank-Pw-1", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"hank:{hashed}\n")
    server = ldap_server(tmp_path, own_slapd, mode="htpasswd", timeout="2s")
    try:
        url = server.url + "/v2/devs/app/tags/list"
        response = httpx.get(url, auth=("alice", PASSWORDS["alice"]), timeout=30)
        assert response.status_code == 404, response.text  # past the gate: no such repository
        response = httpx.get(url, auth=("bob", PASSWORDS["bob"]), timeout=30)
        assert response.status_code == 403, response.text
        own_slapd.kill()
        # carol never signed in here (alice's password was just verified: it still counts
        # until membershipcache ends, without the directory).
        response = httpx.get(url, auth=("carol", PASSWORDS["carol"]), timeout=30)
        assert response.status_code == 503, response.text
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert response.headers["Retry-After"]
        response = httpx.get(server.url + "/v2/", auth=("hank", "hank-Pw-1"), timeout=30)
        assert response.status_code == 200, response.text
    finally:
        server.stop()


def test_tokens_of_removed_or_disabled_users_stop(own_slapd: Slapd, tmp_path: Path) -> None:
    server = ldap_server(tmp_path, own_slapd, refreshinterval="2s", membershipcache="1s")
    try:
        sessions = {}
        for user in ("alice", "erin", "frank"):
            response = password_grant(server, user, PASSWORDS[user], access_type="offline")
            assert response.status_code == 200, response.text
            sessions[user] = response.json()["refresh_token"]
        pats = {u: create_pat(server, u, "ci", ["repository:devs/*:pull"]) for u in sessions}
        for user, pat in pats.items():
            assert granted(grant(server, user, pat, "repository:devs/a:pull")), user

        own_slapd.delete(f"uid=erin,ou=people,{SUFFIX}")
        own_slapd.modify(
            f"dn: uid=frank,ou=people,{SUFFIX}\nchangetype: modify\nadd: employeeType\n"
            "employeeType: disabled\n"
        )
        time.sleep(2.5)  # past refreshinterval
        for user in ("erin", "frank"):
            assert grant(server, user, pats[user]).status_code == 401, user
            refreshed = httpx.post(
                server.url + "/auth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": sessions[user],
                    "client_id": "tests",
                    "service": SERVICE,
                },
                timeout=30,
            )
            assert refreshed.status_code == 400, refreshed.text
            assert refreshed.json()["error"] == "invalid_grant"
            assert password_grant(server, user, PASSWORDS[user]).status_code == 401
        # alice is still in the directory: her PAT and session go on, with her groups.
        assert granted(grant(server, "alice", pats["alice"], "repository:devs/a:pull")) == {
            ("repository", "devs/a"): {"pull"}
        }
        refreshed = httpx.post(
            server.url + "/auth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": sessions["alice"],
                "client_id": "tests",
                "service": SERVICE,
                "scope": "repository:devs/a:push",
            },
            timeout=30,
        )
        assert refreshed.status_code == 200, refreshed.text
        store = store_of(server)
        try:
            erin = store.external.get("erin")
            assert erin is not None
            assert erin.disabled
        finally:
            store.dispose()
        # frank enabled again: his next password login brings the account back.
        own_slapd.modify(
            f"dn: uid=frank,ou=people,{SUFFIX}\nchangetype: modify\ndelete: employeeType\n"
        )
        assert password_grant(server, "frank", PASSWORDS["frank"]).status_code == 200
        assert grant(server, "frank", pats["frank"]).status_code == 200
    finally:
        server.stop()


def test_ldap_logins_are_throttled_and_audited(server: Server, slapd: Slapd) -> None:
    addr = client_address()
    statuses = [grant(server, "dave", f"wrong-{i}", addr=addr).status_code for i in range(8)]
    assert statuses[0] == 401
    assert 429 in statuses, statuses
    binds = slapd.operations()[0]
    # While throttled, the right password is not even tried against the directory.
    response = grant(server, "dave", PASSWORDS["dave"], addr=addr)
    assert response.status_code == 429
    assert response.headers["Retry-After"]
    assert slapd.operations()[0] == binds
    store = store_of(server)
    try:
        deadline = time.monotonic() + 10
        while True:
            outcomes = {e.outcome for e in store.audit.list(account="dave", event="login")}
            if {"failure", "throttled"} <= outcomes or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert {"failure", "throttled"} <= outcomes
    finally:
        store.dispose()


@pytest.mark.parametrize("variant", ["starttls", "ldaps"])
def test_login_over_tls(slapd: Slapd, tmp_path: Path, variant: str) -> None:
    url = slapd.url if variant == "starttls" else slapd.ldaps_url
    server = ldap_server(
        tmp_path, slapd, url=url, starttls=variant == "starttls", cacert=str(slapd.ca)
    )
    try:
        assert granted(grant(server, "alice", PASSWORDS["alice"], "repository:devs/a:pull")) == {
            ("repository", "devs/a"): {"pull"}
        }
        assert grant(server, "alice", "wrong").status_code == 401
    finally:
        server.stop()
