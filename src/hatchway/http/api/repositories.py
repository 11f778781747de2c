"""``/api/v1/repositories``: browse and delete what the caller may pull.

Thin handlers over :class:`hatchway.registry.browse.Browser`: authenticate, check the input
(repository grammar, digests, tags, ``n``/``last``; unknown query parameters are refused),
ask the policy, call the service, render. A repository the caller may not pull is "not
found", exactly as one that does not exist; one it may pull but not delete in is 403.
Deletes go through the registry as ``DELETE /v2/...`` does and are audited the same way
(event ``delete``, with ``via: api``), answered only once the event is committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast
from urllib.parse import urlencode

from aiohttp import web

from hatchway.auth.access import Resource
from hatchway.auth.gate import Allowed
from hatchway.auth.selfservice import Caller
from hatchway.auth.visibility import pull_filter
from hatchway.errors import HatchwayError
from hatchway.http.access import ALLOWED, audit_success
from hatchway.http.api import repomodels
from hatchway.http.api.authn import authenticate
from hatchway.http.api.errors import PREFIX, ApiError, json_response
from hatchway.http.api.route import SELF_SERVICE, Param, Route
from hatchway.http.state import REGISTRY, TOKEN_SERVICE
from hatchway.metadata.repoindex import TAG_SORTS, TagSort
from hatchway.oci.digest import Digest
from hatchway.oci.names import is_valid_name, is_valid_tag
from hatchway.registry.browse import MAX_PAGE, Browser
from hatchway.registry.service import Registry

DEFAULT_PAGE = 100
_MAX_QUERY = 255


@contextmanager
def _registry_errors() -> Iterator[None]:
    """The registry's errors (OCI codes) in the API's format, with their status."""
    try:
        yield
    except HatchwayError as err:
        raise ApiError(err.status, err.code.code, err.message, err.detail) from None


async def _caller(request: web.Request) -> Caller:
    return await authenticate(request, request.app[TOKEN_SERVICE], request.app[SELF_SERVICE])


def _browser(request: web.Request) -> tuple[Registry, Browser]:
    registry = request.app[REGISTRY]
    if registry.browser is None:  # only when the index is not wired: a bug, not input
        raise ApiError(503, "UNAVAILABLE", "the repository index is not available")
    return registry, registry.browser


def _query(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, each at most once, none but ``allowed``."""
    found: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in allowed:
            raise ApiError(
                400,
                "UNKNOWN_PARAMETER",
                f"unknown query parameter {key[:50]!r}",
                {"allowed": list(allowed)},
            )
        if key in found:
            raise ApiError(400, "INVALID_PARAMETER", f"{key} given more than once")
        if len(value) > _MAX_QUERY:
            raise ApiError(400, "INVALID_PARAMETER", f"{key} is over {_MAX_QUERY} characters")
        found[key] = value
    return found


def _page_size(query: dict[str, str]) -> int:
    raw = query.get("n")
    if raw is None or raw == "":
        return DEFAULT_PAGE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(
            400,
            "PAGINATION_NUMBER_INVALID",
            f"n must be a whole number from 1 to {MAX_PAGE}",
            {"n": raw[:50]},
        )
    return int(raw)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not is_valid_name(name):
        raise ApiError(400, "NAME_INVALID", "invalid repository name", {"name": name[:300]})
    return name


def _tag(value: str, field: str = "tag") -> str:
    if not is_valid_tag(value):
        raise ApiError(400, "TAG_INVALID", f"invalid {field}", {field: value[:200]})
    return value


def _digest(value: str) -> Digest:
    with _registry_errors():
        return Digest.parse(value)


def _may(request: web.Request, caller: Caller, name: str, action: str) -> bool:
    policy = request.app[TOKEN_SERVICE].policy
    return policy.decide(caller.principal, Resource("repository", name), action).allowed


def _require_pull(request: web.Request, caller: Caller, name: str) -> None:
    """Not found, as a missing repository is, when the caller may not pull ``name``."""
    if not _may(request, caller, name, "pull"):
        raise ApiError(404, "NAME_UNKNOWN", "repository name not known to registry")


def _link(path: str, params: dict[str, str | int]) -> str:
    return f"{PREFIX}{path}?{urlencode(params)}"


async def list_repositories(request: web.Request) -> web.StreamResponse:
    caller = await _caller(request)
    query = _query(request, ("q", "n", "last"))
    n = _page_size(query)
    last = query.get("last") or None
    if last is not None and not is_valid_name(last):
        raise ApiError(400, "INVALID_PARAMETER", "last must be a repository name", {"last": last})
    _, browser = _browser(request)
    visible = pull_filter(request.app[TOKEN_SERVICE].policy, caller.principal)
    page = await browser.repositories(visible, query.get("q", ""), n, last)
    following = None
    headers = {}
    if page.next_last is not None:
        params: dict[str, str | int] = {"n": n, "last": page.next_last}
        if query.get("q"):
            params["q"] = query["q"]
        following = _link("/repositories", params)
        headers["Link"] = f'<{following}>; rel="next"'
    body = repomodels.RepositoryList(
        repositories=[repomodels.Repository.of(r) for r in page.repositories], next=following
    )
    response = json_response(body)
    response.headers.update(headers)
    return response


