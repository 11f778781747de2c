"""``GET /api/v1/audit``: filters, the cursor, and the JSON Lines and CSV exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.mgmt.adminkit import call, eventually, fresh
from tests.mgmt.conftest import Checker, error_code, start
from tests.support.authkit import ADMIN
from tests.support.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: its tests fail logins on purpose, which must not
    spend the package server's login budget for 127.0.0.1 (20 failures, then 429)."""
    found = start(tmp_path_factory.mktemp("audit"))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def check(server: Server) -> Checker:
    return Checker(server)


def _events(server: Server, **params: str | None) -> list[dict[str, Any]]:
    query = {k: v for k, v in params.items() if v is not None}
    found: list[dict[str, Any]] = call(server, "GET", "/audit", params=query).json()["events"]
    return found


def _groups(server: Server, check: Checker, count: int) -> str:
    """``count`` group.add events by the admin; returns the group name prefix."""
    prefix = fresh("aud")
    for i in range(count):
        check(call(server, "POST", "/groups", json={"name": f"{prefix}-{i}"}), 201)
    return prefix


def test_filters_and_cursor(server: Server, check: Checker) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    prefix = _groups(server, check, 5)
    query = {"event": "group.add", "since": before.isoformat(), "limit": "2"}
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        page = check(call(server, "GET", "/audit", params=params), 200)
        assert len(page["events"]) <= 2
        seen += page["events"]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    mine = [e for e in seen if str(e["detail"].get("group", "")).startswith(prefix)]
    assert len(mine) == 5
    assert len({e["id"] for e in seen}) == len(seen)
    assert pages >= 3
    times = [e["time"] for e in seen]
    assert times == sorted(times, reverse=True)
    assert all(e["detail"]["by"] == ADMIN for e in mine)

    # action is event's other name; outcome, account and until filter too.
    same = check(
        call(server, "GET", "/audit", params={**query, "action": "group.add", "limit": "100"}), 200
    )
    assert len(same["events"]) == len(seen)
    none = check(call(server, "GET", "/audit", params={**query, "until": before.isoformat()}), 200)
    assert none["events"] == []
    denied = check(call(server, "GET", "/audit", params={"outcome": "denied", "limit": "5"}), 200)
    assert all(e["outcome"] == "denied" for e in denied["events"])


def test_bad_queries(server: Server, check: Checker) -> None:
    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJ0IjoiMjAyNiIsImkiOiJ4In0"},
        {"outcome": "maybe"},
        {"limit": "0"},
        {"limit": "100000"},
        {"limit": "ten"},
        {"since": "yesterday"},
        {"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
        {"event": "a", "action": "b"},
        {"format": "xml"},
        {"colour": "red"},
    ):
        r = call(server, "GET", "/audit", params=params)
        check(r, 422)
        assert error_code(r) == "INVALID_REQUEST", params


def test_exports_stream_jsonl_and_csv_safe_for_spreadsheets(server: Server, check: Checker) -> None:
    prefix = _groups(server, check, 3)
    # A failed login under a name that a spreadsheet would run as a formula.
    evil = "=2+5+cmd|' /C calc'!A0"  # no colon: it is a Basic username
    assert server.client.get("/api/v1/me", auth=(evil, "wrong")).status_code == 401
    assert eventually(lambda: bool(_events(server, account=evil, event="login")))

    r = call(server, "GET", "/audit", params={"format": "jsonl", "event": "group.add"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert sum(1 for e in lines if str(e["detail"].get("group", "")).startswith(prefix)) == 3
    assert {e["event"] for e in lines} == {"group.add"}
    # The same by Accept.
    by_accept = call(
        server,
        "GET",
        "/audit",
        params={"event": "group.add"},
        headers={"Accept": "application/jsonl"},
    )
    assert by_accept.headers["Content-Type"].startswith("application/jsonl")

    r = call(server, "GET", "/audit", params={"account": evil}, headers={"Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:5] == ["id", "time", "event", "outcome", "account"]
    assert rows[1][4] == "'" + evil
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert eventually(lambda: bool(_events(server, account=None, event="audit.export")))
    # The format parameter wins over Accept; json is the paginated page.
    page = call(
        server,
        "GET",
        "/audit",
        params={"format": "json", "limit": "1"},
        headers={"Accept": "text/csv"},
    )
    check(page, 200)


def test_export_is_not_for_non_admins(server: Server, check: Checker, user: str) -> None:
    r = server.client.get("/api/v1/audit", params={"format": "csv"}, auth=(user, "user-Pw-0123"))
    check(r, 403)
