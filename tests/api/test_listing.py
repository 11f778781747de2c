"""GET /v2/<name>/tags/list and GET /v2/_catalog: order, n/last pagination and Link."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.images import Blob
from tests.support.manifests import oci_image, push_blobs, put_ok
from tests.support.oci import errors, push_blob
from tests.support.server import Server, start_server

LINK_RE = re.compile(r'^<([^>]+)>; rel="next"$')

TAGS = [
    "v10",
    "v2",
    "latest",
    "V1",
    "1.0",
    "1.0-rc1",
    "1.0_beta",
    "_private",
    "a",
    "Z",
    "0",
    "1.10",
]


def _tag_all(client: httpx.Client, repo: str, tags: list[str]) -> Blob:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    for tag in tags:
        put_ok(client, repo, tag, image.manifest)
    return image.manifest


def _next(r: httpx.Response) -> str | None:
    link = r.headers.get("Link")
    if link is None:
        return None
    match = LINK_RE.match(link)
    assert match is not None, link
    return match.group(1)


# --- tags list -------------------------------------------------------------------------------


def test_tags_list_is_every_tag_in_lexical_order(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, TAGS)
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    assert r.json() == {"name": repo, "tags": sorted(TAGS)}
    assert sorted(TAGS, key=lambda t: t.encode()) == r.json()["tags"]
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", [1, 3, 4, 5, 11])
def test_tags_pagination_links_every_page_but_the_last(
    client: httpx.Client, repo: str, n: int
) -> None:
    _tag_all(client, repo, TAGS)
    expected = sorted(TAGS)
    pages: list[list[str]] = []
    url: str | None = f"/v2/{repo}/tags/list?n={n}"
    while url is not None:
        r = client.get(url)
        assert r.status_code == 200, r.text
        page = r.json()["tags"]
        assert r.json()["name"] == repo
        pages.append(page)
        url = _next(r)
        if url is not None:
            assert len(page) == n
            assert r.headers["Link"] == f'</v2/{repo}/tags/list?n={n}&last={page[-1]}>; rel="next"'
        assert len(pages) <= len(TAGS), "pagination does not end"
    assert [tag for page in pages for tag in page] == expected
    assert len(pages) == -(-len(expected) // n)
    assert pages[-1] == expected[(len(pages) - 1) * n :]


@pytest.mark.parametrize("n", [len(TAGS), len(TAGS) + 1, 10000])
def test_tags_page_holding_everything_has_no_link(client: httpx.Client, repo: str, n: int) -> None:
    _tag_all(client, repo, TAGS)
    r = client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == sorted(TAGS)
    assert "Link" not in r.headers


def test_tags_last_starts_after_the_given_tag(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, TAGS)
    ordered = sorted(TAGS)
    url = f"/v2/{repo}/tags/list"
    cases = {
        ordered[3]: ordered[4:],  # a present tag
        "1.05": [t for t in ordered if t > "1.05"],  # between two tags
        "zzz": [],  # after every tag
        "": ordered,
    }
    for last, expected in cases.items():
        r = client.get(url, params={"last": last})
        assert r.status_code == 200, r.text
        assert r.json()["tags"] == expected, last
        assert "Link" not in r.headers
    r = client.get(url, params={"n": 2, "last": ordered[3]})
    assert r.json()["tags"] == ordered[4:6]
    assert r.headers["Link"] == f'</v2/{repo}/tags/list?n=2&last={ordered[5]}>; rel="next"'
    r = client.get(url, params={"n": 2, "last": ordered[-3]})
    assert r.json()["tags"] == ordered[-2:]
    assert "Link" not in r.headers


def test_tags_n_zero_is_an_empty_page(client: httpx.Client, repo: str) -> None:
    _tag_all(client, repo, TAGS[:3])
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": repo, "tags": []}
    assert "Link" not in r.headers


def test_tags_list_follows_tag_moves_and_deletes(client: httpx.Client, repo: str) -> None:
    m = _tag_all(client, repo, ["a", "b", "c", "d"])
    assert client.delete(f"/v2/{repo}/manifests/b").status_code == 202
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "c"]
    assert r.headers["Link"] == f'</v2/{repo}/tags/list?n=2&last=c>; rel="next"'
    assert client.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": "c"}).json()["tags"] == ["d"]
    assert client.delete(f"/v2/{repo}/manifests/{m.digest}").status_code == 202
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code in (200, 404), r.text
    if r.status_code == 200:
        assert r.json()["tags"] in ([], None)
    else:
        assert errors(r) == ["NAME_UNKNOWN"]


def test_every_listed_tag_resolves_while_tags_are_pushed(
    server: Server, client: httpx.Client, repo: str
) -> None:
    """A tag may appear in the list only once GET of it works (clients list, then pull)."""
    m = _tag_all(client, repo, ["base"])
    stop = threading.Event()
    unresolved: list[str] = []

    def watch() -> None:
        seen = {"base"}
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                for tag in set(c.get(f"/v2/{repo}/tags/list").json()["tags"]) - seen:
                    r = c.head(f"/v2/{repo}/manifests/{tag}")
                    if r.status_code == 200:
                        seen.add(tag)
                    else:
                        unresolved.append(f"{tag}: {r.status_code}")

    watchers = [threading.Thread(target=watch) for _ in range(3)]
    for w in watchers:
        w.start()
    try:
        for i in range(60):
            put_ok(client, repo, f"t{i:03}", m)
    finally:
        stop.set()
        for w in watchers:
            w.join()
    assert unresolved == [], f"{len(unresolved)} listed tags did not resolve: {unresolved[:5]}"


def test_tags_of_unknown_repository_is_name_unknown(client: httpx.Client, repo: str) -> None:
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 404, r.text
    assert errors(r) == ["NAME_UNKNOWN"]
    # Nor has the parent path of a repository...
    _tag_all(client, f"{repo}/child/leaf", ["v1"])
    for parent in (repo, f"{repo}/child"):
        r = client.get(f"/v2/{parent}/tags/list")
        assert r.status_code == 404, r.text
        assert errors(r) == ["NAME_UNKNOWN"]
    # ...nor a repository holding only blobs.
    push_blob(client, repo, b"just a blob")
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 404, r.text
    assert errors(r) == ["NAME_UNKNOWN"]


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10", "-0x1"])
def test_tags_bad_n_is_pagination_number_invalid(client: httpx.Client, repo: str, n: str) -> None:
    _tag_all(client, repo, ["a"])
    r = client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert r.status_code == 400, r.text
    assert errors(r) == ["PAGINATION_NUMBER_INVALID"]


# --- catalog ---------------------------------------------------------------------------------

REPOS = ["zeta", "alpha", "alpha/one", "alpha/two", "alpha-x", "b.c/d_e", "m/n/o", "x0", "a1"]


@pytest.fixture(scope="module")
def catalog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A registry of its own, holding exactly ``REPOS`` (plus repos with no manifest)."""
    srv = start_server(tmp_path_factory.mktemp("catalog"), workers=2)
    try:
        image = oci_image("catalog")
        for name in REPOS:
            push_blobs(srv.client, name, image.config, *image.layers)
            put_ok(srv.client, name, "latest", image.manifest)
        push_blob(srv.client, "blobs/only", b"a blob, no manifest")
        r = srv.client.post("/v2/uploads/only/blobs/uploads/")
        assert r.status_code == 202, r.text
        yield srv
    finally:
        srv.stop()


