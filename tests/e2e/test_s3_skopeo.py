"""skopeo push and pull through hatchway on S3 storage (SeaweedFS on loopback), with and
without redirects of blob GETs to presigned URLs; ``--data`` stays the local directory."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_skopeo import Skopeo
from tests.support import seaweedfs
from tests.support.images import make_image, write_oci_layout
from tests.support.server import HATCHWAY, OPEN_CONFIG, Server, start_server

pytestmark = pytest.mark.e2e


def s3_server(tmp_path: Path, redirect: bool) -> tuple[Server, str, Path]:
    weed = seaweedfs.server()
    bucket = weed.new_bucket()
    config = OPEN_CONFIG + weed.config_yaml(bucket)
    if redirect:
        config += "  redirect:\n    disable: false\n"
    return start_server(tmp_path, config=config), bucket, tmp_path / "data"


@pytest.fixture(params=["stream", "redirect"])
def on_s3(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Server, str, Path, bool]]:
    redirect = request.param == "redirect"
    srv, bucket, data = s3_server(tmp_path, redirect)
    yield srv, bucket, data, redirect
    srv.stop()


def test_skopeo_round_trip_on_s3(on_s3: tuple[Server, str, Path, bool], tmp_path: Path) -> None:
    srv, bucket, data, redirect = on_s3
    skopeo = Skopeo(tmp_path / "skopeo-home")
    image = make_image("s3", layer_sizes=(6_000_000, 4096, 70))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1.0")
    ref = f"docker://{srv.addr}/s3/app:1.0"
    skopeo.run("copy", "--dest-tls-verify=false", f"oci:{src}:1.0", ref)

    layer = image.layers[0]
    r = srv.client.get(f"/v2/s3/app/blobs/{layer.digest}", follow_redirects=False)
    weed = seaweedfs.server()
    if redirect:
        assert r.status_code == 307
        location = r.headers["Location"]
        assert location.startswith(f"{weed.endpoint}/{bucket}/docker/registry/v2/blobs/")
        assert "X-Amz-Signature=" in location
        assert httpx.get(location).content == layer.data
    else:
        assert r.status_code == 200
        assert r.content == layer.data
        ranged = srv.client.get(
            f"/v2/s3/app/blobs/{layer.digest}", headers={"Range": "bytes=10-19"}
        )
        assert ranged.status_code == 206
        assert ranged.content == layer.data[10:20]

    out = tmp_path / "out"
    skopeo.run("copy", "--src-tls-verify=false", ref, f"oci:{out}:1.0")
    for blob in [*image.layers, image.config]:
        stored = out / "blobs" / "sha256" / blob.digest.split(":", 1)[1]
        assert stored.read_bytes() == blob.data

    # The bucket holds distribution's layout; the local directory holds no registry data.
    keys = [o["Key"] for o in weed.admin().list_objects_v2(Bucket=bucket)["Contents"]]
    assert "docker/registry/v2/repositories/s3/app/_manifests/tags/1.0/current/link" in keys
    assert not (data / "docker").exists()
    config = next(srv.log_path.parent.glob("config-*.yml"))
    gc = subprocess.run(
        [HATCHWAY, "gc", "--config", str(config), "--data", str(data), "--dry-run"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert gc.returncode == 0, gc.stderr
    assert b"would delete 0 blobs" in gc.stdout
    assert not (data / "docker").exists()


def test_redirects_are_off_by_default(tmp_path: Path) -> None:
    srv, _, _ = s3_server(tmp_path, redirect=False)
    try:
        r = srv.client.post("/v2/s3/x/blobs/uploads/?digest=sha256:" + "0" * 64, content=b"")
        assert r.status_code == 400  # digest mismatch: an OCI error, from S3 as from disk
        assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    finally:
        srv.stop()


def test_unusable_bucket_stops_the_start(tmp_path: Path) -> None:
    weed = seaweedfs.server()
    config = tmp_path / "config.yml"
    config.write_text(OPEN_CONFIG + weed.config_yaml("hw-no-such-bucket"))
    result = subprocess.run(
        [HATCHWAY, "serve", "--config", str(config), "--data", str(tmp_path / "d")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert b"storage is not usable: s3 list /: NoSuchBucket" in result.stderr
    assert weed.options("x")["secretkey"].encode() not in result.stderr


def test_every_command_keeps_data_local_with_s3(tmp_path: Path) -> None:
    """serve's fellow commands take --config/--data on S3 too: the database and keys go
    to --data, the registry's data stays in the bucket."""
    weed = seaweedfs.server()
    bucket = weed.new_bucket()
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nauth:\n  token: {}\n"
        + OPEN_CONFIG.split("\n", 1)[1]
        + weed.config_yaml(bucket)
    )
    data = tmp_path / "local"

    def run(*args: str, stdin: bytes = b"") -> bytes:
        result = subprocess.run(
            [HATCHWAY, *args, "--config", str(config), "--data", str(data)],
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    run("user", "add", "alice", "--password-stdin", stdin=b"correct horse battery\n")
    assert b"alice" in run("user", "list")
    run("keys", "rotate")
    assert run("keys", "list").count(b"\n") >= 2
    run("token", "list", "--user", "alice")
    run("audit", "--json")
    run("gc", "--dry-run")
    assert (data / "hatchway.db").exists()
    assert (data / "keys").is_dir()
    assert not (data / "docker").exists()
    assert "Contents" not in weed.admin().list_objects_v2(Bucket=bucket)
