"""Abuse limits and bad input: upload size, CSRF, query depth/aliases, types, duplicates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from sqlalchemy import func, select
from websockets.typing import Origin, Subprotocol

from lexintel_core import keys
from lexintel_core.db import SessionFactory
from lexintel_core.models import Blob, Document
from tests.api.conftest import (
    UPLOAD,
    WS_PROTOCOLS,
    Api,
    GraphQLFailed,
    Tenant,
    create_case,
    execute,
    file,
    upload,
)
from tests.jobs.conftest import make_pdf


async def _rows(sessions: SessionFactory) -> tuple[int, int]:
    async with sessions() as session:
        documents = await session.scalar(select(func.count()).select_from(Document))
        blobs = await session.scalar(select(func.count()).select_from(Blob))
    return int(documents or 0), int(blobs or 0)


async def test_an_upload_over_the_limit_fails_and_leaves_nothing(
    api: Api, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    big = b"%PDF-1.7\n" + b"0" * (1024 * 1024)  # 1 MB against the 512 KB limit
    with pytest.raises(GraphQLFailed) as failure:
        await upload(api, acme.key, case_id, big, "big.pdf")
    assert failure.value.code == "FILE_TOO_LARGE"
    assert await _rows(sessions) == (0, 0)


async def test_a_body_over_the_request_cap_is_refused_while_streaming(
    api: Api, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    cap = api.services.settings.max_upload_bytes * api.services.settings.max_upload_files

    async def body() -> object:  # chunked: no Content-Length to refuse up front
        operations = {"query": UPLOAD, "variables": {"caseId": case_id, "file": None}}
        yield (
            b'--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
            + json.dumps(operations).encode()
            + b'\r\n--b\r\nContent-Disposition: form-data; name="map"\r\n\r\n'
            + b'{"0": ["variables.file"]}\r\n--b\r\n'
            + b'Content-Disposition: form-data; name="0"; filename="huge.txt"\r\n\r\n'
        )
        for _ in range(cap // (1024 * 1024) + 3):
            yield b"a" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
        response = await client.post(
            "/graphql",
            content=body(),  # type: ignore[arg-type]
            headers={
                "Authorization": f"Bearer {acme.key}",
                "Content-Type": "multipart/form-data; boundary=b",
                "GraphQL-Require-Preflight": "1",
            },
        )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "FILE_TOO_LARGE"
    assert await _rows(sessions) == (0, 0)


async def test_multipart_without_the_csrf_header_is_refused(
    api: Api, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    operations = {"query": UPLOAD, "variables": {"caseId": case_id, "file": None}}
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.post(
            "/graphql",
            headers={"Authorization": f"Bearer {acme.key}"},
            data={"operations": json.dumps(operations), "map": '{"0": ["variables.file"]}'},
            files={"0": ("notes.txt", b"plain text", "text/plain")},
        )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "CSRF_HEADER_REQUIRED"
    assert await _rows(sessions) == (0, 0)


async def test_queries_deeper_than_the_limit_are_refused(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    deep = "{ cases { edges { node { documents { edges { node { case { documents { edges {"
    deep += " node { case { id } } } } } } } } } } } }"
    with pytest.raises(GraphQLFailed) as failure:
        await execute(api, acme.key, deep)
    assert "nested deeper than 10 levels" in failure.value.errors[0]["message"]
    assert failure.value.code == "GRAPHQL_VALIDATION_FAILED"

    aliases = "{ " + " ".join(f"a{n}: queueStats {{ queued }}" for n in range(20)) + " }"
    with pytest.raises(GraphQLFailed) as failure:
        await execute(api, acme.key, aliases)
    assert "aliases" in failure.value.errors[0]["message"]


async def test_unsupported_and_empty_files_are_refused_with_codes(
    api: Api, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    for content, code in ((png, "UNSUPPORTED_TYPE"), (b"", "INVALID_INPUT")):
        with pytest.raises(GraphQLFailed) as failure:
            await upload(api, acme.key, case_id, content, "scan.png")
        assert failure.value.code == code
    assert await _rows(sessions) == (0, 0)


async def test_the_same_bytes_twice_return_the_existing_document(
    api: Api, redis: Redis, sessions: SessionFactory, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    pdf = make_pdf(["Lease agreement"])
    first = await execute(
        api, acme.key, UPLOAD, upload=True, caseId=case_id, file=file(pdf, "a.pdf")
    )
    again = await execute(
        api, acme.key, UPLOAD, upload=True, caseId=case_id, file=file(pdf, "copy.pdf")
    )
    assert first["uploadDocument"]["duplicate"] is False
    assert again["uploadDocument"] == {
        "duplicate": True,
        "document": first["uploadDocument"]["document"],
    }
    assert await _rows(sessions) == (1, 1)
    assert await redis.zcard(keys.QUEUE_NAME) == 1  # queued once


async def test_unknown_ids_and_bad_arguments_have_stable_codes(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    missing = "00000000-0000-0000-0000-000000000000"
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("mutation($id: UUID!) { cancelDocument(id: $id) { id } }", {"id": missing}, "NOT_FOUND"),
        ('mutation { createCase(name: "  ") { id } }', {}, "INVALID_INPUT"),
        ("{ cases(first: 1000) { edges { cursor } } }", {}, "INVALID_INPUT"),
        ('{ cases(after: "bm90IGEgY3Vyc29y") { edges { cursor } } }', {}, "INVALID_INPUT"),
        ('{ search(query: "   ") { chunkId } }', {}, "INVALID_INPUT"),
        ("query($id: UUID!) { case(id: $id) { id } }", {"id": "nope"}, "GRAPHQL_VALIDATION_FAILED"),
    ]
    for operation, variables, code in cases:
        with pytest.raises(GraphQLFailed) as failure:
            await execute(api, acme.key, operation, **variables)
        assert failure.value.code == code, operation


async def test_websocket_limits(api: Api, tenant: Callable[[str], Awaitable[Tenant]]) -> None:
    acme = await tenant("Acme LLP")
    # The legacy graphql-ws protocol is off unless enabled in settings.
    async with websockets.connect(api.ws_url, subprotocols=[Subprotocol("graphql-ws")]) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4406
    # A cross-site page cannot open a socket (no origins are allowed by default).
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(
            api.ws_url,
            subprotocols=WS_PROTOCOLS,
            origin=Origin("https://evil.example"),
        )
    # A socket that never sends connection_init is closed (4408) after the timeout.
    async with websockets.connect(api.ws_url, subprotocols=WS_PROTOCOLS) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408
    # Too many subscriptions on one connection.
    limit = api.services.settings.api_max_subscriptions_per_connection
    async with websockets.connect(api.ws_url, subprotocols=WS_PROTOCOLS) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {acme.key}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        case_id = await create_case(api, acme.key)
        query = "subscription($c: UUID!) { caseProgress(caseId: $c) { seq } }"
        for n in range(limit + 1):
            message = {"query": query, "variables": {"c": case_id}}
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": message}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["type"] == "error"
    assert reply["id"] == str(limit)
