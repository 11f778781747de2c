"""Secrets at rest: the encrypted file (key file or passphrase), tampering, permissions,
concurrent writers, and the keyring backend's refusal of stores that do not protect."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.credhelper import HELPER, NOT_FOUND, Helper, files_containing, tree_bytes

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def helper(tmp_path: Path) -> Helper:
    return Helper(tmp_path / "home")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("passphrase", ["", PASSPHRASE], ids=["keyfile", "passphrase"])
def test_no_plaintext_anywhere_on_disk(helper: Helper, passphrase: str) -> None:
    env = {"HATCHWAY_CREDENTIALS_PASSPHRASE": passphrase} if passphrase else {}
    secret = "sekrit-" + secrets.token_hex(16)
    username = "user-" + secrets.token_hex(8)
    server = f"host-{secrets.token_hex(4)}.example:5000"
    helper.store(server, username, secret, **env)
    helper.store("second.example", "u2", secret + "-2", **env)
    assert helper.get(server, **env)["Secret"] == secret

    assert helper.credentials_file.exists()
    assert helper.keyfile.exists() == (not passphrase)
    for needle in (secret, username, server, PASSPHRASE):
        for form in (needle.encode(), needle.encode("utf-16-le")):
            assert files_containing(helper.home, form) == [], needle


@pytest.mark.parametrize("passphrase", ["", PASSPHRASE], ids=["keyfile", "passphrase"])
def test_private_modes(tmp_path: Path, passphrase: str) -> None:
    env = {"HATCHWAY_CREDENTIALS_PASSPHRASE": passphrase} if passphrase else {}
    home = tmp_path / "home"
    custom = tmp_path / "elsewhere" / "deep" / "creds.bin"
    key = tmp_path / "keys" / "hatchway.key"
    helper = Helper(
        home, HATCHWAY_CREDENTIALS_FILE=str(custom), HATCHWAY_CREDENTIALS_KEYFILE=str(key)
    )
    helper.store("a.example", "u", "s", **env)
    assert mode(custom) == 0o600
    assert mode(custom.parent) == 0o700
    assert mode(custom.with_name("creds.bin.lock")) == 0o600
    if passphrase:
        assert not key.exists()
    else:
        assert mode(key) == 0o600
        assert mode(key.parent) == 0o700
        assert key.stat().st_size == 32
    assert not (home / ".config" / "hatchway").exists()
    # Rewrites stay 0600 and leave no temp files behind.
    helper.store("b.example", "u", "s", **env)
    assert mode(custom) == 0o600
    assert sorted(p.name for p in custom.parent.iterdir()) == ["creds.bin", "creds.bin.lock"]

    default = Helper(tmp_path / "home2")
    default.store("a.example", "u", "s")
    assert mode(default.store_dir) == 0o700
    for name in ("credentials.enc", "credentials.key", "credentials.enc.lock"):
        assert mode(default.store_dir / name) == 0o600


def flip(path: Path, offset: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.parametrize("passphrase", ["", PASSPHRASE], ids=["keyfile", "passphrase"])
@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (-1, "was modified or is corrupt"),  # the tag
        (-20, "was modified or is corrupt"),  # the ciphertext
        (50, "was modified or is corrupt"),  # the nonce
        (6, "unsupported credentials file format version 0"),
        (0, "not a hatchway credentials file"),
        (20, ""),  # the salt: a different key, reported as such
    ],
)
def test_tampering_is_detected(helper: Helper, passphrase: str, where: int, expected: str) -> None:
    env = {"HATCHWAY_CREDENTIALS_PASSPHRASE": passphrase} if passphrase else {}
    helper.store("a.example", "alice", "s1", **env)
    tampered = flip(helper.credentials_file, where)
    for action, stdin in (("get", "a.example"), ("list", ""), ("erase", "a.example")):
        message = helper.fail(action, stdin=stdin, **env).decode()
        assert str(helper.credentials_file) in message
        assert expected in message
        if expected == "was modified or is corrupt":
            assert message.endswith("(authentication failed); it was left as it is")
    store = '{"ServerURL":"b.example","Username":"u","Secret":"s"}'
    assert expected in helper.fail("store", stdin=store, **env).decode()
    assert helper.credentials_file.read_bytes() == tampered  # left as it is


def test_truncated_file_is_refused(helper: Helper) -> None:
    helper.store("a.example", "alice", "s1")
    data = helper.credentials_file.read_bytes()
    cuts = {
        len(data) - 1: "was modified or is corrupt",
        60: "truncated credentials file",
        3: "truncated credentials file",
        0: "truncated credentials file",
    }
    for cut, expected in cuts.items():
        helper.credentials_file.write_bytes(data[:cut])
        assert expected in helper.fail("list").decode()
        assert helper.credentials_file.read_bytes() == data[:cut]


def test_wrong_or_missing_passphrase(helper: Helper) -> None:
    helper.store("a.example", "alice", "s1", HATCHWAY_CREDENTIALS_PASSPHRASE=PASSPHRASE)
    before = helper.credentials_file.read_bytes()
    path = helper.credentials_file
    wrong = {"HATCHWAY_CREDENTIALS_PASSPHRASE": "not it"}
    expected = f"wrong passphrase for {path} (HATCHWAY_CREDENTIALS_PASSPHRASE)".encode()
    assert helper.fail("get", stdin="a.example", **wrong) == expected
    assert helper.fail("list", **wrong) == expected
    assert helper.fail("store", stdin='{"ServerURL":"b","Username":"u"}', **wrong) == expected
    missing = f"{path} is encrypted with a passphrase: set HATCHWAY_CREDENTIALS_PASSPHRASE"
    assert helper.fail("get", stdin="a.example") == missing.encode()
    assert helper.credentials_file.read_bytes() == before
    assert not helper.keyfile.exists()
    assert helper.get("a.example", HATCHWAY_CREDENTIALS_PASSPHRASE=PASSPHRASE)["Secret"] == "s1"


def test_group_readable_keyfile_is_refused(helper: Helper) -> None:
    helper.store("a.example", "alice", "s1")
    before = helper.credentials_file.read_bytes()
    for bad in (0o644, 0o640, 0o604, 0o660):
        helper.keyfile.chmod(bad)
        expected = (
            f"key file {helper.keyfile} is accessible by group or others (mode {bad:04o});"
            f" run: chmod 600 {helper.keyfile}"
        )
        assert helper.fail("get", stdin="a.example").decode() == expected
        assert helper.fail("store", stdin='{"ServerURL":"b","Username":"u"}').decode() == expected
    assert helper.credentials_file.read_bytes() == before
    helper.keyfile.chmod(0o600)
    assert helper.get("a.example")["Secret"] == "s1"
    helper.keyfile.chmod(0o400)
    assert helper.get("a.example")["Secret"] == "s1"


def test_preexisting_open_keyfile_is_refused_on_first_store(tmp_path: Path) -> None:
    key = tmp_path / "shared.key"
    material = os.urandom(32)
    key.write_bytes(material)
    key.chmod(0o644)
    helper = Helper(tmp_path / "home", HATCHWAY_CREDENTIALS_KEYFILE=str(key))
    message = helper.fail("store", stdin='{"ServerURL":"a","Username":"u","Secret":"s"}')
    assert b"is accessible by group or others (mode 0644)" in message
    assert not helper.credentials_file.exists()
    key.chmod(0o600)
    helper.store("a", "u", "s")
    assert key.read_bytes() == material  # used as it is, not replaced
    assert helper.get("a")["Secret"] == "s"


def test_missing_short_or_wrong_keyfile(helper: Helper) -> None:
    helper.store("a.example", "alice", "s1")
    key = helper.keyfile.read_bytes()
    helper.keyfile.unlink()
    message = helper.fail("get", stdin="a.example").decode()
    assert message.startswith(f"key file {helper.keyfile} is missing")
    assert not helper.keyfile.exists()  # only store creates one, and only with no file

    helper.keyfile.write_bytes(key[:16])
    helper.keyfile.chmod(0o600)
    assert "is too short" in helper.fail("list").decode()

    helper.keyfile.write_bytes(os.urandom(32))
    expected = f"key file {helper.keyfile} does not open {helper.credentials_file}"
    assert helper.fail("list").decode().startswith(expected)

    helper.keyfile.write_bytes(key)
    assert helper.list() == {"a.example": "alice"}


@pytest.mark.parametrize("passphrase", ["", PASSPHRASE], ids=["keyfile", "passphrase"])
def test_concurrent_stores_all_survive(helper: Helper, passphrase: str) -> None:
    """Eight processes store at once, starting from nothing (so they also race to create
    the key file); then eight more over the existing file. No entry is lost."""
    env = {**helper.env, "HATCHWAY_CREDENTIALS_PASSPHRASE": passphrase}
    expected: dict[str, str] = {}
    for round_ in range(2):
        procs = []
        for i in range(8):
            server = f"r{round_}-{i}.example"
            expected[server] = f"user{i}"
            request = f'{{"ServerURL":"{server}","Username":"user{i}","Secret":"s{round_}{i}"}}'
            proc = subprocess.Popen(
                [HELPER, "store"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            procs.append((proc, request.encode()))
        for proc, data in procs:  # every process has started before any gets its input
            assert proc.stdin is not None
            proc.stdin.write(data)
            proc.stdin.close()
        for proc, _ in procs:
            assert proc.stdout is not None
            assert proc.stderr is not None
            out, err = proc.stdout.read(), proc.stderr.read()
            proc.wait(timeout=60)
            proc.stdout.close()
            proc.stderr.close()
            assert (proc.returncode, out, err) == (0, b"", b"")
        assert helper.list(HATCHWAY_CREDENTIALS_PASSPHRASE=passphrase) == expected
    assert helper.get("r1-7.example", HATCHWAY_CREDENTIALS_PASSPHRASE=passphrase)["Secret"] == "s17"
    assert sorted(p.name for p in helper.store_dir.iterdir()) == sorted(
        ["credentials.enc", "credentials.enc.lock"] + ([] if passphrase else ["credentials.key"])
    )


def test_each_write_uses_a_fresh_nonce(helper: Helper) -> None:
    helper.store("a.example", "alice", "s1")
    first = helper.credentials_file.read_bytes()
    helper.store("a.example", "alice", "s1")
    second = helper.credentials_file.read_bytes()
    assert len(first) == len(second)
    assert first[:43] == second[:43]  # header: same salt and key check
    assert first[43:55] != second[43:55]  # nonce
    assert first[55:] != second[55:]


@pytest.mark.parametrize(
    "backend", ["keyring.backends.null.Keyring", "keyring.backends.fail.Keyring"]
)
def test_keyring_backend_refuses_stores_that_do_not_protect(helper: Helper, backend: str) -> None:
    env = {"HATCHWAY_CREDENTIALS_BACKEND": "keyring", "PYTHON_KEYRING_BACKEND": backend}
    store = '{"ServerURL":"a","Username":"u","Secret":"s"}'
    for action, stdin in (("store", store), ("get", "a"), ("list", "")):
        message = helper.fail(action, stdin=stdin, **env).decode()
        assert message.startswith("no usable OS keyring (HATCHWAY_CREDENTIALS_BACKEND=keyring): ")
    assert tree_bytes(helper.home) == {}


def test_auto_backend_falls_back_to_the_encrypted_file(helper: Helper) -> None:
    env = {
        "HATCHWAY_CREDENTIALS_BACKEND": "",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    assert helper.fail("get", stdin="a", **env) + b"\n" == NOT_FOUND
    helper.store("a", "u", "s", **env)
    assert helper.credentials_file.exists()
    assert helper.get("a", **env)["Secret"] == "s"
