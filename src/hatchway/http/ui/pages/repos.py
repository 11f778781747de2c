"""Repositories: search and list, a repository's tags, a manifest, deleting a tag.

Over the registry's browse service (``registry.browse.Browser``, from the repository index)
as ``/api/v1/repositories`` is: the list holds only what the signed-in account may pull,
and a repository it may not pull is "not found", as one that does not exist. Deleting a
tag needs ``delete`` there; it goes through the registry as ``DELETE /v2/...`` does and is
audited the same way (``via: ui``), and only that tag goes.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import quote, urlencode

from aiohttp import web

from hatchway.auth.access import Resource
from hatchway.auth.gate import Allowed
from hatchway.auth.visibility import pull_filter
from hatchway.auth.websession import SignedIn
from hatchway.errors import HatchwayError
from hatchway.http.access import ALLOWED, audit_success
from hatchway.http.state import REGISTRY, TOKEN_SERVICE
from hatchway.http.ui.middleware import UiError, not_found
from hatchway.http.ui.pages.signin import require
from hatchway.http.ui.render import redirect, render
from hatchway.metadata.repoindex import TAG_SORTS, TagSort
from hatchway.oci.digest import Digest
from hatchway.oci.names import is_valid_name, is_valid_tag
from hatchway.registry.browse import Browser
from hatchway.registry.service import Registry

PAGE = 50
TAG_PAGE = 100
SORT_LABELS = {
    "name": "Tag",
    "created": "Age",
    "size": "Size",
    "pushed": "Pushed",
    "pushed_by": "Pushed by",
}
NOTICES = {"deleted": "The tag is deleted."}


def _browser(request: web.Request) -> tuple[Registry, Browser]:
    registry = request.app[REGISTRY]
    if registry.browser is None:
        raise UiError(503, "Unavailable", "The repository index is not available.")
    return registry, registry.browser


def _may(request: web.Request, found: SignedIn, name: str, action: str) -> bool:
    policy = request.app[TOKEN_SERVICE].policy
    return policy.decide(found.principal, Resource("repository", name), action).allowed


def _name(request: web.Request, found: SignedIn) -> str:
    """The repository in the path, if it is valid and the account may pull it."""
    name = request.match_info["name"]
    if not is_valid_name(name) or not _may(request, found, name, "pull"):
        raise not_found("There is no such repository, or you may not pull from it.")
    return name


def repo_url(name: str) -> str:
    return "/ui/repositories/" + quote(name)


async def repositories(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    q = request.query.get("q", "")[:255]
    last = request.query.get("last") or None
    if last is not None and not is_valid_name(last):
        last = None
    _, browser = _browser(request)
    visible = pull_filter(request.app[TOKEN_SERVICE].policy, found.principal)
    page = await browser.repositories(visible, q, PAGE, last)
    following = None
    if page.next_last is not None:
        following = "/ui/repositories?" + urlencode({"q": q, "last": page.next_last})
    return render(
        request,
        "repositories.html",
        title="Repositories",
        q=q,
        repositories=page.repositories,
        following=following,
        repo_url=repo_url,
    )


async def repository(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    name = _name(request, found)
    sort = request.query.get("sort", "name")
    if sort not in TAG_SORTS:
        sort = "name"
    descending = request.query.get("order") == "desc"
    last = request.query.get("last") or None
    if last is not None and not is_valid_tag(last):
        last = None
    _, browser = _browser(request)
    try:
        page = await browser.tags(
            name, sort=cast(TagSort, sort), descending=descending, n=TAG_PAGE, last=last
        )
    except HatchwayError:
        raise not_found("There is no such repository, or you may not pull from it.") from None
    following = None
    if page.next_last is not None:
        params = {"sort": sort, "order": "desc" if descending else "asc", "last": page.next_last}
        following = repo_url(name) + "?" + urlencode(params)
    return render(
        request,
        "repository.html",
        title=name,
        name=name,
        summary=page.repository,
        tags=page.tags,
        following=following,
        sort=sort,
        descending=descending,
        sorts=SORT_LABELS,
        may_delete=_may(request, found, name, "delete"),
        repo_url=repo_url,
        quote=quote,
        notice=NOTICES.get(request.query.get("done", "")),
    )


async def manifest(request: web.Request) -> web.StreamResponse:
    found = await require(request)
    name = _name(request, found)
    reference = request.match_info["reference"]
    if ":" in reference:
        try:
            Digest.parse(reference)
        except HatchwayError:
            raise not_found("There is no such manifest.") from None
    elif not is_valid_tag(reference):
        raise not_found("There is no such manifest.")
    _, browser = _browser(request)
    try:
        view = await browser.manifest(name, reference)
    except HatchwayError:
        raise not_found("There is no such manifest.") from None
    return render(
        request,
        "manifest.html",
        title=f"{name}:{reference}" if ":" not in reference else f"{name}@{reference}",
        name=name,
        view=view,
        repo_url=repo_url,
        quote=quote,
        may_delete=_may(request, found, name, "delete"),
    )


async def _tag_to_delete(request: web.Request) -> tuple[SignedIn, str, str, Registry]:
    found = await require(request)
    name = _name(request, found)
    tag = request.match_info["tag"]
    if not is_valid_tag(tag):
        raise not_found("There is no such tag.")
    if not _may(request, found, name, "delete"):
        raise UiError(403, "Forbidden", f"You may not delete in {name}.")
    registry, _ = _browser(request)
    if not registry.delete_enabled:
        raise UiError(405, "Deleting is off", "This registry does not allow deleting.")
    return found, name, tag, registry


async def confirm_delete(request: web.Request) -> web.StreamResponse:
    _, name, tag, registry = await _tag_to_delete(request)
    _, browser = _browser(request)
    try:
        digest = await registry.tags.get(name, tag)
        view = await browser.manifest(name, str(digest))
    except HatchwayError:
        raise not_found("There is no such tag.") from None
    others = [t for t in view.tags if t != tag]
    return render(
        request,
        "delete_tag.html",
        title=f"Delete {name}:{tag}",
        name=name,
        tag=tag,
        view=view,
        others=others,
        repo_url=repo_url,
        quote=quote,
    )


async def delete_tag(request: web.Request) -> web.StreamResponse:
    found, name, tag, registry = await _tag_to_delete(request)
    try:
        digest = await registry.tags.get(name, tag)
        await registry.manifests.delete(name, tag)
    except HatchwayError:
        raise not_found("There is no such tag.") from None
    request[ALLOWED] = Allowed(found.principal)
    try:
        await audit_success(request, "delete", name, tag, str(digest), via="ui")
    except HatchwayError as err:
        raise UiError(503, "Not audited", err.message) from None
    return redirect(repo_url(name) + "?done=deleted")


_NAME = "/ui/repositories/{name:[a-z0-9][a-z0-9._/-]*}"
ROUTES = (
    ("GET", "/ui/repositories", repositories),
    ("GET", _NAME + "/-/manifests/{reference}", manifest),
    ("GET", _NAME + "/-/tags/{tag}/delete", confirm_delete),
    ("POST", _NAME + "/-/tags/{tag}/delete", delete_tag),
    ("GET", _NAME, repository),
)
