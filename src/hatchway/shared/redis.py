"""Redis (``redis:`` in config.yml) for what every replica shares and may lose.

Redis is never the source of truth here (zot lost blob links when its Redis was
redeployed): it holds login throttle counters and nothing else, so ``FLUSHALL`` costs
at most a restarted count. Images, accounts, tokens and revocations stay in storage and
the database (a pub/sub channel, which stores nothing, tells the replicas of
revocations: ``shared/revocations.py``).

:class:`RedisAttemptStore` is :class:`~hatchway.metadata.attempts.LoginAttemptStore`'s
twin: every change is one Lua script, which Redis runs atomically, so two replicas never
both read a count and write it back. Keys expire on their own (``prune`` has little to
do): a counter once its window and block are over, a "known address" mark after
``retain`` seconds. :class:`FallbackAttemptStore` uses the database's counters while
Redis cannot be reached, so throttling never stops with Redis (and ``/readyz`` says so).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hatchway.config.observability import Redis, split_host_port
from hatchway.metadata.attempts import Counter, Reservation, Rule

if TYPE_CHECKING:  # imported when ``redis:`` is configured, not by every worker
    import redis

log = logging.getLogger("hatchway.redis")

PREFIX = "hatchway:attempt:"
BLOCKED = "hatchway:attempts:blocked"  # sorted set: key -> blocked_until
RETAIN = 30 * 86400.0

# Shared by the scripts: the delay a count of failures earns (attempts.Rule.delay).
_DELAY = """
local function delay(failures, threshold, base, maxd, lockout)
  local over = failures - threshold
  if over < 0 then return 0 end
  local d = base * 2 ^ math.min(over, 64)
  if d > maxd then
    if lockout >= 0 then return lockout end
    return maxd
  end
  return d
end
local function fmt(x) return string.format('%.6f', x) end
local function num(v, default)
  if v == false or v == nil then return default end
  return tonumber(v)
end
local function expire(key, now, window, retain)
  local f = redis.call('HMGET', key, 'blocked_until', 'last_success')
  local keep = window + math.max(0, num(f[1], 0) - now)
  local success = num(f[2], -1)
  if success >= 0 then keep = math.max(keep, success + retain - now) end
  redis.call('EXPIRE', key, math.max(1, math.ceil(keep)))
end
"""

# KEYS: the counters' hashes, sorted; KEYS[#KEYS]: the blocked set.
# ARGV: now, gate, retain, then per key: name, threshold, window, base, max, lockout.
_RESERVE = (
    _DELAY
    + """
local now, gate, retain = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local n = #KEYS - 1
local rows, blocked = {}, {}
for i = 1, n do
  local a = 3 + (i - 1) * 6
  local f = redis.call('HMGET', KEYS[i], 'failures', 'last_failure', 'blocked_until',
                       'last_success')
  local failures, last, blk = num(f[1], 0), num(f[2], 0), num(f[3], 0)
  local window = tonumber(ARGV[a + 3])
  if last < now - window and blk <= now then failures = 1 else failures = failures + 1 end
  if blk > now then table.insert(blocked, {ARGV[a + 1], fmt(blk)}) end
  local d = delay(failures, tonumber(ARGV[a + 2]), tonumber(ARGV[a + 4]),
                  tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]))
  local new_until = blk
  if d > 0 and now + d > blk then new_until = now + d end
  rows[i] = {failures, new_until, f[4] or '', window}
