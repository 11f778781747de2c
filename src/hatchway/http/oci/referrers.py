"""GET /v2/<name>/referrers/<digest>: an OCI index of the manifests referring to it."""

from __future__ import annotations

import json

from aiohttp import web

from hatchway.http.oci.common import registry
from hatchway.oci import mediatypes as mt
from hatchway.oci.digest import Digest


async def get(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    subject = Digest.parse(digest)
    artifact_type = request.query.get("artifactType") or None
    found = await registry(request).referrers.list(name, subject, artifact_type)
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
    return web.Response(body=json.dumps(index).encode(), headers=headers)
