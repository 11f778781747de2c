"""htpasswd files made by the real ``htpasswd -B`` (apache2-utils): load, reload, refuse."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from hatchway.auth.credentials.refresh import issue_refresh_token, redeem_refresh_token
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.htpasswd import HtpasswdAuthenticator, HtpasswdError, parse_htpasswd
from tests.unit.auth.accounts_support import FakeClock, new_store

CLIENT = ClientInfo("192.0.2.1", "docker")


def htpasswd(path: Path, user: str, password: str, *flags: str) -> None:
    """The real tool; ``-C 4`` keeps bcrypt fast, ``-c`` creates the file."""
    create = ["-c"] if not path.exists() else []
    kind = list(flags) or ["-B", "-C", "4"]
    subprocess.run(
        ["htpasswd", *create, "-b", *kind, str(path), user, password],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "htpasswd"
    htpasswd(file, "alice", "s3cret")
    htpasswd(file, "bob", "b0b")
    return file


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(path: Path, clock: FakeClock) -> HtpasswdAuthenticator:
    return HtpasswdAuthenticator(path, clock=clock)


def test_login(auth: HtpasswdAuthenticator, path: Path) -> None:
    assert "$2y$04$" in path.read_text()
    principal = auth.authenticate("alice", "s3cret", CLIENT)
    assert principal is not None
    assert principal.subject == "alice"
    assert not principal.admin
    assert auth.authenticate("alice", "wrong", CLIENT) is None
    assert auth.authenticate("alice", "", CLIENT) is None
    assert auth.users == {"alice", "bob"}


def test_unknown_user_runs_bcrypt_at_the_file_cost(auth: HtpasswdAuthenticator) -> None:
    before = auth.verifier.checks
    assert auth.authenticate("nobody", "s3cret", CLIENT) is None
    assert auth.verifier.checks == before + 1
    assert auth.verifier.dummy_rounds == 4  # as costly as the file's entries


def test_cache_hit_avoids_bcrypt(auth: HtpasswdAuthenticator) -> None:
    assert auth.authenticate("alice", "s3cret", CLIENT) is not None
    checks = auth.verifier.checks
    for _ in range(10):
        assert auth.authenticate("alice", "s3cret", CLIENT) is not None
    assert auth.verifier.checks == checks
    assert auth.verifier.hits == 10


def test_reload_on_change_at_most_once_a_second(
    auth: HtpasswdAuthenticator, path: Path, clock: FakeClock
) -> None:
    assert auth.authenticate("alice", "s3cret", CLIENT) is not None
    htpasswd(path, "carol", "c4rol")
    htpasswd(path, "alice", "n3w")
    clock.now += 0.5
    assert auth.authenticate("carol", "c4rol", CLIENT) is None  # not looked at yet
    assert auth.authenticate("alice", "s3cret", CLIENT) is not None  # old set, cached
    clock.now += 0.6
    assert auth.authenticate("carol", "c4rol", CLIENT) is not None
    assert auth.authenticate("alice", "s3cret", CLIENT) is None  # cache dropped on change
    assert auth.authenticate("alice", "n3w", CLIENT) is not None
    subprocess.run(["htpasswd", "-D", str(path), "bob"], check=True, capture_output=True)
    clock.now += 1.1
    assert auth.authenticate("bob", "b0b", CLIENT) is None


def test_broken_file_keeps_the_previous_set(
    auth: HtpasswdAuthenticator, path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    good = path.read_text()
    path.write_text(good + "this line has no colon\n")
    clock.now += 1.1
    with caplog.at_level(logging.ERROR):
        assert auth.authenticate("alice", "s3cret", CLIENT) is not None
        clock.now += 1.1
        assert auth.authenticate("bob", "b0b", CLIENT) is not None
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1  # once per bad version, not every second
    assert f"{path}:3" in refusals[0].getMessage()
    assert "keeping the 2 users" in caplog.text
    path.write_text(good.splitlines()[0] + "\n")  # repaired, bob removed
    clock.now += 1.1
    assert auth.authenticate("bob", "b0b", CLIENT) is None
    assert auth.authenticate("alice", "s3cret", CLIENT) is not None


def test_missing_file(
    auth: HtpasswdAuthenticator, path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path.unlink()
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            clock.now += 1.1
            assert auth.authenticate("alice", "s3cret", CLIENT) is not None
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    with pytest.raises(HtpasswdError, match="cannot use htpasswd file"):
        HtpasswdAuthenticator(path)


def test_broken_at_start_stops(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"alice:$2y$04$" + b"x" * 53 + b"\n\xff\xfe:x\n")
    with pytest.raises(HtpasswdError, match="cannot use htpasswd file"):
        HtpasswdAuthenticator(bad)


def test_non_bcrypt_entries_are_ignored(
    path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    htpasswd(path, "md5user", "pw", "-m")
    htpasswd(path, "shauser", "pw", "-s")
    with caplog.at_level(logging.WARNING):
        auth = HtpasswdAuthenticator(path, clock=clock)
    assert auth.users == {"alice", "bob"}
    assert auth.authenticate("md5user", "pw", CLIENT) is None
    assert "'md5user' ignored: not a bcrypt hash" in caplog.text
    assert "'shauser' ignored" in caplog.text


def test_long_passwords_as_apache(tmp_path: Path) -> None:
    file = tmp_path / "htpasswd"
    long = "p" * 80
    htpasswd(file, "alice", long)
    auth = HtpasswdAuthenticator(file)
    assert auth.authenticate("alice", long, CLIENT) is not None
    assert auth.authenticate("alice", long[:72] + "different", CLIENT) is not None  # as httpd


def test_resolve(auth: HtpasswdAuthenticator) -> None:
    assert auth.backend == "htpasswd"
    principal = auth.resolve("alice")
    assert principal is not None
    assert principal.subject == "alice"
    assert auth.resolve("nobody") is None
    assert auth.resolve("alice", "3") is None  # htpasswd accounts have no tokens


def test_parse() -> None:
    hashed = "$2y$05$" + "a" * 53
    users, warnings = parse_htpasswd(f"# comment\n\nalice:{hashed}\r\nbob:{{SHA}}x=\n", "f")
    assert users == {"alice": hashed}
    assert warnings == [
        "f:4: user 'bob' ignored: not a bcrypt hash "
        "(hatchway accepts only bcrypt; make the entry with htpasswd -B)"
    ]
    for bad in [f"alice:{hashed}\nalice:{hashed}\n", ":x\n", "alice:\n", "alice\n"]:
        with pytest.raises(HtpasswdError):
            parse_htpasswd(bad, "f")


def test_names_outside_the_account_grammar_are_skipped(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``alice/ci`` would own ``alice/ci/*`` inside alice's namespace (``${account}/*``)."""
    hashed = path.read_text().splitlines()[0].partition(":")[2]
    with path.open("a") as out:
        for name in ("alice/ci", "-dash", "sp ace", "tab\there", "x" * 200, "ok.name@corp"):
            out.write(f"{name}:{hashed}\n")
    with caplog.at_level(logging.WARNING):
        auth = HtpasswdAuthenticator(path)
    assert auth.users == {"alice", "bob", "ok.name@corp"}
    assert auth.authenticate("alice/ci", "s3cret", CLIENT) is None
    for lineno in range(3, 8):
        assert f"htpasswd:{lineno}: user " in caplog.text
    assert "'alice/ci' ignored: not a valid account name" in caplog.text
    assert hashed not in caplog.text
    assert hashed[7:29] not in caplog.text  # not even the salt


