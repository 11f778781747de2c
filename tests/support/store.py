"""Where a filesystem-backed hatchway keeps things on disk (distribution's layout)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

V2 = Path("docker", "registry", "v2")
_UUID_RE = re.compile(r"/blobs/uploads/([0-9a-f-]{36})")


def blob_dir(data: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":", 1)
    return data / V2 / "blobs" / algorithm / hex_[:2] / hex_


def repo_dir(data: Path, repo: str) -> Path:
    return data / V2 / "repositories" / repo


def upload_dir(data: Path, repo: str, upload_id: str) -> Path:
    return repo_dir(data, repo) / "_uploads" / upload_id


def upload_dirs(data: Path, repo: str) -> list[Path]:
    uploads = repo_dir(data, repo) / "_uploads"
    return sorted(uploads.iterdir()) if uploads.is_dir() else []


def upload_bytes(data: Path, repo: str) -> int:
    """Bytes in the repository's upload sessions (what the server has received so far)."""
    total = 0
    for session in upload_dirs(data, repo):
        try:
            total += (session / "data").stat().st_size
        except FileNotFoundError:
            continue
    return total


def start_upload(client: httpx.Client, repo: str) -> tuple[str, str]:
    """POST a new upload session; returns (location, upload id)."""
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    match = _UUID_RE.search(location)
    assert match is not None, location
    return location, match.group(1)
