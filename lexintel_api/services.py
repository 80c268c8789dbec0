"""Everything the API process holds open, built and closed by the app's lifespan."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator

from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from lexintel_api.auth import StreamTokens
from lexintel_api.hub import ProgressHub
from lexintel_api.limits import TenantLimits
from lexintel_api.revocation import KeyWatch
from lexintel_core import keys
from lexintel_core.blobs import BlobStore, create_blob_store
from lexintel_core.connections import redis_client, redis_options
from lexintel_core.db import SessionFactory, create_engine, create_session_factory
from lexintel_core.embeddings import Embedder, create_embedder
from lexintel_core.jobs import json_dumps
from lexintel_core.search import SearchService
from lexintel_core.settings import Settings


@dataclasses.dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    redis: Redis
    queue: ArqRedis
    hub: ProgressHub
    blobs: BlobStore
    embedder: Embedder
    search: SearchService
    stream_tokens: StreamTokens
    limits: TenantLimits
    key_watch: KeyWatch


def services_of(connection: HTTPConnection) -> Services:
    """The services of the app that serves `connection` (a request or a WebSocket)."""
    services: Services = connection.app.state.services
    return services


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    async with contextlib.AsyncExitStack() as stack:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        sessions = create_session_factory(engine)
        redis = redis_client(settings)
        stack.push_async_callback(redis.aclose)
        # Built here rather than by arq's create_pool, whose RedisSettings carry no socket
        # timeouts or keepalive. Jobs are enqueued as JSON: workers never unpickle anything.
        queue: ArqRedis = ArqRedis.from_url(settings.redis_url, **redis_options(settings))
        queue.job_serializer = json_dumps
        queue.default_queue_name = keys.QUEUE_NAME
        stack.push_async_callback(queue.aclose)
        await queue.ping()
        hub = ProgressHub.from_settings(settings)
        await hub.start()
        stack.push_async_callback(hub.aclose)
        embedder = create_embedder(settings)
        await embedder.load()
        stack.push_async_callback(embedder.aclose)
        limits = TenantLimits(redis, settings)
        await limits.start()
        stack.push_async_callback(limits.aclose)
        secret = settings.api_secret_key
        yield Services(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            queue=queue,
            hub=hub,
            blobs=create_blob_store(settings, sessions),
            embedder=embedder,
            search=SearchService(sessions, embedder, settings),
            stream_tokens=StreamTokens(
                secret.get_secret_value().encode() if secret else secrets.token_bytes(32),
                settings.api_stream_token_ttl_seconds,
            ),
            limits=limits,
            key_watch=KeyWatch(sessions, settings.api_key_recheck_seconds),
        )
