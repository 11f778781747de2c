"""Which forwarded headers name the client: only a trusted proxy's, walked from the right.

The e2e side (a real nginx in front of ``hatchway serve``) is tests/e2e/test_proxy.py.
"""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from hatchway.http.forwarded import Origin, TrustedProxies

PROXIES = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"])


def origin(
    peer: str, *headers: tuple[str, str], forwarded: tuple[dict[str, str], ...] = ()
) -> Origin | None:
    return PROXIES.origin(peer, CIMultiDict(headers), forwarded)


def address_of(found: Origin | None) -> str | None:
    assert found is not None
    return found.address


def test_untrusted_peers_are_never_believed() -> None:
    spoof = ("X-Forwarded-For", "198.51.100.1")
    assert origin("203.0.113.9", spoof, ("X-Forwarded-Proto", "https")) is None
    assert origin("10.0.0.1.evil", spoof) is None
    assert TrustedProxies([]).origin("127.0.0.1", CIMultiDict([spoof])) is None


def test_a_trusted_proxy_names_the_client() -> None:
    found = origin(
        "127.0.0.1",
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "registry.example.com"),
    )
    assert found == Origin("203.0.113.9", "https", "registry.example.com")
    assert origin("127.0.0.1") is None  # said nothing


def test_the_walk_goes_right_to_left_over_trusted_hops() -> None:
    # The client wrote the leftmost entry itself; the proxy appended the real address.
    got = origin("127.0.0.1", ("X-Forwarded-For", "198.51.100.1, 203.0.113.9"))
    assert address_of(got) == "203.0.113.9"
    # Two proxies: the inner one (10.0.0.2) is skipped, its values belong to the outer.
    got = origin(
        "127.0.0.1",
        ("X-Forwarded-For", "198.51.100.1, 203.0.113.9"),
        ("X-Forwarded-For", "10.0.0.2"),  # a second header line is part of the list
        ("X-Forwarded-Proto", "http, https, http"),
    )
    assert got == Origin("203.0.113.9", "https", None)
    # Only trusted hops: the leftmost is the client.
    got = origin("127.0.0.1", ("X-Forwarded-For", "10.0.0.3, 10.0.0.2"))
    assert address_of(got) == "10.0.0.3"
    # An entry that is no address stops the walk at the trusted hop beside it.
    got = origin("127.0.0.1", ("X-Forwarded-For", "198.51.100.1, unknown, 10.0.0.2"))
    assert address_of(got) == "10.0.0.2"
    got = origin("127.0.0.1", ("X-Forwarded-For", "garbage"))
    assert got == Origin(None, None, None)


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("203.0.113.9:4711", "203.0.113.9"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ('"203.0.113.9"', "203.0.113.9"),
    ],
)
def test_address_forms(entry: str, address: str) -> None:
    got = origin("127.0.0.1", ("X-Forwarded-For", entry))
    assert address_of(got) == address


def test_rfc7239_forwarded() -> None:
    elements = (
        {"for": "198.51.100.1", "proto": "http"},  # the client's own, never believed
        {"for": "[2001:db8::1]:4711", "proto": "https", "host": "registry.example.com"},
        {"for": "10.0.0.2", "proto": "http"},
    )
    assert origin("fd00::5", forwarded=elements) == Origin(
        "2001:db8::1", "https", "registry.example.com"
    )
    # X-Forwarded-For wins when a proxy sent both.
    got = origin("127.0.0.1", ("X-Forwarded-For", "203.0.113.9"), forwarded=elements)
    assert address_of(got) == "203.0.113.9"


def test_bad_proto_and_host_are_ignored() -> None:
    got = origin(
        "127.0.0.1",
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "javascript"),
        ("X-Forwarded-Host", 'evil.example", error="x'),
    )
    assert got == Origin("203.0.113.9", None, None)
    got = origin("127.0.0.1", ("X-Forwarded-Proto", "HTTPS"), ("X-Forwarded-Host", "[::1]:8443"))
    assert got == Origin(None, "https", "[::1]:8443")
