"""``docker-credential-hatchway`` speaks the credential-helper protocol exactly as
docker/docker-credential-helpers' ``credentials.Serve`` does (the real executable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatchway import __version__
from tests.support.credhelper import NOT_FOUND, Helper


@pytest.fixture
def helper(tmp_path: Path) -> Helper:
    return Helper(tmp_path / "home")


def test_round_trip(helper: Helper) -> None:
    assert helper.ok("list") == b"{}\n"
    helper.store("registry.example:5000", "alice", "pw-1")
    helper.store("127.0.0.1:5000", "bob", "pw-2")

    assert helper.ok("get", stdin="registry.example:5000") == (
        b'{"ServerURL":"registry.example:5000","Username":"alice","Secret":"pw-1"}\n'
    )
    assert helper.ok("get", stdin="127.0.0.1:5000\n") == (
        b'{"ServerURL":"127.0.0.1:5000","Username":"bob","Secret":"pw-2"}\n'
    )
    # Go maps encode with sorted keys.
    assert helper.ok("list") == b'{"127.0.0.1:5000":"bob","registry.example:5000":"alice"}\n'

    helper.store("127.0.0.1:5000", "carol", "pw-3")  # replaces
    assert helper.get("127.0.0.1:5000") == {
        "ServerURL": "127.0.0.1:5000",
        "Username": "carol",
        "Secret": "pw-3",
    }

    assert helper.ok("erase", stdin="127.0.0.1:5000") == b""
    assert helper.fail("get", stdin="127.0.0.1:5000") + b"\n" == NOT_FOUND
    assert helper.list() == {"registry.example:5000": "alice"}
    assert helper.ok("erase", stdin="registry.example:5000\n") == b""
    assert helper.ok("list") == b"{}\n"


def test_missing_server_is_the_exact_not_found_message(helper: Helper) -> None:
    for action in ("get", "erase"):  # with no store file at all
        result = helper.run(action, stdin="nowhere.example")
        assert (result.returncode, result.stdout, result.stderr) == (1, NOT_FOUND, b"")
    helper.store("somewhere.example", "u", "s")
    for action in ("get", "erase"):  # with a store that has other entries
        result = helper.run(action, stdin="nowhere.example")
        assert (result.returncode, result.stdout, result.stderr) == (1, NOT_FOUND, b"")
    # The key is the URL exactly: the reference helpers do not normalise it either.
    assert helper.fail("get", stdin="https://somewhere.example") + b"\n" == NOT_FOUND


def test_identity_token_convention(helper: Helper) -> None:
    """docker stores an identity (refresh) token as Username "<token>", Secret = the token,
    and reads it back the same way; Go's encoder writes "<" and ">" as \\u003c, \\u003e."""
    stdin = b'{"ServerURL":"127.0.0.1:5000","Username":"\\u003ctoken\\u003e","Secret":"hwr_x&y"}\n'
    assert helper.ok("store", stdin=stdin) == b""
    out = helper.ok("get", stdin="127.0.0.1:5000")
    assert out == (
        b'{"ServerURL":"127.0.0.1:5000","Username":"\\u003ctoken\\u003e",'
        b'"Secret":"hwr_x\\u0026y"}\n'
    )
    assert json.loads(out)["Username"] == "<token>"
    assert helper.ok("list") == b'{"127.0.0.1:5000":"\\u003ctoken\\u003e"}\n'
    helper.store("other:1", "<token>", "t2")  # an unescaped "<token>" is the same username
    assert helper.get("other:1")["Username"] == "<token>"


