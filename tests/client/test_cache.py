"""The client's cache of upload sessions and mount sources, on disk as a user has it."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from hatchway.client.cache import (
    UPLOAD_RECORD_LIFETIME,
    MountSources,
    UploadRecord,
    UploadSessions,
    cache_dir,
)

DIGEST = "sha256:" + "ab" * 32
LOCATION = "https://registry.example.com/v2/team/app/blobs/uploads/0f3c?_state=opaque"


def test_the_cache_follows_xdg_and_falls_back_to_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert cache_dir() == Path("/somewhere/cache/hatchway")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")  # as the XDG spec says
    monkeypatch.setenv("HOME", "/home/alice")
    assert cache_dir() == Path("/home/alice/.cache/hatchway")


def test_a_record_round_trips_privately_and_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "hatchway").mkdir(mode=0o755)  # made by something else, too open
    sessions = UploadSessions("registry.example.com", tmp_path / "hatchway")
    sessions.put("team/app", DIGEST, LOCATION, 1024)
    assert sessions.get("team/app", DIGEST) == UploadRecord(LOCATION, 1024)
    assert sessions.get("team/other", DIGEST) is None
    assert (
        UploadSessions("other.example.com", tmp_path / "hatchway").get("team/app", DIGEST) is None
    )
    [path] = (tmp_path / "hatchway" / "uploads").iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, path.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    sessions.drop("team/app", DIGEST)
    assert sessions.get("team/app", DIGEST) is None
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize(
    "damage",
    ["not json", "a list", "another key's", "no location", "negative offset", "a week old"],
)
def test_a_bad_or_stale_record_is_dropped_quietly(tmp_path: Path, damage: str) -> None:
    sessions = UploadSessions("registry.example.com", tmp_path)
    sessions.put("team/app", DIGEST, LOCATION, 10)
    [path] = (tmp_path / "uploads").iterdir()
    doc = json.loads(path.read_text())
    if damage == "not json":
        path.write_text("{")
    elif damage == "a list":
        path.write_text("[]")
    else:
        if damage == "another key's":
            doc["repository"] = "team/else"
        elif damage == "no location":
            del doc["location"]
        elif damage == "negative offset":
            doc["offset"] = -1
        else:
            doc["saved"] = time.time() - UPLOAD_RECORD_LIFETIME - 1
        path.write_text(json.dumps(doc))
    assert sessions.get("team/app", DIGEST) is None
    assert not path.exists()


def test_mount_sources_keep_the_latest_few(tmp_path: Path) -> None:
    mounts = MountSources(tmp_path)
    for repo in ("a", "b", "c", "a", "d", "e", "f"):
        mounts.record("registry.example.com", repo, [DIGEST])
    assert mounts.repositories("registry.example.com", DIGEST) == ["f", "e", "d", "a", "c"]
    assert mounts.repositories("other.example.com", DIGEST) == []


def test_an_unwritable_cache_is_no_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = tmp_path / "file-not-dir"  # root writes anywhere: block with a file
        blocked.write_text("")
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o500)
    UploadSessions("registry.example.com", blocked / "hatchway").put("r", DIGEST, LOCATION, 0)
    MountSources(blocked / "hatchway").record("registry.example.com", "r", [DIGEST])
    assert UploadSessions("registry.example.com", blocked / "hatchway").get("r", DIGEST) is None
