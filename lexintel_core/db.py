"""Engine and session factories. Nothing connects at import time: callers build these from
settings and own their lifetime (the API lifespan, the worker's on_startup, a CLI command)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from lexintel_core.settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]

# How much longer than the server's statement limit the client waits for an answer.
_CLIENT_GRACE_SECONDS = 10.0


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args=connect_args(settings),
    )


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg connection arguments: server-side TCP keepalive (asyncpg sets no socket
    option of its own; the server's probes are what free a dead client's session and
    locks), statement and idle-transaction limits, and a client-side wait limit."""
    if make_url(settings.database_url).get_driver_name() != "asyncpg":
        return {}
    keepalive = {
        "tcp_keepalives_idle": settings.database_keepalive_idle_seconds,
        "tcp_keepalives_interval": settings.database_keepalive_interval_seconds,
        "tcp_keepalives_count": settings.database_keepalive_count,
    }
    # Unacknowledged data (results sent to a dead client) gives up as soon as keepalive would.
    silent_seconds = (
        settings.database_keepalive_idle_seconds
        + settings.database_keepalive_interval_seconds * settings.database_keepalive_count
    )
    statement_seconds = settings.database_statement_timeout_seconds
    server_settings = {
        **{name: str(value) for name, value in keepalive.items()},
        "tcp_user_timeout": str(silent_seconds * 1000),
        "statement_timeout": str(round(statement_seconds * 1000)),
        "idle_in_transaction_session_timeout": str(
            round(settings.database_idle_in_transaction_timeout_seconds * 1000)
        ),
    }
    args: dict[str, Any] = {"server_settings": server_settings}
    if statement_seconds > 0:
        args["command_timeout"] = statement_seconds + _CLIENT_GRACE_SECONDS
    return args


@contextlib.asynccontextmanager
async def engine_for(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine for a short-lived command (CLI), disposed when the block ends."""
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: objects stay readable after the unit of work commits.
    return async_sessionmaker(engine, expire_on_commit=False)
