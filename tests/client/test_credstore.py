"""Credential stores: config.json, and a real helper program on PATH (a fake one that
keeps JSON in a file), routed as docker routes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatchway.client.credstore import (
    CredentialStoreError,
    FileStore,
    HelperStore,
    credentials_lookup,
    store_for,
)
from hatchway.client.dockerconfig import Credentials, DockerConfig
from tests.support.logins import Home, make_home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    home = make_home(tmp_path)
    home.install_helper()
    for key, value in home.env().items():
        monkeypatch.setenv(key, value)
    return home


def test_routing_is_cred_helpers_then_creds_store_then_file(home: Home) -> None:
    cfg = DockerConfig.load(home.config_file)
    assert isinstance(store_for(cfg, "a:1"), FileStore)
    cfg.data["credsStore"] = "testhelper"
    store = store_for(cfg, "a:1")
    assert isinstance(store, HelperStore)
    assert store.name == "testhelper"
    cfg.data["credHelpers"] = {"b:2": "other", "https://c:3": "third"}
    picked = store_for(cfg, "b:2")
    assert isinstance(picked, HelperStore)
    assert picked.name == "other"
    picked = store_for(cfg, "https://c:3")
    assert isinstance(picked, HelperStore)
    assert picked.name == "third"
    picked = store_for(cfg, "a:1")
    assert isinstance(picked, HelperStore)
    assert picked.name == "testhelper"


def test_helper_round_trip_keeps_only_the_empty_entry(home: Home) -> None:
    home.write_config({"credsStore": "testhelper", "auths": {"a:1": {"auth": "YTpi"}}})
    cfg = DockerConfig.load(home.config_file)
    store = store_for(cfg, "a:1")
    store.store("a:1", Credentials("alice", "pw-1"))
    store.store("b:2", Credentials("bob", "", "hwr_token"))
    assert home.config()["auths"] == {"a:1": {}, "b:2": {}}
    assert home.config()["credsStore"] == "testhelper"
    assert home.helper_db() == {
        "a:1": {"Username": "alice", "Secret": "pw-1"},
        "b:2": {"Username": "<token>", "Secret": "hwr_token"},
    }
    assert store.get("a:1") == Credentials("alice", "pw-1")
    assert store.get("b:2") == Credentials("", "", "hwr_token")
    assert store.get("c:3") is None
    assert store.list() == {"a:1": "alice", "b:2": "<token>"}
    assert store.erase("a:1")
    assert not store.erase("a:1")
    assert home.config()["auths"] == {"b:2": {}}
    # The protocol: the action alone in argv, the data on stdin (JSON for store only).
    calls = home.helper_calls()
    assert all(len(c["argv"]) == 1 for c in calls)
    assert all("pw-1" not in arg for c in calls for arg in c["argv"])
    first = calls[0]
    assert first["argv"] == ["store"]
    assert json.loads(first["stdin"]) == {"ServerURL": "a:1", "Username": "alice", "Secret": "pw-1"}
    assert {"argv": ["get"], "stdin": "a:1"} in calls


def test_helper_failures_are_one_line(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    store = HelperStore("testhelper")
    monkeypatch.setenv("TESTHELPER_FAIL", "keychain locked\nsecond line")
    with pytest.raises(CredentialStoreError) as err:
        store.get("a:1")
    assert str(err.value) == "docker-credential-testhelper get: keychain locked"
    with pytest.raises(CredentialStoreError, match="store: keychain locked"):
        store.store("a:1", Credentials("u", "p"))
    missing = HelperStore("nosuchhelper")
    with pytest.raises(CredentialStoreError, match="docker-credential-nosuchhelper not found"):
        missing.get("a:1")


def test_file_store(home: Home) -> None:
    cfg = DockerConfig.load(home.config_file)
    store = FileStore(cfg)
    assert store.description == str(home.config_file)
    store.store("a:1", Credentials("alice", "pw"))
    store.store("b:2", Credentials("bob", "", "hwr_x"))
    again = FileStore(DockerConfig.load(home.config_file))
    assert again.get("a:1") == Credentials("alice", "pw")
    assert again.list() == {"a:1": "alice", "b:2": "bob"}
    assert again.erase("a:1")
    assert not again.erase("a:1")
    assert list(home.config()["auths"]) == ["b:2"]


def test_lookup_for_registry_auth(home: Home) -> None:
    home.write_config({"credHelpers": {"b:2": "testhelper"}})
    cfg = DockerConfig.load(home.config_file)
    FileStore(cfg).store("a:1", Credentials("alice", "pw"))
    store_for(cfg, "b:2").store("b:2", Credentials("bob", "", "hwr_t"))
    lookup = credentials_lookup()
    assert lookup("a:1") == Credentials("alice", "pw")
    assert lookup("b:2") == Credentials("", "", "hwr_t")
    assert lookup("c:3") is None
    gets = [c for c in home.helper_calls() if c["argv"] == ["get"]]
    assert lookup("b:2") == Credentials("", "", "hwr_t")
    assert [c for c in home.helper_calls() if c["argv"] == ["get"]] == gets  # asked once
