"""Limits per tenant, through the real API: live subscriptions per organization and per key
over every transport and across API processes, requests per key per second, failed
authentications per client address (X-Forwarded-For only from trusted proxies), and no
organization seeing another's queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from gql import GraphQLRequest
from redis.asyncio import Redis

from lexintel_api import limits
from lexintel_api.auth import Principal
from lexintel_api.limits import TenantLimits
from lexintel_core.db import SessionFactory
from lexintel_core.settings import Settings
from tests.api.conftest import (
    PREFLIGHT,
    PROGRESS,
    WS_PROTOCOLS,
    Api,
    GraphQLFailed,
    Tenant,
    create_case,
    execute,
    serve,
    subscribe,
    upload,
    ws_client,
)

CASES = "{ cases(first: 1) { totalCount } }"
WRONG_KEY = "lxk_" + "x" * 43

TenantMaker = Callable[[str], Awaitable[Tenant]]


async def _live(*apis: Api, count: int) -> None:
    """Until the API processes hold `count` live subscriptions (a subscription holds its
    place in the limits before it joins the hub, and gives it back before it leaves)."""
    async with asyncio.timeout(30):
        while sum(api.services.hub.subscriber_count for api in apis) != count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def _queued_document(api: Api, tenant: Tenant) -> str:
    """A document that stays QUEUED (no worker runs), so its subscriptions stay open."""
    case_id = await create_case(api, tenant.key)
    return await upload(api, tenant.key, case_id, b"Plain text notes.", "notes.txt")


class Streams:
    """Subscriptions held open in the background, over each transport."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.tasks: list[asyncio.Task[Any]] = []

    def websocket(self, key: str, document_id: str) -> None:
        self.tasks.append(asyncio.create_task(subscribe(self.api, key, PROGRESS, id=document_id)))

    def graphql_sse(self, key: str, document_id: str) -> None:
        body = {"query": PROGRESS, "variables": {"id": document_id}}
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        self.tasks.append(asyncio.create_task(self._read("POST", "/graphql", headers, body)))

    def plain_sse(self, key: str, document_id: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        path = f"/api/documents/{document_id}/progress"
        self.tasks.append(asyncio.create_task(self._read("GET", path, headers, None)))

    async def _read(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None
    ) -> None:
        async with (
            httpx.AsyncClient(base_url=self.api.url, timeout=60) as client,
            client.stream(method, path, headers=headers, json=body) as response,
        ):
            assert response.status_code == 200, await response.aread()
            async for _ in response.aiter_bytes():
                pass

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def streams(api: Api) -> AsyncIterator[Streams]:
    held = Streams(api)
    try:
        yield held
    finally:
        await held.close()


async def _refused_subscription(api: Api, key: str, document_id: str) -> str | None:
    with pytest.raises(GraphQLFailed) as failed:
        await asyncio.wait_for(subscribe(api, key, PROGRESS, id=document_id), 10)
    return failed.value.code


async def _plain_sse_status(api: Api, key: str, document_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        return await client.get(
            f"/api/documents/{document_id}/progress", headers={"Authorization": f"Bearer {key}"}
        )


async def test_live_subscriptions_are_capped_per_organization_over_every_transport(
    api_settings: Settings, sessions: SessionFactory, redis: Redis, tenant: TenantMaker
) -> None:
    settings = api_settings.model_copy(update={"api_max_subscriptions_per_organization": 3})
    acme, acme_again, globex = (
        await tenant("Acme LLP"),
        await tenant("Acme LLP"),
        await tenant("Globex"),
    )
    assert acme.organization_id == acme_again.organization_id
    async with serve(settings) as api, streams(api) as held:
        document_id = await _queued_document(api, acme)
        held.websocket(acme.key, document_id)
        held.graphql_sse(acme_again.key, document_id)
        held.plain_sse(acme.key, document_id)
        await _live(api, count=3)

        # Another key of the same organization, over any transport: refused.
        assert await _refused_subscription(api, acme_again.key, document_id) == (
            "TOO_MANY_SUBSCRIPTIONS"
        )
        response = await _plain_sse_status(api, acme_again.key, document_id)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        # Another organization is not affected.
        globex_document = await _queued_document(api, globex)
        held.websocket(globex.key, globex_document)
        await _live(api, count=4)

        # Ending one frees its place.
        held.tasks[0].cancel()
        await _live(api, count=3)
        held.websocket(acme_again.key, document_id)
        await _live(api, count=4)


async def test_live_subscriptions_are_capped_per_key_across_api_processes(
    api_settings: Settings, sessions: SessionFactory, redis: Redis, tenant: TenantMaker
) -> None:
    settings = api_settings.model_copy(
        update={"api_max_subscriptions_per_key": 2, "api_subscription_lease_seconds": 3.0}
    )
    acme, acme_again = await tenant("Acme LLP"), await tenant("Acme LLP")
    async with (
        serve(settings) as first,
        serve(settings) as second,
        streams(first) as held,
        streams(second) as held_second,
    ):
        document_id = await _queued_document(first, acme)
        held.websocket(acme.key, document_id)
        held_second.websocket(acme.key, document_id)
        await _live(first, second, count=2)
        # The key holds one subscription on each process: a third is refused on both.
        for api in (first, second):
            assert await _refused_subscription(api, acme.key, document_id) == (
                "TOO_MANY_SUBSCRIPTIONS"
            )
        # Another key of the organization still may subscribe.
        held.websocket(acme_again.key, document_id)
        await _live(first, second, count=3)

        # A process that stops renewing its leases (as a dead one does) stops counting
        # once they expire, while the subscription it held is still open.
        await second.services.limits.aclose()
        await asyncio.sleep(settings.api_subscription_lease_seconds + 0.5)
        held.websocket(acme.key, document_id)
        await _live(first, second, count=4)
        assert not any(task.done() for task in held.tasks + held_second.tasks)


async def test_requests_over_the_rate_of_a_key_get_429_with_retry_after(
    api_settings: Settings, sessions: SessionFactory, redis: Redis, tenant: TenantMaker
) -> None:
    settings = api_settings.model_copy(update={"api_requests_per_key_per_second": 2})
    acme, globex = await tenant("Acme LLP"), await tenant("Globex")
    async with serve(settings) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as client:

        async def cases(key: str) -> httpx.Response:
            return await client.post(
                "/graphql", json={"query": CASES}, headers={"Authorization": f"Bearer {key}"}
            )

        responses = await asyncio.gather(*(cases(acme.key) for _ in range(20)))
        limited = [response for response in responses if response.status_code == 429]
        assert limited, [response.status_code for response in responses]
        assert all(response.status_code in (200, 429) for response in responses)
        for response in limited:
            assert int(response.headers["retry-after"]) >= 1
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "RATE_LIMITED"
        # Per key: another organization's key is not slowed down by it.
        assert (await cases(globex.key)).status_code == 200
        # After Retry-After, the key works again.
        await asyncio.sleep(int(limited[-1].headers["retry-after"]))
        assert (await cases(acme.key)).status_code == 200

        # Each operation over a WebSocket counts too, refused with the same code.
        await asyncio.sleep(1)
        async with ws_client(api, acme.key) as session:
            codes: list[str | None] = []
            for _ in range(10):
                try:
                    await session.execute(GraphQLRequest(CASES))
                    codes.append(None)
                except Exception as exc:
                    errors = getattr(exc, "errors", None) or [{}]
                    codes.append((errors[0].get("extensions") or {}).get("code"))
        assert "RATE_LIMITED" in codes, codes
        assert set(codes) <= {None, "RATE_LIMITED"}, codes


async def _metric(api: Api, line_start: str) -> float:
    async with httpx.AsyncClient(base_url=api.url) as client:
        text = (await client.get("/metrics")).text
    [line] = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    return float(line.rsplit(" ", 1)[1])


async def test_failed_authentications_are_throttled_per_address_and_counted(
    api_settings: Settings, sessions: SessionFactory, redis: Redis, tenant: TenantMaker
) -> None:
    settings = api_settings.model_copy(update={"api_failed_auth_per_address": 3})
    acme = await tenant("Acme LLP")
    async with serve(settings) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        document_id = await _queued_document(api, acme)

        async def cases(key: str, **headers: str) -> httpx.Response:
            return await client.post(
                "/graphql",
                json={"query": CASES},
                headers={"Authorization": f"Bearer {key}", **headers},
            )

        for _ in range(3):
            with pytest.raises(GraphQLFailed) as failed:
                await execute(api, WRONG_KEY, CASES)
            assert failed.value.code == "UNAUTHENTICATED"
        assert await _metric(api, "lexintel_api_auth_failures_total") == 3

        # The address is throttled: a wrong key, a good one (so a 401 and a 200 cannot tell
        # guesses apart), a forwarded address (no trusted proxy is configured), a WebSocket
        # and a plain SSE stream all get refused until the window ends.
        for response in (
            await cases(WRONG_KEY),
            await cases(acme.key),
            await cases(WRONG_KEY, **{"X-Forwarded-For": "203.0.113.7"}),
        ):
            assert response.status_code == 429, response.text
            assert 1 <= int(response.headers["retry-after"]) <= 60
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "RATE_LIMITED"
        async with websockets.connect(api.ws_url, subprotocols=WS_PROTOCOLS) as ws:
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {acme.key}"}}
            await ws.send(json.dumps(init))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403
        response = await _plain_sse_status(api, acme.key, document_id)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        # Refusals are counted apart from failures.
        assert await _metric(api, "lexintel_api_auth_failures_total") == 3
        assert await _metric(api, 'lexintel_api_limit_refusals_total{limit="auth"}') == 5


async def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
    api_settings: Settings, sessions: SessionFactory, redis: Redis, tenant: TenantMaker
) -> None:
    settings = api_settings.model_copy(
        update={"api_failed_auth_per_address": 2, "api_trusted_proxies": ["127.0.0.1"]}
    )
    async with serve(settings) as api, httpx.AsyncClient(base_url=api.url, timeout=30) as client:

        async def status(forwarded_for: str | None) -> int:
            headers = {"Authorization": f"Bearer {WRONG_KEY}", **PREFLIGHT}
            if forwarded_for is not None:
                headers["X-Forwarded-For"] = forwarded_for
            response = await client.post("/graphql", json={"query": CASES}, headers=headers)
            return response.status_code

        assert [await status("203.0.113.1") for _ in range(3)] == [200, 200, 429]
        # The proxy (127.0.0.1) forwards for other clients: each has its own count.
        assert await status("203.0.113.2") == 200
        assert await status(None) == 200  # the proxy itself


async def test_queue_stats_count_only_the_callers_organization(
    api: Api, tenant: TenantMaker
) -> None:
    acme, globex = await tenant("Acme LLP"), await tenant("Globex")
    await _queued_document(api, acme)
    globex_case = await create_case(api, globex.key)
    for n in range(2):
        await upload(api, globex.key, globex_case, f"Notes {n}.".encode(), f"{n}.txt")
    query = "{ queueStats { queued inProgress workersAlive } }"
    assert (await execute(api, acme.key, query))["queueStats"] == {
        "queued": 1,
        "inProgress": 0,
        "workersAlive": 0,
    }
    assert (await execute(api, globex.key, query))["queueStats"]["queued"] == 2


async def test_renewing_extends_every_live_lease_and_revives_none(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewal sends the leases in batches (one ZADD per set and batch): every lease held,
    across batches, gets the new expiry; a lease released meanwhile stays gone."""
    monkeypatch.setattr(limits, "_RENEW_BATCH", 3)
    tenant_limits = TenantLimits(redis, settings)
    principal = Principal(organization_id=uuid.uuid4(), api_key_id=uuid.uuid4())
    leases = [await tenant_limits.acquire(principal) for _ in range(8)]
    released = leases.pop()
    # Released while a renewal could still name it: only Redis loses it.
    sets = tenant_limits._leases[released]
    for name in sets:
        await redis.zrem(name, released)
    before = time.time()
    await tenant_limits._renew()
    for name in sets:
        scores = dict(await redis.zrange(name, 0, -1, withscores=True))
        assert set(scores) == {lease.encode() for lease in leases}
        assert all(
            score >= before + settings.api_subscription_lease_seconds for score in scores.values()
        )
