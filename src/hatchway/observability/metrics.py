"""Every metric hatchway exports, named in one place, with bounded label sets.

Framework-free: auth, registry, storage and the mirror call the small functions here
(:func:`auth_attempt`, :func:`token_granted`, :func:`gc_run` ...); only ``http/`` renders
them. Labels never carry a repository or account name unless
``http.debug.prometheus.repositorylabel`` turns the repository label on.

Across processes: ``hatchway serve`` calls :func:`enable_multiprocess` before it forks,
so every worker writes its values to files in one directory (prometheus-client's
multiprocess mode) and any worker's ``/metrics`` adds them up. Counters of a worker that
died stay counted; gauges of the live workers only (``livesum``).

Label values (closed sets, so a scrape never grows with traffic):
- ``kind`` of an authentication: password, pat, refresh, federated, ldap
- ``outcome`` of an authentication: success, failure, throttled
- ``grant`` of a token: anonymous, basic (also an ID token as the password),
  password, refresh_token, token-exchange (RFC 8693, an ID token), other
- ``route``: the route template (``/v2/{name}/manifests/{reference}``), never the path
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hatchway.observability.batch import Batch

if TYPE_CHECKING:
    # prometheus-client is imported once metrics are on (``configure(enabled=True)``,
    # the default for callers that never configure): a worker whose metrics are off
    # (``http.debug.prometheus.enabled: false``) records nothing and never loads it.
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.registry import Collector

AuthKind = Literal["password", "pat", "refresh", "federated", "ldap"]
AuthOutcome = Literal["success", "failure", "throttled"]
AUTH_KINDS: tuple[AuthKind, ...] = ("password", "pat", "refresh", "federated", "ldap")
AUTH_OUTCOMES: tuple[AuthOutcome, ...] = ("success", "failure", "throttled")
GRANTS = ("anonymous", "basic", "password", "refresh_token", "token-exchange", "other")
MirrorResult = Literal["hit", "miss", "stale"]

_NAMESPACE = "hatchway"
# Requests: from a cached manifest (~1 ms) to a multi-GiB blob (minutes).
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Storage operations: a local stat (~10 µs) to an object-store commit (seconds).
_STORAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


@dataclass(frozen=True)
class _Metrics:
    requests: Counter
    request_seconds: Histogram
    bytes_in: Counter
    bytes_out: Counter
    uploads_in_flight: Gauge
    auth: Counter
    token_grants: Counter
    storage_seconds: Histogram
    storage_errors: Counter
    mirror_requests: Counter
    mirror_upstream_errors: Counter
    mirror_ratelimit_remaining: Gauge


def _build(registry: CollectorRegistry, repository_label: bool) -> _Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    route = ["route", "method", "status"] + (["repository"] if repository_label else [])

    def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
        return Counter(name, doc, list(labels), namespace=_NAMESPACE, registry=registry)

    return _Metrics(
        requests=counter("http_requests", "HTTP requests answered.", route),
        request_seconds=Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (streamed bodies included).",
            ["route", "method"],
            namespace=_NAMESPACE,
            registry=registry,
            buckets=_REQUEST_BUCKETS,
        ),
        bytes_in=counter("http_request_bytes", "Request body bytes received.", ["route"]),
        bytes_out=counter("http_response_bytes", "Response body bytes sent.", ["route"]),
        uploads_in_flight=Gauge(
            "http_uploads_in_flight",
            "Blob uploads being written now (open storage writers).",
            namespace=_NAMESPACE,
            registry=registry,
            multiprocess_mode="livesum",
        ),
        auth=counter(
            "auth_attempts",
            "Authentications by credential kind and outcome.",
            ["kind", "outcome"],
        ),
        token_grants=counter(
            "token_grants", "Registry tokens issued, by grant type.", ["grant", "scope"]
        ),
        storage_seconds=Histogram(
            "storage_operation_duration_seconds",
            "Storage driver operations (reader: until the first chunk).",
            ["driver", "operation"],
            namespace=_NAMESPACE,
            registry=registry,
            buckets=_STORAGE_BUCKETS,
        ),
        storage_errors=counter(
            "storage_operation_errors",
            "Storage driver operations that failed (not found included).",
            ["driver", "operation", "error"],
        ),
        mirror_requests=counter(
            "mirror_requests", "Pull-through mirror lookups.", ["upstream", "result"]
        ),
        mirror_upstream_errors=counter(
            "mirror_upstream_errors", "Failed requests to a mirrored upstream.", ["upstream"]
        ),
        mirror_ratelimit_remaining=Gauge(
            "mirror_upstream_ratelimit_remaining",
            "The upstream's last ratelimit-remaining header.",
            ["upstream"],
            namespace=_NAMESPACE,
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
    )


_lock = threading.Lock()
_batch = Batch()
_state: dict[str, object] = {}
_extra_collectors: dict[str, Callable[[], Collector]] = {}


def configure(*, repository_label: bool = False, enabled: bool = True) -> None:
    """Choose the label sets; call before the first metric is recorded (else no effect).
    With ``enabled`` False nothing is recorded (nothing could read it) and
    prometheus-client is never imported."""
    _state.setdefault("repository_label", repository_label)
    _state["enabled"] = enabled


def enabled() -> bool:
    return _state.get("enabled", True) is not False


def _local_registry() -> CollectorRegistry:
    found = _state.get("registry")
    if found is None:
        from prometheus_client import CollectorRegistry

        found = _state["registry"] = CollectorRegistry()
    return found  # type: ignore[return-value]


def repository_label() -> bool:
    return bool(_state.get("repository_label", False))


def metrics() -> _Metrics:
    found = _state.get("metrics")
    if found is None:
        with _lock:
            found = _state.get("metrics")
            if found is None:
                directory = multiprocess_directory()
                if directory is not None and "multiprocess" not in _state:
                    from prometheus_client import values

                    # Values of every metric made from here on go to files there.
                    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
                    _state["multiprocess"] = True
                found = _build(_local_registry(), repository_label())
                _batch.bounds(found.request_seconds, _REQUEST_BUCKETS)
                _batch.bounds(found.storage_seconds, _STORAGE_BUCKETS)
                _state["metrics"] = found
    assert isinstance(found, _Metrics)
    return found


def enable_multiprocess(directory: str) -> None:
    """Record to files in ``directory`` (which the caller made empty); call before any
    metric is recorded and before forking workers."""
    if "metrics" in _state:
        raise RuntimeError("enable_multiprocess() after metrics were created")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    _state["directory"] = directory  # metrics() makes the values use it


def multiprocess_directory() -> str | None:
    found = _state.get("directory")
    return found if isinstance(found, str) else None


def process_exited(pid: int) -> None:
    """A worker died: drop its live gauges (its counters stay counted)."""
    directory = multiprocess_directory()
    if directory is not None and enabled():
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def add_collector(name: str, factory: Callable[[], Collector]) -> None:
    """A collector asked at every scrape (values kept elsewhere, e.g. gc runs in the DB);
    a later one under the same ``name`` replaces it."""
    _extra_collectors[name] = factory


def __getattr__(name: str) -> str:
    """``CONTENT_TYPE``: prometheus-client's, looked up when a scrape needs it."""
    if name == "CONTENT_TYPE":
        import prometheus_client

        return str(prometheus_client.CONTENT_TYPE_LATEST)
    raise AttributeError(name)


