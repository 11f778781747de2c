"""Browsing the registry for people: the service behind ``/api/v1/repositories`` and the
web UI's repository pages. No web framework here; every result is a frozen dataclass.

Lists come from the repository index (``metadata/repoindex.py``, kept in step with storage
by :mod:`hatchway.registry.index`), never from a walk of storage, so a search over 10,000
repositories or a 5,000-tag table is one indexed query. What a caller may see is its
business: :meth:`Browser.repositories` takes a :class:`Visible` (``auth.visibility``
builds one from the access policy); the single-repository calls assume the caller already
checked that it may pull ``name`` (and must answer "not found" otherwise).

All methods are coroutines (database reads run in a thread), for aiohttp handlers alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hatchway.errors import MANIFEST_UNKNOWN, NAME_UNKNOWN, HatchwayError
from hatchway.metadata.repoindex import (
    ManifestEntry,
    Pushed,
    RepositoryIndex,
    RepositorySummary,
    TagRow,
    TagSort,
)
from hatchway.oci.digest import Digest
from hatchway.registry.manifests import Manifests
from hatchway.registry.summary import Layer, ManifestSummary, Platform, Summaries

MAX_PAGE = 1000
_BATCH = 2000  # at most this many rows fetched per round while filtering a page


class Visible(Protocol):
    """Which repository names a caller may see (``auth.visibility.RepositoryFilter``)."""

    @property
    def patterns(self) -> Sequence[Sequence[str]]:
        """Groups of globs (``*``, ``?``); a visible name matches one of each group."""
        ...

    def allows(self, name: str) -> bool:
        """The exact answer for one name."""
        ...


@dataclass(frozen=True, slots=True)
class RepositoryPage:
    repositories: list[RepositorySummary]
    next_last: str | None  # pass as ``last`` for the next page; None: this is the last


@dataclass(frozen=True, slots=True)
class TagPage:
    repository: RepositorySummary
    tags: list[TagRow]
    next_last: str | None


@dataclass(frozen=True, slots=True)
class Referrer:
    """A manifest that refers to another (a signature, an SBOM, an attestation)."""

    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    annotations: dict[str, str] | None
    pushed: Pushed


@dataclass(frozen=True, slots=True)
class ReferrerGroup:
    """The referrers of one image: the manifest itself, or one platform of an index."""

    subject: str
    platform: dict[str, str] | None
    referrers: list[Referrer]


@dataclass(frozen=True, slots=True)
class ManifestView:
    """Everything the manifest page shows."""

    name: str
    reference: str
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    manifest_size: int
    created: datetime | None
    annotations: dict[str, str] | None
    config: Layer | None
    layers: tuple[Layer, ...]
    platforms: tuple[Platform, ...] | None
    subject: str | None
    tags: list[str]
    pushed: Pushed
    referrers: list[ReferrerGroup]


def _referrer(entry: ManifestEntry) -> Referrer:
    return Referrer(
        entry.digest,
        entry.media_type,
        entry.artifact_type,
        entry.size,
        entry.annotations,
        entry.pushed,
    )


class Browser:
    """Read-only views of one registry's repositories, from its index."""

    def __init__(self, store: RepositoryIndex, manifests: Manifests, summaries: Summaries) -> None:
        self._store = store
        self._manifests = manifests
        self._summaries = summaries

    async def repositories(
        self, visible: Visible, q: str = "", n: int = 100, last: str | None = None
    ) -> RepositoryPage:
        """Repositories ``visible`` allows whose name contains ``q`` (any case), in name
        order, after ``last``, at most ``n`` (1..MAX_PAGE); each with its tag and manifest
        counts, size (distinct blobs) and last push."""
        return await asyncio.to_thread(self._repositories, visible, q, n, last)

    def _repositories(self, visible: Visible, q: str, n: int, last: str | None) -> RepositoryPage:
        n = max(1, min(n, MAX_PAGE))
        found: list[RepositorySummary] = []
        after = last
        batch = n + 1  # enough when the prefilter was exact; more rounds grow it
        patterns = [list(group) for group in visible.patterns]
        while len(found) <= n:
            rows = self._store.search(q, after, batch, patterns)
            found.extend(row for row in rows if visible.allows(row.name))
            if len(rows) < batch:
                break
            after = rows[-1].name
            batch = min(batch * 4, _BATCH)
        more = len(found) > n
        page = found[:n]
        return RepositoryPage(page, page[-1].name if more else None)

    async def repository(self, name: str) -> RepositorySummary:
        """One repository's summary; ``NAME_UNKNOWN`` if the index has none."""
        found = await asyncio.to_thread(self._store.repository, name)
        if found is None:
            raise HatchwayError(NAME_UNKNOWN, detail={"name": name})
        return found

    async def tags(
        self,
        name: str,
        *,
        sort: TagSort = "name",
        descending: bool = False,
        n: int = 100,
        last: str | None = None,
    ) -> TagPage:
        """A page of ``name``'s tags with digest, media type, total size (per platform for
        an index), created time and who pushed them; sorted by ``sort`` (name, pushed,
        created, size, pushed_by; ties by name), after tag ``last``, at most ``n``.
        ``NAME_UNKNOWN`` if the repository has no manifest."""
        summary = await self.repository(name)
        n = max(1, min(n, MAX_PAGE))
        rows = await asyncio.to_thread(
            lambda: self._store.tags(
                name, sort=sort, descending=descending, after=last, limit=n + 1
            )
        )
        more = len(rows) > n
        rows = rows[:n]
        return TagPage(summary, rows, rows[-1].tag if more else None)

    async def manifest(self, name: str, reference: str) -> ManifestView:
        """The manifest ``reference`` (tag or digest) names in ``name``: its layers and
        sizes, platforms (an index), annotations, tags, and its referrers grouped under
        the image they refer to (the manifest itself, then each platform of an index).
        ``MANIFEST_UNKNOWN`` if there is none; ``DIGEST_INVALID`` for a malformed digest."""
        d = await self._manifests.resolve(name, reference)
        summary = await self._summaries.get(d)
        if summary is None:
            raise HatchwayError(MANIFEST_UNKNOWN, detail={"reference": reference})
        return await asyncio.to_thread(self._view, name, reference, d, summary)

    def _view(self, name: str, reference: str, d: Digest, summary: ManifestSummary) -> ManifestView:
        entry = self._store.manifest(name, str(d))
        subjects: list[tuple[str, dict[str, str] | None]] = [(str(d), None)]
        subjects += [(p.digest, p.platform) for p in summary.platforms or ()]
        found = self._store.referrers(name, [s for s, _ in subjects])
        by_subject: dict[str, list[Referrer]] = {}
        for referrer in found:
            by_subject.setdefault(referrer.subject or "", []).append(_referrer(referrer))
        groups = [
            ReferrerGroup(subject, platform, by_subject[subject])
            for subject, platform in subjects
            if subject in by_subject
        ]
        return ManifestView(
            name=name,
            reference=reference,
            digest=str(d),
            media_type=summary.media_type,
            artifact_type=summary.artifact_type,
            size=summary.size,
            manifest_size=summary.manifest_size,
            created=summary.created,
            annotations=summary.annotations,
            config=summary.config,
            layers=summary.layers,
            platforms=summary.platforms,
            subject=summary.subject,
            tags=self._store.tags_of(name, [str(d)])[str(d)],
            pushed=entry.pushed if entry is not None else Pushed(),
            referrers=groups,
        )
