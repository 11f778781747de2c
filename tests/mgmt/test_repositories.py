"""``/api/v1/repositories``: what the repository index shows after real pushes and
deletes, filtered by the access rules, against a real ``hatchway serve``."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.mgmt.conftest import API, Checker, audit_events, bearer, error_code
from tests.mgmt.repos import (
    ADMIN,
    PASSWORD,
    image,
    names,
    push,
    push_index,
    push_referrer,
    registry,
    start,
    tags_of,
    total,
)
from tests.support.authkit import add_user, create_pat, get_token, hatchway_cli
from tests.support.oci import push_blob, push_manifest
from tests.support.server import Server

ALICE, BOB, VIEWER = ("alice", PASSWORD), ("bob", PASSWORD), ("viewer", PASSWORD)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("repos"))
    try:
        for user, _ in (ALICE, BOB, VIEWER):
            add_user(found, user, PASSWORD)
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def check(srv: Server) -> Checker:
    return Checker(srv)


def test_a_push_is_indexed_with_sizes_created_and_who(srv: Server, check: Checker) -> None:
    img = image("indexed", layer_sizes=(300, 700))
    digest = push(srv, ALICE, "alice/indexed", img, "1.0")
    body = check(srv.client.get(f"{API}/repositories/alice/indexed/tags", auth=ALICE), 200)
    [tag] = body["tags"]
    assert tag["name"] == "1.0"
    assert tag["digest"] == digest
    assert tag["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    assert tag["size"] == total(img)
    assert tag["created"] == "2025-03-04T05:06:07.123456Z"
    assert tag["pushed"]["account"] == "alice"
    assert tag["pushed"]["credential"] is None
    assert tag["platforms"] is None
    repo = body["repository"]
    assert (repo["name"], repo["tags"], repo["manifests"]) == ("alice/indexed", 1, 1)
    assert repo["size"] == total(img) + img.manifest.size
    assert repo["last_push"] == tag["pushed"]["at"]
    listed = check(srv.client.get(f"{API}/repositories", params={"q": "indexed"}, auth=ALICE), 200)
    assert listed == {"repositories": [repo], "next": None}


def test_concurrent_pushes_to_one_repository_are_all_indexed(srv: Server, check: Checker) -> None:
    """The index syncs of a repository's concurrent pushes share one lock and one
    transaction (group commit): each push is still there, with its own digest and who."""
    repo, count = "alice/burst", 12
    images = [image(f"burst{i}", layer_sizes=(100 + i,)) for i in range(count)]
    with registry(srv, ALICE, repo) as client:
        for img in images:
            for b in (img.config, *img.layers):
                push_blob(client, repo, b.data)

        def put(i: int) -> int:
            img = images[i]
            return push_manifest(client, repo, f"v{i}", img.manifest.data).status_code

        with ThreadPoolExecutor(count) as pool:
            assert list(pool.map(put, range(count))) == [201] * count
    body = check(srv.client.get(f"{API}/repositories/{repo}/tags", auth=ALICE), 200)
    found = {t["name"]: t for t in body["tags"]}
    assert sorted(found) == sorted(f"v{i}" for i in range(count))
    for i, img in enumerate(images):
        assert found[f"v{i}"]["digest"] == img.manifest.digest
        assert found[f"v{i}"]["pushed"]["account"] == "alice"
    assert (body["repository"]["tags"], body["repository"]["manifests"]) == (count, count)


def test_a_pat_push_records_the_token_name(srv: Server, check: Checker) -> None:
    secret = create_pat(srv, "alice", "ci-push", ["repository:alice/*:pull,push"])
    token = get_token(srv, ["repository:alice/patapp:pull,push"], auth=("alice", secret))
    img = image("pat")
    with registry(srv, ALICE, "alice/patapp") as client:
        for b in (img.config, *img.layers):
            r = client.post(
                "/v2/alice/patapp/blobs/uploads/", params={"digest": b.digest}, content=b.data
            )
            assert r.status_code == 201, r.text
    r = srv.client.put(
        "/v2/alice/patapp/manifests/v1",
        content=img.manifest.data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": img.manifest.media_type},
    )
    assert r.status_code == 201, r.text
    [tag] = tags_of(srv, "alice/patapp", ALICE)["tags"]
    assert tag["pushed"]["account"] == "alice"
    assert tag["pushed"]["credential"] == "ci-push"
    # The manifest view, asked for with the same token as a bearer, says the same.
    view = check(
        srv.client.get(f"{API}/repositories/alice/patapp/manifests/v1", headers=bearer(secret)),
        200,
    )
    assert view["pushed"]["credential"] == "ci-push"
    # The audit trail records the same credential for the push.
    pushes = [e for e in audit_events(srv, "alice", "push") if e["repository"] == "alice/patapp"]
    assert pushes
    assert pushes[0]["detail"]["token_name"] == "ci-push"


def test_an_index_has_per_platform_sizes(srv: Server, check: Checker) -> None:
    amd, arm = image("amd", (500,)), image("arm", (900, 100))
    index = push_index(srv, ALICE, "alice/multi", [amd, arm], "latest")
    [tag] = tags_of(srv, "alice/multi", ALICE)["tags"]
    assert tag["media_type"] == "application/vnd.oci.image.index.v1+json"
    assert tag["digest"] == index.digest
    assert [(p["platform"]["architecture"], p["size"]) for p in tag["platforms"]] == [
        ("amd64", total(amd)),
        ("arm64", total(arm)),
    ]
    assert [p["digest"] for p in tag["platforms"]] == [amd.manifest.digest, arm.manifest.digest]
    assert tag["size"] == total(amd) + total(arm)
    assert tag["created"] is None
    view = check(
        srv.client.get(f"{API}/repositories/alice/multi/manifests/latest", auth=ALICE), 200
    )
    assert view["digest"] == index.digest
    assert view["layers"] == []
    assert view["config"] is None
    assert [p["size"] for p in view["platforms"]] == [total(amd), total(arm)]
    child = check(
        srv.client.get(
            f"{API}/repositories/alice/multi/manifests/{arm.manifest.digest}", auth=ALICE
        ),
        200,
    )
    assert [layer["size"] for layer in child["layers"]] == [b.size for b in arm.layers]
    assert child["config"]["digest"] == arm.config.digest
    assert child["tags"] == []


def test_referrers_are_grouped_under_the_image_they_refer_to(srv: Server, check: Checker) -> None:
    amd, arm = image("ref-amd"), image("ref-arm")
    index = push_index(srv, ALICE, "alice/signed", [amd, arm], "1.0")
    signature = push_referrer(srv, ALICE, "alice/signed", arm.manifest, "application/vnd.dev.sig")
    sbom = push_referrer(srv, ALICE, "alice/signed", index, "application/spdx+json")
    view = check(srv.client.get(f"{API}/repositories/alice/signed/manifests/1.0", auth=ALICE), 200)
    groups = [
        (g["subject"], g["platform"], [(r["digest"], r["artifact_type"]) for r in g["referrers"]])
        for g in view["referrers"]
    ]
    assert groups == [
        (index.digest, None, [(sbom.digest, "application/spdx+json")]),
        (
            arm.manifest.digest,
            {"os": "linux", "architecture": "arm64"},
            [(signature.digest, "application/vnd.dev.sig")],
        ),
    ]
    [referrer] = view["referrers"][0]["referrers"]
    assert referrer["annotations"] == {"org.example": "yes"}
    assert referrer["pushed"]["account"] == "alice"
    single = check(
        srv.client.get(
            f"{API}/repositories/alice/signed/manifests/{arm.manifest.digest}", auth=ALICE
        ),
        200,
    )
    assert [g["subject"] for g in single["referrers"]] == [arm.manifest.digest]
    sig_view = check(
        srv.client.get(f"{API}/repositories/alice/signed/manifests/{signature.digest}", auth=ALICE),
        200,
    )
    assert sig_view["subject"] == arm.manifest.digest
    assert sig_view["artifact_type"] == "application/vnd.dev.sig"


def test_delete_a_tag_keeps_the_other_tags(srv: Server, check: Checker) -> None:
    img = image("two-tags")
    digest = push(srv, ALICE, "alice/twotags", img, "a", "b")
    assert [t["name"] for t in tags_of(srv, "alice/twotags", ALICE)["tags"]] == ["a", "b"]
    check(srv.client.delete(f"{API}/repositories/alice/twotags/tags/a", auth=ALICE), 204)
    [left] = tags_of(srv, "alice/twotags", ALICE)["tags"]
    assert (left["name"], left["digest"]) == ("b", digest)
    with registry(srv, ALICE, "alice/twotags") as client:
        assert client.get("/v2/alice/twotags/manifests/b").status_code == 200
        assert client.get("/v2/alice/twotags/manifests/a").status_code == 404
        assert client.get(f"/v2/alice/twotags/manifests/{digest}").status_code == 200
    deletes = [
        e for e in audit_events(srv, "alice", "delete") if e["repository"] == "alice/twotags"
    ]
    assert deletes[0]["detail"]["reference"] == "a"
    assert deletes[0]["detail"]["digest"] == digest
    assert deletes[0]["detail"]["via"] == "api"
    r = srv.client.delete(f"{API}/repositories/alice/twotags/tags/a", auth=ALICE)
    check(r, 404)
    assert error_code(r) == "MANIFEST_UNKNOWN"


def test_delete_a_manifest_removes_every_tag_naming_it(srv: Server, check: Checker) -> None:
    img = image("gone")
    digest = push(srv, ALICE, "alice/gone", img, "x", "y")
    check(srv.client.delete(f"{API}/repositories/alice/gone/manifests/{digest}", auth=ALICE), 204)
    r = srv.client.get(f"{API}/repositories/alice/gone/tags", auth=ALICE)
    check(r, 404)
    assert "alice/gone" not in names(srv, ALICE)
    with registry(srv, ALICE, "alice/gone") as client:
        assert client.get(f"/v2/alice/gone/manifests/{digest}").status_code == 404
    r = srv.client.delete(f"{API}/repositories/alice/gone/manifests/{digest}", auth=ALICE)
    check(r, 404)
    # A tag is not a digest: the tags endpoint deletes tags.
    r = srv.client.delete(f"{API}/repositories/alice/gone/manifests/x", auth=ALICE)
    check(r, 400)
    assert error_code(r) == "DIGEST_INVALID"


def test_v2_delete_gc_and_rebuild_keep_the_index_in_step(srv: Server, check: Checker) -> None:
    keep, drop = image("keep"), image("drop")
    push(srv, ALICE, "alice/steps", keep, "keep")
    drop_digest = push(srv, ALICE, "alice/steps", drop, "drop", "drop2")
    with registry(srv, ALICE, "alice/steps") as client:
        assert client.delete("/v2/alice/steps/manifests/drop2").status_code == 202
    assert [t["name"] for t in tags_of(srv, "alice/steps", ALICE)["tags"]] == ["drop", "keep"]
    with registry(srv, ALICE, "alice/steps") as client:
        assert client.delete(f"/v2/alice/steps/manifests/{drop_digest}").status_code == 202
    before = tags_of(srv, "alice/steps", ALICE)
    assert [t["name"] for t in before["tags"]] == ["keep"]
    assert before["repository"]["manifests"] == 1

    # gc removes no manifest or tag: the index stays as it was.
    hatchway_cli(srv.data, "gc", "--grace", "0s")
    assert tags_of(srv, "alice/steps", ALICE) == before

    # Storage changed behind the server's back: stale until a rebuild, which keeps who
    # pushed what it knew, and is idempotent.
    repos = srv.data / "docker/registry/v2/repositories"
    shutil.copytree(repos / "alice/steps", repos / "alice/copied")
    shutil.rmtree(repos / "alice/steps/_manifests/tags/keep")
    push(srv, ALICE, "alice/steps", keep, "other")
    assert [t["name"] for t in tags_of(srv, "alice/steps", ALICE)["tags"]] == ["keep", "other"]
    out = hatchway_cli(srv.data, "index", "rebuild").stdout
    assert "indexed" in out
    [other] = tags_of(srv, "alice/steps", ALICE)["tags"]
    assert other["name"] == "other"
    assert other["pushed"]["account"] == "alice"  # kept: the index knew who pushed it
    [copied] = tags_of(srv, "alice/copied", ALICE)["tags"]
    assert copied["name"] == "keep"
    assert copied["pushed"]["account"] is None  # not pushed through hatchway
    assert copied["pushed"]["at"] is not None  # the link's time
    everything = [tags_of(srv, name) for name in names(srv, ADMIN)]
    hatchway_cli(srv.data, "index", "rebuild")
    assert [tags_of(srv, name) for name in names(srv, ADMIN)] == everything


def test_listing_shows_only_what_the_caller_may_pull(srv: Server, check: Checker) -> None:
    push(srv, ALICE, "alice/shared", image("shared"), "1")
    push(srv, ALICE, "alice/private", image("private"), "1")
    push(srv, ALICE, "public/base", image("base"), "1")
    push(srv, BOB, "bob/tool", image("tool"), "1")
    viewer = names(srv, VIEWER)
    assert viewer == ["alice/shared", "public/base"]
    assert names(srv, VIEWER, q="SHAR") == ["alice/shared"]
    bob = names(srv, BOB)
    assert bob == ["bob/tool"]
    admin = names(srv, ADMIN)
    assert {"alice/private", "alice/shared", "bob/tool", "public/base"} <= set(admin)
    alice = names(srv, ALICE)
    assert "bob/tool" not in alice
    assert {"alice/private", "public/base"} <= set(alice)
    # A token narrows it further to its own scopes.
    secret = create_pat(srv, "alice", "only-shared", ["repository:alice/shared:pull"])
    r = srv.client.get(f"{API}/repositories", headers=bearer(secret))
    assert [repo["name"] for repo in check(r, 200)["repositories"]] == ["alice/shared"]
    r = srv.client.get(f"{API}/repositories/alice/private/tags", headers=bearer(secret))
    check(r, 404)


def test_repositories_page_with_link_and_next(srv: Server, check: Checker) -> None:
    for n in range(3):
        push(srv, BOB, f"bob/page{n}", image(f"page{n}"), "1")
    expected = names(srv, BOB, q="page")
    assert expected == ["bob/page0", "bob/page1", "bob/page2"]
    seen: list[str] = []
    url: str | None = f"{API}/repositories?n=2&q=page"
    while url is not None:
        r = srv.client.get(url, auth=BOB)
        body = check(r, 200)
        seen += [repo["name"] for repo in body["repositories"]]
        url = body["next"]
        if url is not None:
            assert r.headers["Link"] == f'<{url}>; rel="next"'
        else:
            assert "Link" not in r.headers
    assert seen == expected


def test_tags_sort_and_page(srv: Server, check: Checker) -> None:
    sizes = {"small": (100,), "large": (3000,), "medium": (1000,), "tiny": (10,)}
    totals = {}
    for tag, layer_sizes in sizes.items():
        img = image(f"sorted-{tag}", layer_sizes)
        totals[tag] = total(img)
        push(srv, BOB, "bob/sorted", img, tag)
    by_name = [t["name"] for t in tags_of(srv, "bob/sorted", BOB)["tags"]]
    assert by_name == ["large", "medium", "small", "tiny"]
    collected: list[str] = []
    url: str | None = f"{API}/repositories/bob/sorted/tags?n=3&sort=size&order=desc"
    while url is not None:
        body = check(srv.client.get(url, auth=BOB), 200)
        collected += [t["name"] for t in body["tags"]]
        url = body["next"]
    assert collected == sorted(totals, key=lambda t: (-totals[t], t))
    pushed = [t["name"] for t in tags_of(srv, "bob/sorted", BOB, sort="pushed")["tags"]]
    assert pushed == ["small", "large", "medium", "tiny"]
    assert [t["name"] for t in tags_of(srv, "bob/sorted", BOB, sort="pushed_by")["tags"]] == [
        "large",
        "medium",
        "small",
        "tiny",
    ]


def test_401_403_404(srv: Server, check: Checker) -> None:
    push(srv, ALICE, "alice/shared", image("shared"), "1")
    push(srv, ALICE, "alice/hidden", image("hidden"), "1")
    digest = image("hidden").manifest.digest
    for number, (method, path) in enumerate(
        (
            ("GET", "/repositories"),
            ("GET", "/repositories/alice/shared/tags"),
            ("GET", "/repositories/alice/shared/manifests/1"),
            ("DELETE", "/repositories/alice/shared/tags/1"),
            ("DELETE", f"/repositories/alice/shared/manifests/{digest}"),
        )
    ):
        r = srv.client.request(method, API + path)
        check(r, 401)
        assert r.headers["WWW-Authenticate"] == 'Basic realm="hatchway"'
        # A wrong password is a 401 too. Each guess names another account: five wrong
        # passwords for alice from one address would lock her out here (429) by design.
        check(srv.client.request(method, API + path, auth=(f"guess{number}", "wrong")), 401)
    # Hidden and absent look the same.
    for repo in ("alice/hidden", "alice/absent"):
        r = srv.client.get(f"{API}/repositories/{repo}/tags", auth=VIEWER)
        check(r, 404)
        assert error_code(r) == "NAME_UNKNOWN"
        r = srv.client.delete(f"{API}/repositories/{repo}/tags/1", auth=VIEWER)
        check(r, 404)
        assert error_code(r) == "NAME_UNKNOWN"
        r = srv.client.get(f"{API}/repositories/{repo}/manifests/1", auth=VIEWER)
        check(r, 404)
    # May pull, may not delete: 403, and nothing is deleted.
    check(srv.client.get(f"{API}/repositories/alice/shared/tags", auth=VIEWER), 200)
    r = srv.client.delete(f"{API}/repositories/alice/shared/tags/1", auth=VIEWER)
    check(r, 403)
    assert error_code(r) == "DENIED"
    r = srv.client.delete(
        f"{API}/repositories/alice/shared/manifests/{image('shared').manifest.digest}",
        auth=VIEWER,
    )
    check(r, 403)
    # A token without delete may not delete either, even the owner's.
    secret = create_pat(srv, "alice", "pull-only", ["repository:alice/*:pull"])
    r = srv.client.delete(f"{API}/repositories/alice/shared/tags/1", headers=bearer(secret))
    check(r, 403)
    assert [t["name"] for t in tags_of(srv, "alice/shared", ALICE)["tags"]] == ["1"]


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/repositories/Alice/App/tags", "NAME_INVALID"),
        ("GET", "/repositories/alice//app/tags", "NAME_INVALID"),
        ("GET", "/repositories/-alice/tags", "NAME_INVALID"),
        ("GET", "/repositories/alice/app./tags", "NAME_INVALID"),
        ("GET", "/repositories/" + "a" * 300 + "/tags", "NAME_INVALID"),
        ("GET", "/repositories/alice/shared/manifests/sha256:xyz", "DIGEST_INVALID"),
        ("GET", "/repositories/alice/shared/manifests/md5:" + "0" * 32, "DIGEST_INVALID"),
        ("GET", "/repositories/alice/shared/manifests/-bad-tag", "TAG_INVALID"),
        ("DELETE", "/repositories/alice/shared/manifests/sha256:" + "0" * 10, "DIGEST_INVALID"),
        ("DELETE", "/repositories/alice/shared/tags/" + "t" * 200, "TAG_INVALID"),
        ("DELETE", "/repositories/alice/shared/tags/.dot", "TAG_INVALID"),
        ("GET", "/repositories?n=0", "PAGINATION_NUMBER_INVALID"),
        ("GET", "/repositories?n=1001", "PAGINATION_NUMBER_INVALID"),
        ("GET", "/repositories?n=abc", "PAGINATION_NUMBER_INVALID"),
        ("GET", "/repositories?n=-1", "PAGINATION_NUMBER_INVALID"),
        ("GET", "/repositories?n=%EF%BC%91", "PAGINATION_NUMBER_INVALID"),
        ("GET", "/repositories?n=99999999999999999999999", "PAGINATION_NUMBER_INVALID"),
        ("GET", "/repositories?last=Not/A/Name", "INVALID_PARAMETER"),
        ("GET", "/repositories?q=" + "x" * 300, "INVALID_PARAMETER"),
        ("GET", "/repositories?q=a&q=b", "INVALID_PARAMETER"),
        ("GET", "/repositories?page=2", "UNKNOWN_PARAMETER"),
        ("GET", "/repositories/alice/shared/tags?sort=colour", "INVALID_PARAMETER"),
        ("GET", "/repositories/alice/shared/tags?order=up", "INVALID_PARAMETER"),
        ("GET", "/repositories/alice/shared/tags?last=-x", "TAG_INVALID"),
        ("GET", "/repositories/alice/shared/tags?n=0", "PAGINATION_NUMBER_INVALID"),
        ("GET", "/repositories/alice/shared/tags?q=x", "UNKNOWN_PARAMETER"),
        ("GET", "/repositories/alice/shared/manifests/1?x=1", "UNKNOWN_PARAMETER"),
    ],
)
def test_bad_input_is_a_4xx_in_the_api_format(
    srv: Server, check: Checker, method: str, path: str, code: str
) -> None:
    r = srv.client.request(method, API + path, auth=ALICE)
    check(r, 400)
    assert error_code(r) == code


def test_unknown_things_are_404(srv: Server, check: Checker) -> None:
    push(srv, ALICE, "alice/shared", image("shared"), "1")
    for path in (
        "/repositories/alice/shared/manifests/nope",
        "/repositories/alice/shared/manifests/sha256:" + "0" * 64,
        "/repositories/alice/nothing/tags",
    ):
        check(srv.client.get(API + path, auth=ALICE), 404)
    check(srv.client.delete(f"{API}/repositories/alice/shared/tags/nope", auth=ALICE), 404)
    check(srv.client.get(f"{API}/repositories/alice/shared", auth=ALICE), 404)
    check(srv.client.post(f"{API}/repositories/alice/shared/tags", auth=ALICE), 405)
    check(srv.client.put(f"{API}/repositories", auth=ALICE), 405)


def test_every_repository_operation_is_documented_and_served(
    srv: Server, check: Checker, tmp_path: Path
) -> None:
    img = image("documented")
    digest = push(srv, ALICE, "alice/doc/deep", img, "one", "two")
    values = {"{name}": "alice/doc/deep", "{tag}": "one", "{reference}": digest}
    seen = 0
    for template, operations in check.doc["paths"].items():
        if not template.startswith(f"{API}/repositories"):
            continue
        path = template
        for key, value in values.items():
            path = path.replace(key, value)
        for method in sorted(operations, key=lambda m: m == "delete"):
            r = srv.client.request(method, path, auth=ALICE)
            expected = 204 if method == "delete" else 200
            check(r, expected)
            seen += 1
    assert seen == 5


def test_an_empty_index_is_built_at_start_from_existing_storage(tmp_path: Path) -> None:
    """A store from before the index (here: its tables emptied) is indexed in the
    background when the server starts, without a manual rebuild."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start(tmp_path / "a")
    try:
        add_user(first, "alice", PASSWORD)
        digest = push(first, ALICE, "alice/old", image("old"), "1.0")
    finally:
        first.stop()
    db = sqlite3.connect(first.data / "hatchway.db")
    with db:
        for table in ("index_tags", "index_blobs", "index_manifests", "index_repositories"):
            db.execute(f"DELETE FROM {table}")
    db.close()
    second = start(tmp_path / "b", data=first.data)
    try:
        for _ in range(100):
            if names(second, ALICE) == ["alice/old"]:
                break
            time.sleep(0.1)
        [tag] = tags_of(second, "alice/old", ALICE)["tags"]
        assert (tag["name"], tag["digest"]) == ("1.0", digest)
    finally:
        second.stop()
