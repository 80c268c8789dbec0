"""Living with database and Redis outages.

Redis clients ride out a restart instead of failing at the first lost connection: arq's
worker loop has no error handling of its own, so a single refused connection while it polls
the queue would end the worker process. They also notice a connection that died silently (a
deadline on connects; the kernel closes a connection that stops acknowledging or answering
keepalive probes) instead of waiting on it forever. `is_connection_failure` tells an outage
(worth a retry, reported as SERVICE_UNAVAILABLE) from a bug.

The retry policies of calls to other services live here: `REDIS_BACKOFF` for every Redis
client (redis-py's command retries and the progress hub's reconnects), the `EMBEDDING_*`
constants for the OpenAI-compatible embedder. Whole jobs are retried after
`settings.retry_delays_seconds`."""

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


# Waits 0.1, 0.2, 0.4, 0.8 s after the first failures, then every 1 s.
REDIS_BACKOFF = ExponentialBackoff(cap=1.0, base=0.05)

# One request to the embedding endpoint: a few quick retries; a longer outage is the
# job-level retry's business.
EMBEDDING_MAX_RETRIES = 3
EMBEDDING_BACKOFF_BASE_SECONDS = 0.5
EMBEDDING_BACKOFF_CAP_SECONDS = 20.0  # Retry-After included


def _wait(retries: int) -> float:
    """Seconds one retry loop sleeps in all before it gives up."""
    return sum(REDIS_BACKOFF.compute(failure) for failure in range(1, retries + 1))


def redis_retry(settings: Settings) -> dict[str, Any]:
    """`retry` and `retry_on_error` for redis-py (and arq's RedisSettings): every command
    reconnects and retries for about `settings.redis_retry_seconds` before it fails."""
    # redis-py runs the same loop twice, nested: each try of a command may reconnect, and
    # the reconnect retries too. So all tries of a command wait about (retries + 2) * wait.
    retries = 0
    while (retries + 2) * _wait(retries) < settings.redis_retry_seconds:
        retries += 1
    return {
        "retry": Retry(REDIS_BACKOFF, retries),
        # OSError: a refused connection while the server restarts (raised before redis-py
        # wraps it in its own ConnectionError).
        "retry_on_error": [
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
        ],
    }


def socket_options(
    *, connect_timeout: float, dead_after: float, keepalive_seconds: int
) -> dict[str, Any]:
    """redis-py connection options that notice a dead peer (a host gone or packets dropped,
    where no reset ever comes): a connect has a deadline, and the kernel closes a connection
    whose sent data stays unacknowledged for `dead_after` seconds (TCP_USER_TIMEOUT) or that
    stops answering keepalive probes, sent after `keepalive_seconds` idle.

    Not redis-py's `socket_timeout`: it sends each command through `asyncio.wait_for`, which
    on Python 3.11 often swallows a cancellation that arrives as the send completes (the task
    goes on as if never cancelled: arq's worker would not stop on SIGTERM, a test's worker
    task would not end). Code that must not wait long on a reply (readiness, the progress
    hub) wraps it in `asyncio.timeout`, which has no such race."""
    options = (
        ("TCP_KEEPIDLE", keepalive_seconds),
        ("TCP_KEEPINTVL", max(1, keepalive_seconds // 3)),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", round(dead_after * 1000)),
    )
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_keepalive": True,
        # Linux names; elsewhere plain keepalive with the system's timings.
        "socket_keepalive_options": {
            getattr(socket, name): value for name, value in options if hasattr(socket, name)
        },
    }


def redis_socket_options(settings: Settings) -> dict[str, Any]:
    """`socket_options` from settings."""
    return socket_options(
        connect_timeout=settings.redis_connect_timeout_seconds,
        dead_after=settings.redis_timeout_seconds,
        keepalive_seconds=settings.redis_keepalive_seconds,
    )


def redis_options(settings: Settings) -> dict[str, Any]:
    """Everything a long-lived redis-py client (or arq pool) of LexIntel is built with: the
    socket options above and the retries through an outage."""
    return {**redis_socket_options(settings), **redis_retry(settings)}


def redis_client(settings: Settings) -> Redis:
    client: Redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    return client
