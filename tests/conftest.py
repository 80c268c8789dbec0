"""Test harness: real PostgreSQL 18 + pgvector and a real Redis-compatible server.

Both are started once per session (embedded, on free ports) unless
LEXINTEL_TEST_DATABASE_URL / LEXINTEL_TEST_REDIS_URL point at servers to use instead.
Migrations run once; each test that touches the database gets empty tables afterwards,
and each test that touches Redis gets an empty database afterwards.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lexintel_core import migrate
from lexintel_core.db import SessionFactory, create_engine, create_session_factory
from lexintel_core.embedded_servers import EmbeddedPostgres, EmbeddedRedis, free_port
from lexintel_core.models import Base
from lexintel_core.settings import Settings

TEST_DATABASE = "lexintel_test"

# What normalization must keep out of every stored chunk: control characters but tab and
# newline, noncharacters (U+FDD0-U+FDEF, U+xFFFE/U+xFFFF of every plane), lone surrogates.
DIRTY_CHARACTER = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ufdd0-\ufdef\ud800-\udfff"
    + "".join(
        f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
    )
    + "]"
)


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(database URL, Redis URL) of the servers the whole session uses."""
    root = tmp_path_factory.mktemp("servers")
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    database_url = os.environ.get("LEXINTEL_TEST_DATABASE_URL")
    redis_url = os.environ.get("LEXINTEL_TEST_REDIS_URL")
    try:
        if not database_url:
            postgres = EmbeddedPostgres(root / "pg", port=free_port(), durable=False)
            postgres.start()
            postgres.create_database(TEST_DATABASE)
            database_url = postgres.url(TEST_DATABASE)
        if not redis_url:
            redis = EmbeddedRedis(root / "redis", port=free_port(), persist=False)
            redis.start()
            redis_url = redis.url()
        yield database_url, redis_url
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop(mode="immediate")


def make_settings(database_url: str, redis_url: str, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,
        data_dir=data_dir,
    )


@pytest.fixture(scope="session")
def settings(server_urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(*server_urls, tmp_path_factory.mktemp("data"))
    migrate.upgrade(settings)
    return settings


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> AsyncIterator[SessionFactory]:
    """Session factory over the migrated test database; tables are emptied afterwards, once
    no stored chunk is found to carry a control character or a noncharacter."""
    yield create_session_factory(engine)
    async with engine.connect() as connection:
        texts = (await connection.execute(text("SELECT text FROM document_chunks"))).scalars()
        dirty = [chunk for chunk in texts if DIRTY_CHARACTER.search(chunk)]
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    assert not dirty, f"stored chunks with control characters or noncharacters: {dirty[:3]!r}"


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def empty_database_url(settings: Settings) -> AsyncIterator[str]:
    """URL of a new, empty database on the test server; dropped afterwards."""
    name = f"lexintel_{uuid.uuid4().hex[:12]}"
    admin_url = make_url(settings.database_url).set(database="postgres")
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield (
            make_url(settings.database_url).set(database=name).render_as_string(hide_password=False)
        )
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()
