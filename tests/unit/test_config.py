"""Configuration: embedded defaults, distribution-style files, env overrides, clear errors."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hatchway.config.load import load
from hatchway.config.model import Config, parse_duration
from hatchway.errors import ConfigError
from tests.support.server import HATCHWAY

# distribution's own example (cmd/registry/config-example.yml), unquoted version and all.
DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

# The README's example, every key hatchway documents.
README_CONFIG = """\
version: 0.1
log:
  level: info            # error | warn | info | debug
  formatter: text        # text | json
  accesslog: {disabled: false}
storage:
  filesystem:
    rootdirectory: /var/lib/hatchway
  delete:
    enabled: true
  maintenance:
    uploadpurging: {enabled: true, age: 168h, interval: 24h, dryrun: false}
  cache: {blobdescriptor: inmemory}
http:
  addr: 127.0.0.1:5000
  workers: 0
  headers: {X-Content-Type-Options: [nosniff]}
  tls:
    certificate: /etc/hatchway/cert.pem
    key: /etc/hatchway/key.pem
"""


def load_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return load(path, environ=environ or {})


def config_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, environ)
    return str(info.value)


# -- defaults and files --------------------------------------------------------------------


def test_no_file_gives_embedded_defaults() -> None:
    config = load(None, environ={})
    assert config.storage.delete.enabled is True
    assert config.http.addr == "127.0.0.1:5000"
    assert config.http.host_port() == ("127.0.0.1", 5000)
    assert config.storage.driver() == ("filesystem", {"rootdirectory": "./hatchway-data"})
    assert config.http.tls is None
    # Secure by default: the built-in token service.
    assert config.auth_mode == "token"
    assert config.auth is not None
    assert config.auth.token is not None
    assert config.auth.token.service == "hatchway"
    assert config.auth.token.expiration == 300
    assert config.log.level == "info"
    assert config.storage.maintenance.uploadpurging.age == 168 * 3600


def test_distribution_config_loads(tmp_path: Path) -> None:
    config = load_text(tmp_path, DISTRIBUTION_CONFIG)
    assert config.version == "0.1"
    assert config.storage.driver() == ("filesystem", {"rootdirectory": "/var/lib/registry"})
    assert config.http.addr == ":5000"
    assert config.http.host_port() == ("0.0.0.0", 5000)
    assert config.http.headers == {"X-Content-Type-Options": ["nosniff"]}
    assert config.storage.delete.enabled is False  # distribution's default in a file


def test_distribution_config_with_quoted_version_loads(tmp_path: Path) -> None:
    config = load_text(tmp_path, DISTRIBUTION_CONFIG.replace("version: 0.1", 'version: "0.1"'))
    assert config.storage.driver() == ("filesystem", {"rootdirectory": "/var/lib/registry"})
    assert config.log.fields == {"service": "registry"}
    assert config.storage.delete.enabled is False


def test_readme_config_loads(tmp_path: Path) -> None:
    config = load_text(tmp_path, README_CONFIG)
    assert config.storage.delete.enabled is True
    assert config.http.tls is not None
    assert config.http.tls.certificate == "/etc/hatchway/cert.pem"
    assert config.storage.maintenance.uploadpurging.interval == 24 * 3600


@pytest.mark.parametrize(("value", "option"), [("true", True), ("false", False), ("auto", None)])
def test_filesystem_groupcommit(tmp_path: Path, value: str, option: bool | None) -> None:
    config = load_text(
        tmp_path, f"storage:\n  filesystem: {{rootdirectory: /x, groupcommit: {value}}}\n"
    )
    expected: dict[str, object] = {"rootdirectory": "/x"}
    if option is not None:
        expected["groupcommit"] = option
    assert config.storage.driver() == ("filesystem", expected)


def test_filesystem_groupcommit_rejects_other_values(tmp_path: Path) -> None:
    text = "storage:\n  filesystem: {rootdirectory: /x, groupcommit: sometimes}\n"
    assert "groupcommit" in config_error(tmp_path, text)


@pytest.mark.parametrize(("value", "option"), [("true", None), ("false", False)])
def test_filesystem_directio(tmp_path: Path, value: str, option: bool | None) -> None:
    config = load_text(
        tmp_path, f"storage:\n  filesystem: {{rootdirectory: /x, directio: {value}}}\n"
    )
    expected: dict[str, object] = {"rootdirectory": "/x"}
    if option is not None:
        expected["directio"] = option
    assert config.storage.driver() == ("filesystem", expected)


def test_inmemory_storage(tmp_path: Path) -> None:
    config = load_text(tmp_path, 'version: "0.1"\nstorage:\n  inmemory: {}\n')
    assert config.storage.driver() == ("inmemory", {})


def test_two_storage_drivers_is_an_error(tmp_path: Path) -> None:
    message = config_error(
        tmp_path, "storage:\n  inmemory: {}\n  filesystem: {rootdirectory: /x}\n"
    )
    assert "storage" in message
    assert "one storage driver" in message


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "")
    assert config.http.addr == "127.0.0.1:5000"
    assert config.storage.delete.enabled is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- a\n- b\n", "top level must be a mapping"), ("http: [\n", "not valid YAML")],
)
def test_malformed_file(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(tmp_path, text)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yml", environ={})


# -- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus: 1\n", "bogus"),
        ("storage:\n  filesystem:\n    rootdir: /x\n", "storage.filesystem.rootdir"),
        ("storage:\n  delete:\n    enable: true\n", "storage.delete.enable"),
        (
            "storage:\n  maintenance:\n    uploadpurging:\n      agee: 1h\n",
            "storage.maintenance.uploadpurging.agee",
        ),
        ("log:\n  accesslog:\n    disabeld: true\n", "log.accesslog.disabeld"),
        (
            "http:\n  tls:\n    certificate: /c\n    key: /k\n    clientcas: [/ca]\n",
            "http.tls.clientcas",
        ),
        ("http:\n  adr: 127.0.0.1:5000\n", "http.adr"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(tmp_path, f'version: "0.1"\n{text}')
    assert f"{key}: unknown key" in message
    assert str(tmp_path / "config.yml") in message


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize("addr", ["nope", "host:99999", "host:0", "host:", "127.0.0.1:http", ""])
def test_bad_addr(tmp_path: Path, addr: str) -> None:
    message = config_error(tmp_path, f"http:\n  addr: '{addr}'\n")
    assert "http.addr" in message
    assert "HOST:PORT" in message


@pytest.mark.parametrize(
    ("addr", "host_port"),
    [
        (":5000", ("0.0.0.0", 5000)),
        ("0.0.0.0:6000", ("0.0.0.0", 6000)),
        ("[::1]:5001", ("::1", 5001)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_good_addr(tmp_path: Path, addr: str, host_port: tuple[str, int]) -> None:
    assert load_text(tmp_path, f"http:\n  addr: '{addr}'\n").http.host_port() == host_port


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("168h", 168 * 3600.0),
        ("1h30m", 5400.0),
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
        ("10s", 10.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2h45m30s", 9930.0),
    ],
)
def test_durations(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["1x", "h", "", "-1h", "1h 30m", "10 s", "1d", True, None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_durations_in_a_file(tmp_path: Path) -> None:
    text = "storage:\n  maintenance:\n    uploadpurging:\n      age: 1h30m\n      interval: 90\n"
    purging = load_text(tmp_path, text).storage.maintenance.uploadpurging
    assert purging.age == 5400.0
    assert purging.interval == 90.0
    text = "storage:\n  maintenance:\n    uploadpurging:\n      age: 168h\n"
    assert load_text(tmp_path, text).storage.maintenance.uploadpurging.age == 168 * 3600.0
    message = config_error(tmp_path, text.replace("168h", "a week"))
    assert "storage.maintenance.uploadpurging.age" in message


def test_auth_sections_load_in_distribution_shape(tmp_path: Path) -> None:
    htpasswd = load_text(
        tmp_path, "auth:\n  htpasswd:\n    realm: basic-realm\n    path: /auth/htpasswd\n"
    )
    assert htpasswd.auth_mode == "htpasswd"
    assert htpasswd.auth is not None
    assert htpasswd.auth.htpasswd is not None
    assert htpasswd.auth.htpasswd.path == "/auth/htpasswd"
    token = load_text(
        tmp_path,
        "auth:\n  token:\n    realm: https://auth/token\n    service: registry\n"
        "    issuer: auth-server\n    rootcertbundle: /certs/bundle.pem\n",
    )
    assert token.auth_mode == "token"
    assert token.auth is not None
    assert token.auth.token is not None
    assert token.auth.token.external
    assert load_text(tmp_path, "version: 0.1\n").auth_mode == "none"


@pytest.mark.parametrize(
    ("jwks", "insecure", "error"),
    [
        ("https://auth.example.com/jwks.json", False, None),
        ("/etc/hatchway/jwks.json", False, None),
        ("http://auth.example.com/jwks.json", False, "http:// is not safe for signing keys"),
        ("http://127.0.0.1:8080/jwks.json", False, "http:// is not safe for signing keys"),
        ("http://auth.example.com/jwks.json", True, "only to a loopback address"),
        ("http://10.0.0.1/jwks.json", True, "only to a loopback address"),
        ("http://127.0.0.1:8080/jwks.json", True, None),
        ("http://[::1]:8080/jwks.json", True, None),
        ("ftp://auth.example.com/jwks.json", True, "expected an https:// URL"),
    ],
)
def test_jwks_url_must_be_https_unless_loopback_and_insecure(
    tmp_path: Path, jwks: str, insecure: bool, error: str | None
) -> None:
    """Signing keys fetched over plain http could be swapped by anyone on the path."""
    text = f"auth:\n  token:\n    jwks: '{jwks}'\n    jwksinsecure: {str(insecure).lower()}\n"
    if error is None:
        auth = load_text(tmp_path, text).auth
        assert auth is not None
        assert auth.token is not None
        assert auth.token.external
    else:
        message = config_error(tmp_path, text)
        assert "auth.token" in message, message
        assert error in message, message


def test_auth_section_errors_name_the_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, "auth:\n  token:\n    expiration: 10\n")
    assert "auth.token.expiration" in message
    message = config_error(tmp_path, "auth:\n  htpasswd:\n    realm: r\n")
    assert "auth.htpasswd.path" in message
    message = config_error(tmp_path, "auth:\n  silly: {}\n")
    assert "auth.silly" in message


# -- environment ---------------------------------------------------------------------------


def test_env_overrides_defaults() -> None:
    config = load(
        None,
        environ={
            "HATCHWAY_HTTP_ADDR": "0.0.0.0:6000",
            "HATCHWAY_STORAGE_DELETE_ENABLED": "false",
            "HATCHWAY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/srv/reg",
            "HATCHWAY_LOG_LEVEL": "debug",
            "HATCHWAY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
        },
    )
    assert config.http.addr == "0.0.0.0:6000"
    assert config.storage.delete.enabled is False
    assert config.storage.driver() == ("filesystem", {"rootdirectory": "/srv/reg"})
    assert config.log.level == "debug"
    assert config.storage.maintenance.uploadpurging.age == 7200.0


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(DISTRIBUTION_CONFIG.replace("version: 0.1", 'version: "0.1"'))
    environ = {
        "HATCHWAY_HTTP_ADDR": "127.0.0.1:6001",
        "HATCHWAY_STORAGE_DELETE_ENABLED": "true",
        "HATCHWAY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/from/env",
    }
    config = load(path, environ=environ)
    assert config.http.addr == "127.0.0.1:6001"
    assert config.storage.delete.enabled is True
    assert config.storage.driver() == ("filesystem", {"rootdirectory": "/from/env"})
    assert config.http.headers == {"X-Content-Type-Options": ["nosniff"]}  # file kept
    config = load(path, environ=environ, overrides={"http.addr": "127.0.0.1:6002"})
    assert config.http.addr == "127.0.0.1:6002"


def test_unrelated_hatchway_variables_are_ignored() -> None:
    config = load(
        None,
        environ={
            "HATCHWAY_USERNAME": "bob",
            "HATCHWAY_PASSWORD": "secret",
            "HATCHWAY_CONFIG": "/nonexistent.yml",
            "HATCHWAY_TOKEN_PASSPHRASE": "x",
            "NOT_HATCHWAY_HTTP_ADDR": "nope",
        },
    )
    assert config == load(None, environ={})


@pytest.mark.parametrize(
    "name", ["HATCHWAY_HTTP_NOPE", "HATCHWAY_STORAGE_FILESYSTEM_ROOTDIR", "HATCHWAY_LOG_LEVELS"]
)
def test_env_unknown_key_names_the_variable(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(None, environ={name: "1"})


def test_env_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=re.escape("storage.delete.enabled")):
        load(None, environ={"HATCHWAY_STORAGE_DELETE_ENABLED": "perhaps"})
    with pytest.raises(ConfigError, match=re.escape("http.addr")):
        load(None, environ={"HATCHWAY_HTTP_ADDR": "nowhere"})


@pytest.mark.parametrize(
    ("name", "value", "dotted"),
    [
        # Environment values are text; a string key takes them verbatim.
        ("HATCHWAY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv/reg #1", "rootdirectory"),
        ("HATCHWAY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "0123", "rootdirectory"),
        ("HATCHWAY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv/a: b", "rootdirectory"),
        ("HATCHWAY_HTTP_ADDR", "[::1]:5000", "addr"),
        ("HATCHWAY_HTTP_ADDR", "[::]:5000", "addr"),
        ("HATCHWAY_HTTP_SECRET", "12345", "secret"),
    ],
)
def test_env_string_values_are_verbatim(name: str, value: str, dotted: str) -> None:
    config = load(None, environ={name: value})
    section = config.storage.filesystem if "FILESYSTEM" in name else config.http
    assert getattr(section, dotted) == value


# -- the command line ----------------------------------------------------------------------


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HATCHWAY, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **(env or {})},
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 3, output
    for text in expected:
        assert text in result.stderr


@pytest.mark.parametrize("command", ["serve", "gc"])
def test_cli_bad_config_file(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text('version: "0.1"\nstorage:\n  filesystem:\n    rootdir: /x\n')
    result = run_cli(tmp_path, command, "--config", str(bad))
    assert_clean_failure(result, "storage.filesystem.rootdir", "unknown key", str(bad))


def test_cli_bad_env_variable(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", env={"HATCHWAY_HTTP_NOPE": "1"})
    assert_clean_failure(result, "HATCHWAY_HTTP_NOPE")


def test_cli_bad_addr_flag(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--addr", "nowhere", "--data", str(tmp_path / "d"))
    assert_clean_failure(result, "http.addr")


def test_cli_unparsable_env_value(tmp_path: Path) -> None:
    # A value that is not valid YAML must not crash the loader with a traceback.
    result = run_cli(tmp_path, "gc", "--data", str(tmp_path), env={"HATCHWAY_HTTP_ADDR": "[::1"})
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr


# -- http.trustedproxies -------------------------------------------------------------------


def test_trusted_proxies_from_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nhttp:\n  trustedproxies: [10.0.0.0/8, 192.0.2.7, 'fd00::/8']\n")
    assert load(path, environ={}).http.trustedproxies == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "fd00::/8",
    ]
    env = {"HATCHWAY_HTTP_TRUSTEDPROXIES": "127.0.0.1/32, 172.16.0.0/12 ::1"}
    assert load(path, environ=env).http.trustedproxies == [
        "127.0.0.1/32",
        "172.16.0.0/12",
        "::1/128",
    ]
    assert load(None, environ={}).http.trustedproxies == []


def test_trusted_proxies_refuses_what_is_no_cidr() -> None:
    with pytest.raises(ConfigError, match=r"http\.trustedproxies.*'proxy\.local'"):
        load(None, environ={"HATCHWAY_HTTP_TRUSTEDPROXIES": "10.0.0.0/8,proxy.local"})
