"""Engine and session factories. Nothing connects at import time: callers build these from
settings and own their lifetime (the API lifespan, the worker's on_startup, a CLI command)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from lexintel_core.settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
    )


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
