"""A revoked key stops working within LEXINTEL_API_KEY_RECHECK_SECONDS on connections opened
before the revoke: WebSockets (both protocols), plain SSE, GraphQL over SSE and multipart,
and the stream tokens the key issued. Each test revokes with `lexintel apikey revoke` and
measures the time from the revoke (the row's `revoked_at`) to the cut-off."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner
from websockets.typing import Subprotocol

from lexintel_api.cli import app as cli
from lexintel_api.revocation import KeyWatch
from lexintel_core.db import SessionFactory
from lexintel_core.models import ApiKey, Document
from lexintel_core.settings import Settings
from tests.api.conftest import (
    PREFLIGHT,
    Api,
    Tenant,
    create_case,
    execute,
    serve,
    upload,
)
from tests.api.test_upload_limits import TAIL, BodyMeter, multipart_head
from tests.api.test_upload_limits import headers as upload_headers
from tests.jobs.conftest import make_pdf

RECHECK_SECONDS = 1.0
# Scheduling slack on a loaded machine: the guarantee is RECHECK_SECONDS plus one query.
MARGIN_SECONDS = 2.0
WAIT_SECONDS = RECHECK_SECONDS + MARGIN_SECONDS + 10  # long enough to see today's failure
CASE_PROGRESS = "subscription($id: UUID!) { caseProgress(caseId: $id) { seq } }"
CREATE_CASE = "mutation($name: String!) { createCase(name: $name) { id } }"


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={"api_key_recheck_seconds": RECHECK_SECONDS})


@pytest.fixture
def revoke(
    settings: Settings,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Callable[[str], Awaitable[float]]:
    """Revoke a key with the CLI; returns when it was revoked (Unix time, from the row)."""
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("LEXINTEL_DATABASE_URL", settings.database_url)

    async def run(key: str) -> float:
        # In a thread: the command runs its own event loop (asyncio.run).
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["apikey", "revoke", key[:12]])
        assert result.exit_code == 0, result.output
        async with sessions() as session:
            revoked_at = await session.scalar(
                select(ApiKey.revoked_at).where(ApiKey.prefix == key[:12])
            )
        assert revoked_at is not None
        return revoked_at.timestamp()

    return run


def assert_cut_off_in_time(revoked_at: float) -> None:
    cut_off = time.time() - revoked_at
    print(f"revoke to cut-off: {cut_off:.2f}s")  # shown by `pytest -rP`
    assert cut_off <= RECHECK_SECONDS + MARGIN_SECONDS, f"cut off {cut_off:.2f}s after revoke"


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - polling the hub's counters
            await asyncio.sleep(0.02)


async def _open_socket(api: Api, key: str, protocol: str = "graphql-transport-ws") -> Any:
    ws = await websockets.connect(api.ws_url, subprotocols=[Subprotocol(protocol)])
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {key}"}}
    await ws.send(json.dumps(init))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    return ws


async def _close_code(ws: Any, messages: list[dict[str, Any]] | None = None) -> int | None:
    """The code the server closes the socket with; the messages until then go to `messages`."""
    async with asyncio.timeout(WAIT_SECONDS):
        try:
            while True:
                message = json.loads(await ws.recv())
                if messages is not None:
                    messages.append(message)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def test_a_socket_opened_before_the_revoke_is_closed_with_4403(
    api: Api,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    ws = await _open_socket(api, acme.key)
    async with ws:
        subscribe = {"query": CASE_PROGRESS, "variables": {"id": case_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        await _until(lambda: api.services.hub.subscriber_count == 1)

        revoked_at = await revoke(acme.key)
        assert await _close_code(ws) == 4403
        assert_cut_off_in_time(revoked_at)
    await _until(lambda: api.services.hub.subscriber_count == 0)


async def test_operations_over_an_old_socket_stop_once_the_key_is_revoked(
    api: Api,
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    acme = await tenant("Acme LLP")
    ws = await _open_socket(api, acme.key)
    sent: dict[str, float] = {}
    received: list[dict[str, Any]] = []

    async def send_mutations() -> None:
        for number in range(1_000_000):
            sent[str(number)] = time.time()
            payload = {"query": CREATE_CASE, "variables": {"name": f"Case {number}"}}
            await ws.send(json.dumps({"id": str(number), "type": "subscribe", "payload": payload}))
            await asyncio.sleep(0.05)

    async with ws:
        revoked_at = await revoke(acme.key)
        sender = asyncio.create_task(send_mutations())
        try:
            assert await _close_code(ws, received) == 4403
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    assert_cut_off_in_time(revoked_at)
    succeeded = [sent[m["id"]] for m in received if m["type"] == "next" and m["payload"]["data"]]
    assert all(at - revoked_at <= RECHECK_SECONDS + MARGIN_SECONDS for at in succeeded)


async def test_a_legacy_graphql_ws_socket_is_closed_with_4403(
    api_settings: Settings,
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    async with serve(api_settings.model_copy(update={"api_legacy_graphql_ws": True})) as api:
        acme = await tenant("Acme LLP")
        case_id = await create_case(api, acme.key)
        ws = await _open_socket(api, acme.key, protocol="graphql-ws")
        async with ws:
            start = {"query": CASE_PROGRESS, "variables": {"id": case_id}}
            await ws.send(json.dumps({"id": "1", "type": "start", "payload": start}))
            await _until(lambda: api.services.hub.subscriber_count == 1)

            revoked_at = await revoke(acme.key)
            assert await _close_code(ws) == 4403
            assert_cut_off_in_time(revoked_at)


async def test_a_legacy_socket_cannot_swap_its_key_to_outlive_a_revoke(
    api_settings: Settings,
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    """graphql-ws lets a client send `connection_init` again: with a second key, the
    socket's operations ran as that key while the revocation watch still followed the
    first one, so revoking the second key left its subscriptions streaming."""
    async with serve(api_settings.model_copy(update={"api_legacy_graphql_ws": True})) as api:
        own, stolen = await tenant("Initech"), await tenant("Acme LLP")
        case_id = await create_case(api, stolen.key)
        ws = await websockets.connect(api.ws_url, subprotocols=[Subprotocol("graphql-ws")])
        async with ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                for key in (own.key, stolen.key):
                    init = {
                        "type": "connection_init",
                        "payload": {"authorization": f"Bearer {key}"},
                    }
                    await ws.send(json.dumps(init))
                    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {
                        "type": "connection_ack"
                    }
                start = {"query": CASE_PROGRESS, "variables": {"id": case_id}}
                await ws.send(json.dumps({"id": "1", "type": "start", "payload": start}))
                await _until(lambda: api.services.hub.subscriber_count == 1)
            revoked_at = await revoke(stolen.key)
            assert await _close_code(ws) in (4403, 4429)
            assert_cut_off_in_time(revoked_at)
        await _until(lambda: api.services.hub.subscriber_count == 0)


async def test_an_upload_streaming_in_when_its_key_is_revoked_stores_nothing(
    api_settings: Settings,
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    """An upload is authenticated before its body is read, and a body may take minutes (or,
    trickled, hours): the key is checked again once the body is in."""
    meter = BodyMeter()
    async with serve(api_settings, meter.wrap) as api:
        acme = await tenant("Acme LLP")
        case_id = await create_case(api, acme.key)
        head = multipart_head(case_id, "notes.txt")
        release = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield head + b"Notes, part one."
            await release.wait()
            yield b" Part two." + TAIL

        meter.received = 0
        async with httpx.AsyncClient(base_url=api.url, timeout=WAIT_SECONDS) as client:
            sending = asyncio.create_task(
                client.post("/graphql", content=body(), headers=upload_headers(acme.key))
            )
            async with asyncio.timeout(WAIT_SECONDS):
                while meter.received < len(head):  # noqa: ASYNC110 - the body is being read
                    await asyncio.sleep(0.02)
            await revoke(acme.key)
            await asyncio.sleep(RECHECK_SECONDS)
            release.set()
            response = await sending
    assert response.json()["data"] is None, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Document)) == 0


async def _stream_token(api: Api, key: str) -> tuple[str, str]:
    """The progress path of a new document that stays queued (no worker) and its token."""
    case_id = await create_case(api, key)
    document_id = await upload(api, key, case_id, make_pdf(["A memo."]), "memo.pdf")
    stream = await execute(
        api,
        key,
        "mutation($id: UUID!) { createProgressStream(documentId: $id) { token } }",
        id=document_id,
    )
    return f"/api/documents/{document_id}/progress", stream["createProgressStream"]["token"]


async def test_a_stream_token_is_refused_once_its_key_is_revoked(
    api: Api,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    acme = await tenant("Acme LLP")
    path, token = await _stream_token(api, acme.key)
    revoked_at = await revoke(acme.key)
    async with httpx.AsyncClient(base_url=api.url, timeout=WAIT_SECONDS) as client:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                async with client.stream("GET", path, params={"token": token}) as response:
                    if response.status_code != 200:
                        await response.aread()
                        break
                await asyncio.sleep(0.05)
    assert_cut_off_in_time(revoked_at)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


async def _read_until_end(response: httpx.Response) -> None:
    async for _ in response.aiter_bytes():
        pass


async def test_plain_sse_streams_end_and_the_key_s_stream_tokens_are_refused(
    api: Api,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    acme = await tenant("Acme LLP")
    path, token = await _stream_token(api, acme.key)
    by_key = {"Authorization": f"Bearer {acme.key}"}
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=WAIT_SECONDS) as client,
        client.stream("GET", path, params={"token": token}) as with_token,
        client.stream("GET", path, headers=by_key) as with_key,
    ):
        assert with_token.status_code == with_key.status_code == 200
        await _until(lambda: api.services.hub.subscriber_count == 2)

        revoked_at = await revoke(acme.key)
        async with asyncio.timeout(WAIT_SECONDS):
            await asyncio.gather(_read_until_end(with_token), _read_until_end(with_key))
        assert_cut_off_in_time(revoked_at)

        again = await client.get(path, params={"token": token})
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "UNAUTHENTICATED"
    await _until(lambda: api.services.hub.subscriber_count == 0)


@pytest.mark.parametrize(
    "accept", ["text/event-stream", 'multipart/mixed;subscriptionSpec="1.0",application/json']
)
async def test_graphql_subscriptions_over_http_end(
    api: Api,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
    accept: str,
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    headers = {**PREFLIGHT, "Authorization": f"Bearer {acme.key}", "Accept": accept}
    body = {"query": CASE_PROGRESS, "variables": {"id": case_id}}
    async with (
        httpx.AsyncClient(timeout=WAIT_SECONDS) as client,
        client.stream("POST", api.graphql_url, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        await _until(lambda: api.services.hub.subscriber_count == 1)

        revoked_at = await revoke(acme.key)
        async with asyncio.timeout(WAIT_SECONDS):
            await _read_until_end(response)
        assert_cut_off_in_time(revoked_at)
    await _until(lambda: api.services.hub.subscriber_count == 0)


async def test_sockets_checking_one_key_at_once_share_one_database_read(
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
    revoke: Callable[[str], Awaitable[float]],
) -> None:
    """Thousands of sockets of one key re-check it at about the same moment; each asking
    the database would exhaust its pool (and fail subscriptions waiting for a connection)."""
    acme = await tenant("Acme LLP")
    async with sessions() as session:
        key_id = await session.scalar(
            select(ApiKey.id).where(ApiKey.organization_id == acme.organization_id)
        )
    assert key_id is not None
    key_watch = KeyWatch(sessions, RECHECK_SECONDS)
    engine: AsyncEngine = sessions.kw["bind"]
    reads: list[str] = []

    def count(_: object, __: object, statement: str, *___: object) -> None:
        reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (
            await asyncio.gather(*(key_watch.is_active(key_id) for _ in range(500))) == [True] * 500
        )
        assert len(reads) == 1
        closed: list[int] = []
        for number in range(500):  # one poll of the key for all of them
            key_watch.watch(key_id, functools.partial(closed.append, number))
        await revoke(acme.key)
        async with asyncio.timeout(WAIT_SECONDS):
            while len(closed) < 500:  # noqa: ASYNC110 - waiting on the watch's callbacks
                await asyncio.sleep(0.05)
        assert sorted(closed) == list(range(500))
        assert len(reads) <= 2 + WAIT_SECONDS / key_watch.poll_seconds
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
