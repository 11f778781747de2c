"""The audit trail for admins: filtered pages with an opaque cursor, and streamed exports.

The cursor is the (time, id) key of the last event of a page, base64url-encoded JSON: it
stays valid while events are written and purged, and is refused (ValueError) if it is
not one this service made. An export is itself audited (``audit.export``): who took a
copy of the trail, with which filters.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Generator
from datetime import datetime

from hatchway.audit.export import chunks
from hatchway.auth.admin import Actor, actor_event
from hatchway.metadata import AuditEvent, AuditRecord, MetadataStore, Outcome
from hatchway.metadata.auditquery import AuditFilter, AuditKey, batches, page

OUTCOMES = tuple(o.value for o in Outcome)
MAX_PAGE = 1_000


def encode_cursor(key: AuditKey) -> str:
    raw = json.dumps({"t": key.time.isoformat(), "i": key.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> AuditKey:
    """ValueError for anything :func:`encode_cursor` did not make."""
    if len(cursor) > 200:
        raise ValueError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        time = datetime.fromisoformat(data["t"])
        number = data["i"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None
    if time.tzinfo is None or not isinstance(number, int) or isinstance(number, bool):
        raise ValueError("invalid cursor")
    return AuditKey(time, number)


def check_filter(where: AuditFilter) -> AuditFilter:
    """ValueError for an unknown outcome or a time range that ends before it starts."""
    if where.outcome is not None and where.outcome not in OUTCOMES:
        raise ValueError(
            f"unknown outcome {where.outcome[:40]!r}: expected one of {', '.join(OUTCOMES)}"
        )
    if where.since is not None and where.until is not None and where.until < where.since:
        raise ValueError("until is before since")
    return where


class AuditService:
    def __init__(self, store: MetadataStore, audit: Callable[[AuditEvent], None]) -> None:
        self.store = store
        self._audit = audit

    def page(
        self, actor: Actor, where: AuditFilter, cursor: str | None = None, limit: int = 100
    ) -> tuple[list[AuditRecord], str | None]:
        """Up to ``limit`` events, newest first, and the cursor of the next page (or None)."""
        actor.require_admin()
        check_filter(where)
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}")
        after = decode_cursor(cursor) if cursor else None
        found, following = page(self.store.db, where, after, limit)
        return found, encode_cursor(following) if following is not None else None

    def export(self, actor: Actor, where: AuditFilter, fmt: str) -> Generator[bytes, None, None]:
        """Every matching event in ``fmt`` (jsonl or csv), as chunks to stream; the
        events are read a batch at a time while the chunks are consumed."""
        actor.require_admin()
        check_filter(where)
        produced = chunks(fmt, batches(self.store.db, where))
        self._audit(
            actor_event(
                actor,
                "audit.export",
                None,
                format=fmt,
                filters={k: str(v) for k, v in _fields(where).items() if v is not None},
            )
        )
        return produced


def _fields(where: AuditFilter) -> dict[str, object]:
    return {
        "account": where.account,
        "event": where.event,
        "repository": where.repository,
        "outcome": where.outcome,
        "since": where.since,
        "until": where.until,
    }
