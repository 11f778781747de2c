"""Property-based tests of every parser that reads client input: each returns a value
or raises its protocol's own error (never anything else), and what it accepts obeys
the grammar it implements."""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hatchway.auth.access import Access, ScopeError, parse_scope, parse_scopes
from hatchway.auth.service import TokenRequestError
from hatchway.errors import HatchwayError
from hatchway.http.oauthform import parse_form
from hatchway.http.oci.common import parse_content_range
from hatchway.oci import manifests
from hatchway.oci.descriptors import MAX_SIZE, Descriptor
from hatchway.oci.digest import Digest
from hatchway.oci.jsondepth import nesting_exceeds
from hatchway.oci.names import TAG_RE, is_valid_name, is_valid_tag, validate_name, validate_tag
from tests.support.fuzz import (
    ALNUM,
    ASCII,
    COMPONENT,
    HEX64,
    JSON_VALUES,
    NASTY,
    PARSER,
    TEXT,
    attempt,
    depth_of,
    dumps,
)

DIGEST = "sha256:" + "a" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def _descriptor(media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> Any:
    return {"mediaType": media_type, "digest": DIGEST, "size": 3}


def _valid_docs() -> list[dict[str, Any]]:
    image = {
        "config": _descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [_descriptor(), {**_descriptor(), "annotations": {"k": "v"}, "urls": ["u"]}],
        "annotations": {"org.example": "x"},
        "subject": _descriptor(OCI_MANIFEST),
    }
    entry = {**_descriptor(OCI_MANIFEST), "platform": {"architecture": "arm", "os": "linux"}}
    return [
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "a/b", **image},
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, **image},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]},
        {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry, entry]},
    ]


def _parsed_or_invalid(body: bytes) -> manifests.Manifest | None:
    parsed, err = attempt(manifests.parse, body, errors=HatchwayError)
    if isinstance(err, HatchwayError):
        assert err.code.code == "MANIFEST_INVALID"
        assert err.status == 400
        assert isinstance(err.detail["reason"], str)
    return parsed


def _descriptors(m: manifests.Manifest) -> list[Descriptor]:
    found = [*m.layers, *m.manifests]
    found += [d for d in (m.config, m.subject) if d is not None]
    return found


def _assert_typed(m: manifests.Manifest) -> None:
    """What the image-spec promises of an accepted manifest."""
    for d in _descriptors(m):
        assert isinstance(d.size, int)
        assert not isinstance(d.size, bool)
        assert 0 <= d.size <= MAX_SIZE
        assert "/" in d.media_type
        assert all(isinstance(u, str) for u in d.urls)
        for key, value in (d.annotations or {}).items():
            assert isinstance(key, str)
            assert isinstance(value, str)
    for key, value in (m.annotations or {}).items():
        assert isinstance(key, str)
        assert isinstance(value, str)


@PARSER
@given(st.binary(max_size=300))
def test_manifest_parse_of_any_bytes(body: bytes) -> None:
    parsed = _parsed_or_invalid(body)
    if parsed is not None:
        _assert_typed(parsed)
    _, err = attempt(manifests.references, body, errors=HatchwayError)
    assert err is None or (isinstance(err, HatchwayError) and err.status == 400)


@PARSER
@given(JSON_VALUES)
def test_manifest_parse_of_any_json(value: Any) -> None:
    _parsed_or_invalid(dumps(value))


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, item in doc.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            found += _paths(item, (*prefix, i))
    return found


@PARSER
@given(st.sampled_from(range(4)), st.data())
def test_manifest_with_one_field_replaced(shape: int, data: st.DataObject) -> None:
    """Any one value of a valid manifest swapped for any JSON value: refused with
    MANIFEST_INVALID, or accepted with every descriptor still typed. Whatever a push
    accepts, garbage collection reads the same references from the stored bytes."""
    doc = copy.deepcopy(_valid_docs()[shape])
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = data.draw(JSON_VALUES)
    body = dumps(doc)
    parsed = _parsed_or_invalid(body)
    if parsed is None:
        return
    _assert_typed(parsed)
    stored = manifests.references(body)
    assert {d.digest for d in stored.blobs()} == {d.digest for d in parsed.blobs()}
    assert [d.digest for d in stored.manifests] == [d.digest for d in parsed.manifests]
    assert (stored.subject and stored.subject.digest) == (parsed.subject and parsed.subject.digest)


@PARSER
@given(st.integers(min_value=1, max_value=3000), st.sampled_from("[{"))
def test_manifest_nesting_is_bounded(depth: int, opener: str) -> None:
    if opener == "[":
        nested = "[" * depth + "]" * depth
    else:
        nested = '{"k":' * (depth - 1) + "{}" + "}" * (depth - 1)
    doc = {**_valid_docs()[0], "org.example.extension": "__deep__"}
    body = json.dumps(doc).replace('"__deep__"', nested).encode()
    parsed = _parsed_or_invalid(body)
    # The document is one level; the extension nests ``depth`` more.
    assert (parsed is not None) == (1 + depth <= manifests.MAX_DEPTH)


@PARSER
@given(JSON_VALUES, st.integers(min_value=0, max_value=6))
def test_nesting_scan_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    assert nesting_exceeds(dumps(value), limit) == (depth_of(value) > limit)


# -- scopes ---------------------------------------------------------------------------------

ACTIONS = st.lists(st.sampled_from(["pull", "push", "delete", "*", "catalog"]), min_size=1)


@PARSER
@given(
    st.one_of(
        TEXT,
        st.lists(st.one_of(TEXT, st.sampled_from(["repository", "pull"])), max_size=5).map(
            ":".join
        ),
    )
)
def test_scope_parse_of_any_text(value: str) -> None:
    access, _ = attempt(parse_scope, value, errors=ScopeError)
    if access is None:
        return
    assert access.actions
    assert all(re.fullmatch(r"[a-z]+|\*", a) for a in access.actions)
    assert parse_scope(access.scope()) == access


