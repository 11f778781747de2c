from __future__ import annotations

import httpx

from tests.support.oci import errors


def test_v2_base_answers_with_api_version(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json() == {}


def test_unknown_endpoint_is_oci_json_404(client: httpx.Client) -> None:
    r = client.get("/v2/foo/nothing-here")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert errors(r)


def test_invalid_name_is_name_invalid(client: httpx.Client) -> None:
    for bad in ("Upper/case", "a/../b", "a//b", "-lead", "x" * 256):
        r = client.get(f"/v2/{bad}/tags/list")
        assert r.status_code in (400, 404), bad
        if r.status_code == 400:
            assert errors(r) == ["NAME_INVALID"], bad