def render() -> bytes:
    """The Prometheus text exposition of every process's metrics."""
    import prometheus_client
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics()  # declare all metrics, so a scrape shows them before their first use
    _batch.flush()
    directory = multiprocess_directory()
    if directory is None:
        registry = _local_registry()
        extra = CollectorRegistry()
    else:
        registry = extra = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    for factory in list(_extra_collectors.values()):
        extra.register(factory())
    text = prometheus_client.generate_latest(registry)
    if extra is not registry:
        text += prometheus_client.generate_latest(extra)
    return text


# -- the API the rest of hatchway calls --------------------------------------------------


def auth_attempt(kind: AuthKind, outcome: AuthOutcome) -> None:
    """One authentication: a password, an access token (pat), a refresh token, a
    federated assertion (OIDC/JWT) or an LDAP bind, and how it ended."""
    if kind not in AUTH_KINDS or outcome not in AUTH_OUTCOMES:
        raise ValueError(f"unknown auth label {kind!r}/{outcome!r}")
    if not enabled():
        return
    _batch.inc(metrics().auth, (kind, outcome))


def token_granted(grant: str, *, partial: bool) -> None:
    """A registry token was issued (``partial``: some requested scope was denied)."""
    if not enabled():
        return
    label = grant if grant in GRANTS else "other"
    _batch.inc(metrics().token_grants, (label, "partial" if partial else "full"))


def mirror_lookup(upstream: str, result: MirrorResult) -> None:
    """``upstream``: the configured upstream's name (bounded by the config)."""
    if not enabled():
        return
    _batch.inc(metrics().mirror_requests, (upstream, result))


def mirror_upstream_error(upstream: str) -> None:
    if not enabled():
        return
    _batch.inc(metrics().mirror_upstream_errors, (upstream,))


def mirror_ratelimit(upstream: str, remaining: float) -> None:
    if not enabled():
        return
    metrics().mirror_ratelimit_remaining.labels(upstream).set(remaining)


def storage_operation(driver: str, operation: str, seconds: float, error: str | None) -> None:
    if not enabled():
        return
    m = metrics()
    _batch.observe(m.storage_seconds, (driver, operation), seconds)
    if error is not None:
        _batch.inc(m.storage_errors, (driver, operation, error))


def request_done(
    route: str,
    method: str,
    status: int,
    seconds: float,
    received: int,
    sent: int,
    repository: str | None = None,
) -> None:
    if not enabled():
        return
    m = metrics()
    labels: tuple[str, ...] = (route, method, str(status))
    if repository_label():
        labels = (*labels, repository or "")
    _batch.inc(m.requests, labels)
    _batch.observe(m.request_seconds, (route, method), seconds)
    if received:
        _batch.inc(m.bytes_in, (route,), received)
    if sent:
        _batch.inc(m.bytes_out, (route,), sent)


def flush() -> None:
    """Write this process's pending counts now (at scrape and at worker exit)."""
    _batch.flush()


def upload_started() -> None:
    if not enabled():
        return
    metrics().uploads_in_flight.inc()


def upload_ended() -> None:
    if not enabled():
        return
    metrics().uploads_in_flight.dec()
