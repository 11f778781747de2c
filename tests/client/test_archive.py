"""``docker save`` archives: both forms pushed, the classic form written on pull and read
back by skopeo's ``docker-archive:`` (the format ``docker load`` takes)."""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.authkit import Skopeo
from tests.support.imagefiles import (
    classic_docker_tar,
    hatchway,
    oci_docker_tar,
    plain_tar,
    sha256,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo-home")


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            if f is not None:
                out[m.name] = f.read()
        return out


def test_classic_archive_round_trip(
    server: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    layers = [plain_tar({"etc/os": b"hatchway\n"}), plain_tar({"app/bin": b"\x7fELF" * 5000})]
    saved = classic_docker_tar(tmp_path / "app.tar", layers, "app:1.0", repeat_first=True)
    ref = f"{server.addr}/{repo}:1.0"

    digest = hatchway("push", f"{tmp_path / 'app.tar'}:app:1.0", ref).stdout.strip()

    raw = hatchway_raw(ref)
    manifest = json.loads(raw)
    assert sha256(raw) == digest
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["digest"] == sha256(saved.config)
    # Layers go as they are in the archive: uncompressed, digest = diff_id.
    assert [x["digest"] for x in manifest["layers"]] == saved.diff_ids
    assert {x["mediaType"] for x in manifest["layers"]} == {UNCOMPRESSED}
    info = skopeo.json("inspect", "--tls-verify=false", f"docker://{ref}")
    assert info["Layers"] == saved.diff_ids

    out = tmp_path / "pulled.tar"
    assert hatchway("pull", ref, str(out)).stdout.strip() == digest
    got = members(out)
    [entry] = json.loads(got["manifest.json"])
    assert entry["RepoTags"] == [ref]
    assert got[entry["Config"]] == saved.config
    assert [got[name] for name in entry["Layers"]] == saved.layers
    repositories = json.loads(got["repositories"])
    assert list(repositories) == [f"{server.addr}/{repo}"]

    # What hatchway wrote is a docker-load archive (skopeo's docker-archive reads it) ...
    info = skopeo.json("inspect", f"docker-archive:{out}")
    assert info["Layers"] == saved.diff_ids
    # ... and pushing it again gives the very same manifest.
    again = hatchway("push", str(out), f"{server.addr}/{repo}:again").stdout.strip()
    assert again == digest


def test_docker_25_archive_is_pushed_as_is(server: Server, repo: str, tmp_path: Path) -> None:
    image = make_image("docker25", layer_sizes=(20_000, 300))
    archive = tmp_path / "new.tar"
    oci_docker_tar(archive, image, "web:2.1")
    ref = f"{server.addr}/{repo}:2.1"

    for selector in ("web:2.1", "2.1", ""):
        source = f"{archive}:{selector}" if selector else str(archive)
        assert hatchway("push", source, ref).stdout.strip() == image.manifest.digest
    assert hatchway_raw(ref) == image.manifest.data
    for b in (image.config, *image.layers):
        assert server.client.get(f"/v2/{repo}/blobs/{b.digest}").content == b.data


def test_compressed_layers_are_unpacked_into_the_archive(
    server: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    image = make_image("gz-to-tar", layer_sizes=(100_000, 50))
    src = tmp_path / "src"
    write_oci_layout(src, image)
    ref = f"{server.addr}/{repo}:gz"
    hatchway("push", str(src), ref)

    out = tmp_path / "gz.tar"
    hatchway("pull", ref, f"docker-archive:{out}")

    got = members(out)
    [entry] = json.loads(got["manifest.json"])
    assert [got[name] for name in entry["Layers"]] == [
        gzip.decompress(x.data) for x in image.layers
    ]
    assert got[entry["Config"]] == image.config.data
    skopeo.run("copy", f"docker-archive:{out}", f"oci:{tmp_path / 'check'}:x")


def test_an_index_into_a_tar_takes_one_platform(server: Server, tmp_path: Path) -> None:
    from tests.support.layouts import platform_image, write_index_layout

    images = {"amd64": platform_image("tar-a", "amd64"), "arm64": platform_image("tar-b", "arm64")}
    src = tmp_path / "src"
    write_index_layout(src, images, tag="m")
    ref = f"{server.addr}/t/tar-index:m"
    hatchway("push", f"{src}:m", ref)

    out = tmp_path / "arm.tar"
    pulled = hatchway("pull", ref, str(out), "--platform", "linux/arm64").stdout.strip()
    assert pulled == images["arm64"].manifest.digest
    [entry] = json.loads(members(out)["manifest.json"])
    assert members(out)[entry["Config"]] == images["arm64"].config.data
    missing = hatchway(
        "pull", ref, str(tmp_path / "x.tar"), "--platform", "linux/s390x", check=False
    )
    assert missing.returncode == 1
    assert "linux/amd64" in missing.stderr
    assert "linux/arm64" in missing.stderr


def hatchway_raw(ref: str) -> bytes:
    import subprocess

    from tests.support.server import HATCHWAY

    return subprocess.run(
        [HATCHWAY, "inspect", "--raw", ref], capture_output=True, check=True, timeout=60
    ).stdout
