"""``hatchway pull`` from a hostile registry: digests in its manifests become file and tar
member names, so a malformed one must stop the pull with one line and write nothing
outside the destination. And a file already in the destination counts as the blob only if
it hashes to the blob's digest."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.support.imagefiles import hatchway
from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.scripted import (
    OCI_INDEX,
    OCI_MANIFEST,
    ScriptedServer,
    manifest_bytes,
    registry_route,
    sha256,
)
from tests.support.server import Server

pytestmark = pytest.mark.e2e

CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
LAYER = b"layer bytes"
HOSTILE_DIGESTS = [
    "sha256:../../../outside/evil",  # from <dest>/blobs/sha256/: a sibling of <dest>
    "sha256:../../evil",
    "../../evil:" + "0" * 64,
    "sha256:" + "0" * 63 + "/",
    "sha256:" + "A" * 64,
]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def pull_from(
    tmp_path: Path,
    manifests: dict[str, tuple[bytes, str]],
    blobs: dict[str, bytes],
    dest_name: str,
) -> tuple[str, set[Path], ScriptedServer]:
    """Pull ``t/app:1`` into ``tmp_path/work/dest_name``; returns stderr, the files that
    appeared outside the destination, and the server (for what it was asked)."""
    work = tmp_path / "work"
    work.mkdir()
    before = files_under(tmp_path)
    with ScriptedServer(registry_route(manifests, blobs)) as registry:
        dest = work / dest_name
        result = hatchway("pull", f"{registry.addr}/t/app:1", str(dest), check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    after = {p for p in files_under(tmp_path) - before if dest not in (p, *p.parents)}
    return result.stderr, after, registry


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines, stderr
    assert lines[-1].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    return lines[-1]


@pytest.mark.parametrize("digest", HOSTILE_DIGESTS)
@pytest.mark.parametrize("dest_name", ["layout", "image.tar"])
@pytest.mark.parametrize("where", ["layer", "config"])
def test_a_malformed_blob_digest_stops_the_pull(
    tmp_path: Path, digest: str, dest_name: str, where: str
) -> None:
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(CONFIG)}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": len(LAYER)}
    config["digest"] = digest if where == "config" else sha256(CONFIG.encode())
    layer["digest"] = digest if where == "layer" else sha256(LAYER)
    manifest = manifest_bytes(config, [layer])
    blobs = {sha256(CONFIG.encode()): CONFIG.encode(), sha256(LAYER): LAYER, digest: LAYER}
    stderr, outside, registry = pull_from(
        tmp_path, {"1": (manifest, OCI_MANIFEST)}, blobs, dest_name
    )
    assert outside == set()
    assert "invalid digest" in one_line_error(stderr)
    assert not any("/blobs/" in s.path for s in registry.seen), "nothing was downloaded"


@pytest.mark.parametrize("digest", HOSTILE_DIGESTS[:2])
def test_a_malformed_child_manifest_digest_stops_the_pull(tmp_path: Path, digest: str) -> None:
    child = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 10}
    child["platform"] = {"os": "linux", "architecture": "amd64"}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]})
    stderr, outside, registry = pull_from(
        tmp_path, {"1": (index.encode(), OCI_INDEX)}, {}, "layout"
    )
    assert "invalid digest" in one_line_error(stderr)
    assert outside == set()
    assert [s.path for s in registry.seen if "/manifests/" in s.path] == ["/v2/t/app/manifests/1"]


def test_malformed_diff_ids_stop_a_pull_into_a_tar(tmp_path: Path) -> None:
    """The config is verified by its digest, but what it says is the registry's: its
    diff_ids name the tar's layer members."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:../../../evil"]},
        }
    ).encode()
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": sha256(config),
        "size": len(config),
    }
    layer: dict[str, object] = {"mediaType": "application/vnd.oci.image.layer.v1.tar"}
    layer.update(digest=sha256(LAYER), size=len(LAYER))
    manifest = manifest_bytes(config_desc, [layer])
    blobs = {sha256(config): config, sha256(LAYER): LAYER}
    stderr, outside, _ = pull_from(tmp_path, {"1": (manifest, OCI_MANIFEST)}, blobs, "image.tar")
    assert "invalid digest" in one_line_error(stderr)
    assert outside == set()
    assert not (tmp_path / "work" / "image.tar").exists()


def test_a_file_of_the_right_size_is_verified_before_it_is_kept(
    server: Server, repo: str, tmp_path: Path
) -> None:
    image = make_image("verify-skip", layer_sizes=(20_000, 300))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1")
    ref = f"{server.addr}/{repo}:1"
    hatchway("push", f"{src}:1", ref)
    dest = tmp_path / "dest"
    hatchway("pull", ref, str(dest))
    assert layout_blobs(dest) == layout_blobs(src)

    # The same size, other bytes: a padded partial download, or tampering.
    layer = dest / "blobs" / "sha256" / image.layers[0].digest.split(":")[1]
    layer.write_bytes(b"\0" * image.layers[0].size)
    manifest = dest / "blobs" / "sha256" / image.manifest.digest.split(":")[1]
    manifest.write_bytes(b" " * image.manifest.size)
    # A blob that is really there is still skipped.
    out = hatchway("pull", ref, str(dest))
    assert f"{image.layers[0].digest[:19]} layer: pulled" in out.stderr
    assert f"{image.layers[1].digest[:19]} layer: already here" in out.stderr
    assert layout_blobs(dest) == layout_blobs(src)

    tar = tmp_path / "image.tar"
    hatchway("pull", ref, str(tar))
    with tarfile.open(tar) as archive:
        assert "manifest.json" in archive.getnames()