def test_version_usage_and_unknown_action(helper: Helper) -> None:
    line = f"docker-credential-hatchway (hatchway) {__version__}\n".encode()
    assert helper.ok("version") == line
    assert helper.ok("--version") == line
    assert helper.ok("-v") == line
    usage = b"Usage: docker-credential-hatchway <store|get|erase|list|version>"
    assert helper.ok("--help") == usage + b"\n"
    assert helper.fail() == usage
    assert helper.fail("get", "extra") == usage
    assert helper.fail("frobnicate") == b"docker-credential-hatchway: unknown action: frobnicate"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "EOF"),
        (b"  \n\n", "EOF"),
        (b'{"ServerURL": "x"', "unexpected EOF"),
        (b'{"ServerURL": "x', "unexpected EOF"),
        (b"nope", "invalid character 'n' looking for beginning of value"),
        (b"null", "no credentials server URL"),
        (b"{}", "no credentials server URL"),
        (b'{"Username":"u","Secret":"s"}', "no credentials server URL"),
        (b'{"ServerURL":"x","Secret":"s"}', "no credentials username"),
        (b'{"ServerURL":"x","Username":""}', "no credentials username"),
        (
            b'{"ServerURL":5000}',
            "json: cannot unmarshal number into Go struct field Credentials.ServerURL"
            " of type string",
        ),
        (
            b'{"ServerURL":"x","Username":"u","Secret":true}',
            "json: cannot unmarshal bool into Go struct field Credentials.Secret of type string",
        ),
        (b"[]", "json: cannot unmarshal array into Go value of type credentials.Credentials"),
        (b'"x"', "json: cannot unmarshal string into Go value of type credentials.Credentials"),
        (b"x" * 70_000, "bufio.Scanner: token too long"),
    ],
)
def test_store_refuses_bad_input(helper: Helper, stdin: bytes, message: str) -> None:
    assert helper.fail("store", stdin=stdin).decode() == message
    assert not helper.credentials_file.exists()
    assert not helper.keyfile.exists()


@pytest.mark.parametrize("stdin", [b"", b"\n", b"  \t\r\n"])
def test_get_and_erase_need_a_server_url(helper: Helper, stdin: bytes) -> None:
    assert helper.fail("get", stdin=stdin) == b"no credentials server URL"
    assert helper.fail("erase", stdin=stdin) == b"no credentials server URL"


def test_store_decodes_like_go(helper: Helper) -> None:
    """Field names match case-insensitively, unknown fields and trailing data are ignored,
    lines are joined without their newlines, null leaves a field empty."""
    stdin = (
        b'{\r\n "serverurl": "a.example",\n "USERNAME": "u",\n "secret": "s",'
        b' "Extra": [1, {"x": null}], "ServerURL": "b.example"}\n'
        b'{"ServerURL": "ignored"}'
    )
    assert helper.ok("store", stdin=stdin) == b""
    assert helper.list() == {"b.example": "u"}
    assert helper.get("b.example")["Secret"] == "s"
    helper.run("store", stdin=b'{"ServerURL":"c","Username":"u","Secret":null}')
    assert helper.get("c")["Secret"] == ""


def test_get_trims_whitespace_and_joins_lines(helper: Helper) -> None:
    helper.store("reg.example:443", "u", "s")
    for stdin in (b"reg.example:443", b"  reg.example:443 \r\n", b"reg.example\n:443\n"):
        assert helper.get(stdin.decode())["ServerURL"] == "reg.example:443"


def test_unicode_and_escapes_round_trip(helper: Helper) -> None:
    secret = 'pä$$ "quoted" \\ tab\t nl\n ls\u2028 <&> \U0001f510'
    helper.store("unicode.example", "zoë", secret)
    out = helper.ok("get", stdin="unicode.example")
    assert json.loads(out) == {
        "ServerURL": "unicode.example",
        "Username": "zoë",
        "Secret": secret,
    }
    # Non-ASCII is raw UTF-8; control characters, quotes, <, >, & and U+2028 are escaped.
    assert "zoë".encode() in out
    assert "\U0001f510".encode() in out
    assert b'\\"quoted\\" \\\\ tab\\t nl\\n ls\\u2028 \\u003c\\u0026\\u003e' in out


def test_list_ignores_stdin(helper: Helper) -> None:
    helper.store("x.example", "u", "s")
    assert helper.ok("list", stdin=b"unused") == b'{"x.example":"u"}\n'


def test_bad_backend_setting_is_one_line(helper: Helper) -> None:
    message = helper.fail("list", HATCHWAY_CREDENTIALS_BACKEND="vault")
    assert message == b"HATCHWAY_CREDENTIALS_BACKEND must be file or keyring, not 'vault'"
