"""GET /v2/<name>/referrers/<digest>: the OCI index of manifests whose subject is <digest>."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.images import Blob, blob
from tests.support.manifests import (
    EMPTY,
    OCI_CONFIG,
    artifact,
    fresh_client,
    index_of,
    oci_image,
    push_blobs,
    put,
    put_ok,
)
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, errors, sha256
from tests.support.server import Server

SIGNATURE = "application/vnd.example.signature.v1+json"
SBOM = "application/vnd.example.sbom.v1+json"
BUNDLE = "application/vnd.example.bundle.v1"
CUSTOM_CONFIG = "application/vnd.example.config.v1+json"


def _descriptor(
    m: Blob, artifact_type: str | None, annotations: dict[str, str] | None
) -> dict[str, Any]:
    """The descriptor the spec says the referrers index carries for ``m``."""
    d: dict[str, Any] = {"mediaType": m.media_type, "digest": m.digest, "size": m.size}
    if artifact_type is not None:
        d["artifactType"] = artifact_type
    if annotations is not None:
        d["annotations"] = annotations
    return d


def _referrers(
    client: httpx.Client, repo: str, subject: str, artifact_type: str | None = None
) -> httpx.Response:
    params = {"artifactType": artifact_type} if artifact_type is not None else None
    r = client.get(f"/v2/{repo}/referrers/{subject}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == OCI_INDEX
    body = r.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    assert isinstance(body["manifests"], list)
    return r


def _manifests(r: httpx.Response) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = r.json()["manifests"]
    return sorted(found, key=lambda d: str(d["digest"]))


def _sorted(descriptors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(descriptors, key=lambda d: str(d["digest"]))


@dataclass
class Graph:
    subject: Blob
    signature: Blob
    sbom: Blob
    image_referrer: Blob  # an OCI image (no artifactType) whose subject is ``subject``
    bundle: Blob  # an index with artifactType and subject
    other: Blob  # refers to another manifest

    def expected(self) -> list[dict[str, Any]]:
        return _sorted(
            [
                _descriptor(
                    self.signature, SIGNATURE, {"org.example.signer": "ci", "purpose": "tests"}
                ),
                _descriptor(self.sbom, SBOM, None),
                _descriptor(self.image_referrer, CUSTOM_CONFIG, {"kind": "image"}),
                _descriptor(self.bundle, BUNDLE, {"org.example.bundle": "yes"}),
            ]
        )


@pytest.fixture
def graph(client: httpx.Client, repo: str) -> Graph:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers, EMPTY)
    put_ok(client, repo, "v1", image.manifest)
    subject = image.manifest

    signature = artifact(
        SIGNATURE, subject=subject, annotations={"org.example.signer": "ci", "purpose": "tests"}
    )
    sbom_layer = blob(b'{"packages": []}', "application/spdx+json")
    push_blobs(client, repo, sbom_layer)
    sbom = artifact(SBOM, subject=subject, layers=[sbom_layer])

    # An image manifest without artifactType: its config media type is its artifact type.
    custom_config = blob(b'{"custom": true}', CUSTOM_CONFIG)
    push_blobs(client, repo, custom_config)
    image_referrer = blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": custom_config.descriptor(),
                "layers": [],
                "subject": subject.descriptor(),
                "annotations": {"kind": "image"},
            }
        ).encode(),
        OCI_MANIFEST,
    )

    for m in (signature, sbom, image_referrer):
        r = put(client, repo, m.digest, m)
        assert r.status_code == 201, r.text
        assert r.headers["OCI-Subject"] == subject.digest

    # An index as a referrer: its children first.
    put_ok(client, repo, "sbom", sbom)
    bundle = index_of(
        [signature, sbom],
        artifactType=BUNDLE,
        subject=subject.descriptor(),
        annotations={"org.example.bundle": "yes"},
    )
    r = put(client, repo, "bundle", bundle)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == subject.digest

    # Refers to something else (the signature): must not show up for ``subject``.
    other = artifact(SIGNATURE, subject=signature, annotations={"level": "2"})
    put_ok(client, repo, other.digest, other)
    return Graph(subject, signature, sbom, image_referrer, bundle, other)


def test_referrers_lists_every_manifest_whose_subject_is_the_digest(
    client: httpx.Client, repo: str, graph: Graph
) -> None:
    r = _referrers(client, repo, graph.subject.digest)
    assert "OCI-Filters-Applied" not in r.headers
    assert _manifests(r) == graph.expected()
    # The descriptors describe what a GET of each referrer returns.
    for d in _manifests(r):
        got = client.get(f"/v2/{repo}/manifests/{d['digest']}")
        assert got.status_code == 200
        assert got.headers["Content-Type"] == d["mediaType"]
        assert len(got.content) == d["size"]
        assert sha256(got.content) == d["digest"]
    # Referrers of a referrer.
    r = _referrers(client, repo, graph.signature.digest)
    assert _manifests(r) == [_descriptor(graph.other, SIGNATURE, {"level": "2"})]


def test_referrers_artifact_type_filter(client: httpx.Client, repo: str, graph: Graph) -> None:
    cases = {
        SIGNATURE: [_descriptor(graph.signature, SIGNATURE, _annotations_of(graph.signature))],
        SBOM: [_descriptor(graph.sbom, SBOM, None)],
        CUSTOM_CONFIG: [_descriptor(graph.image_referrer, CUSTOM_CONFIG, {"kind": "image"})],
        BUNDLE: [_descriptor(graph.bundle, BUNDLE, {"org.example.bundle": "yes"})],
        "application/vnd.example.nothing": [],
    }
    for artifact_type, expected in cases.items():
        r = _referrers(client, repo, graph.subject.digest, artifact_type)
        assert r.headers["OCI-Filters-Applied"] == "artifactType"
        assert _manifests(r) == expected, artifact_type


def _annotations_of(m: Blob) -> dict[str, str]:
    annotations: dict[str, str] = json.loads(m.data)["annotations"]
    return annotations


def test_deleting_a_referrer_removes_it_from_the_list(
    client: httpx.Client, repo: str, graph: Graph
) -> None:
    assert client.delete(f"/v2/{repo}/manifests/{graph.signature.digest}").status_code == 202
    expected = [d for d in graph.expected() if d["digest"] != graph.signature.digest]
    assert _manifests(_referrers(client, repo, graph.subject.digest)) == expected
    assert _manifests(_referrers(client, repo, graph.subject.digest, SIGNATURE)) == []
    # Deleting a tag of a referrer keeps the manifest, so it keeps referring.
    assert client.delete(f"/v2/{repo}/manifests/bundle").status_code == 202
    assert _manifests(_referrers(client, repo, graph.subject.digest)) == expected
    assert client.delete(f"/v2/{repo}/manifests/{graph.bundle.digest}").status_code == 202
    expected = [d for d in expected if d["digest"] != graph.bundle.digest]
    assert _manifests(_referrers(client, repo, graph.subject.digest)) == expected
    # Pushing them again brings them back (the bundle's child, the signature, first).
    put_ok(client, repo, graph.signature.digest, graph.signature)
    put_ok(client, repo, "bundle", graph.bundle)
    assert _manifests(_referrers(client, repo, graph.subject.digest)) == graph.expected()


def test_every_worker_sees_the_referrers(server: Server, repo: str, graph: Graph) -> None:
    for _ in range(10):
        with fresh_client(server.url) as c:
            assert _manifests(_referrers(c, repo, graph.subject.digest)) == graph.expected()


def test_unknown_subject_has_an_empty_list(client: httpx.Client, repo: str, graph: Graph) -> None:
    for subject in (sha256(b"unknown"), "sha512:" + "1" * 128):
        r = _referrers(client, repo, subject)
        assert r.json()["manifests"] == []
        r = _referrers(client, repo, subject, SIGNATURE)
        assert r.json()["manifests"] == []
        assert r.headers["OCI-Filters-Applied"] == "artifactType"


def test_unknown_repository_has_an_empty_list_never_404(client: httpx.Client, repo: str) -> None:
    r = _referrers(client, f"{repo}/never/pushed", sha256(b"x"))
    assert r.json()["manifests"] == []


def test_referrers_are_per_repository(client: httpx.Client, repo: str, graph: Graph) -> None:
    other_repo = f"{repo}/other"
    assert _referrers(client, other_repo, graph.subject.digest).json()["manifests"] == []


def test_referrer_to_a_missing_subject_is_listed(client: httpx.Client, repo: str) -> None:
    image = oci_image(repo)
    push_blobs(client, repo, image.config, *image.layers, EMPTY)
    m = artifact(SBOM, subject=image.manifest, annotations={"early": "yes"})
    r = put(client, repo, "early", m)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == image.manifest.digest
    expected = [_descriptor(m, SBOM, {"early": "yes"})]
    assert _manifests(_referrers(client, repo, image.manifest.digest)) == expected
    # The subject arrives later; the referrer is still listed.
    put_ok(client, repo, "v1", image.manifest)
    assert _manifests(_referrers(client, repo, image.manifest.digest)) == expected


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha256:" + "Z" * 64, "nodigest", "sha256:" + "0" * 63, "md5:" + "0" * 32],
    ids=["short", "non-hex", "no-algorithm", "63-chars", "md5"],
)
def test_invalid_digest_is_400(client: httpx.Client, repo: str, digest: str) -> None:
    r = client.get(f"/v2/{repo}/referrers/{digest}")
    assert r.status_code == 400, r.text
    assert errors(r) == ["DIGEST_INVALID"]


def test_invalid_repository_name_is_name_invalid(client: httpx.Client) -> None:
    r = client.get(f"/v2/Upper/Case/referrers/{sha256(b'x')}")
    assert r.status_code == 400, r.text
    assert errors(r) == ["NAME_INVALID"]


def test_image_referrer_artifact_type_comes_from_its_config(
    client: httpx.Client, repo: str
) -> None:
    """No artifactType and an image config: the descriptor's artifactType is the config type."""
    subject = oci_image(f"{repo}-subject")
    push_blobs(client, repo, subject.config, *subject.layers)
    put_ok(client, repo, "v1", subject.manifest)
    referrer = oci_image(f"{repo}-ref", subject=subject.manifest.descriptor())
    push_blobs(client, repo, referrer.config, *referrer.layers)
    put_ok(client, repo, "ref", referrer.manifest)
    r = _referrers(client, repo, subject.manifest.digest)
    annotations = _annotations_of(referrer.manifest)
    assert _manifests(r) == [_descriptor(referrer.manifest, OCI_CONFIG, annotations)]
    r = _referrers(client, repo, subject.manifest.digest, OCI_CONFIG)
    assert len(r.json()["manifests"]) == 1
