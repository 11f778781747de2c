"""``hatchway push/pull`` against a real ``hatchway serve``, checked byte for byte with skopeo."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.authkit import Skopeo, access_log
from tests.support.imagefiles import hatchway
from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs, platform_image, write_index_layout
from tests.support.server import Server, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo-home")


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A one-worker registry of the test's own, so its access log is the test's alone."""
    (tmp_path / "srv").mkdir()
    srv = start_server(tmp_path / "srv", workers=1)
    yield srv
    srv.stop()


def test_hatchway_push_is_pulled_by_skopeo_byte_identical(
    server: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    image = make_image("hw-push", layer_sizes=(300_000, 4096, 70))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1.0")
    ref = f"{server.addr}/{repo}:1.0"

    out = hatchway("push", f"{src}:1.0", ref, "--insecure")
    assert out.stdout.strip() == image.manifest.digest
    for layer in image.layers:  # one plain line per blob start and finish
        assert f"{layer.digest[:19]} layer: start" in out.stderr
        assert f"{layer.digest[:19]} layer: pushed" in out.stderr

    raw = skopeo.run("inspect", "--tls-verify=false", "--raw", f"docker://{ref}").stdout
    assert raw == image.manifest.data
    dest = tmp_path / "skopeo-out"
    skopeo.pull(f"docker://{ref}", dest, "1.0")
    assert layout_blobs(dest) == layout_blobs(src)


def test_skopeo_push_is_pulled_by_hatchway_byte_identical(
    server: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    image = make_image("sk-push", layer_sizes=(200_000, 10))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="v2")
    ref = f"{server.addr}/{repo}:v2"
    skopeo.push(src, "v2", f"docker://{ref}")

    dest = tmp_path / "out"
    out = hatchway("pull", ref, str(dest))  # loopback: plain HTTP without --insecure
    assert out.stdout.strip() == image.manifest.digest
    assert layout_blobs(dest) == layout_blobs(src)
    index = json.loads((dest / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["digest"] == image.manifest.digest
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v2"}
    # skopeo reads what hatchway wrote.
    again = tmp_path / "again"
    skopeo.run("copy", f"oci:{dest}:v2", f"oci:{again}:v2")
    assert layout_blobs(again) == layout_blobs(src)

    # A second image into the same layout under another name keeps the first.
    hatchway("pull", f"{server.addr}/{repo}@{image.manifest.digest}", f"{dest}:pinned")
    names = [
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((dest / "index.json").read_text())["manifests"]
    ]
    assert names == ["v2", "pinned"]


def test_multi_arch_index_moves_whole(
    server: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    images = {
        "amd64": platform_image("hw-multi-amd", "amd64"),
        "arm64": platform_image("hw-multi-arm", "arm64"),
    }
    src = tmp_path / "src"
    index = write_index_layout(src, images, tag="multi")
    ref = f"{server.addr}/{repo}:multi"

    assert hatchway("push", f"{src}:multi", ref).stdout.strip() == index.digest

    assert skopeo.run("inspect", "--tls-verify=false", "--raw", f"docker://{ref}").stdout == (
        index.data
    )
    by_skopeo = tmp_path / "by-skopeo"
    skopeo.run("copy", "--all", "--src-tls-verify=false", f"docker://{ref}", f"oci:{by_skopeo}:m")
    assert layout_blobs(by_skopeo) == layout_blobs(src)

    by_hatchway = tmp_path / "by-hatchway"
    assert hatchway("pull", ref, str(by_hatchway)).stdout.strip() == index.digest
    assert layout_blobs(by_hatchway) == layout_blobs(src)

    # --platform takes one image of the index.
    arm = tmp_path / "arm"
    out = hatchway("pull", ref, str(arm), "--platform", "linux/arm64")
    assert out.stdout.strip() == images["arm64"].manifest.digest
    assert set(layout_blobs(arm)) == {
        b.digest
        for b in (images["arm64"].manifest, images["arm64"].config, *images["arm64"].layers)
    }


def test_second_push_sends_no_blob(own_server: Server, tmp_path: Path) -> None:
    image = make_image("hw-skip", layer_sizes=(50_000, 20_000))
    src = tmp_path / "src"
    write_oci_layout(src, image)
    ref = f"{own_server.addr}/t/skip:latest"
    hatchway("push", str(src), ref)
    mark = len(access_log(own_server))

    out = hatchway("push", str(src), ref)

    assert out.stderr.count(": exists") == 3  # config and two layers
    later = access_log(own_server)[mark:]
    uploads = [e for e in later if "/blobs/uploads/" in e.path]
    assert uploads == []
    heads = [e for e in later if e.method == "HEAD" and "/blobs/" in e.path]
    assert sorted(e.status for e in heads) == [200, 200, 200]


def test_blobs_are_mounted_from_a_sibling_repository(own_server: Server, tmp_path: Path) -> None:
    image = make_image("hw-mount", layer_sizes=(80_000,))
    src = tmp_path / "src"
    write_oci_layout(src, image)
    hatchway("push", str(src), f"{own_server.addr}/t/one:latest")
    mark = len(access_log(own_server))

    out = hatchway("push", str(src), f"{own_server.addr}/t/two:latest", "--mount-from", "t/one")

    assert out.stderr.count("mounted from t/one") == 2
    later = access_log(own_server)[mark:]
    mounts = [e for e in later if "mount=" in e.path]
    assert len(mounts) == 2
    assert {e.status for e in mounts} == {201}
    assert [e for e in later if e.method in ("PATCH", "PUT") and "/blobs/" in e.path] == []
    for b in (image.config, *image.layers):
        got = own_server.client.get(f"/v2/t/two/blobs/{b.digest}")
        assert got.content == b.data


def test_a_pull_then_push_in_one_process_mounts(own_server: Server, tmp_path: Path) -> None:
    """The library remembers where it saw each blob: pushing what it just pulled from a
    repository of the same registry mounts, without being told where from."""
    from hatchway.client.reference import parse_reference
    from hatchway.client.transfer import BlobLocations, pull, push

    image = make_image("hw-known", layer_sizes=(30_000,))
    src = tmp_path / "src"
    write_oci_layout(src, image)
    hatchway("push", str(src), f"{own_server.addr}/t/origin:1")
    known = BlobLocations()
    pull(parse_reference(f"{own_server.addr}/t/origin:1"), str(tmp_path / "got"), known=known)
    mark = len(access_log(own_server))

    push(str(tmp_path / "got"), parse_reference(f"{own_server.addr}/t/copy:1"), known=known)

    later = access_log(own_server)[mark:]
    assert [e.status for e in later if "mount=" in e.path] == [201, 201]
    assert [e for e in later if e.method == "PATCH"] == []


def test_tags_inspect_delete(server: Server, repo: str, tmp_path: Path) -> None:
    image = make_image("hw-cmds", layer_sizes=(1000,))
    src = tmp_path / "src"
    write_oci_layout(src, image)
    for tag in ("b", "a"):
        hatchway("push", str(src), f"{server.addr}/{repo}:{tag}")

    assert hatchway("tags", f"{server.addr}/{repo}").stdout.split() == ["a", "b"]
    raw = subprocess_bytes("inspect", "--raw", f"{server.addr}/{repo}:a")
    assert raw == image.manifest.data
    shown = hatchway("inspect", f"{server.addr}/{repo}:a").stdout
    assert f"Digest: {image.manifest.digest}" in shown
    assert "application/vnd.oci.image.manifest.v1+json" in shown

    out = hatchway("delete", f"{server.addr}/{repo}:a")
    assert image.manifest.digest in out.stdout
    assert hatchway("tags", f"{server.addr}/{repo}").stdout.split() == []
    gone = hatchway("inspect", f"{server.addr}/{repo}:b", check=False)
    assert gone.returncode == 1
    assert "MANIFEST_UNKNOWN" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    bad = hatchway("push", str(tmp_path / "missing"), f"{server.addr}/t/x:1", check=False)
    assert bad.returncode == 1
    assert "does not exist" in bad.stderr
    usage = hatchway("pull", "no-registry-here", str(tmp_path / "o"), check=False)
    assert usage.returncode == 2
    assert "names no registry" in usage.stderr
    src = tmp_path / "src"
    write_oci_layout(src, make_image("hw-err"), tag="1.0")
    wrong = hatchway("push", f"{src}:2.0", f"{server.addr}/t/x:1", check=False)
    assert wrong.returncode == 1
    assert "no image '2.0'" in wrong.stderr
    assert "1.0" in wrong.stderr


def subprocess_bytes(*args: str) -> bytes:
    import subprocess

    from tests.support.server import HATCHWAY

    return subprocess.run([HATCHWAY, *args], capture_output=True, check=True, timeout=60).stdout
