"""Redis connections. Every key slipway itself writes starts with `slipway:`."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis

from slipway.core.config import Settings, get_settings

KEY_PREFIX = "slipway:"
# A Redis that accepts connections and never answers (stalled, or cut off without a reset) fails a
# command after this long instead of holding its caller for good. A worker's RQ connection is the
# same client: RQ raises its timeout above its own blocking dequeue (worker_ttl - 5 s).
TIMEOUT = 5.0


@lru_cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT, health_check_interval=30
    )


def get_redis(settings: Settings | None = None) -> redis.Redis:
    """The process-wide Redis client (bytes in and out, as RQ expects)."""
    return _client((settings or get_settings()).redis_url)


def get_async_redis(settings: Settings | None = None) -> aioredis.Redis:
    """A new asyncio client; callers close it."""
    return aioredis.Redis.from_url(
        (settings or get_settings()).redis_url,
        socket_connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        decode_responses=True,
    )


def key(*parts: str) -> str:
    return KEY_PREFIX + ":".join(parts)
