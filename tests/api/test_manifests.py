"""Manifests: PUT/GET/HEAD/DELETE by tag and digest, as clients see them on a real server."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.images import Blob, blob
from tests.support.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY,
    MANIFEST_TYPES,
    OCI_EMPTY,
    OCI_EMPTY_DIGEST,
    artifact,
    connection_per_worker,
    docker_image,
    fresh_client,
    get_without_accept,
    index_of,
    oci_image,
    odd_json,
    push_blobs,
    put,
    put_ok,
)
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, errors, sha256
from tests.support.server import Server, start_server

# --- building each kind of manifest, with everything it references pushed first ----------


def _oci(client: httpx.Client, repo: str) -> Blob:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    return image.manifest


def _docker(client: httpx.Client, repo: str) -> Blob:
    image = docker_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    return image.manifest


def _oci_index(client: httpx.Client, repo: str) -> Blob:
    children = [oci_image(f"{repo}-{i}") for i in range(2)]
    for child in children:
        push_blobs(client, repo, child.config, *child.layers)
        put_ok(client, repo, child.manifest.digest, child.manifest)
    return index_of(
        [child.manifest for child in children], annotations={"org.example.kind": "index"}
    )


def _docker_list(client: httpx.Client, repo: str) -> Blob:
    children = [docker_image(f"{repo}-{i}") for i in range(2)]
    for child in children:
        push_blobs(client, repo, child.config, *child.layers)
        put_ok(client, repo, child.manifest.digest, child.manifest)
    return index_of([child.manifest for child in children], DOCKER_LIST)


def _artifact(client: httpx.Client, repo: str) -> Blob:
    payload = blob(f"signature of {repo}".encode(), "application/vnd.example.signature.v1")
    push_blobs(client, repo, EMPTY, payload)
    return artifact(
        "application/vnd.example.signature",
        layers=[payload],
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )


KINDS: dict[str, Callable[[httpx.Client, str], Blob]] = {
    "docker": _docker,
    "docker-list": _docker_list,
    "oci": _oci,
    "oci-index": _oci_index,
    "artifact": _artifact,
}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def manifest(client: httpx.Client, repo: str, kind: str) -> Blob:
    """A manifest of ``kind`` whose blobs and children are in ``repo``, not yet pushed."""
    return KINDS[kind](client, repo)


def _assert_served(r: httpx.Response, m: Blob, *, head: bool = False) -> None:
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == m.media_type
    assert r.headers["Docker-Content-Digest"] == m.digest
    assert r.headers["Content-Length"] == str(m.size)
    if head:
        assert r.content == b""
    else:
        assert r.content == m.data  # byte for byte, odd whitespace and key order included


def _assert_unknown(r: httpx.Response, *, head: bool = False) -> None:
    assert r.status_code == 404, r.text
    if not head:
        assert errors(r) == ["MANIFEST_UNKNOWN"]


# --- push and pull every kind ------------------------------------------------------------


def test_artifact_uses_the_well_known_empty_config(client: httpx.Client, repo: str) -> None:
    manifest = _artifact(client, repo)
    put_ok(client, repo, "art", manifest)
    _assert_served(client.get(f"/v2/{repo}/manifests/art"), manifest)
    doc = json.loads(manifest.data)
    assert doc["artifactType"] == "application/vnd.example.signature"
    assert doc["config"] == {
        "mediaType": OCI_EMPTY,
        "digest": OCI_EMPTY_DIGEST,
        "size": 2,
        "data": "e30=",
    }


def test_put_by_tag_then_get_and_head_by_tag_and_digest(
    client: httpx.Client, repo: str, manifest: Blob
) -> None:
    r = put(client, repo, "v1", manifest)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == manifest.digest
    assert r.headers["Location"].endswith(f"/v2/{repo}/manifests/{manifest.digest}")
    assert "OCI-Subject" not in r.headers

    for ref in ("v1", manifest.digest):
        _assert_served(client.get(f"/v2/{repo}/manifests/{ref}"), manifest)
        _assert_served(client.head(f"/v2/{repo}/manifests/{ref}"), manifest, head=True)
    location = r.headers["Location"]
    _assert_served(client.get(location), manifest)
    assert sha256(manifest.data) == manifest.digest


def test_put_by_digest_stores_without_tagging(
    client: httpx.Client, repo: str, manifest: Blob
) -> None:
    r = put(client, repo, manifest.digest, manifest)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == manifest.digest
    assert r.headers["Location"].endswith(f"/v2/{repo}/manifests/{manifest.digest}")
    _assert_served(client.get(f"/v2/{repo}/manifests/{manifest.digest}"), manifest)
    _assert_served(client.head(f"/v2/{repo}/manifests/{manifest.digest}"), manifest, head=True)
    _assert_unknown(client.get(f"/v2/{repo}/manifests/latest"))


def test_put_is_idempotent(client: httpx.Client, repo: str, manifest: Blob) -> None:
    for ref in ("a", "a", manifest.digest, "b"):
        put_ok(client, repo, ref, manifest)
    for ref in ("a", "b", manifest.digest):
        _assert_served(client.get(f"/v2/{repo}/manifests/{ref}"), manifest)


def test_delete_by_digest_removes_manifest_and_its_tags(
    client: httpx.Client, repo: str, manifest: Blob
) -> None:
    put_ok(client, repo, "one", manifest)
    put_ok(client, repo, "two", manifest)
    r = client.delete(f"/v2/{repo}/manifests/{manifest.digest}")
    assert r.status_code == 202, r.text
    for ref in ("one", "two", manifest.digest):
        _assert_unknown(client.get(f"/v2/{repo}/manifests/{ref}"))
        _assert_unknown(client.head(f"/v2/{repo}/manifests/{ref}"), head=True)
    r = client.delete(f"/v2/{repo}/manifests/{manifest.digest}")
    _assert_unknown(r)
    # The same bytes can be pushed again afterwards.
    put_ok(client, repo, "again", manifest)
    _assert_served(client.get(f"/v2/{repo}/manifests/again"), manifest)


# --- content negotiation -------------------------------------------------------------------


def test_accept_listing_the_stored_type_is_served(
    client: httpx.Client, repo: str, manifest: Blob
) -> None:
    put_ok(client, repo, "v1", manifest)
    others = [t for t in MANIFEST_TYPES if t != manifest.media_type]
    variants = [
        manifest.media_type,
        f"{others[0]}, {manifest.media_type};q=0.5",
        ", ".join([*others, manifest.media_type]),
    ]
    for accept in variants:
        r = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
        _assert_served(r, manifest)
        r = client.head(f"/v2/{repo}/manifests/{manifest.digest}", headers={"Accept": accept})
        _assert_served(r, manifest, head=True)
    # Docker sends one Accept header per type.
    r = client.get(
        f"/v2/{repo}/manifests/v1",
        headers=[("Accept", others[0]), ("Accept", manifest.media_type)],
    )
    _assert_served(r, manifest)


def test_accept_listing_only_other_types_is_manifest_unknown(
    client: httpx.Client, repo: str, manifest: Blob
) -> None:
    put_ok(client, repo, "v1", manifest)
    others = ", ".join(t for t in MANIFEST_TYPES if t != manifest.media_type)
    for ref in ("v1", manifest.digest):
        r = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": others})
        _assert_unknown(r)
        r = client.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": others})
        _assert_unknown(r, head=True)


def test_no_accept_or_wildcard_is_served_as_stored(
    client: httpx.Client, repo: str, manifest: Blob
) -> None:
    put_ok(client, repo, "v1", manifest)
    _assert_served(get_without_accept(client, "GET", f"/v2/{repo}/manifests/v1"), manifest)
    r = get_without_accept(client, "HEAD", f"/v2/{repo}/manifests/v1")
    _assert_served(r, manifest, head=True)
    for accept in ("*/*", "application/json, */*"):
        r = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
        _assert_served(r, manifest)


# --- exact bytes and media types -----------------------------------------------------------


def test_bytes_are_served_exactly_as_pushed(client: httpx.Client, repo: str) -> None:
    image = oci_image("exact")
    push_blobs(client, repo, image.config, *image.layers)
    doc = json.loads(image.manifest.data)
    body = (
        b'\t{"annotations":{"z":"\\u00e9 escaped","a":"\xc3\xa9 raw"},   "layers" : '
        + json.dumps(doc["layers"]).encode()
        + b',\n"config":'
        + json.dumps(doc["config"], indent=8).encode()
        + b',"mediaType":"'
        + OCI_MANIFEST.encode()
        + b'","schemaVersion":2}\r\n  '
    )
    assert json.loads(body)["schemaVersion"] == 2
    assert body != json.dumps(json.loads(body)).encode()
    m = blob(body, OCI_MANIFEST)
    put_ok(client, repo, "exact", m)
    for _ in range(4):  # fresh connections reach both workers
        with fresh_client(str(client.base_url)) as c:
            _assert_served(c.get(f"/v2/{repo}/manifests/exact"), m)


@pytest.mark.parametrize(
    ("shape", "content_type"),
    [
        ("image", OCI_MANIFEST),
        ("index", OCI_INDEX),
        ("image", DOCKER_MANIFEST),
        ("index", DOCKER_LIST),
    ],
    ids=["oci", "oci-index", "docker", "docker-list"],
)
def test_manifest_without_media_type_field_keeps_the_pushed_type(
    server: Server, client: httpx.Client, repo: str, shape: str, content_type: str
) -> None:
    """With no ``mediaType`` in the body the Content-Type of the push is the media type:
    every worker must serve that same type (or the push must be refused)."""
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    if shape == "image":
        doc: dict[str, object] = {
            "schemaVersion": 2,
            "config": image.config.descriptor(),
            "layers": [layer.descriptor() for layer in image.layers],
        }
    else:
        put_ok(client, repo, image.manifest.digest, image.manifest)
        doc = {"schemaVersion": 2, "manifests": [image.manifest.descriptor()]}
    m = blob(odd_json(doc), content_type)
    with connection_per_worker(server) as workers:
        r = workers[0].request(
            "PUT", f"/v2/{repo}/manifests/bare", {"Content-Type": content_type}, m.data
        )
        if r.status_code == 400:
            assert errors(r) == ["MANIFEST_INVALID"]
            return
        assert r.status_code == 201, r.text
        served = {}
        for worker in workers:
            got = worker.request("GET", f"/v2/{repo}/manifests/bare")
            assert got.status_code == 200, got.text
            assert got.content == m.data
            served[worker.pid] = got.headers["Content-Type"]
        assert set(served.values()) == {content_type}, served


def test_manifest_list_with_an_oci_index_child(client: httpx.Client, repo: str) -> None:
    """An index may reference another index; children of every kind must be present."""
    inner = _oci_index(client, repo)
    put_ok(client, repo, inner.digest, inner)
    outer = index_of([inner])
    put_ok(client, repo, "nested", outer)
    _assert_served(client.get(f"/v2/{repo}/manifests/nested"), outer)


def test_sha512_digest_reference(client: httpx.Client, repo: str) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    d512 = "sha512:" + hashlib.sha512(image.manifest.data).hexdigest()
    r = put(client, repo, d512, image.manifest)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == d512
    r = client.get(f"/v2/{repo}/manifests/{d512}")
    assert r.status_code == 200, r.text
    assert r.content == image.manifest.data
    assert r.headers["Docker-Content-Digest"] == d512


# --- refusals ------------------------------------------------------------------------------


def _assert_nothing_stored(client: httpx.Client, repo: str, m: Blob, tag: str) -> None:
    _assert_unknown(client.get(f"/v2/{repo}/manifests/{tag}"))
    _assert_unknown(client.get(f"/v2/{repo}/manifests/{m.digest}"))


@pytest.mark.parametrize("missing", ["config", "layer"])
def test_manifest_referencing_a_missing_blob_is_refused(
    client: httpx.Client, repo: str, missing: str
) -> None:
    image = oci_image(repo)
    present = image.layers if missing == "config" else [image.config]
    push_blobs(client, repo, *present)
    r = put(client, repo, "v1", image.manifest)
    assert r.status_code == 400, r.text
    assert errors(r) == ["MANIFEST_BLOB_UNKNOWN"]
    _assert_nothing_stored(client, repo, image.manifest, "v1")


def test_blob_in_another_repository_only_is_unknown_here(client: httpx.Client, repo: str) -> None:
    image = docker_image(repo)
    push_blobs(client, f"{repo}/other", image.config, *image.layers)
    r = put(client, repo, "v1", image.manifest)
    assert r.status_code == 400, r.text
    assert errors(r) == ["MANIFEST_BLOB_UNKNOWN"]
    _assert_nothing_stored(client, repo, image.manifest, "v1")


def test_artifact_without_the_empty_blob_pushed_is_refused(client: httpx.Client, repo: str) -> None:
    m = artifact("application/vnd.example.thing")
    r = put(client, repo, "v1", m)
    assert r.status_code == 400, r.text
    assert errors(r) == ["MANIFEST_BLOB_UNKNOWN"]
    _assert_nothing_stored(client, repo, m, "v1")


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST], ids=["oci", "docker"])
def test_index_referencing_a_missing_child_is_refused(
    client: httpx.Client, repo: str, media_type: str
) -> None:
    present = oci_image(f"{repo}-present")
    push_blobs(client, repo, present.config, *present.layers)
    put_ok(client, repo, present.manifest.digest, present.manifest)
    absent = oci_image(f"{repo}-absent")
    push_blobs(client, repo, absent.config, *absent.layers)  # its blobs, not the manifest
    index = index_of([present.manifest, absent.manifest], media_type)
    r = put(client, repo, "multi", index)
    assert r.status_code == 400, r.text
    assert errors(r) == ["MANIFEST_BLOB_UNKNOWN"]
    _assert_nothing_stored(client, repo, index, "multi")
    # Once the child is pushed, the same index is accepted.
    put_ok(client, repo, absent.manifest.digest, absent.manifest)
    put_ok(client, repo, "multi", index)
    _assert_served(client.get(f"/v2/{repo}/manifests/multi"), index)


def _invalid_bodies(config: dict[str, object]) -> dict[str, bytes]:
    base: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config}
    return {
        "not-json": b'{"schemaVersion": 2, "config": ',
        "not-an-object": b"[1, 2, 3]",
        "empty": b"",
        "schema-1": json.dumps({**base, "schemaVersion": 1}).encode(),
        "schema-string": json.dumps({**base, "schemaVersion": "2"}).encode(),
        "schema-missing": json.dumps({"mediaType": OCI_MANIFEST, "config": config}).encode(),
        "no-config": json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode(),
        "bad-config-digest": json.dumps(
            {**base, "config": {**config, "digest": "sha256:nothex"}}
        ).encode(),
        "bad-layers": json.dumps({**base, "layers": {"not": "a list"}}).encode(),
        "bad-subject": json.dumps({**base, "subject": {"mediaType": OCI_MANIFEST}}).encode(),
        "index-without-manifests": json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX}
        ).encode(),
        # A RecursionError (500) before: refused long before the parser recurses.
        "nested-10000-deep": json.dumps({**base, "annotations": {"a": "deep"}})
        .replace('"deep"', "[" * 10_000 + "]" * 10_000)
        .encode(),
        "size-2^63": json.dumps({**base, "config": {**config, "size": 2**63}}).encode(),
        "size-negative": json.dumps({**base, "config": {**config, "size": -1}}).encode(),
        "annotation-not-a-string": json.dumps({**base, "annotations": {"a": 1}}).encode(),
        "layer-annotations-a-list": json.dumps(
            {**base, "layers": [{**config, "annotations": ["a"]}]}
        ).encode(),
    }


def test_invalid_manifests_are_manifest_invalid(client: httpx.Client, repo: str) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    for case, body in _invalid_bodies(image.config.descriptor()).items():
        content_type = OCI_INDEX if case.startswith("index") else OCI_MANIFEST
        r = client.put(
            f"/v2/{repo}/manifests/{case}", content=body, headers={"Content-Type": content_type}
        )
        assert r.status_code == 400, (case, r.text)
        assert errors(r) == ["MANIFEST_INVALID"], case
        _assert_unknown(client.get(f"/v2/{repo}/manifests/{case}"))


@pytest.mark.parametrize(
    ("header", "body_kind"),
    [
        (DOCKER_MANIFEST, "oci"),
        (OCI_INDEX, "oci"),
        (OCI_MANIFEST, "docker"),
        (DOCKER_LIST, "docker"),
    ],
    ids=[
        "docker-header-oci-body",
        "index-header-oci-body",
        "oci-header-docker-body",
        "list-header-docker-body",
    ],
)
def test_content_type_disagreeing_with_media_type_is_refused(
    client: httpx.Client, repo: str, header: str, body_kind: str
) -> None:
    m = KINDS[body_kind](client, repo)
    r = put(client, repo, "v1", m, content_type=header)
    assert r.status_code == 400, r.text
    assert errors(r) == ["MANIFEST_INVALID"]
    _assert_nothing_stored(client, repo, m, "v1")


def _padded(image_manifest: Blob, size: int) -> Blob:
    doc = json.loads(image_manifest.data)
    doc["annotations"] = {"pad": ""}
    doc["annotations"]["pad"] = "x" * (size - len(json.dumps(doc).encode()))
    body = json.dumps(doc).encode()
    assert len(body) == size
    return blob(body, OCI_MANIFEST)


def test_manifest_over_4_mib_is_413_and_4_mib_is_accepted(client: httpx.Client, repo: str) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    too_big = _padded(image.manifest, 4 * 1024 * 1024 + 1)
    r = put(client, repo, "big", too_big)
    assert r.status_code == 413, r.text
    _assert_nothing_stored(client, repo, too_big, "big")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds for streams too
        for i in range(0, too_big.size, 1 << 20):
            yield too_big.data[i : i + (1 << 20)]

    r = client.put(
        f"/v2/{repo}/manifests/big", content=chunks(), headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 413, r.text
    _assert_nothing_stored(client, repo, too_big, "big")

    # Registries SHOULD accept manifests of at least 4 MiB.
    limit = _padded(image.manifest, 4 * 1024 * 1024)
    put_ok(client, repo, "limit", limit)
    _assert_served(client.get(f"/v2/{repo}/manifests/limit"), limit)


def test_put_by_a_digest_that_does_not_match_is_digest_invalid(
    client: httpx.Client, repo: str
) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    wrong = sha256(b"something else")
    r = put(client, repo, wrong, image.manifest)
    assert r.status_code == 400, r.text
    assert errors(r) == ["DIGEST_INVALID"]
    _assert_unknown(client.get(f"/v2/{repo}/manifests/{wrong}"))
    _assert_unknown(client.get(f"/v2/{repo}/manifests/{image.manifest.digest}"))


@pytest.mark.parametrize(
    "tag",
    ["a" * 129, ".hidden", "-dash", "has+plus", "spa ce", "ünï", "semi;colon"],
    ids=["129-chars", "dot", "dash", "plus", "space", "unicode", "semicolon"],
)
def test_invalid_tag_is_tag_invalid(client: httpx.Client, repo: str, tag: str) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    r = put(client, repo, tag, image.manifest)
    assert r.status_code == 400, r.text
    assert errors(r) == ["TAG_INVALID"]
    _assert_unknown(client.get(f"/v2/{repo}/manifests/{image.manifest.digest}"))


@pytest.mark.parametrize("tag", [".INVALID_MANIFEST_NAME", "a" * 129, "-dash", "semi;colon"])
def test_get_head_delete_of_an_ill_formed_tag_is_manifest_unknown(
    client: httpx.Client, repo: str, tag: str
) -> None:
    """No manifest can have such a tag, so it is not found (404, as the conformance
    suite checks with ``.INVALID_MANIFEST_NAME``); only a push of it is TAG_INVALID."""
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    put_ok(client, repo, "v1", image.manifest)
    _assert_unknown(client.get(f"/v2/{repo}/manifests/{tag}"))
    _assert_unknown(client.head(f"/v2/{repo}/manifests/{tag}"), head=True)
    _assert_unknown(client.delete(f"/v2/{repo}/manifests/{tag}"))
    r = put(client, repo, tag, image.manifest)
    assert r.status_code == 400, r.text
    assert errors(r) == ["TAG_INVALID"]


def test_longest_and_odd_valid_tags_are_accepted(client: httpx.Client, repo: str) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    for tag in ("a" * 128, "_underscore", "A.b-c_D", "0"):
        put_ok(client, repo, tag, image.manifest)
        _assert_served(client.get(f"/v2/{repo}/manifests/{tag}"), image.manifest)


def test_unknown_tag_or_digest_is_manifest_unknown(client: httpx.Client, repo: str) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    put_ok(client, repo, "exists", image.manifest)
    for ref in ("nope", sha256(b"nope"), "sha512:" + "0" * 128):
        _assert_unknown(client.get(f"/v2/{repo}/manifests/{ref}"))
        _assert_unknown(client.head(f"/v2/{repo}/manifests/{ref}"), head=True)
        _assert_unknown(client.delete(f"/v2/{repo}/manifests/{ref}"))


def test_manifest_in_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    for ref in ("latest", sha256(b"x")):
        r = client.get(f"/v2/{repo}/never/manifests/{ref}")
        assert r.status_code == 404, r.text
        assert errors(r)[0] in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")
        assert client.head(f"/v2/{repo}/never/manifests/{ref}").status_code == 404


def test_manifest_known_in_another_repository_is_unknown_here(
    client: httpx.Client, repo: str
) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    put_ok(client, repo, "v1", image.manifest)
    _assert_unknown(client.get(f"/v2/{repo}/elsewhere/manifests/{image.manifest.digest}"))


@pytest.mark.parametrize(
    "ref",
    [
        "sha256:abc",
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "0" * 65,
        "sha512:" + "0" * 64,
        "sha256:",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ],
    ids=["short", "upper", "non-hex", "long", "sha512-short", "empty", "md5"],
)
def test_invalid_digest_reference_is_digest_invalid(
    client: httpx.Client, repo: str, ref: str
) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    for method in ("GET", "DELETE", "PUT"):
        content = image.manifest.data if method == "PUT" else None
        headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else {}
        r = client.request(method, f"/v2/{repo}/manifests/{ref}", content=content, headers=headers)
        assert r.status_code == 400, (method, r.text)
        assert errors(r) == ["DIGEST_INVALID"], method
    assert client.head(f"/v2/{repo}/manifests/{ref}").status_code == 400


def test_subject_that_does_not_exist_is_accepted_with_oci_subject(
    client: httpx.Client, repo: str
) -> None:
    ghost = blob(b'{"never": "pushed"}', OCI_MANIFEST)
    push_blobs(client, repo, EMPTY)
    m = artifact("application/vnd.example.sbom", subject=ghost)
    r = put(client, repo, "sbom", m)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == ghost.digest
    assert r.headers["Docker-Content-Digest"] == m.digest
    _assert_served(client.get(f"/v2/{repo}/manifests/sbom"), m)
    _assert_unknown(client.get(f"/v2/{repo}/manifests/{ghost.digest}"))


def test_subject_that_exists_returns_oci_subject(client: httpx.Client, repo: str) -> None:
    subject = _docker(client, repo)
    put_ok(client, repo, "v1", subject)
    push_blobs(client, repo, EMPTY)
    m = artifact("application/vnd.example.sig", subject=subject)
    r = put(client, repo, m.digest, m)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == subject.digest


# --- tags move; deletes ----------------------------------------------------------------------


def test_retagging_moves_the_tag_and_keeps_the_old_manifest(
    client: httpx.Client, repo: str
) -> None:
    first, second = _oci(client, repo), _docker(client, repo)
    put_ok(client, repo, "stable", first)
    _assert_served(client.get(f"/v2/{repo}/manifests/stable"), first)
    put_ok(client, repo, "stable", second)
    _assert_served(client.get(f"/v2/{repo}/manifests/stable"), second)
    _assert_served(client.head(f"/v2/{repo}/manifests/stable"), second, head=True)
    _assert_served(client.get(f"/v2/{repo}/manifests/{first.digest}"), first)
    put_ok(client, repo, "stable", first)
    _assert_served(client.get(f"/v2/{repo}/manifests/stable"), first)


def test_delete_tag_keeps_manifest_and_other_tags(client: httpx.Client, repo: str) -> None:
    m = _oci(client, repo)
    put_ok(client, repo, "keep", m)
    put_ok(client, repo, "drop", m)
    r = client.delete(f"/v2/{repo}/manifests/drop")
    assert r.status_code == 202, r.text
    _assert_unknown(client.get(f"/v2/{repo}/manifests/drop"))
    _assert_served(client.get(f"/v2/{repo}/manifests/keep"), m)
    _assert_served(client.get(f"/v2/{repo}/manifests/{m.digest}"), m)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["keep"]
    _assert_unknown(client.delete(f"/v2/{repo}/manifests/drop"))


def test_delete_by_digest_leaves_tags_of_other_manifests(client: httpx.Client, repo: str) -> None:
    doomed, kept = _oci(client, repo), _docker(client, repo)
    put_ok(client, repo, "a", doomed)
    put_ok(client, repo, "b", doomed)
    put_ok(client, repo, "c", kept)
    assert client.delete(f"/v2/{repo}/manifests/{doomed.digest}").status_code == 202
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["c"]
    _assert_served(client.get(f"/v2/{repo}/manifests/c"), kept)


def test_delete_in_one_repository_leaves_the_same_manifest_in_another(
    client: httpx.Client, repo: str
) -> None:
    image = oci_image(repo)
    for name in (repo, f"{repo}/copy"):
        push_blobs(client, name, image.config, *image.layers)
        put_ok(client, name, "v1", image.manifest)
    assert client.delete(f"/v2/{repo}/manifests/{image.manifest.digest}").status_code == 202
    _assert_unknown(client.get(f"/v2/{repo}/manifests/v1"))
    _assert_served(client.get(f"/v2/{repo}/copy/manifests/v1"), image.manifest)
    _assert_served(client.get(f"/v2/{repo}/copy/manifests/{image.manifest.digest}"), image.manifest)


def test_delete_index_by_digest_keeps_its_children(client: httpx.Client, repo: str) -> None:
    index = _oci_index(client, repo)
    put_ok(client, repo, "multi", index)
    assert client.delete(f"/v2/{repo}/manifests/{index.digest}").status_code == 202
    _assert_unknown(client.get(f"/v2/{repo}/manifests/multi"))
    for child in json.loads(index.data)["manifests"]:
        assert client.get(f"/v2/{repo}/manifests/{child['digest']}").status_code == 200


def test_delete_disabled_is_405_unsupported(tmp: Path) -> None:
    srv = start_server(tmp, config="storage:\n  delete:\n    enabled: false\n")
    try:
        c, repo = srv.client, "nodelete/app"
        m = _oci(c, repo)
        put_ok(c, repo, "v1", m)
        for ref in ("v1", m.digest, "unknown", sha256(b"unknown")):
            r = c.delete(f"/v2/{repo}/manifests/{ref}")
            assert r.status_code == 405, r.text
            assert errors(r) == ["UNSUPPORTED"]
        _assert_served(c.get(f"/v2/{repo}/manifests/v1"), m)
        _assert_served(c.get(f"/v2/{repo}/manifests/{m.digest}"), m)
    finally:
        srv.stop()


# --- concurrency and workers ---------------------------------------------------------------


def test_concurrent_puts_to_one_tag_leave_one_complete_manifest(
    server: Server, client: httpx.Client, repo: str
) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers)
    doc = json.loads(image.manifest.data)
    manifests = [
        blob(
            json.dumps({**doc, "annotations": {"n": str(i), "pad": "p" * (i * 997)}}).encode(),
            OCI_MANIFEST,
        )
        for i in range(32)
    ]
    by_digest = {m.digest: m for m in manifests}
    barrier = threading.Barrier(len(manifests))
    stop = threading.Event()
    torn: list[str] = []

    def push(m: Blob) -> tuple[int, str]:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            barrier.wait(timeout=30)
            r = put(c, repo, "race", m)
            return r.status_code, r.headers.get("Docker-Content-Digest", r.text)

    def read() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                r = c.get(f"/v2/{repo}/manifests/race")
                if r.status_code == 404:
                    continue
                digest = r.headers.get("Docker-Content-Digest", "")
                if r.status_code != 200 or by_digest.get(digest, EMPTY).data != r.content:
                    torn.append(f"{r.status_code} {digest} {len(r.content)}")

    with ThreadPoolExecutor(max_workers=len(manifests) + 2) as pool:
        readers = [pool.submit(read) for _ in range(2)]
        results = list(pool.map(push, manifests))
        stop.set()
        for reader in readers:
            reader.result()

    assert results == [(201, m.digest) for m in manifests]
    assert torn == []
    for _ in range(8):
        with fresh_client(server.url) as c:
            r = c.get(f"/v2/{repo}/manifests/race")
            assert r.status_code == 200, r.text
            digest = r.headers["Docker-Content-Digest"]
            assert digest in by_digest
            assert sha256(r.content) == digest
            assert r.content == by_digest[digest].data
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["race"]


def test_every_worker_sees_a_tag_written_through_another(
    server: Server, client: httpx.Client, repo: str
) -> None:
    """Write through one worker, read through the other, and through many new connections."""
    versions = []
    for seed in ("one", "two", "three"):
        image = oci_image(f"{repo}-{seed}")
        push_blobs(client, repo, image.config, *image.layers)
        versions.append(image.manifest)
    versions.append(_docker(client, repo))
    path = f"/v2/{repo}/manifests/moving"
    with connection_per_worker(server) as workers:
        for i, m in enumerate(versions):
            writer, reader = workers[i % 2], workers[(i + 1) % 2]
            r = writer.request("PUT", path, {"Content-Type": m.media_type}, m.data)
            assert r.status_code == 201, r.text
            _assert_served(reader.request("GET", path), m)
            _assert_served(reader.request("HEAD", path), m, head=True)
            assert "moving" in reader.request("GET", f"/v2/{repo}/tags/list").json()["tags"]
            for _ in range(6):
                with fresh_client(server.url) as c:
                    _assert_served(c.get(path), m)
        r = workers[0].request("DELETE", path)
        assert r.status_code == 202, r.text
        _assert_unknown(workers[1].request("GET", path))
        r = workers[1].request("DELETE", f"/v2/{repo}/manifests/{versions[0].digest}")
        assert r.status_code == 202, r.text
        _assert_unknown(workers[0].request("GET", f"/v2/{repo}/manifests/{versions[0].digest}"))
    for _ in range(6):
        with fresh_client(server.url) as c:
            _assert_unknown(c.get(path))
            _assert_served(c.get(f"/v2/{repo}/manifests/{versions[-1].digest}"), versions[-1])