end
if gate and #blocked > 0 then return {0, blocked} end
local out = {}
for i = 1, n do
  local r = rows[i]
  redis.call('HSET', KEYS[i], 'failures', r[1], 'last_failure', fmt(now),
             'blocked_until', fmt(r[2]))
  if r[2] > now then redis.call('ZADD', KEYS[#KEYS], r[2], ARGV[3 + (i - 1) * 6 + 1]) end
  expire(KEYS[i], now, r[4], retain)
  table.insert(out, {ARGV[3 + (i - 1) * 6 + 1], r[1], fmt(now), fmt(r[2]), r[3]})
end
return {1, out}
"""
)

# KEYS: the succeeding key, then the released keys, then the blocked set.
# ARGV: now, retain, name of the succeeding key, then per released key: name, threshold.
_SUCCEED = (
    _DELAY
    + """
local now, retain = tonumber(ARGV[1]), tonumber(ARGV[2])
local set = KEYS[#KEYS]
redis.call('HSET', KEYS[1], 'failures', 0, 'blocked_until', '0', 'last_success',
           fmt(now))
redis.call('HSETNX', KEYS[1], 'last_failure', '0')
redis.call('ZREM', set, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(retain)))
for i = 2, #KEYS - 1 do
  local a = 4 + (i - 2) * 2
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local failures = num(redis.call('HGET', KEYS[i], 'failures'), 0)
    if failures - 1 < tonumber(ARGV[a + 1]) then
      redis.call('HSET', KEYS[i], 'blocked_until', '0')
      redis.call('ZREM', set, ARGV[a])
    end
    redis.call('HSET', KEYS[i], 'failures', math.max(failures - 1, 0))
  end
end
return 1
"""
)

# KEYS: the counters' hashes, then the blocked set. ARGV: now, then per key: name, blk.
_BLOCK = """
local function fmt(x) return string.format('%.6f', x) end
local now = tonumber(ARGV[1])
for i = 1, #KEYS - 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local current = tonumber(redis.call('HGET', KEYS[i], 'blocked_until') or '0')
    local blk = tonumber(ARGV[(i - 1) * 2 + 3])
    if current < blk then
      redis.call('HSET', KEYS[i], 'blocked_until', fmt(blk))
      redis.call('ZADD', KEYS[#KEYS], blk, ARGV[(i - 1) * 2 + 2])
      local need = math.ceil(blk - now) + 3600
      local ttl = redis.call('TTL', KEYS[i])
      if ttl >= 0 and ttl < need then redis.call('EXPIRE', KEYS[i], need) end
    end
  end
end
return 1
"""


def client(config: Redis) -> redis.Redis:
    """A pooled client for the ``redis:`` section (connects on first use)."""
    import redis  # only where redis: is configured (worker memory)

    host, port = split_host_port(config.addr)
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "db": config.db,
        "username": config.username,
        "password": config.password,
        "socket_connect_timeout": config.dialtimeout,
        "socket_timeout": max(config.readtimeout, config.writetimeout),
        "max_connections": config.pool.maxactive,
        "health_check_interval": 30,
    }
    if config.tls.enabled:
        kwargs["ssl"] = True
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        if config.tls.cafile:
            kwargs["ssl_ca_certs"] = config.tls.cafile
    return redis.Redis(**kwargs)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any, default: float = 0.0) -> float:
    if value is None or value in (b"", ""):
        return default
    return float(_text(value))


def _counter(key: str, fields: dict[Any, Any]) -> Counter:
    get = {_text(k): v for k, v in fields.items()}.get
    success = get("last_success")
    return Counter(
        key,
        int(_float(get("failures"))),
        _float(get("last_failure")),
        _float(get("blocked_until")),
        _float(success) if success not in (None, b"", "") else None,
    )


def _lockout(rule: Rule) -> float:
    return -1.0 if rule.lockout is None else rule.lockout


class RedisAttemptStore:
    """Login attempt counters in Redis (the :class:`AttemptStore` Protocol)."""

    def __init__(self, connection: redis.Redis, *, retain: float = RETAIN) -> None:
        self._redis = connection
        self._retain = retain
        self._reserve = connection.register_script(_RESERVE)
        self._succeed = connection.register_script(_SUCCEED)
        self._block = connection.register_script(_BLOCK)

    def reserve(
        self, keys: Sequence[tuple[str, Rule]], now: float, *, gate: bool = True
    ) -> Reservation:
        ordered = sorted(keys, key=lambda k: k[0])
        args: list[Any] = [repr(now), "1" if gate else "0", repr(self._retain)]
        for key, rule in ordered:
            args += [
                key,
                rule.threshold,
                repr(rule.window),
                repr(rule.base_delay),
                repr(rule.max_delay),
                repr(_lockout(rule)),
            ]
        names = [PREFIX + key for key, _ in ordered]
        counted, rows = self._reserve(keys=[*names, BLOCKED], args=args)
        if int(counted) == 0:
            blocked = tuple(Counter(_text(k), blocked_until=_float(u)) for k, u in rows)
            return Reservation(max(c.blocked_until for c in blocked) - now, blocked)
        counters = tuple(
            Counter(
                _text(key),
                int(failures),
                _float(last),
                _float(until),
                _float(success) if success not in (b"", "") else None,
            )
            for key, failures, last, until, success in rows
        )
        return Reservation(None, counters)

    def succeed(self, key: str, release: Sequence[tuple[str, Rule]], now: float) -> None:
        args: list[Any] = [repr(now), repr(self._retain), key]
        for other, rule in release:
            args += [other, rule.threshold]
        names = [PREFIX + key, *(PREFIX + other for other, _ in release), BLOCKED]
        self._succeed(keys=names, args=args)

    def block(self, until: Sequence[tuple[str, float]]) -> None:
        ordered = sorted(until)
        args: list[Any] = [repr(time.time())]
        for key, blocked_until in ordered:
            args += [key, repr(blocked_until)]
        self._block(keys=[*(PREFIX + key for key, _ in ordered), BLOCKED], args=args)

    def get(self, keys: Sequence[str]) -> dict[str, Counter]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(PREFIX + key)
        found = {}
        for key, fields in zip(keys, pipe.execute(), strict=True):
            if fields:
                found[key] = _counter(key, fields)
        return found

    def blocked(self, now: float) -> list[Counter]:
        """Every key blocked at ``now`` (few: the ones under attack)."""
        members: Any = self._redis.zrangebyscore(BLOCKED, f"({now!r}", "+inf", withscores=True)
        return [Counter(_text(member), blocked_until=float(score)) for member, score in members]

    def prune(self, now: float, *, window: float, known_for: float) -> int:
        """Counters expire on their own; only the blocked set needs its past cut."""
        return int(self._redis.zremrangebyscore(BLOCKED, "-inf", repr(now)))

    def ping(self) -> None:
        self._redis.ping()


class FallbackAttemptStore:
    """Redis while it answers, the database's counters while it does not: Redis holds
    only what may be lost, so losing it must not stop throttling (nor logins)."""

    def __init__(self, primary: RedisAttemptStore, fallback: Any, *, retry: float = 5.0) -> None:
        self._primary = primary
        self._fallback = fallback
        self._retry = retry
        self._down_until = 0.0

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        import redis  # loaded already: a client exists

        now = time.monotonic()
        if now >= self._down_until:
            try:
                return getattr(self._primary, name)(*args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning(
                    "redis unreachable (%s); login throttling uses the database for %.0f s",
                    type(exc).__name__,
                    self._retry,
                )
                self._down_until = now + self._retry
        return getattr(self._fallback, name)(*args, **kwargs)

    def reserve(
        self, keys: Sequence[tuple[str, Rule]], now: float, *, gate: bool = True
    ) -> Reservation:
        result: Reservation = self._call("reserve", keys, now, gate=gate)
        return result

    def succeed(self, key: str, release: Sequence[tuple[str, Rule]], now: float) -> None:
        self._call("succeed", key, release, now)

    def block(self, until: Sequence[tuple[str, float]]) -> None:
        self._call("block", until)

    def get(self, keys: Sequence[str]) -> dict[str, Counter]:
        result: dict[str, Counter] = self._call("get", keys)
        return result

    def blocked(self, now: float) -> list[Counter]:
        result: list[Counter] = self._call("blocked", now)
        return result

    def prune(self, now: float, *, window: float, known_for: float) -> int:
        result: int = self._call("prune", now, window=window, known_for=known_for)
        return result


def attempt_store(config: Redis | None, database: Any) -> tuple[Any, Callable[[], None]]:
    """The throttle's counter store: ``database`` (the SQL one) without ``redis:``; with
    it, Redis, falling back to ``database`` while Redis is down. And its closer."""
    if config is None:
        return database, lambda: None
    connection = client(config)
    store = FallbackAttemptStore(RedisAttemptStore(connection), database)
    return store, connection.close
