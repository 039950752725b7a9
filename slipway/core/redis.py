"""Redis connections. Every key slipway itself writes starts with `slipway:`."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis

from slipway.core.config import Settings, get_settings

KEY_PREFIX = "slipway:"


@lru_cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def get_redis(settings: Settings | None = None) -> redis.Redis:
    """The process-wide Redis client (bytes in and out, as RQ expects)."""
    return _client((settings or get_settings()).redis_url)


def get_async_redis(settings: Settings | None = None) -> aioredis.Redis:
    """A new asyncio client; callers close it."""
    return aioredis.Redis.from_url(
        (settings or get_settings()).redis_url, socket_connect_timeout=5, decode_responses=True
    )


def key(*parts: str) -> str:
    return KEY_PREFIX + ":".join(parts)
