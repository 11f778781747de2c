"""What a pushed manifest must look like, field by field (image-spec types), in all four
shapes the registry accepts; and what garbage collection still reads in a stored one."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from hatchway.errors import HatchwayError
from hatchway.oci import manifests
from hatchway.oci.jsondepth import nesting_exceeds

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def _descriptor(media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> Any:
    return {"mediaType": media_type, "digest": DIGEST, "size": 12}


def _image(media_type: str) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": _descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [_descriptor(), _descriptor()],
    }


def _index(media_type: str) -> dict[str, Any]:
    child = {**_descriptor(OCI_MANIFEST), "platform": {"architecture": "amd64", "os": "linux"}}
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": [child]}


SHAPES: dict[str, Callable[[], dict[str, Any]]] = {
    "oci-manifest": lambda: _image(OCI_MANIFEST),
    "docker-manifest": lambda: _image(DOCKER_MANIFEST),
    "oci-index": lambda: _index(OCI_INDEX),
    "docker-list": lambda: _index(DOCKER_LIST),
}


def _parse(doc: Any) -> manifests.Manifest:
    return manifests.parse(json.dumps(doc).encode())


def _refused(doc: Any) -> str:
    with pytest.raises(HatchwayError) as caught:
        _parse(doc)
    assert caught.value.code.code == "MANIFEST_INVALID"
    assert caught.value.status == 400
    reason = caught.value.detail["reason"]
    assert isinstance(reason, str)
    return reason


def _first(doc: dict[str, Any]) -> dict[str, Any]:
    """The first descriptor of the document: a layer, or an index's first entry."""
    entry = (doc.get("layers") or doc["manifests"])[0]
    assert isinstance(entry, dict)
    return entry


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_is_accepted_as_built(shape: str) -> None:
    _parse(SHAPES[shape]())


BAD_SIZES = [2**63, 2**64, -1, -(2**63), 1.5, 12.0, True, "12", None]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", BAD_SIZES, ids=repr)
def test_size_must_be_an_int64_that_is_not_negative(shape: str, size: object) -> None:
    doc = SHAPES[shape]()
    _first(doc)["size"] = size
    assert "size" in _refused(doc)


@pytest.mark.parametrize("shape", SHAPES)
def test_largest_int64_size_is_accepted(shape: str) -> None:
    doc = SHAPES[shape]()
    _first(doc)["size"] = 2**63 - 1
    _parse(doc)


BAD_ANNOTATIONS: list[object] = [
    {"a": 1},
    {"a": None},
    {"a": ["x"]},
    {"a": {"b": "c"}},
    {"a": True},
    ["a", "b"],
    "a=b",
    7,
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("value", BAD_ANNOTATIONS, ids=repr)
def test_annotations_must_map_strings_to_strings(shape: str, value: object) -> None:
    top = SHAPES[shape]()
    top["annotations"] = value
    assert _refused(top).startswith("annotations")
    inner = SHAPES[shape]()
    _first(inner)["annotations"] = value
    assert "annotations" in _refused(inner)


def test_string_annotations_and_null_are_accepted() -> None:
    doc = _image(OCI_MANIFEST)
    doc["annotations"] = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "e": ""}
    _first(doc)["annotations"] = None  # Go writes a nil map as null
    assert _parse(doc).annotations == doc["annotations"]


# (field, bad value) for a descriptor, each refused naming the field.
BAD_FIELDS: list[tuple[str, object]] = [
    ("mediaType", ""),
    ("mediaType", 5),
    ("mediaType", "no-slash"),
    ("mediaType", "text/plain; charset=utf-8"),
    ("digest", 5),
    ("digest", "sha256:short"),
    ("urls", "https://example.com/layer"),
    ("urls", [1, 2]),
    ("urls", {}),
    ("artifactType", 5),
    ("artifactType", "not a media type"),
    ("data", 5),
    ("data", "not base64!"),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=repr)
def test_descriptor_fields_are_typed(shape: str, field: str, value: object) -> None:
    doc = SHAPES[shape]()
    _first(doc)[field] = value
    assert field in _refused(doc)


BAD_PLATFORMS: list[object] = [
    "linux/amd64",
    {"os": "linux"},
    {"architecture": "amd64"},
    {"architecture": 1, "os": "linux"},
    {"architecture": "amd64", "os": "linux", "variant": 8},
    {"architecture": "amd64", "os": "linux", "os.features": "win32k"},
    {"architecture": "amd64", "os": "linux", "features": [1]},
    {"architecture": "amd64", "os": "linux", "os.version": ["10"]},
]


@pytest.mark.parametrize("shape", ["oci-index", "docker-list"])
@pytest.mark.parametrize("value", BAD_PLATFORMS, ids=repr)
def test_index_platform_has_the_spec_shape(shape: str, value: object) -> None:
    doc = SHAPES[shape]()
    _first(doc)["platform"] = value
    assert "platform" in _refused(doc)


