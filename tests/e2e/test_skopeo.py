"""Real skopeo round trips: OCI layout -> hatchway -> OCI layout, byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs, platform_image, write_index_layout
from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]


class Skopeo:
    """skopeo with a private HOME, auth file, policy and registries config."""

    def __init__(self, home: Path) -> None:
        self.home = home
        (home / "registries.d").mkdir(parents=True)
        (home / "run").mkdir()
        (home / "registries.conf").write_text("")
        (home / "auth.json").write_text('{"auths": {}}')
        policy = {"default": [{"type": "insecureAcceptAnything"}]}
        (home / "policy.json").write_text(json.dumps(policy))
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = [
            "skopeo",
            "--policy",
            str(self.home / "policy.json"),
            "--registries.d",
            str(self.home / "registries.d"),
            *args,
        ]
        result = subprocess.run(cmd, capture_output=True, env=self.env, timeout=120, check=False)
        if check:
            assert result.returncode == 0, (cmd, result.stderr.decode(errors="replace"))
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo-home")


def test_round_trip(server: Server, repo: str, skopeo: Skopeo, tmp_path: Path) -> None:
    image = make_image("skopeo", layer_sizes=(300_000, 4096, 70))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1.0")
    ref = f"docker://{server.addr}/{repo}:1.0"

    skopeo.run("copy", "--dest-tls-verify=false", f"oci:{src}:1.0", ref)

    info = skopeo.json("inspect", "--tls-verify=false", ref)
    assert info["Digest"] == image.manifest.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["RepoTags"] == ["1.0"]
    assert skopeo.run("inspect", "--tls-verify=false", "--raw", ref).stdout == image.manifest.data
    config = skopeo.run("inspect", "--tls-verify=false", "--config", "--raw", ref).stdout
    assert config == image.config.data
    by_digest = f"docker://{server.addr}/{repo}@{image.manifest.digest}"
    assert skopeo.run("inspect", "--tls-verify=false", "--raw", by_digest).stdout == (
        image.manifest.data
    )

    # A second tag, then list-tags.
    skopeo.run(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        ref,
        f"docker://{server.addr}/{repo}:latest",
    )
    tags = skopeo.json("list-tags", "--tls-verify=false", f"docker://{server.addr}/{repo}")
    assert tags == {"Repository": f"{server.addr}/{repo}", "Tags": ["1.0", "latest"]}

    # Back out to an OCI layout: every blob byte-identical.
    out = tmp_path / "out"
    skopeo.run("copy", "--src-tls-verify=false", ref, f"oci:{out}:1.0")
    assert layout_blobs(out) == layout_blobs(src)
    index = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.manifest.digest]

    skopeo.run("delete", "--tls-verify=false", ref)
    for gone in (ref, by_digest, f"docker://{server.addr}/{repo}:latest"):
        result = skopeo.run("inspect", "--tls-verify=false", gone, check=False)
        assert result.returncode != 0, gone
        assert b"manifest unknown" in result.stderr.lower(), result.stderr
    tags = skopeo.json("list-tags", "--tls-verify=false", f"docker://{server.addr}/{repo}")
    assert tags["Tags"] == []


def test_copy_between_repositories(
    server: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    image = make_image("skopeo-mount", layer_sizes=(100_000,))
    src = tmp_path / "src"
    write_oci_layout(src, image)
    first = f"docker://{server.addr}/{repo}/one:latest"
    second = f"docker://{server.addr}/{repo}/two:latest"
    skopeo.run("copy", "--dest-tls-verify=false", f"oci:{src}:latest", first)
    # skopeo mounts blobs it knows are in another repository of the same registry.
    skopeo.run("copy", "--src-tls-verify=false", "--dest-tls-verify=false", first, second)
    assert skopeo.run("inspect", "--tls-verify=false", "--raw", second).stdout == (
        image.manifest.data
    )
    for b in (image.config, *image.layers):
        r = server.client.get(f"/v2/{repo}/two/blobs/{b.digest}")
        assert r.status_code == 200
        assert r.content == b.data


def test_multi_arch_index(server: Server, repo: str, skopeo: Skopeo, tmp_path: Path) -> None:
    images = {
        "amd64": platform_image("multi-amd", "amd64"),
        "arm64": platform_image("multi-arm", "arm64"),
    }
    src = tmp_path / "src"
    index = write_index_layout(src, images, tag="multi")
    ref = f"docker://{server.addr}/{repo}:multi"

    skopeo.run("copy", "--all", "--dest-tls-verify=false", f"oci:{src}:multi", ref)

    assert skopeo.run("inspect", "--tls-verify=false", "--raw", ref).stdout == index.data
    for arch, image in images.items():
        info = skopeo.json("inspect", "--tls-verify=false", "--override-arch", arch, ref)
        assert info["Digest"] == index.digest  # skopeo reports the reference's digest
        assert info["Architecture"] == arch
        assert info["Layers"] == [layer.digest for layer in image.layers]
        child = f"docker://{server.addr}/{repo}@{image.manifest.digest}"
        raw = skopeo.run("inspect", "--tls-verify=false", "--raw", child).stdout
        assert raw == image.manifest.data

    out = tmp_path / "out"
    skopeo.run("copy", "--all", "--src-tls-verify=false", ref, f"oci:{out}:multi")
    assert layout_blobs(out) == layout_blobs(src)
    out_index = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in out_index["manifests"]] == [index.digest]

    skopeo.run("delete", "--tls-verify=false", ref)
    assert skopeo.run("inspect", "--tls-verify=false", "--raw", ref, check=False).returncode != 0
