"""lexintel_api.websocket: uvicorn's WebSocket protocol without the handshake and queue it keeps
per connection (docs/BENCHMARKS.md, memory per subscriber)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from gql import GraphQLRequest
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from lexintel_api.websocket import Inbox, WebSocketProtocol
from lexintel_core.db import SessionFactory
from lexintel_core.settings import Settings
from tests.api.conftest import PROGRESS, Tenant, create_case, serve, upload, ws_client
from tests.jobs.conftest import make_pdf


def _event(number: int) -> Any:
    return {"type": "websocket.receive", "text": str(number)}


async def test_the_inbox_hands_messages_out_in_order() -> None:
    inbox = Inbox()
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(_event(1))
    inbox.put_nowait(_event(2))
    assert await reader == _event(1)
    assert not inbox.empty()
    assert await inbox.get() == _event(2)
    assert inbox.empty()


async def test_a_reader_cancelled_after_being_woken_passes_the_message_on() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(_event(1))  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == _event(1)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert inbox.empty()


async def test_a_cancelled_reader_leaves_no_waiter_behind() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait(_event(1))
    assert await inbox.get() == _event(1)


async def test_a_live_subscription_socket_keeps_no_handshake(
    api_settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
) -> None:
    """Through uvicorn as the shipped commands run it (`--ws lexintel_api.websocket:...`): a
    subscription works, and its connection holds neither the handshake's request and
    response nor an asyncio.Queue."""
    protocols: list[Any] = []

    def record(app: ASGIApp) -> ASGIApp:
        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "websocket":
                protocols.append(getattr(receive, "__self__", None))
            await app(scope, receive, send)

        return recording

    acme = await tenant("Acme LLP")
    async with serve(api_settings, wrap=record) as api:
        case_id = await create_case(api, acme.key)
        document_id = await upload(api, acme.key, case_id, make_pdf(["A memo."]), "m.pdf")
        async with ws_client(api, acme.key) as session:
            events = session.subscribe(
                GraphQLRequest(PROGRESS, variable_values={"id": document_id})
            )
            first = await asyncio.wait_for(anext(events), 10)
            assert first["documentProgress"]["status"] == "QUEUED"
            (protocol,) = protocols
            assert isinstance(protocol, WebSocketProtocol)
            assert protocol.handshake_complete
            assert not hasattr(protocol, "request")
            assert not hasattr(protocol, "response")
            assert isinstance(protocol.queue, Inbox)
            await events.aclose()