def test_catalog_lists_repositories_with_manifests_sorted(catalog_server: Server) -> None:
    r = catalog_server.client.get("/v2/_catalog")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    assert r.json() == {"repositories": sorted(REPOS)}
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_catalog_pagination_links_every_page_but_the_last(catalog_server: Server, n: int) -> None:
    c = catalog_server.client
    pages: list[list[str]] = []
    url: str | None = f"/v2/_catalog?n={n}"
    while url is not None:
        r = c.get(url)
        assert r.status_code == 200, r.text
        page = r.json()["repositories"]
        pages.append(page)
        url = _next(r)
        if url is not None:
            assert len(page) == n
            parts = urlsplit(url)
            assert parts.path == "/v2/_catalog"
            assert parse_qs(parts.query) == {"n": [str(n)], "last": [page[-1]]}
        assert len(pages) <= len(REPOS), "pagination does not end"
    assert [name for page in pages for name in page] == sorted(REPOS)
    assert len(pages) == -(-len(REPOS) // n)


def test_catalog_page_holding_everything_has_no_link(catalog_server: Server) -> None:
    for n in (len(REPOS), len(REPOS) + 1, 1000, 5000):
        r = catalog_server.client.get("/v2/_catalog", params={"n": n})
        assert r.status_code == 200, r.text
        assert r.json()["repositories"] == sorted(REPOS)
        assert "Link" not in r.headers


def test_catalog_last_starts_after_the_given_name(catalog_server: Server) -> None:
    c = catalog_server.client
    ordered = sorted(REPOS)
    for last in ("alpha", "alpha/one", "b", "m/n/o", "zzz", "0"):
        r = c.get("/v2/_catalog", params={"last": last})
        assert r.status_code == 200, r.text
        assert r.json()["repositories"] == [name for name in ordered if name > last], last
    r = c.get("/v2/_catalog", params={"n": 2, "last": "alpha"})
    assert r.json()["repositories"] == ["alpha-x", "alpha/one"]
    url = _next(r)
    assert url is not None
    assert parse_qs(urlsplit(url).query) == {"n": ["2"], "last": ["alpha/one"]}
    assert c.get(url).json()["repositories"] == ["alpha/two", "b.c/d_e"]


def test_catalog_n_zero_and_bad_n(catalog_server: Server) -> None:
    c = catalog_server.client
    r = c.get("/v2/_catalog", params={"n": 0})
    assert r.status_code == 200, r.text
    assert r.json() == {"repositories": []}
    assert "Link" not in r.headers
    for n in ("-1", "abc", "2.0"):
        r = c.get("/v2/_catalog", params={"n": n})
        assert r.status_code == 400, (n, r.text)
        assert errors(r) == ["PAGINATION_NUMBER_INVALID"]


def test_repository_appears_in_catalog_once_it_has_a_manifest(tmp: Path) -> None:
    srv = start_server(tmp)
    try:
        c = srv.client
        assert c.get("/v2/_catalog").json() == {"repositories": []}
        image = oci_image("appear")
        push_blobs(c, "newcomer", image.config, *image.layers)
        assert c.get("/v2/_catalog").json() == {"repositories": []}
        put_ok(c, "newcomer", image.manifest.digest, image.manifest)  # untagged is enough
        assert c.get("/v2/_catalog").json() == {"repositories": ["newcomer"]}
        push_blobs(c, "deep/er/repo", image.config, *image.layers)
        put_ok(c, "deep/er/repo", "v1", image.manifest)
        assert c.get("/v2/_catalog").json() == {"repositories": ["deep/er/repo", "newcomer"]}
    finally:
        srv.stop()
