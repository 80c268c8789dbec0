"""Redis clients ride out a restart; connection failures are told apart from bugs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy.exc
from redis.exceptions import ConnectionError
from sqlalchemy.exc import DBAPIError

from lexintel_core.connections import is_connection_failure, redis_client
from lexintel_core.embedded_servers import EmbeddedRedis, free_port
from lexintel_core.settings import Settings


async def test_a_command_waits_for_a_restarting_redis_then_gives_up(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, port=free_port(), persist=True)
    server.start()
    client = redis_client(Settings(_env_file=None, redis_url=server.url(), redis_retry_seconds=5))
    try:
        await client.set("key", "kept")
        server.stop()
        restart = asyncio.create_task(asyncio.sleep(1.5))
        restart.add_done_callback(lambda _: server.start())
        started = time.monotonic()
        assert await client.get("key") == b"kept"  # waited through the restart
        assert time.monotonic() - started >= 1.5
        await restart

        server.stop()
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            await client.get("key")
        assert 3 < time.monotonic() - started < 20
    finally:
        await client.aclose()
        server.stop()


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise DBAPIError("SELECT 1", None, inner) from inner
    except DBAPIError as outer:
        return outer


def test_connection_failures_are_recognised_through_wrapping() -> None:
    assert is_connection_failure(ConnectionRefusedError(111, "refused"))
    assert is_connection_failure(_raised_from(asyncpg.exceptions.CannotConnectNowError("x")))
    assert is_connection_failure(_raised_from(ConnectionError("lost")))
    assert is_connection_failure(sqlalchemy.exc.TimeoutError("QueuePool limit reached"))
    assert not is_connection_failure(_raised_from(ValueError("a bug")))
    assert not is_connection_failure(KeyError("a bug"))
    assert not is_connection_failure(FileNotFoundError("a missing blob is no outage"))
    assert not is_connection_failure(None)
