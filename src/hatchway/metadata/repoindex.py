"""The repository index: what storage holds, summarized in SQL for listing and search.

Storage is the truth; these tables are derived from it (``registry/index.py`` keeps them
in step on every push and delete, ``hatchway index rebuild`` makes them again), so the
repository list and a 5,000-tag table are one indexed query, not a walk of storage.

    index_repositories  one row per repository with a manifest: tag and manifest counts,
                        size (distinct blobs, each counted once), last push
    index_manifests     one row per manifest: media type, artifact type, subject, total
                        size, created, platforms (an index), annotations, pushed at/by
    index_tags          one row per tag: digest, pushed at/by
    index_blobs         the blobs each manifest references, for the repository's size

Every change is one transaction that also recomputes the repository's row, so readers
never see the counts disagree with the rows. Callers serialize changes per repository
(the registry holds a storage lock); the store itself only upserts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite

from hatchway.metadata.engine import Database
from hatchway.metadata.tables import (
    UTCDateTime,
    index_blobs,
    index_manifests,
    index_repositories,
    index_tags,
)

_R, _M, _T, _B = index_repositories.c, index_manifests.c, index_tags.c, index_blobs.c
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOCK_BASE = 0x68770100  # pg_advisory_xact_lock keys of the index ("hw" + 0x100)

TagSort = Literal["name", "pushed", "created", "size", "pushed_by"]
TAG_SORTS: tuple[str, ...] = ("name", "pushed", "created", "size", "pushed_by")


@dataclass(frozen=True, slots=True)
class Pushed:
    """When and by whom a manifest or tag was pushed; all None when unknown (a store
    written by another program, or indexed before anyone pushed through hatchway)."""

    at: datetime | None = None
    by: str | None = None  # account name
    credential: str | None = None  # access token name; None: the account's password


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """A manifest as the index keeps it."""

    digest: str
    media_type: str
    size: int  # config + layers; an index: the sum of its platforms' sizes
    artifact_type: str | None = None
    subject: str | None = None  # the digest this manifest refers to (a referrer)
    created: datetime | None = None
    platforms: list[dict[str, Any]] | None = None  # an index: its entries, summarized
    annotations: dict[str, str] | None = None
    pushed: Pushed = field(default_factory=Pushed)
    blobs: tuple[tuple[str, int], ...] = ()  # (digest, size) it references, itself included


@dataclass(frozen=True, slots=True)
class TagEntry:
    tag: str
    digest: str
    pushed: Pushed = field(default_factory=Pushed)


@dataclass(frozen=True, slots=True)
class RepositorySummary:
    name: str
    tags: int
    manifests: int
    size: int
    last_push: datetime | None


@dataclass(frozen=True, slots=True)
class TagRow:
    """A tag with what its manifest is (the manifest's columns are None if it is not
    indexed: a tag pointing at a manifest the index has not seen)."""

    tag: str
    digest: str
    pushed: Pushed
    media_type: str | None
    artifact_type: str | None
    size: int | None
    created: datetime | None
    platforms: list[dict[str, Any]] | None


def like_pattern(glob: str) -> str:
    """A repository glob (``*`` any run, ``?`` one character) as a SQL LIKE pattern with
    ``\\`` as the escape character. SQLite's LIKE ignores ASCII case, so use it as a
    prefilter whose answers are checked again exactly."""
    out = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _pushed(row: Any) -> Pushed:
    return Pushed(row.pushed_at, row.pushed_by, row.pushed_credential)


def _lock_key(repository: str) -> int:
    """A signed 64-bit advisory-lock key for ``repository``."""
    raw = int.from_bytes(hashlib.sha256(repository.encode()).digest()[:8], "big", signed=True)
    return raw ^ _LOCK_BASE


class RepositoryIndex:
    """The index's reads and writes (synchronous: the server calls it in a thread)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    # -- writes -------------------------------------------------------------------

    def apply(
        self,
        repository: str,
        *,
        manifests: Mapping[str, ManifestEntry | None] | None = None,
        tags: Mapping[str, TagEntry | None] | None = None,
    ) -> None:
        """Set (an entry) or remove (None) the given manifests and tags of ``repository``,
        then recompute its summary row, in one transaction."""
        with self._db.write() as conn:
            self._lock(conn, repository)
            for digest, entry in (manifests or {}).items():
                self._delete_manifest(conn, repository, digest)
                if entry is not None:
                    self._insert_manifest(conn, repository, entry)
            for tag, tag_entry in (tags or {}).items():
                conn.execute(delete(index_tags).where(_T.repository == repository, _T.tag == tag))
                if tag_entry is not None:
                    self._insert_tag(conn, repository, tag_entry)
            self._summarize(conn, repository)

    def replace(
        self, repository: str, manifests: Iterable[ManifestEntry], tags: Iterable[TagEntry]
    ) -> None:
        """Make ``repository``'s rows exactly these (a rebuild); none at all drops it."""
        with self._db.write() as conn:
            self._lock(conn, repository)
            for table in (index_blobs, index_tags, index_manifests):
                conn.execute(delete(table).where(table.c.repository == repository))
            for entry in manifests:
                self._insert_manifest(conn, repository, entry)
            for tag_entry in tags:
                self._insert_tag(conn, repository, tag_entry)
            self._summarize(conn, repository)

    def drop(self, repository: str) -> None:
        self.replace(repository, (), ())

    def _lock(self, conn: Connection, repository: str) -> None:
        # SQLite's BEGIN IMMEDIATE already serializes writers; PostgreSQL rows of one
        # repository are changed by one transaction at a time.
        if self._db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(repository)})

    def _delete_manifest(self, conn: Connection, repository: str, digest: str) -> None:
        conn.execute(delete(index_blobs).where(_B.repository == repository, _B.manifest == digest))
        conn.execute(
            delete(index_manifests).where(_M.repository == repository, _M.digest == digest)
        )

    def _insert_manifest(self, conn: Connection, repository: str, entry: ManifestEntry) -> None:
        conn.execute(
            index_manifests.insert().values(
                repository=repository,
                digest=entry.digest,
                media_type=entry.media_type,
                artifact_type=entry.artifact_type,
                subject=entry.subject,
                size=entry.size,
                created=entry.created,
                platforms=entry.platforms,
                annotations=entry.annotations,
                pushed_at=entry.pushed.at,
                pushed_by=entry.pushed.by,
                pushed_credential=entry.pushed.credential,
            )
        )
        blobs = dict(entry.blobs)
        if blobs:
            conn.execute(
                index_blobs.insert(),
                [
                    {"repository": repository, "manifest": entry.digest, "digest": d, "size": s}
                    for d, s in blobs.items()
                ],
            )

    def _insert_tag(self, conn: Connection, repository: str, entry: TagEntry) -> None:
        conn.execute(
            index_tags.insert().values(
                repository=repository,
                tag=entry.tag,
                digest=entry.digest,
                pushed_at=entry.pushed.at,
                pushed_by=entry.pushed.by,
                pushed_credential=entry.pushed.credential,
            )
        )

    def _summarize(self, conn: Connection, repository: str) -> None:
        tags = conn.execute(
            select(func.count(), func.max(_T.pushed_at)).where(_T.repository == repository)
        ).one()
        manifests = conn.execute(
            select(func.count(), func.max(_M.pushed_at)).where(_M.repository == repository)
        ).one()
        distinct_blobs = (
            select(_B.digest, func.max(_B.size).label("size"))
            .where(_B.repository == repository)
            .group_by(_B.digest)
            .subquery()
        )
        size = conn.execute(select(func.coalesce(func.sum(distinct_blobs.c.size), 0))).scalar_one()
        conn.execute(delete(index_repositories).where(_R.name == repository))
        if not manifests[0] and not tags[0]:
            return
        pushes = [t for t in (tags[1], manifests[1]) if t is not None]
        conn.execute(
            index_repositories.insert().values(
                name=repository,
                tags=tags[0],
                manifests=manifests[0],
                size=int(size),
                last_push=max(pushes) if pushes else None,
            )
        )

    # -- reads --------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every indexed repository, sorted."""
        with self._db.read() as conn:
            return list(conn.execute(select(_R.name).order_by(_R.name)).scalars())

    def repository(self, name: str) -> RepositorySummary | None:
        with self._db.read() as conn:
            row = conn.execute(select(index_repositories).where(_R.name == name)).one_or_none()
        return None if row is None else RepositorySummary(*row)

    def search(
        self,
        contains: str,
        after: str | None,
        limit: int,
        patterns: Sequence[Sequence[str]] | None = None,
    ) -> list[RepositorySummary]:
        """Repositories whose name contains ``contains`` (any case), after ``after``, in
        name order, at most ``limit``. ``patterns``: globs, the names must match one glob
        of every group (a prefilter: SQLite's LIKE ignores case, check the answers)."""
        query = select(index_repositories).order_by(_R.name).limit(limit)
        if contains:
            query = query.where(_R.name.contains(contains.lower(), autoescape=True))
        if after is not None:
            query = query.where(_R.name > after)
        for group in patterns or ():
            query = query.where(_any_like(group))
        with self._db.read() as conn:
            return [RepositorySummary(*row) for row in conn.execute(query)]

    def existing(self, repository: str) -> tuple[dict[str, Pushed], dict[str, TagEntry]]:
        """What the index holds for ``repository``: manifests' pushes and tags (a rebuild
        keeps who pushed what it already knew)."""
        with self._db.read() as conn:
            manifests = {
                row.digest: _pushed(row)
                for row in conn.execute(
                    select(_M.digest, _M.pushed_at, _M.pushed_by, _M.pushed_credential).where(
                        _M.repository == repository
                    )
                )
            }
            tags = {
                row.tag: TagEntry(row.tag, row.digest, _pushed(row))
                for row in conn.execute(select(index_tags).where(_T.repository == repository))
            }
        return manifests, tags

    def manifest(self, repository: str, digest: str) -> ManifestEntry | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(index_manifests).where(_M.repository == repository, _M.digest == digest)
            ).one_or_none()
        return None if row is None else _manifest(row)

    def tag(self, repository: str, tag: str) -> TagEntry | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(index_tags).where(_T.repository == repository, _T.tag == tag)
            ).one_or_none()
        return None if row is None else TagEntry(row.tag, row.digest, _pushed(row))

    def tags_of(self, repository: str, digests: Iterable[str]) -> dict[str, list[str]]:
        """digest -> its tags (sorted), for the given digests."""
        wanted = list(digests)
        found: dict[str, list[str]] = {d: [] for d in wanted}
        if not wanted:
            return found
        with self._db.read() as conn:
            rows = conn.execute(
                select(_T.digest, _T.tag)
                .where(_T.repository == repository, _T.digest.in_(wanted))
                .order_by(_T.tag)
            )
            for row in rows:
                found[row.digest].append(row.tag)
        return found

    def referrers(self, repository: str, subjects: Iterable[str]) -> list[ManifestEntry]:
        """Manifests of ``repository`` whose subject is one of ``subjects``."""
        wanted = list(subjects)
        if not wanted:
            return []
        with self._db.read() as conn:
            rows = conn.execute(
                select(index_manifests)
                .where(_M.repository == repository, _M.subject.in_(wanted))
                .order_by(_M.pushed_at, _M.digest)
            )
            return [_manifest(row) for row in rows]

    def tags(
        self,
        repository: str,
        *,
        sort: TagSort = "name",
        descending: bool = False,
        after: str | None = None,
        limit: int = 100,
    ) -> list[TagRow]:
        """Tags of ``repository`` with their manifests, sorted by ``sort`` (ties by tag
        name), those after tag ``after`` in that order, at most ``limit``.

        ``after`` names a tag; if it is gone the listing continues after where it would
        sort by name alone."""
        key = _sort_key(sort)
        joined = index_tags.outerjoin(
            index_manifests, and_(_M.repository == _T.repository, _M.digest == _T.digest)
        )
        columns = (
            _T.tag,
            _T.digest,
            _T.pushed_at,
            _T.pushed_by,
            _T.pushed_credential,
            _M.media_type,
            _M.artifact_type,
            _M.size,
            _M.created,
            _M.platforms,
        )
        query = select(*columns).select_from(joined).where(_T.repository == repository)
        order = (key.desc(), _T.tag.desc()) if descending else (key.asc(), _T.tag.asc())
        query = query.order_by(*order).limit(limit)
        with self._db.read() as conn:
            if after is not None:
                query = query.where(self._after(conn, repository, key, after, descending))
            return [
                TagRow(
                    row.tag,
                    row.digest,
                    Pushed(row.pushed_at, row.pushed_by, row.pushed_credential),
                    row.media_type,
                    row.artifact_type,
                    row.size,
                    row.created,
                    row.platforms,
                )
                for row in conn.execute(query)
            ]

    def _after(
        self,
        conn: Connection,
        repository: str,
        key: ColumnElement[Any],
        after: str,
        descending: bool,
    ) -> ColumnElement[bool]:
        """Keyset condition: rows after tag ``after`` in (key, tag) order."""
        if key is _T.tag:
            return _T.tag < after if descending else _T.tag > after
        joined = index_tags.outerjoin(
            index_manifests, and_(_M.repository == _T.repository, _M.digest == _T.digest)
        )
        found = conn.execute(
            select(key).select_from(joined).where(_T.repository == repository, _T.tag == after)
        ).one_or_none()
        if found is None:
            return _T.tag < after if descending else _T.tag > after
        pair = tuple_(key, _T.tag)
        bound = tuple_(literal(found[0], key.type), literal(after, _T.tag.type))
        return pair < bound if descending else pair > bound


