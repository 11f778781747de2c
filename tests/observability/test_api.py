"""The framework-free metrics API that auth, storage and the mirror call (in-process)."""

from __future__ import annotations

import pytest

from hatchway.observability import metrics
from tests.observability.scrape import parse


def test_mirror_metrics() -> None:
    metrics.mirror_lookup("dockerhub", "hit")
    metrics.mirror_lookup("dockerhub", "miss")
    metrics.mirror_upstream_error("dockerhub")
    metrics.mirror_ratelimit("dockerhub", 97)
    found = parse(metrics.render().decode())
    assert found.value("hatchway_mirror_requests_total", upstream="dockerhub", result="hit") >= 1
    assert found.value("hatchway_mirror_upstream_errors_total", upstream="dockerhub") >= 1
    assert found.value("hatchway_mirror_upstream_ratelimit_remaining", upstream="dockerhub") == 97


def test_auth_labels_are_a_closed_set() -> None:
    for kind in metrics.AUTH_KINDS:
        metrics.auth_attempt(kind, "success")
    with pytest.raises(ValueError, match="unknown auth label"):
        metrics.auth_attempt("alice", "success")  # type: ignore[arg-type]
    metrics.token_granted("something-new", partial=True)
    found = parse(metrics.render().decode())
    assert found.label_values("kind") >= {"password", "pat", "refresh", "federated", "ldap"}
    assert found.value("hatchway_token_grants_total", grant="other", scope="partial") >= 1
