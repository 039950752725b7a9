"""A PostgreSQL host that accepts connections and never answers fails the check in bounded time
(libpq alone would wait as long as TCP lets it), and says which part failed."""

from __future__ import annotations

import time

from slipway.core.config import Settings
from slipway.core.db import PG_CONNECT_TIMEOUT, get_engine, session_factory
from slipway.system.service import check_database


def timed_check(tmp_path, database_url: str) -> tuple[bool, str, float]:
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    started = time.monotonic()
    try:
        with session_factory(settings)() as session:
            result = check_database(session, settings)
    finally:
        get_engine(settings).dispose()
    return result.ok, result.message, time.monotonic() - started


def test_a_database_that_never_answers_fails_the_check_after_the_connect_timeout(
    silent_server, tmp_path
):
    url = f"postgresql+psycopg://slipway@127.0.0.1:{silent_server}/slipway"
    ok, message, took = timed_check(tmp_path, url)

    assert not ok and message.startswith("database does not answer"), message
    # pool_pre_ping may try once more; either way bounded, not TCP's minutes
    assert PG_CONNECT_TIMEOUT - 1 <= took < 3 * PG_CONNECT_TIMEOUT, took


def test_a_connect_timeout_in_the_url_wins(silent_server, tmp_path):
    url = f"postgresql+psycopg://slipway@127.0.0.1:{silent_server}/slipway?connect_timeout=2"
    ok, message, took = timed_check(tmp_path, url)

    assert not ok and message.startswith("database does not answer"), message
    assert 1 <= took < 7, took