def _sort_key(sort: TagSort) -> ColumnElement[Any]:
    """The column a tag listing sorts by; never NULL, so keyset comparisons hold."""
    if sort == "name":
        return _T.tag
    if sort == "pushed":
        return func.coalesce(_T.pushed_at, literal(_EPOCH, UTCDateTime()))
    if sort == "created":
        return func.coalesce(_M.created, literal(_EPOCH, UTCDateTime()))
    if sort == "size":
        return func.coalesce(_M.size, -1)
    if sort == "pushed_by":
        return func.coalesce(_T.pushed_by, "")
    raise ValueError(f"unknown sort {sort!r}")


def _any_like(globs: Sequence[str]) -> ColumnElement[bool]:
    if not globs:
        return false()
    return or_(*(_R.name.like(like_pattern(g), escape="\\") for g in globs))


def _manifest(row: Any) -> ManifestEntry:
    return ManifestEntry(
        digest=row.digest,
        media_type=row.media_type,
        size=row.size,
        artifact_type=row.artifact_type,
        subject=row.subject,
        created=row.created,
        platforms=row.platforms,
        annotations=row.annotations,
        pushed=_pushed(row),
    )


__all__ = [
    "TAG_SORTS",
    "ManifestEntry",
    "Pushed",
    "RepositoryIndex",
    "RepositorySummary",
    "TagEntry",
    "TagRow",
    "TagSort",
    "like_pattern",
]
