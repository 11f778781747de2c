"""The storage key tree, the same as the CNCF distribution registry's.

Keeping distribution's layout means an existing distribution storage directory can be
served by hatchway as it is (and back). Under ``/docker/registry/v2``::

    blobs/<alg>/<hex[0:2]>/<hex>/data                      content, shared by all repositories
    repositories/<name>/
        _layers/<alg>/<hex>/link                           blob is part of <name> (content: digest)
        _manifests/revisions/<alg>/<hex>/link              manifest is part of <name>
        _manifests/tags/<tag>/current/link                 tag -> manifest digest
        _uploads/<uuid>/data                               upload in progress
        _uploads/<uuid>/startedat                          RFC 3339 start time
        _uploads/<uuid>/hashstates/<alg>/<offset>          hatchway: saved hash state
        _referrers/<alg>/<subject-hex>/<alg>-<hex>         hatchway: referrer descriptor (JSON)
    repositories/_catalog_version                          hatchway: changes with the catalog
    _gc_fence                                              hatchway: rewritten when gc begins

A blob or manifest is visible through a repository only once its link exists, and a link
is written only after the content is complete and durable.
"""

from __future__ import annotations

from hatchway.oci.digest import Digest

ROOT = "/docker/registry/v2"
REPOSITORIES = f"{ROOT}/repositories"
# hatchway: rewritten whenever a repository gets its first manifest, so a cached
# catalog knows when to walk the tree again ("_" never starts a repository name).
CATALOG_VERSION = f"{REPOSITORIES}/_catalog_version"
BLOBS = f"{ROOT}/blobs"
# hatchway: rewritten when gc begins; its mtime is gc's fence (see registry/gc.py).
GC_FENCE = f"{ROOT}/_gc_fence"


def blob_data(d: Digest) -> str:
    return f"{BLOBS}/{d.algorithm}/{d.hex[:2]}/{d.hex}/data"


def blob_dir(d: Digest) -> str:
    return f"{BLOBS}/{d.algorithm}/{d.hex[:2]}/{d.hex}"


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layer_link(name: str, d: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_layers/{d.algorithm}/{d.hex}/link"


def layer_dir(name: str, d: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_layers/{d.algorithm}/{d.hex}"


def layers(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_layers"


def manifests(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests"


def revision_link(name: str, d: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions/{d.algorithm}/{d.hex}/link"


def revision_dir(name: str, d: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions/{d.algorithm}/{d.hex}"


def revisions(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions"


def tags(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags"


def tag_dir(name: str, tag: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags/{tag}"


def tag_current(name: str, tag: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags/{tag}/current/link"


def uploads(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads"


def upload_dir(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/data"


def upload_started(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/startedat"


def upload_verified(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/verified"


def upload_hashstate(name: str, upload_id: str, offset: int) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/hashstates/sha256/{offset}"


def referrers(name: str, subject: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_referrers/{subject.algorithm}/{subject.hex}"


def referrer_entry(name: str, subject: Digest, referrer: Digest) -> str:
    return f"{referrers(name, subject)}/{referrer.algorithm}-{referrer.hex}"
