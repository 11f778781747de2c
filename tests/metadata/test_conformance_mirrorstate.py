"""The mirror's shared state (tag checks, last pulls) on SQLite and PostgreSQL."""

from __future__ import annotations

from hatchway.metadata import MetadataStore
from hatchway.metadata.mirrorstate import MirrorStateStore, Pulled, TagCheck


def test_tag_checks_are_upserted(store: MetadataStore) -> None:
    state = MirrorStateStore(store.db)
    assert state.tag_check("up/a", "v1") is None
    state.record_tag_check("up/a", "v1", "sha256:1", 100.0)
    state.record_tag_check("up/a", "v1", "sha256:2", 200.0)
    state.record_tag_check("up/b", "v1", "sha256:3", 50.0)
    assert state.tag_check("up/a", "v1") == TagCheck("sha256:2", 200.0)
    assert state.tag_check("up/b", "v1") == TagCheck("sha256:3", 50.0)


def test_last_pulls_keep_the_latest_and_expire_oldest_first(store: MetadataStore) -> None:
    state = MirrorStateStore(store.db)
    state.record_pulls(
        [
            Pulled("up/a", "sha256:m", "manifest", 100.0),
            Pulled("up/a", "sha256:b", "blob", 300.0),
            Pulled("up/c", "sha256:b", "blob", 50.0),
        ]
    )
    # An older time never overwrites a newer one.
    state.record_pulls([Pulled("up/a", "sha256:b", "blob", 10.0)])
    assert state.not_pulled_since(200.0) == [
        Pulled("up/c", "sha256:b", "blob", 50.0),
        Pulled("up/a", "sha256:m", "manifest", 100.0),
    ]
    assert state.not_pulled_since(200.0, limit=1) == [Pulled("up/c", "sha256:b", "blob", 50.0)]
    state.record_tag_check("up/a", "v1", "sha256:m", 100.0)
    state.forget(Pulled("up/a", "sha256:m", "manifest", 100.0), ["v1"])
    assert state.tag_check("up/a", "v1") is None
    # Pulled again after the purge read it: the newer row stays.
    state.record_pulls([Pulled("up/c", "sha256:b", "blob", 400.0)])
    state.forget(Pulled("up/c", "sha256:b", "blob", 50.0), [])
    assert state.not_pulled_since(1000.0) == [
        Pulled("up/a", "sha256:b", "blob", 300.0),
        Pulled("up/c", "sha256:b", "blob", 400.0),
    ]