async def list_tags(request: web.Request) -> web.StreamResponse:
    caller = await _caller(request)
    name = _name(request)
    query = _query(request, ("n", "last", "sort", "order"))
    n = _page_size(query)
    last = _tag(query["last"], "last") if query.get("last") else None
    sort = query.get("sort") or "name"
    if sort not in TAG_SORTS:
        raise ApiError(400, "INVALID_PARAMETER", "unknown sort", {"allowed": list(TAG_SORTS)})
    order = query.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise ApiError(400, "INVALID_PARAMETER", "order is asc or desc", {"order": order})
    _require_pull(request, caller, name)
    _, browser = _browser(request)
    with _registry_errors():
        page = await browser.tags(
            name, sort=cast(TagSort, sort), descending=order == "desc", n=n, last=last
        )
    following = None
    headers = {}
    if page.next_last is not None:
        params: dict[str, str | int] = {"n": n, "last": page.next_last}
        if sort != "name":
            params["sort"] = sort
        if order != "asc":
            params["order"] = order
        following = _link(f"/repositories/{name}/tags", params)
        headers["Link"] = f'<{following}>; rel="next"'
    body = repomodels.TagList(
        repository=repomodels.Repository.of(page.repository),
        tags=[repomodels.Tag.of(row) for row in page.tags],
        next=following,
    )
    response = json_response(body)
    response.headers.update(headers)
    return response


async def get_manifest(request: web.Request) -> web.StreamResponse:
    caller = await _caller(request)
    name = _name(request)
    _query(request, ())
    reference = request.match_info["reference"]
    if ":" in reference:
        _digest(reference)
    else:
        _tag(reference, "reference")
    _require_pull(request, caller, name)
    _, browser = _browser(request)
    with _registry_errors():
        view = await browser.manifest(name, reference)
    return json_response(repomodels.ManifestInfo.of(view))


async def _delete(request: web.Request, reference: str, digest: Digest | None) -> None:
    """Delete ``reference`` (a tag, or the manifest ``digest``) as the caller, audited."""
    caller = await _caller(request)
    name = _name(request)
    _query(request, ())
    if digest is None:
        _tag(reference)
    _require_pull(request, caller, name)
    if not _may(request, caller, name, "delete"):
        raise ApiError(403, "DENIED", f"deleting in {name} is not allowed to this credential")
    registry, _ = _browser(request)
    if not registry.delete_enabled:
        raise ApiError(405, "UNSUPPORTED", "deletion is disabled (storage.delete.enabled)")
    with _registry_errors():
        if digest is None:
            digest = await registry.tags.get(name, reference)
        await registry.manifests.delete(name, reference)
    request[ALLOWED] = Allowed(caller.principal)
    credential = caller.token.name if caller.token is not None else None
    with _registry_errors():
        await audit_success(
            request, "delete", name, reference, str(digest), credential=credential, via="api"
        )


async def delete_tag(request: web.Request) -> web.StreamResponse:
    await _delete(request, request.match_info["tag"], None)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def delete_manifest(request: web.Request) -> web.StreamResponse:
    reference = request.match_info["reference"]
    await _delete(request, reference, _digest(reference))
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


_N = Param(
    "n",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    "Page size.",
)
_NAME_PATTERN = "/repositories/{name:.+}"

REPOSITORY_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/repositories",
        list_repositories,
        "Repositories the caller may pull, by name, with size and last push",
        responses={200: repomodels.RepositoryList},
        errors=(400,),
        query=(
            Param("q", {"type": "string"}, "Only names containing this (any case)."),
            _N,
            Param("last", {"type": "string"}, "The last name of the previous page."),
        ),
        description="Paginated as /v2/_catalog: a Link header (rel=next) and `next`.",
    ),
    Route(
        "GET",
        "/repositories/{name}/tags",
        list_tags,
        "A repository's tags: digest, media type, size (per platform), created, pushed by",
        responses={200: repomodels.TagList},
        errors=(400, 404),
        query=(
            _N,
            Param("last", {"type": "string"}, "The last tag of the previous page."),
            Param(
                "sort",
                {"type": "string", "enum": list(TAG_SORTS), "default": "name"},
                "Sort key; ties are sorted by tag name.",
            ),
            Param("order", {"type": "string", "enum": ["asc", "desc"], "default": "asc"}, ""),
        ),
        pattern=_NAME_PATTERN + "/tags",
    ),
    Route(
        "DELETE",
        "/repositories/{name}/tags/{tag}",
        delete_tag,
        "Delete one tag (other tags of the same manifest stay); needs delete",
        responses={204: None},
        errors=(400, 403, 404, 503),
        pattern=_NAME_PATTERN + "/tags/{tag}",
    ),
    Route(
        "GET",
        "/repositories/{name}/manifests/{reference}",
        get_manifest,
        "A manifest by tag or digest: layers, platforms, annotations, referrers by image",
        responses={200: repomodels.ManifestInfo},
        errors=(400, 404),
        pattern=_NAME_PATTERN + "/manifests/{reference}",
    ),
    Route(
        "DELETE",
        "/repositories/{name}/manifests/{reference}",
        delete_manifest,
        "Delete a manifest (reference: its digest) and every tag naming it; needs delete",
        responses={204: None},
        errors=(400, 403, 404, 503),
        pattern=_NAME_PATTERN + "/manifests/{reference}",
    ),
)