def test_a_name_that_is_also_a_local_account_is_refused(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local = {"alice"}
    with caplog.at_level(logging.WARNING):
        auth = HtpasswdAuthenticator(path, reserved=local.__contains__)
    assert "user 'alice' is also a local account: both are refused" in caplog.text
    caplog.clear()
    assert auth.authenticate("alice", "s3cret", CLIENT) is None
    assert "login as 'alice' refused: the name is both a local account and a user" in caplog.text
    assert auth.resolve("alice") is None
    assert auth.credential_binding("alice") is None
    assert auth.authenticate("bob", "b0b", CLIENT) is not None
    local.clear()  # the local account was removed: the file's alice may log in again
    assert auth.authenticate("alice", "s3cret", CLIENT) is not None


def test_refresh_tokens_end_when_the_users_line_changes(
    path: Path, clock: FakeClock, tmp_path: Path
) -> None:
    store = new_store(tmp_path)
    auth = HtpasswdAuthenticator(path, clock=clock)
    sessions = {}
    for user, password in (("alice", "s3cret"), ("bob", "b0b")):
        principal = auth.authenticate(user, password, CLIENT)
        assert principal is not None
        record, sessions[user] = issue_refresh_token(
            store, principal, backend="htpasswd", client_id="docker", authenticators=[auth]
        )
        assert record.binding is not None
        assert record.binding not in path.read_text()
    assert redeem_refresh_token(store, sessions["alice"], auth, CLIENT) is not None

    htpasswd(path, "alice", "s3cret")  # the same password again: a new salt, a new line
    clock.now += 2
    assert redeem_refresh_token(store, sessions["alice"], auth, CLIENT) is None
    (alice,) = store.refresh_tokens.list("alice", include_inactive=True)
    assert alice.revoked_at is not None  # for good, not just while the line differs
    assert redeem_refresh_token(store, sessions["bob"], auth, CLIENT) is not None

    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:1]))
    clock.now += 2
    assert not auth.has_user("bob")
    assert redeem_refresh_token(store, sessions["bob"], auth, CLIENT) is None
    store.dispose()


def test_refresh_tokens_issued_without_a_binding_end(
    path: Path, clock: FakeClock, tmp_path: Path
) -> None:
    """Tokens from before binding existed cannot prove their line: they end at next use."""
    store = new_store(tmp_path)
    auth = HtpasswdAuthenticator(path, clock=clock)
    principal = auth.authenticate("alice", "s3cret", CLIENT)
    assert principal is not None
    _, secret = issue_refresh_token(store, principal, backend="htpasswd", client_id="docker")
    assert redeem_refresh_token(store, secret, auth, CLIENT) is None
    store.dispose()
