"""Living with database and Redis outages.

Redis clients ride out a restart instead of failing at the first lost connection: arq's
worker loop has no error handling of its own, so a single refused connection while it polls
the queue would end the worker process. `is_connection_failure` tells an outage (worth a
retry, reported as SERVICE_UNAVAILABLE) from a bug."""

from __future__ import annotations

import socket
from typing import Any

import asyncpg
import redis.exceptions
import sqlalchemy.exc
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from lexintel_core.settings import Settings

UNAVAILABLE_MESSAGE = "The database or Redis is unreachable or busy; try again shortly"
# A lost or refused connection, an unknown host, a server shutting down or restarting, or
# every pooled database connection busy for the pool timeout (a burst beyond the pool).
_UNAVAILABLE = (
    ConnectionError,  # the built-in one: refused, reset, aborted, broken pipe
    socket.gaierror,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    sqlalchemy.exc.TimeoutError,
)


def is_connection_failure(error: BaseException | None) -> bool:
    """Whether `error` or an exception it was raised from is a connection failure."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _UNAVAILABLE):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


_BACKOFF_CAP_SECONDS = 1.0
_BACKOFF_BASE_SECONDS = 0.05


def _wait(retries: int) -> float:
    """Seconds one retry loop sleeps in all before it gives up."""
    backoff = ExponentialBackoff(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS)
    return sum(backoff.compute(failure) for failure in range(1, retries + 1))


def redis_retry(settings: Settings) -> dict[str, Any]:
    """`retry` and `retry_on_error` for redis-py (and arq's RedisSettings): every command
    reconnects and retries for about `settings.redis_retry_seconds` before it fails."""
    # redis-py runs the same loop twice, nested: each try of a command may reconnect, and
    # the reconnect retries too. So all tries of a command wait about (retries + 2) * wait.
    retries = 0
    while (retries + 2) * _wait(retries) < settings.redis_retry_seconds:
        retries += 1
    return {
        "retry": Retry(ExponentialBackoff(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS), retries),
        # OSError: a refused connection while the server restarts (raised before redis-py
        # wraps it in its own ConnectionError).
        "retry_on_error": [
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
        ],
    }


def redis_client(settings: Settings) -> Redis:
    client: Redis = Redis.from_url(settings.redis_url, **redis_retry(settings))
    return client
