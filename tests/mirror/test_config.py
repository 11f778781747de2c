"""``proxy:``: distribution's single form, hatchway's list of prefixed upstreams, and
the refusals."""

from __future__ import annotations

import re

import pydantic
import pytest

from hatchway.config.model import Config
from hatchway.registry.mirror.upstream import ratelimit_remaining


def _load(proxy: object) -> Config:
    return Config.model_validate({"proxy": proxy})


def test_distribution_single_form_is_one_upstream_for_every_repository() -> None:
    config = _load(
        {
            "remoteurl": "https://registry-1.docker.io",
            "username": "alice",
            "password": "secret",
            "ttl": "168h",
        }
    )
    assert config.proxy is not None
    [upstream] = config.proxy.all()
    assert upstream.prefix == ""
    assert upstream.host == "registry-1.docker.io"
    assert upstream.username == "alice"
    assert upstream.ttl == 168 * 3600
    assert "secret" not in repr(config.proxy)


def test_upstreams_under_prefixes() -> None:
    config = _load(
        {
            "upstreams": [
                {"prefix": "dockerhub", "remoteurl": "https://registry-1.docker.io"},
                {"prefix": "quay/", "remoteurl": "https://quay.io", "freshness": "5m"},
                {"prefix": "local", "remoteurl": "http://127.0.0.1:5001"},
            ]
        }
    )
    assert config.proxy is not None
    prefixes = [(u.prefix, u.freshness) for u in config.proxy.all()]
    assert prefixes == [("dockerhub", 60.0), ("quay", 300.0), ("local", 60.0)]


def test_no_proxy_section_means_no_mirror() -> None:
    assert Config.model_validate({}).proxy is None


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ({"remoteurl": "https://r.example", "colour": "red"}, "Extra inputs"),
        ({"upstreams": [{"remoteurl": "https://r.example", "cache": 1}]}, "Extra inputs"),
        ({}, "remoteurl, or a list of upstreams"),
        ({"remoteurl": "ftp://r.example"}, "expected https://"),
        ({"remoteurl": "https://r.example/v2/"}, "root URL only"),
        ({"remoteurl": "http://r.example"}, "loopback"),
        ({"remoteurl": "https://r.example", "username": "a"}, "go together"),
        (
            {"remoteurl": "https://r.example", "upstreams": [{"remoteurl": "https://q.example"}]},
            "not both",
        ),
        (
            {
                "upstreams": [
                    {"prefix": "a", "remoteurl": "https://r.example"},
                    {"prefix": "a", "remoteurl": "https://q.example"},
                ]
            },
            "same prefix",
        ),
        (
            {
                "upstreams": [
                    {"prefix": "a", "remoteurl": "https://r.example"},
                    {"prefix": "a/b", "remoteurl": "https://q.example"},
                ]
            },
            "inside prefix",
        ),
        (
            {
                "upstreams": [
                    {"remoteurl": "https://r.example"},
                    {"prefix": "b", "remoteurl": "https://q.example"},
                ]
            },
            "must be alone",
        ),
        ({"upstreams": [{"prefix": "Bad Prefix", "remoteurl": "https://r.example"}]}, "prefix"),
        ({"remoteurl": "https://r.example", "timeout": "soon"}, "invalid duration"),
    ],
)
def test_refusals(proxy: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _load(proxy)


def test_http_elsewhere_when_asked() -> None:
    config = _load({"remoteurl": "http://mirror.internal:5000", "insecure": True})
    assert config.proxy is not None
    assert config.proxy.all()[0].host == "mirror.internal:5000"


@pytest.mark.parametrize(
    ("header", "remaining"),
    [("76;w=21600", 76.0), ("100", 100.0), ("", None), (None, None), ("lots", None)],
)
def test_ratelimit_remaining_header(header: str | None, remaining: float | None) -> None:
    assert ratelimit_remaining(header) == remaining


def test_credential_helper_per_upstream_and_in_the_single_form() -> None:
    config = _load(
        {
            "upstreams": [
                {"prefix": "ecr", "remoteurl": "https://x.example", "credentialhelper": "ecr-login"}
            ]
        }
    )
    assert config.proxy is not None
    assert config.proxy.all()[0].credentialhelper == "ecr-login"
    single = _load({"remoteurl": "https://ghcr.io", "credentialhelper": "gh"})
    assert single.proxy is not None
    assert single.proxy.all()[0].credentialhelper == "gh"


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        (
            {"credentialhelper": "x", "username": "a", "password": "b"},
            "credentialhelper or username/password",
        ),
        ({"credentialhelper": "../bin/sh"}, "docker-credential-NAME"),
        ({"credentialhelper": "a b"}, "docker-credential-NAME"),
    ],
)
def test_credential_helper_refusals(upstream: dict[str, str], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(message)):
        _load({"upstreams": [{"prefix": "p", "remoteurl": "https://x.example", **upstream}]})
