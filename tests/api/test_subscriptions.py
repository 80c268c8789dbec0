"""Live progress at scale: one Pub/Sub connection per API process, Redis restarts, cleanup."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from gql import GraphQLRequest
from redis.asyncio import Redis
from sqlalchemy import event

from lexintel_core.db import SessionFactory
from lexintel_core.embedded_servers import EmbeddedRedis, free_port
from lexintel_core.models import Base, Case, Document
from lexintel_core.settings import Settings
from tests.api.conftest import (
    PROGRESS,
    Api,
    Tenant,
    create_case,
    running_worker,
    serve,
    subscribe,
    upload,
    ws_client,
)
from tests.jobs.conftest import make_pdf

SUBSCRIBERS = int(__import__("os").environ.get("SUBS", "200"))


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - polling the hub's counters
            await asyncio.sleep(0.02)


async def _pubsub_connections(redis: Redis) -> int:
    clients = await redis.client_list()
    return sum(1 for client in clients if int(client.get("sub", 0)) + int(client.get("psub", 0)))


async def _document(api: Api, tenant: Tenant) -> str:
    case_id = await create_case(api, tenant.key)
    return await upload(api, tenant.key, case_id, make_pdf(["A short memorandum."]), "m.pdf")


async def test_two_hundred_subscribers_share_one_pubsub_connection(
    api: Api,
    api_settings: Settings,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
) -> None:
    acme = await tenant("Acme LLP")
    document_id = await _document(api, acme)
    hub = api.services.hub

    watchers = [
        asyncio.create_task(subscribe(api, acme.key, PROGRESS, id=document_id))
        for _ in range(SUBSCRIBERS)
    ]
    await _until(lambda: hub.subscriber_count == SUBSCRIBERS)
    assert hub.channel_count == 1
    assert await _pubsub_connections(redis) == 1

    async with running_worker(api_settings):
        results = await asyncio.wait_for(asyncio.gather(*watchers), 60)
    for result in results:
        events = [item["documentProgress"] for item in result]
        assert events[-1]["status"] == "READY"
        assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    await _until(lambda: hub.subscriber_count == 0)
    assert hub.channel_count == 0


async def test_disconnecting_subscribers_leaves_the_hub_empty(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    document_id = await _document(api, acme)  # no worker: it stays QUEUED
    hub = api.services.hub

    async def watch_until_cancelled() -> None:
        async with ws_client(api, acme.key) as session:
            request = GraphQLRequest(PROGRESS, variable_values={"id": document_id})
            async for _ in session.subscribe(request):
                pass

    watchers = [asyncio.create_task(watch_until_cancelled()) for _ in range(SUBSCRIBERS)]
    await _until(lambda: hub.subscriber_count == SUBSCRIBERS)
    for watcher in watchers:
        watcher.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    await _until(lambda: hub.subscriber_count == 0 and hub.channel_count == 0)


CASE_PROGRESS = "subscription($id: UUID!) { caseProgress(caseId: $id) { seq status } }"


@pytest.mark.parametrize(("model", "query"), [(Document, PROGRESS), (Case, CASE_PROGRESS)])
async def test_a_live_subscription_keeps_no_database_row(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]], model: type[Base], query: str
) -> None:
    """The document (or case) is read once to check it is the caller's; a subscription
    lives for hours, so it must not keep that row, nor its session, alive."""
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, make_pdf(["A memo."]), "m.pdf")
    loaded: list[weakref.ref[Base]] = []

    def remember(target: Base, _: object) -> None:
        loaded.append(weakref.ref(target))

    event.listen(model, "load", remember)
    try:
        async with ws_client(api, acme.key) as session:
            watched = document_id if model is Document else case_id
            request = GraphQLRequest(query, variable_values={"id": watched})
            events = session.subscribe(request)
            watching = asyncio.create_task(anext(events))
            await _until(lambda: api.services.hub.subscriber_count == 1)
            gc.collect()
            assert loaded  # the subscription did read it
            assert [ref() for ref in loaded if ref() is not None] == []
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    finally:
        event.remove(model, "load", remember)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=True)
    server.start()
    yield server
    server.stop()


async def test_subscribers_get_the_terminal_event_across_a_redis_restart(
    api_settings: Settings,
    own_redis: EmbeddedRedis,
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
) -> None:
    settings = api_settings.model_copy(update={"redis_url": own_redis.url()})
    acme = await tenant("Acme LLP")
    async with serve(settings) as api:
        document_id = await _document(api, acme)
        hub = api.services.hub
        watchers = [
            asyncio.create_task(subscribe(api, acme.key, PROGRESS, id=document_id))
            for _ in range(20)
        ]
        await _until(lambda: hub.subscriber_count == 20)
        reconnects = hub.reconnects

        own_redis.stop()
        own_redis.start()  # same port; the queued job survives in the append-only file
        await _until(lambda: hub.reconnects > reconnects)

        async with running_worker(settings):
            results = await asyncio.wait_for(asyncio.gather(*watchers), 60)
    for result in results:
        assert result[-1]["documentProgress"]["status"] == "READY"
