"""Descriptors, checked field by field as the image-spec defines them.

A pushed manifest is refused (``MANIFEST_INVALID``, the reason naming the field) when a
descriptor breaks the spec's types: ``size`` is an int64 (never negative, a float or a
boolean), ``mediaType`` and ``artifactType`` are RFC 6838 media types, ``annotations``
map strings to strings, ``urls`` is a list of strings, ``data`` is base64, and an index
entry's ``platform`` has the spec's shape. Fields the spec does not define are ignored,
as the spec requires. Docker schema2 descriptors have the same fields.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from hatchway.errors import MANIFEST_INVALID, HatchwayError
from hatchway.oci.digest import Digest

MAX_SIZE = 2**63 - 1  # the spec's size is an int64
# image-spec schema/defs-descriptor.json: RFC 6838 type "/" subtype, without parameters.
_MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_PLATFORM_STRINGS = ("architecture", "os", "os.version", "variant")
_PLATFORM_LISTS = ("os.features", "features")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    urls: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def invalid(reason: str) -> HatchwayError:
    return HatchwayError(MANIFEST_INVALID, "manifest invalid", {"reason": reason})


def media_type(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _MEDIA_TYPE_RE.fullmatch(value):
        raise invalid(f"{where} must be a media type (type/subtype, RFC 6838)")
    return value


def optional_media_type(value: Any, where: str) -> str | None:
    return None if value is None else media_type(value, where)


def annotation_map(value: Any, where: str) -> dict[str, str] | None:
    """``map[string]string``; absent or null is no annotations (as Go decodes it)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"{where}[{key[:100]!r}] must be a string")
    return value


def string_list(value: Any, where: str) -> tuple[str, ...]:
    """``[]string``; absent or null is empty."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{where} must be a list of strings")
    return tuple(value)


def size(value: Any, where: str) -> int:
    # bool is an int in Python; 2.0 is not an int64 in JSON's sense (Go refuses it too).
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
        raise invalid(f"{where} must be an integer from 0 to 2^63-1")
    return value


def platform(value: Any, where: str) -> None:
    """An index entry's platform: architecture and os required, all fields typed."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object")
    for key in ("architecture", "os"):
        if key not in value:
            raise invalid(f"{where}.{key} is required")
    for key in _PLATFORM_STRINGS:
        if key in value and not isinstance(value[key], str):
            raise invalid(f"{where}.{key} must be a string")
    for key in _PLATFORM_LISTS:
        string_list(value.get(key), f"{where}.{key}")


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        return False
    return True


def _data(value: Any, where: str) -> None:
    if value is not None and not _is_base64(value):
        raise invalid(f"{where} must be a base64 string")


def parse_descriptor(raw: Any, where: str, *, index_entry: bool = False) -> Descriptor:
    """A pushed descriptor, every field the spec types checked."""
    if not isinstance(raw, dict):
        raise invalid(f"{where} must be an object")
    found_type = media_type(raw.get("mediaType"), f"{where}.mediaType")
    digest = raw.get("digest")
    if not isinstance(digest, str):
        raise invalid(f"{where}.digest must be a string")
    try:
        parsed = Digest.parse(digest)
    except HatchwayError:
        raise invalid(f"{where}.digest is not a valid digest") from None
    found_size = size(raw.get("size"), f"{where}.size")
    artifact_type = optional_media_type(raw.get("artifactType"), f"{where}.artifactType")
    found_annotations = annotation_map(raw.get("annotations"), f"{where}.annotations")
    urls = string_list(raw.get("urls"), f"{where}.urls")
    _data(raw.get("data"), f"{where}.data")
    if index_entry:
        platform(raw.get("platform"), f"{where}.platform")
    return Descriptor(found_type, parsed, found_size, artifact_type, found_annotations, urls)


def stored_descriptor(raw: Any) -> Descriptor | None:
    """What a stored descriptor references, read without judging its other fields.

    Stored manifests were accepted by an earlier version, or by distribution when
    hatchway serves its store; garbage collection must still see every digest in them.
    """
    if not isinstance(raw, dict):
        return None
    digest = raw.get("digest")
    try:
        parsed = Digest.parse(digest) if isinstance(digest, str) else None
    except HatchwayError:
        parsed = None
    if parsed is None:
        return None
    found_type = raw.get("mediaType")
    found_size = raw.get("size")
    return Descriptor(
        found_type if isinstance(found_type, str) else "",
        parsed,
        found_size if isinstance(found_size, int) else 0,
    )