@pytest.mark.parametrize("shape", SHAPES)
def test_top_level_fields_are_typed(shape: str) -> None:
    cases: list[tuple[str, object]] = [
        ("schemaVersion", 2.0),
        ("schemaVersion", True),
        ("artifactType", ["a/b"]),
        ("subject", "sha256:" + "c" * 64),
        ("subject", {**_descriptor(OCI_MANIFEST), "size": -5}),
    ]
    for field, value in cases:
        doc = SHAPES[shape]()
        doc[field] = value
        _refused(doc)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["annotations-value", "extension", "config"])
@pytest.mark.parametrize("depth", [65, 1_000, 10_000, 100_000])
def test_deep_nesting_is_refused_anywhere(where: str, depth: int) -> None:
    doc = _image(OCI_MANIFEST)
    body = json.dumps(doc)
    marker = '"__deep__"'
    if where == "annotations-value":
        doc["annotations"] = {"a": "__deep__"}
    elif where == "extension":
        doc["org.example.extension"] = "__deep__"
    else:
        doc["config"]["org.example.extension"] = "__deep__"
    body = json.dumps(doc).replace(marker, _nested(depth))
    with pytest.raises(HatchwayError) as caught:
        manifests.parse(body.encode())
    assert caught.value.detail == {"reason": f"nested deeper than {manifests.MAX_DEPTH} levels"}


def test_nesting_up_to_the_limit_is_parsed() -> None:
    doc = _image(OCI_MANIFEST)
    doc["org.example.extension"] = "__deep__"
    # The document itself is one level; the extension adds the rest.
    body = json.dumps(doc).replace('"__deep__"', _nested(manifests.MAX_DEPTH - 1))
    manifests.parse(body.encode())


def test_unclosed_deep_nesting_is_refused_without_recursing() -> None:
    body = b'{"schemaVersion": 2, "a": ' + b"[" * 200_000
    with pytest.raises(HatchwayError):
        manifests.parse(body)


@pytest.mark.parametrize(
    ("text", "limit", "deeper"),
    [
        (b"[]", 1, False),
        (b"[[]]", 1, True),
        (b'{"a": "[[[[[[["}', 1, False),  # brackets in strings do not count
        (b'{"a": "\\"[[[["}', 1, False),  # nor after an escaped quote
        (b'{"a": "\\\\", "b": [[1]]}', 2, True),  # an escaped backslash ends no string
        (b"[[], [], [], {}]", 2, False),  # many openers, none deeper than 2
        (b"[[], [], [], [{}]]", 2, True),
    ],
)
def test_nesting_is_measured_outside_strings(text: bytes, limit: int, deeper: bool) -> None:
    assert nesting_exceeds(text, limit) is deeper


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(_image(OCI_MANIFEST)).encode("utf-16"),
        json.dumps(_image(OCI_MANIFEST)).encode("utf-16-le"),
        b"\xef\xbb\xbf" + json.dumps(_image(OCI_MANIFEST)).encode(),
        json.dumps(_image(OCI_MANIFEST)).encode()[:-1] + b"\xff}",
    ],
    ids=["utf-16-bom", "utf-16-le", "utf-8-bom", "invalid-utf-8"],
)
def test_only_utf8_json_is_a_manifest(body: bytes) -> None:
    with pytest.raises(HatchwayError):
        manifests.parse(body)


# -- stored manifests: read for their references, never refused for a detail ------------


def test_references_keep_what_an_earlier_version_stored() -> None:
    """gc marks a stored manifest's blobs even where a push of it would now be refused."""
    doc = _image(OCI_MANIFEST)
    doc["annotations"] = {"a": 1}
    doc["config"]["size"] = 2**64
    doc["layers"][1] = {"digest": OTHER, "size": -1, "mediaType": 7}
    doc["subject"] = {"digest": OTHER, "mediaType": OCI_MANIFEST, "size": "x"}
    body = json.dumps(doc).encode()
    with pytest.raises(HatchwayError):
        manifests.parse(body)
    found = manifests.references(body)
    assert {str(d.digest) for d in found.blobs()} == {DIGEST, OTHER}
    assert found.subject is not None
    assert str(found.subject.digest) == OTHER


def test_references_read_deep_and_schema1_manifests() -> None:
    deep = _image(OCI_MANIFEST)
    deep["org.example.extension"] = "__deep__"
    body = json.dumps(deep).replace('"__deep__"', _nested(500)).encode()
    assert [str(d.digest) for d in manifests.references(body).blobs()] == [DIGEST] * 3
    schema1 = {"schemaVersion": 1, "fsLayers": [{"blobSum": DIGEST}, {"blobSum": OTHER}]}
    found = manifests.references(json.dumps(schema1).encode())
    assert {str(d.digest) for d in found.blobs()} == {DIGEST, OTHER}


def test_references_refuse_only_what_is_not_json() -> None:
    for body in (b"not json", b"[1]", b"[" * 100_000):
        with pytest.raises(HatchwayError):
            manifests.references(body)
    index = copy.deepcopy(_index(OCI_INDEX))
    index["manifests"].append({"digest": "nonsense"})
    assert [str(d.digest) for d in manifests.references(json.dumps(index).encode()).manifests] == [
        DIGEST
    ]
