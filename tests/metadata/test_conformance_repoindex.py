"""The repository index store, on SQLite and PostgreSQL: writes keep the repository's
summary row true, searches and tag listings sort and page, and concurrent writers of one
repository never leave the summary disagreeing with the rows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from hatchway.metadata import MetadataStore
from hatchway.metadata.repoindex import ManifestEntry, Pushed, TagEntry, TagSort, like_pattern

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def manifest(n: int, size: int = 100, shared: int = 0, **extra: object) -> ManifestEntry:
    digest = f"sha256:{n:064x}"
    blobs: tuple[tuple[str, int], ...] = ((digest, 10), (f"sha256:{1000 + n:064x}", size - 10))
    if shared:
        blobs += ((f"sha256:{shared:064x}", 50),)
    fields: dict[str, object] = {
        "digest": digest,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "size": size,
        "pushed": Pushed(T0 + timedelta(minutes=n), f"user{n % 3}", None),
        "blobs": blobs,
        **extra,
    }
    return ManifestEntry(**fields)  # type: ignore[arg-type]


def tag(name: str, m: ManifestEntry) -> TagEntry:
    return TagEntry(name, m.digest, m.pushed)


def test_apply_keeps_the_summary_true(store: MetadataStore) -> None:
    index = store.index
    a, b = manifest(1, 100, shared=9), manifest(2, 300, shared=9)
    index.apply("team/app", manifests={a.digest: a, b.digest: b})
    index.apply("team/app", tags={"1.0": tag("1.0", a), "2.0": tag("2.0", b)})
    found = index.repository("team/app")
    assert found is not None
    assert (found.tags, found.manifests) == (2, 2)
    assert found.size == 10 + 90 + 10 + 290 + 50  # the shared blob counted once
    assert found.last_push == b.pushed.at
    index.apply("team/app", tags={"1.0": None})
    index.apply("team/app", manifests={a.digest: None})
    found = index.repository("team/app")
    assert found is not None
    assert (found.tags, found.manifests, found.size) == (1, 1, 10 + 290 + 50)
    index.apply("team/app", manifests={b.digest: None}, tags={"2.0": None})
    assert index.repository("team/app") is None
    assert index.names() == []


def test_replace_is_idempotent(store: MetadataStore) -> None:
    index = store.index
    a = manifest(1)
    for _ in range(2):
        index.replace("x/y", [a], [tag("latest", a)])
    assert index.names() == ["x/y"]
    manifests, tags = index.existing("x/y")
    assert manifests == {a.digest: a.pushed}
    assert tags == {"latest": tag("latest", a)}
    index.drop("x/y")
    assert index.names() == []


def test_search_filters_and_pages(store: MetadataStore) -> None:
    index = store.index
    m = manifest(1)
    for name in ("alice/app", "alice/tools", "bob/app", "team/app_1", "team/appx1"):
        index.apply(name, manifests={m.digest: m})
    assert [r.name for r in index.search("APP", None, 10)] == [
        "alice/app",
        "bob/app",
        "team/app_1",
        "team/appx1",
    ]
    # "_" and "%" in a query are literal characters, not LIKE wildcards.
    assert [r.name for r in index.search("app_", None, 10)] == ["team/app_1"]
    assert [r.name for r in index.search("", "alice/tools", 2)] == ["bob/app", "team/app_1"]
    assert [r.name for r in index.search("", None, 10, [["alice/*", "team/app?1"]])] == [
        "alice/app",
        "alice/tools",
        "team/app_1",
        "team/appx1",
    ]
    assert [r.name for r in index.search("", None, 10, [["alice/*"], ["*/app"]])] == ["alice/app"]
    assert index.search("", None, 10, [[]]) == []
    assert like_pattern("a_b%c*?") == "a\\_b\\%c%_"


def test_tags_sort_and_page_by_every_key(store: MetadataStore) -> None:
    index = store.index
    entries = [manifest(n, size=100 * (5 - n), created=T0 - timedelta(days=n)) for n in range(5)]
    index.apply("r", manifests={e.digest: e for e in entries})
    index.apply("r", tags={f"t{n}": tag(f"t{n}", e) for n, e in enumerate(entries)})
    index.apply("r", tags={"dangling": TagEntry("dangling", f"sha256:{99:064x}")})
    names = [row.tag for row in index.tags("r")]
    assert names == ["dangling", "t0", "t1", "t2", "t3", "t4"]
    by_size = [row.tag for row in index.tags("r", sort="size", descending=True)]
    assert by_size == ["t0", "t1", "t2", "t3", "t4", "dangling"]
    by_created = [row.tag for row in index.tags("r", sort="created")]
    assert by_created == ["dangling", "t4", "t3", "t2", "t1", "t0"]
    by_pushed = [row.tag for row in index.tags("r", sort="pushed", descending=True)]
    assert by_pushed == ["t4", "t3", "t2", "t1", "t0", "dangling"]
    by_user = [row.tag for row in index.tags("r", sort="pushed_by")]
    assert by_user == ["dangling", "t0", "t3", "t1", "t4", "t2"]
    sorts: tuple[TagSort, ...] = ("name", "size", "created", "pushed", "pushed_by")
    for sort in sorts:
        for descending in (False, True):
            full = [row.tag for row in index.tags("r", sort=sort, descending=descending)]
            paged: list[str] = []
            last = None
            while True:
                page = index.tags("r", sort=sort, descending=descending, after=last, limit=2)
                paged += [row.tag for row in page]
                if len(page) < 2:
                    break
                last = page[-1].tag
            assert paged == full, (sort, descending)
    row = index.tags("r", limit=1, after="t3")[0]
    assert (row.tag, row.size, row.created) == ("t4", 100, T0 - timedelta(days=4))
    assert row.pushed == entries[4].pushed


def test_referrers_and_tags_of(store: MetadataStore) -> None:
    index = store.index
    image = manifest(1)
    sig = manifest(2, subject=image.digest, artifact_type="application/vnd.dev.cosign")
    index.apply("r", manifests={image.digest: image, sig.digest: sig})
    index.apply("r", tags={"a": tag("a", image), "b": tag("b", image)})
    assert [r.digest for r in index.referrers("r", [image.digest])] == [sig.digest]
    assert index.tags_of("r", [image.digest, sig.digest]) == {
        image.digest: ["a", "b"],
        sig.digest: [],
    }


def test_concurrent_writers_of_one_repository(store: MetadataStore, dsn: str) -> None:
    """Writers in separate connections (as workers are) each add manifests and tags; the
    summary row ends matching the rows."""
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        own = MetadataStore(dsn)
        try:
            for i in range(10):
                m = manifest(k * 100 + i)
                own.index.apply("shared/repo", manifests={m.digest: m})
                own.index.apply("shared/repo", tags={f"w{k}-{i}": tag(f"w{k}-{i}", m)})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = store.index.repository("shared/repo")
    assert found is not None
    assert (found.tags, found.manifests) == (40, 40)
    assert found.size == 40 * 100
