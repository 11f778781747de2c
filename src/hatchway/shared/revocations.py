"""Revocations reach every replica at once through Redis pub/sub (``redis:`` configured).

Each worker remembers for a few seconds whether an access token is revoked and whether
an account is disabled (:class:`~hatchway.auth.checkcache.CheckCache`), so a registry
request does not query the database. Whoever revokes (a server worker answering the API,
``hatchway token revoke``, ``hatchway user disable``) commits to the database first, then
publishes one message on :data:`CHANNEL`; every worker of every replica subscribes and
forgets its cached answers when a message arrives, so the next request asks the database.

Redis still holds nothing that lasts: the message says only "something was revoked", the
database says what. While a worker is not subscribed (Redis down, restarting, flushed
connections), it keeps answers for :data:`UNSUBSCRIBED_TTL` seconds only, and it forgets
them all when it subscribes again (it may have missed messages meanwhile).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from hatchway.auth.checkcache import DEFAULT_TTL
from hatchway.config.observability import Redis
from hatchway.shared.redis import client

if TYPE_CHECKING:  # imported when ``redis:`` is configured, not by every worker
    import redis

log = logging.getLogger("hatchway.redis")

CHANNEL = "hatchway:revocations"
SUBSCRIBED_TTL = 60.0  # a missed message is impossible while subscribed; a backstop
UNSUBSCRIBED_TTL = DEFAULT_TTL


class RevocationBus:
    """Publish revocations; run ``on_revoked`` in a thread for every one published."""

    def __init__(self, connection: redis.Redis, *, retry: float = 1.0) -> None:
        self._redis = connection
        self._retry = retry
        self._stop = threading.Event()
        self._subscribed = False
        self._thread: threading.Thread | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    def ttl(self) -> float:
        """How long a cached answer may be trusted now."""
        return SUBSCRIBED_TTL if self._subscribed else UNSUBSCRIBED_TTL

    def publish(self, what: str) -> None:
        self._redis.publish(CHANNEL, what)

    def listen(self, on_revoked: Callable[[], None]) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(on_revoked,), name="hatchway-revocations", daemon=True
        )
        self._thread.start()

    def _run(self, on_revoked: Callable[[], None]) -> None:
        import redis  # only workers with ``redis:`` configured get here

        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self._redis.pubsub()
                pubsub.subscribe(CHANNEL)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed = True
                        log.info("revocations: subscribed to redis")
                    on_revoked()  # a revocation, or (on subscribing) maybe missed ones
            except (redis.RedisError, OSError) as exc:
                if self._subscribed:
                    log.warning(
                        "revocations: redis unreachable (%s); cached answers last %.0f s",
                        type(exc).__name__,
                        UNSUBSCRIBED_TTL,
                    )
                self._subscribed = False
                self._stop.wait(self._retry)
            finally:
                self._subscribed = self._subscribed and not self._stop.is_set()
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        pubsub.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Hooked(Protocol):
    revocation_hooks: list[Callable[[str], None]]


def wire(
    config: Redis | None, database: _Hooked, forget: Callable[[], None]
) -> tuple[Callable[[], float], Callable[[], None]]:
    """One worker: its own revocations forget its answers at once; with ``redis:``, they
    are published, and everyone's (this worker's too) make it forget. Returns how long
    answers may be trusted now, and a closer."""
    database.revocation_hooks.append(lambda _what: forget())
    if config is None:
        return (lambda: UNSUBSCRIBED_TTL), lambda: None
    connection = client(config)
    bus = RevocationBus(connection)
    database.revocation_hooks.append(bus.publish)
    bus.listen(forget)

    def close() -> None:
        bus.close()
        connection.close()

    return bus.ttl, close


def announce(config: Redis | None, database: _Hooked) -> Callable[[], None]:
    """A command that revokes (``hatchway token revoke``...) publishes what it commits.
    Returns a closer."""
    if config is None:
        return lambda: None
    connection = client(config)
    database.revocation_hooks.append(RevocationBus(connection).publish)
    return connection.close
