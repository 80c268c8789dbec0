"""A whole stack of real processes for fault injection.

PostgreSQL and Redis are servers of this module alone (so they can be stopped and started on
the same port without disturbing other tests); Redis keeps an append-only file, as it does in
docker/compose.yaml. The API runs under uvicorn in the test's event loop, and the workers are
`arq lexintel_jobs.worker.WorkerSettings` processes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from lexintel_api.auth import create_api_key
from lexintel_core import migrate
from lexintel_core.db import SessionFactory, create_engine, create_session_factory
from lexintel_core.embedded_servers import EmbeddedPostgres, EmbeddedRedis, free_port
from lexintel_core.models import Base
from lexintel_core.settings import Settings
from tests.api.conftest import Api, serve
from tests.workers import Workers

WORKER_SETTINGS = {
    "embedding_provider": "hashing",
    "pdf_engine": "pypdf",
    "worker_concurrency": 2,
    "worker_heartbeat_seconds": 0.5,
    "worker_takeover_seconds": 3.0,
    # No grace: a SIGTERM always catches jobs mid-document and must hand them back.
    "worker_shutdown_grace_seconds": 0.0,
    # Enough tries that a document hit by several injected faults still deserves READY.
    "retry_delays_seconds": [0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0],
    "retry_jitter": 0.0,
    # The safety net for a job lost in a fault (see the Redis restart scenario), kept short.
    "recovery_after_seconds": 5.0,
}


@dataclass
class Servers:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    settings: Settings


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("fault-servers")
    postgres = EmbeddedPostgres(root / "pg", port=free_port(), durable=False)
    redis = EmbeddedRedis(root / "redis", port=free_port(), persist=True)
    try:
        postgres.start()
        postgres.create_database("lexintel")
        redis.start()
        settings = Settings(
            _env_file=None,
            database_url=postgres.url("lexintel"),
            redis_url=redis.url(),
            data_dir=root / "data",
            **WORKER_SETTINGS,  # type: ignore[arg-type]
        )
        migrate.upgrade(settings)
        yield Servers(postgres, redis, settings)
    finally:
        redis.stop()
        postgres.stop(mode="immediate")


@dataclass
class Stack:
    servers: Servers
    api: Api
    key: str
    sessions: SessionFactory
    redis: Redis
    workers: Workers


@pytest.fixture
async def stack(servers: Servers, tmp_path: Path) -> AsyncIterator[Stack]:
    settings = servers.settings
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    redis = Redis.from_url(settings.redis_url)
    async with sessions.begin() as session:
        _, key = await create_api_key(session, "Faulty & Sons LLP")
    env = {name.upper(): value for name, value in WORKER_SETTINGS.items()}
    env["RETRY_DELAYS_SECONDS"] = json.dumps(WORKER_SETTINGS["retry_delays_seconds"])
    workers = Workers(settings, tmp_path, **env)
    try:
        async with serve(settings) as api:
            yield Stack(servers, api, key, sessions, redis, workers)
    finally:
        workers.stop_all()
        servers.redis.start()  # a test that failed half-way may have left it stopped
        servers.postgres.start()
        await redis.flushdb()
        await redis.aclose()
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
        await engine.dispose()