@PARSER
@given(
    st.lists(COMPONENT, min_size=1, max_size=4),
    st.one_of(
        st.none(),
        st.tuples(ALNUM, st.sampled_from(["", ".example.com", "-x:5000", ".io:443"])).map("".join),
    ),
    ACTIONS,
)
def test_scope_parse_of_grammatical_scopes(
    components: list[str], host: str | None, actions: list[str]
) -> None:
    name = "/".join(components)
    if host is not None:
        name = f"{host}/{name}"
    assume(len(name) <= 512)
    access = parse_scope(f"repository:{name}:{','.join(actions)}")
    assert access.resource.name == name
    assert access.actions == frozenset(actions)


@PARSER
@given(st.lists(TEXT, max_size=4))
def test_scope_lists_parse_or_raise_scope_error(values: list[str]) -> None:
    found, _ = attempt(parse_scopes, values, errors=ScopeError)
    assert all(isinstance(a, Access) and a.actions for a in found or [])


# -- digests, names, tags ---------------------------------------------------------------------


@PARSER
@given(st.one_of(TEXT, st.from_regex(r"[a-z0-9+._-]{1,8}:[a-zA-Z0-9=_-]{0,130}", fullmatch=True)))
def test_digest_parse_of_any_text(value: str) -> None:
    d, err = attempt(Digest.parse, value, errors=HatchwayError)
    if isinstance(err, HatchwayError):
        assert err.code.code == "DIGEST_INVALID"
        assert err.status == 400
        return
    assert str(d) == value
    assert re.fullmatch(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}", value)


@PARSER
@given(
    st.one_of(
        HEX64.map("sha256:".__add__), st.tuples(HEX64, HEX64).map(lambda h: "sha512:" + "".join(h))
    )
)
def test_well_formed_digests_are_accepted(value: str) -> None:
    assert str(Digest.parse(value)) == value


@PARSER
@given(st.one_of(TEXT, st.lists(st.one_of(COMPONENT, NASTY), max_size=5).map("/".join)))
def test_name_grammar(value: str) -> None:
    valid = is_valid_name(value)
    _, err = attempt(validate_name, value, errors=HatchwayError)
    assert valid == (err is None)
    if isinstance(err, HatchwayError):
        assert err.code.code == "NAME_INVALID"
        return
    # A valid name is a safe relative storage path.
    assert not value.startswith("/")
    assert all(part not in ("", ".", "..") for part in value.split("/"))
    assert len(value) <= 255


@PARSER
@given(st.one_of(TEXT, st.from_regex(TAG_RE, fullmatch=True)))
def test_tag_grammar(value: str) -> None:
    valid = is_valid_tag(value)
    _, err = attempt(validate_tag, value, errors=HatchwayError)
    assert valid == (err is None)
    if isinstance(err, HatchwayError):
        assert err.code.code == "TAG_INVALID"
        return
    assert 1 <= len(value) <= 128
    assert "/" not in value
    assert ":" not in value  # so a reference is a digest exactly when it holds a colon


# -- Content-Range ------------------------------------------------------------------------------


@PARSER
@given(
    st.one_of(
        TEXT,
        ASCII,
        st.from_regex(r"(bytes[ =])?[0-9]{1,22}-[0-9]{1,22}(/([0-9]{1,22}|\*))?", fullmatch=True),
    )
)
def test_content_range_parse_of_any_text(value: str) -> None:
    parsed, err = attempt(parse_content_range, value, errors=HatchwayError)
    if parsed is None:
        assert isinstance(err, HatchwayError)
        assert err.status == 400
        assert err.code.code == "BLOB_UPLOAD_INVALID"
        return
    start, end = parsed
    assert 0 <= start <= end < 10**19


@PARSER
@given(st.integers(0, 2**63 - 1), st.integers(0, 2**20), st.sampled_from(["", "bytes ", "bytes="]))
def test_content_range_round_trip(start: int, length: int, unit: str) -> None:
    end = start + length
    assume(end < 10**19)
    assert parse_content_range(f"{unit}{start}-{end}") == (start, end)


# -- the OAuth2 form ------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"


@PARSER
@given(
    st.one_of(st.binary(max_size=200), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))),
    st.sampled_from([FORM, "multipart/form-data", "application/json", "application/octet-stream"]),
    st.one_of(
        st.none(),
        st.sampled_from(["utf-8", "UTF8", "ascii", "ebcdic", "latin-1", "zlib", "", "rot13"]),
    ),
)
def test_oauth_form_of_any_body(body: bytes, content_type: str, charset: str | None) -> None:
    form, err = attempt(parse_form, body, content_type, charset, errors=TokenRequestError)
    if form is None:
        assert isinstance(err, TokenRequestError)
        assert 400 <= err.status < 500
        assert err.error == "invalid_request"
        assert err.description
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in form.items())
    assert all("\x00" not in v for v in form.values())


@PARSER
@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=10))
def test_oauth_form_round_trip(fields: dict[str, str]) -> None:
    assume(all("\x00" not in k + v for k, v in fields.items()))
    body = urlencode(list(fields.items())).encode()
    assert parse_form(body, FORM, None) == fields


@pytest.mark.parametrize("name", ["grant_type", "username"])
def test_oauth_form_repeats_only_scope(name: str) -> None:
    with pytest.raises(TokenRequestError):
        parse_form(f"{name}=a&{name}=b".encode(), FORM, None)
    assert parse_form(b"scope=a&scope=b", FORM, None) == {"scope": "a b"}
