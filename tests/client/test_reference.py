"""References, image locations and selectors, as the push/pull commands parse them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatchway.client.manifest import Descriptor, ManifestError, select_platform
from hatchway.client.reference import InvalidReference, Reference, parse_reference
from hatchway.client.transfer import BlobLocations, parse_location

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", "latest")),
        ("reg.example/team/app:1.0", Reference("reg.example", "team/app", "1.0")),
        (f"localhost/a/b@{D}", Reference("localhost", "a/b", None, D)),
        (f"[::1]:5000/app:v1@{D}", Reference("[::1]:5000", "app", "v1", D)),
    ],
)
def test_references_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected
    assert str(expected) in (text, f"{text}:latest")


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("app:1.0", "names no registry"),
        ("reg.example/App", "invalid repository name"),
        ("reg.example/app:bad tag", "invalid tag"),
        ("reg.example/app@sha256:short", "invalid digest"),
        ("bad host!/app", "invalid registry host"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, fault: str) -> None:
    with pytest.raises(InvalidReference, match=fault):
        parse_reference(text)


def test_a_bare_repository_has_no_tag() -> None:
    assert parse_reference("reg.example/app", allow_bare=True).tag is None


def test_locations(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    layout.mkdir()
    archive = tmp_path / "app.tar"
    archive.write_bytes(b"")
    assert parse_location(str(layout)) == ("oci", layout, None)
    assert parse_location(f"{layout}:1.0") == ("oci", layout, "1.0")
    assert parse_location(f"{archive}:app:1.0") == ("docker-archive", archive, "app:1.0")
    assert parse_location(f"oci:{layout}:x") == ("oci", layout, "x")
    new = tmp_path / "new"
    assert parse_location(f"{new}:v1", dest=True) == ("oci", new, "v1")
    assert parse_location(f"{new}.tar", dest=True) == ("docker-archive", Path(f"{new}.tar"), None)
    assert parse_location(f"docker-archive:{new}", dest=True)[0] == "docker-archive"
    with pytest.raises(ManifestError, match="does not exist"):
        parse_location(str(tmp_path / "missing"))


def test_platforms_are_chosen_by_os_arch_variant() -> None:
    entries = [
        Descriptor("m", D, 1, {"os": "linux", "architecture": "arm", "variant": "v6"}),
        Descriptor("m", D, 2, {"os": "linux", "architecture": "arm", "variant": "v7"}),
        Descriptor("m", D, 3, {"os": "linux", "architecture": "amd64"}),
    ]
    assert select_platform(entries, "linux/arm/v7").size == 2
    assert select_platform(entries, "linux/arm").size == 1
    with pytest.raises(ManifestError, match="linux/amd64, linux/arm/v6, linux/arm/v7"):
        select_platform(entries, "windows/amd64")


def test_blob_locations_offer_other_repositories_most_recent_first() -> None:
    known = BlobLocations()
    known.record("reg", "a", [D])
    known.record("reg", "b", [D])
    known.record("other", "c", [D])
    assert known.candidates("reg", D, target="x") == ["b", "a"]
    assert known.candidates("reg", D, target="b") == ["a"]
