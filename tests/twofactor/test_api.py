"""Two-factor over ``/api/v1`` against a real ``hatchway serve``: enrolment, single-use
codes within one step either way, recovery codes, throttling, disable, admin reset."""

from __future__ import annotations

import pyotp

from tests.mgmt.conftest import API, Checker, audit_events, bearer, error_code
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, create_pat, hatchway_cli
from tests.support.server import Server
from tests.twofactor.conftest import PASSWORD, code_at, enrol


def test_enrol_then_confirm(server: Server, check: Checker, user: str) -> None:
    auth = (user, PASSWORD)
    me = check(server.client.get(f"{API}/me", auth=auth), 200)
    assert me["twofactor"] == {
        "enabled": False,
        "pending": False,
        "method": None,
        "recovery_codes_left": 0,
        "required": False,
        "passkeys": 0,
    }
    started = check(server.client.post(f"{API}/me/twofactor/totp", auth=auth), 201)
    parsed = pyotp.parse_uri(started["uri"])
    assert started["uri"].startswith("otpauth://totp/hatchway:")
    assert (parsed.issuer, parsed.name, parsed.secret) == ("hatchway", user, started["secret"])
    assert check(server.client.get(f"{API}/me", auth=auth), 200)["twofactor"]["pending"]

    wrong = server.client.post(
        f"{API}/me/twofactor/totp/confirm", json={"code": "000000"}, auth=auth
    )
    if wrong.status_code != 403:  # 000000 may be the right code, once in a million
        check(wrong, 200)
        return
    check(wrong, 403)
    assert error_code(wrong) == "WRONG_CODE"
    done = check(
        server.client.post(
            f"{API}/me/twofactor/totp/confirm",
            json={"code": code_at(started["secret"])},
            auth=auth,
        ),
        200,
    )
    codes = done["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert audit_events(server, user, "twofactor.confirm")
    for event in audit_events(server, user, "twofactor.enrol"):
        assert started["secret"] not in str(event)

    # Now the password alone is refused here too, with the reason; a token works.
    r = server.client.get(f"{API}/me", auth=auth)
    check(r, 401)
    assert "two-factor" in r.json()["errors"][0]["message"]
    assert "hatchway login --sso" in r.json()["errors"][0]["message"]
    pat = create_pat(server, user, "after-2fa", [f"repository:{user}/*:pull"])
    state = check(server.client.get(f"{API}/me", headers=bearer(pat)), 200)["twofactor"]
    assert state == {
        "enabled": True,
        "pending": False,
        "method": "totp",
        "recovery_codes_left": 10,
        "required": False,
        "passkeys": 0,
    }
    again = server.client.post(f"{API}/me/twofactor/totp", auth=auth)
    check(again, 409)


def test_a_token_cannot_enrol_or_disable(server: Server, check: Checker, user: str) -> None:
    pat = create_pat(server, user, "ci", [f"repository:{user}/*:pull"])
    r = server.client.post(f"{API}/me/twofactor/totp", headers=bearer(pat))
    check(r, 403)
    assert error_code(r) == "DENIED"
    r = server.client.request(
        "DELETE",
        f"{API}/me/twofactor",
        json={"password": PASSWORD, "code": "123456"},
        headers=bearer(pat),
    )
    check(r, 403)


def test_replay_refused_and_one_step_either_way(server: Server, check: Checker, user: str) -> None:
    secret, _ = enrol(server, check, user, offset_steps=-1)  # last step: accepted
    auth = (user, PASSWORD)

    def disable(code: str) -> int:
        r = server.client.request(
            "DELETE", f"{API}/me/twofactor", json={"password": PASSWORD, "code": code}, auth=auth
        )
        if r.status_code != 204:
            check(r, r.status_code)
        return r.status_code

    assert disable(code_at(secret, -1)) == 403  # the same code again: a replay
    assert disable(code_at(secret, -3)) == 403  # outside the window
    assert disable(code_at(secret, 1)) == 204  # next step: accepted
    me = check(server.client.get(f"{API}/me", auth=auth), 200)
    assert me["twofactor"]["enabled"] is False
    assert audit_events(server, user, "twofactor.disable")


def test_disable_needs_password_and_code(server: Server, check: Checker, user: str) -> None:
    secret, codes = enrol(server, check, user)
    auth = (user, PASSWORD)
    for body, status in (
        ({"password": "wrong-Pw-1", "code": code_at(secret, 1)}, 403),
        ({"password": PASSWORD}, 422),
        ({"code": code_at(secret, 1)}, 422),
        ({"password": PASSWORD, "code": 123456}, 422),
        ({"password": PASSWORD, "code": "nope-nope"}, 403),
    ):
        r = server.client.request("DELETE", f"{API}/me/twofactor", json=body, auth=auth)
        check(r, status)
    # A recovery code stands in for the TOTP code.
    r = server.client.request(
        "DELETE",
        f"{API}/me/twofactor",
        json={"password": PASSWORD, "code": codes[0].upper()},
        auth=auth,
    )
    check(r, 204)
    assert audit_events(server, user, "twofactor.recovery")


def test_wrong_codes_are_throttled(server: Server, check: Checker, user: str) -> None:
    secret, _ = enrol(server, check, user)
    auth = (user, PASSWORD)
    statuses = []
    for _ in range(8):
        r = server.client.request(
            "DELETE",
            f"{API}/me/twofactor",
            json={"password": PASSWORD, "code": "abcde-fghij"},
            auth=auth,
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            check(r, 429)
            assert int(r.headers["Retry-After"]) >= 1
            break
    assert statuses[:5] == [403] * 5, statuses
    assert statuses[-1] == 429, statuses
    # The right code is refused too while throttled (no oracle).
    r = server.client.request(
        "DELETE",
        f"{API}/me/twofactor",
        json={"password": PASSWORD, "code": code_at(secret, 1)},
        auth=auth,
    )
    check(r, 429)


def test_admin_reset_api_and_cli(server: Server, check: Checker, user: str) -> None:
    enrol(server, check, user)
    other = create_pat(server, user, "self", [f"repository:{user}/*:pull"])
    r = server.client.delete(f"{API}/accounts/{ADMIN}/twofactor", headers=bearer(other))
    check(r, 403)
    admin = (ADMIN, ADMIN_PASSWORD)
    body = check(server.client.delete(f"{API}/accounts/{user}/twofactor", auth=admin), 200)
    assert body == {"account": user, "removed": True}
    event = audit_events(server, user, "twofactor.reset")[0]
    assert event["detail"]["by"] == ADMIN
    check(server.client.get(f"{API}/me", auth=(user, PASSWORD)), 200)
    missing = server.client.delete(f"{API}/accounts/nobody-here/twofactor", auth=admin)
    check(missing, 404)

    enrol(server, check, user)
    out = hatchway_cli(server.data, "user", "twofactor-reset", user)
    assert "Removed" in out.stdout
    check(server.client.get(f"{API}/me", auth=(user, PASSWORD)), 200)
    again = hatchway_cli(server.data, "user", "twofactor-reset", user)
    assert "nothing changed" in again.stdout
    gone = hatchway_cli(server.data, "user", "twofactor-reset", "nobody-here", check=False)
    assert gone.returncode == 1
    assert gone.stderr.startswith("Error:")
    assert len(audit_events(server, user, "twofactor.reset")) >= 2


def test_bad_input_is_json_4xx(server: Server, check: Checker, user: str) -> None:
    auth = (user, PASSWORD)
    url = f"{API}/me/twofactor/totp/confirm"
    r = server.client.post(url, json={"code": "123456"}, auth=auth)
    check(r, 409)  # nothing to confirm
    for body in (b"{", b"[]", b'{"code": ""}', b'{"code": "1", "x": 1}'):
        r = server.client.post(
            url, content=body, headers={"Content-Type": "application/json"}, auth=auth
        )
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["errors"][0]["code"]


def test_new_recovery_codes_replace_the_old(server: Server, check: Checker, user: str) -> None:
    secret, old = enrol(server, check, user)
    auth = (user, PASSWORD)
    url = f"{API}/me/twofactor/recovery-codes"
    r = server.client.post(url, json={"code": old[0]}, auth=auth)  # an app code is needed
    check(r, 403)
    assert error_code(r) == "WRONG_CODE"
    fresh = check(server.client.post(url, json={"code": code_at(secret, 1)}, auth=auth), 200)
    new = fresh["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    pat = create_pat(server, user, "look", [f"repository:{user}/*:pull"])
    me = check(server.client.get(f"{API}/me", headers=bearer(pat)), 200)
    assert me["twofactor"]["recovery_codes_left"] == 10
    assert audit_events(server, user, "twofactor.recovery_codes")

    def disable(code: str) -> int:
        r = server.client.request(
            "DELETE", f"{API}/me/twofactor", json={"password": PASSWORD, "code": code}, auth=auth
        )
        check(r, r.status_code)
        return r.status_code

    assert disable(old[1]) == 403  # the old list stopped working
    assert disable(new[0]) == 204
