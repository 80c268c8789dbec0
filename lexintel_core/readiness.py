"""Readiness: can this process reach PostgreSQL and Redis, and is the schema current?

For the API's `/readyz` and `lexintel worker --check`. An orchestrator needs the answer
within its probe's deadline, during an outage most of all, so each dependency is asked once,
all at once, each within `readiness_timeout_seconds`, and never through the retry loops the
long-lived clients ride out outages with: Redis on a connection of its own, without retries.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core import migrate
from lexintel_core.connections import redis_socket_options
from lexintel_core.settings import Settings

OK = "ok"
DATABASE, MIGRATIONS, REDIS, WORKER = "database", "migrations", "redis", "worker"


def is_ready(checks: dict[str, str]) -> bool:
    return all(state == OK for state in checks.values())


async def check(
    settings: Settings, engine: AsyncEngine, *, worker_key: str | None = None
) -> dict[str, str]:
    """{dependency: "ok", or why not}: database, migrations, redis, and (with `worker_key`,
    the key a live worker keeps fresh) worker."""
    deadline = settings.readiness_timeout_seconds
    database, redis = await asyncio.gather(
        _database(settings, engine, deadline), _redis(settings, deadline, worker_key)
    )
    return {**database, **redis}


def _failure(exc: BaseException, deadline: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"unavailable: no answer within {deadline:g} s"
    return f"unavailable: {type(exc).__name__}"


async def _database(settings: Settings, engine: AsyncEngine, deadline: float) -> dict[str, str]:
    try:
        async with asyncio.timeout(deadline):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            current = await migrate.current_revision(engine)
    except Exception as exc:
        return {DATABASE: _failure(exc, deadline), MIGRATIONS: "unknown: no database"}
    if current != migrate.head_revision(settings):
        return {DATABASE: OK, MIGRATIONS: "not at head: run `lexintel db upgrade`"}
    return {DATABASE: OK, MIGRATIONS: OK}


async def _redis(settings: Settings, deadline: float, worker_key: str | None) -> dict[str, str]:
    # A client of its own: no retries, and a fresh connection, not one from a pool that may
    # hold connections that died silently.
    client = Redis.from_url(settings.redis_url, **redis_socket_options(settings))
    try:
        async with asyncio.timeout(deadline):
            await client.ping()
            alive = worker_key is None or bool(await client.exists(worker_key))
    except Exception as exc:
        checks = {REDIS: _failure(exc, deadline)}
        if worker_key is not None:
            checks[WORKER] = "unknown: no Redis"
        return checks
    finally:
        await client.aclose()
    if worker_key is None:
        return {REDIS: OK}
    if not alive:
        return {REDIS: OK, WORKER: f"health check failed: no live worker ({worker_key} unset)"}
    return {REDIS: OK, WORKER: OK}
