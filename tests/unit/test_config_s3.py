"""storage.s3: distribution's keys, unknown keys refused, --data stays local."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatchway.auth.tokens.keys import key_directory
from hatchway.config.load import load
from hatchway.errors import ConfigError
from hatchway.metadata.engine import database_dsn

S3_CONFIG = """
version: 0.1
storage:
  s3:
    region: eu-west-1
    regionendpoint: http://127.0.0.1:9000
    bucket: registry-bucket
    accesskey: AKIA
    secretkey: SECRET
    rootdirectory: /reg
    chunksize: 20971520
    forcepathstyle: true
    secure: false
    skipverify: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def test_distribution_keys_load(tmp_path: Path) -> None:
    config = load(write(tmp_path, S3_CONFIG), environ={})
    name, options = config.storage.driver()
    assert name == "s3"
    assert options["bucket"] == "registry-bucket"
    assert options["chunksize"] == 20 * 1024 * 1024
    assert options["forcepathstyle"] is True
    assert "SECRET" not in repr(config.storage.s3)


def test_unknown_s3_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage\.s3\.bucketname: unknown key"):
        load(write(tmp_path, S3_CONFIG + "    bucketname: x\n"), environ={})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    chunksize: 1024\n", "chunksize"),
        ("    v4auth: false\n", "SigV4"),
    ],
)
def test_bad_s3_values_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, S3_CONFIG + extra), environ={})


def test_access_key_without_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="go together"):
        load(write(tmp_path, S3_CONFIG.replace("    secretkey: SECRET\n", "")), environ={})


def test_env_overrides_s3_keys(tmp_path: Path) -> None:
    env = {"HATCHWAY_STORAGE_S3_BUCKET": "other-bucket", "HATCHWAY_STORAGE_S3_SECURE": "true"}
    config = load(write(tmp_path, S3_CONFIG), environ=env)
    assert config.storage.s3 is not None
    assert config.storage.s3.bucket == "other-bucket"
    assert config.storage.s3.secure is True


def test_data_names_the_local_directory_and_keeps_s3(tmp_path: Path) -> None:
    local = tmp_path / "local"
    config = load(write(tmp_path, S3_CONFIG), environ={}, local_dir=str(local))
    assert config.storage.driver()[0] == "s3"
    assert config.storage.filesystem is None
    assert config.storage.local_directory() == str(local)
    assert database_dsn(config) == f"sqlite:///{local.absolute() / 'hatchway.db'}"
    assert key_directory(config) == local / "keys"


def test_data_is_the_filesystem_root_without_s3(tmp_path: Path) -> None:
    config = load(None, environ={}, local_dir=str(tmp_path / "d"))
    assert config.storage.driver() == ("filesystem", {"rootdirectory": str(tmp_path / "d")})


def test_redirect_is_off_unless_configured(tmp_path: Path) -> None:
    assert not load(write(tmp_path, S3_CONFIG), environ={}).storage.redirects
    on = load(write(tmp_path, S3_CONFIG + "  redirect:\n    disable: false\n"), environ={})
    assert on.storage.redirects
