"""Uploads bounded while they stream in (issue 16): a file part is cut off as soon as it
passes the per-file limit, its temporary file gone at once; new uploads are refused while
the temp directory is low on space; an organization has at most N uploads in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lexintel_api.uploads import request_cap
from lexintel_core import keys
from lexintel_core.db import SessionFactory
from lexintel_core.models import Document
from lexintel_core.settings import Settings
from tests.api.conftest import UPLOAD, Api, Tenant, create_case, serve

# Above Starlette's 1 MiB in-memory spool, so the file part really goes to the temp disk.
LIMIT = 2 * 1024 * 1024
PIECE = 64 * 1024
# What the server may read past the limit before it stops: one receive buffer (uvicorn
# hands the app what it has read, at most its 64 KiB high-water mark plus one 256 KiB read
# from the socket), rounded up.
ONE_BUFFER = 512 * 1024
TAIL = b"\r\n--b--\r\n"
UPLOAD_MANY = """
mutation($caseId: UUID!, $files: [Upload!]!) {
  uploadDocuments(caseId: $caseId, files: $files) { filename errorCode }
}
"""


class BodyMeter:
    """Counts the request body bytes the server has read from its clients."""

    def __init__(self) -> None:
        self.received = 0

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def counted_app(scope: Scope, receive: Receive, send: Send) -> None:
            async def counted_receive() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    self.received += len(message.get("body", b""))
                return message

            await app(scope, counted_receive, send)

        return counted_app


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp directory the server (in this process) spools file parts to."""
    directory = tmp_path / "spool"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@contextlib.asynccontextmanager
async def served(api_settings: Settings, meter: BodyMeter, **update: Any) -> AsyncIterator[Api]:
    async with serve(api_settings.model_copy(update=update), meter.wrap) as api:
        yield api


def temp_files(directory: Path) -> list[str]:
    """What this process holds in `directory`: named files, and the open descriptors of
    the nameless files a TemporaryFile makes (O_TMPFILE)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{directory}/"):
                held.append(target)
    return held + os.listdir(directory)


def multipart_head(case_id: str, filename: str) -> bytes:
    """Everything of a one-file upload up to the file's bytes (boundary `b`)."""
    operations = {"query": UPLOAD, "variables": {"caseId": case_id, "file": None}}
    return (
        b'--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
        + json.dumps(operations).encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="map"\r\n\r\n'
        + b'{"0": ["variables.file"]}\r\n--b\r\n'
        + f'Content-Disposition: form-data; name="0"; filename="{filename}"\r\n\r\n'.encode()
    )


def headers(key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Content-Type": "multipart/form-data; boundary=b",
        "GraphQL-Require-Preflight": "1",
    }


async def post_upload(api: Api, key: str, case_id: str, content: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
        return await client.post(
            "/graphql",
            content=multipart_head(case_id, "notes.txt") + content + TAIL,
            headers=headers(key),
        )


async def documents(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Document)) or 0)


def code_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


async def test_an_oversize_file_is_cut_off_as_it_streams_and_its_temp_file_is_gone(
    api_settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
    spool: Path,
) -> None:
    meter = BodyMeter()
    async with served(api_settings, meter, max_upload_bytes=LIMIT) as api:
        acme = await tenant("Acme LLP")
        case_id = await create_case(api, acme.key)
        head = multipart_head(case_id, "huge.txt")
        spooled: list[str] = []
        sent = 0

        async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse
            nonlocal sent, spooled
            yield head
            for _ in range(32 * LIMIT // PIECE):  # 64 MiB, far below the request cap
                yield b"a" * PIECE
                sent += PIECE
                if sent == LIMIT - PIECE:  # not over yet: wait until the part is on disk
                    async with asyncio.timeout(30):
                        while not (spooled := temp_files(spool)):  # noqa: ASYNC110
                            await asyncio.sleep(0.02)
            yield TAIL

        meter.received = 0
        async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
            response = await client.post(
                "/graphql",
                content=body(),
                headers=headers(acme.key),
            )
        read_of_part = meter.received - len(head)
        print(f"file bytes read before the cut-off: {read_of_part} (limit {LIMIT})")
        assert response.status_code == 413, response.text
        assert code_of(response) == "FILE_TOO_LARGE"
        assert spooled  # the part was on the temp disk...
        assert temp_files(spool) == []  # ...and is gone with the refusal
        assert LIMIT < read_of_part <= LIMIT + ONE_BUFFER
        assert await documents(sessions) == 0

        # The limit is per file: two files under it, together over it, are accepted.
        operations = {"query": UPLOAD_MANY, "variables": {"caseId": case_id, "files": [None, None]}}
        size = LIMIT * 3 // 5
        async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
            response = await client.post(
                "/graphql",
                headers={"Authorization": f"Bearer {acme.key}", "GraphQL-Require-Preflight": "1"},
                data={
                    "operations": json.dumps(operations),
                    "map": '{"a": ["variables.files.0"], "b": ["variables.files.1"]}',
                },
                files={
                    "a": ("a.txt", b"a" * size, "text/plain"),
                    "b": ("b.txt", b"b" * size, "text/plain"),
                },
            )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["uploadDocuments"] == [
            {"filename": "a.txt", "errorCode": None},
            {"filename": "b.txt", "errorCode": None},
        ]
        assert temp_files(spool) == []


@pytest.mark.parametrize(
    ("extra_part", "status", "code"),
    [
        # Small files stay in memory (Starlette spools a file to disk only past 1 MiB)...
        (b'Content-Disposition: form-data; name="f{n}"; filename="f{n}.txt"', 400, "INVALID_INPUT"),
        # ...and so do fields: each part is under Starlette's 1 MiB per field.
        (b'Content-Disposition: form-data; name="f{n}"', 413, "FILE_TOO_LARGE"),
    ],
)
async def test_a_body_of_many_small_parts_is_cut_off_as_it_streams(
    api_settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
    spool: Path,
    extra_part: bytes,
    status: int,
    code: str,
) -> None:
    """Under the request cap, yet more files than an upload may carry (or more field bytes
    than operations and map need): each would be held in memory until the request ends."""
    meter = BodyMeter()
    async with served(api_settings, meter) as api:
        acme = await tenant("Acme LLP")
        case_id = await create_case(api, acme.key)
        head = multipart_head(case_id, "notes.txt") + b"Notes.\r\n"
        parts = 100
        piece = 64 * 1024
        assert len(head) + parts * piece < request_cap(api_settings)

        async def body() -> AsyncIterator[bytes]:
            yield head
            for n in range(parts):
                yield b"--b\r\n" + extra_part.replace(b"{n}", str(n).encode()) + b"\r\n\r\n"
                yield b"x" * piece + b"\r\n"
            yield b"--b--\r\n"

        meter.received = 0
        async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
            response = await client.post("/graphql", content=body(), headers=headers(acme.key))
        assert response.status_code == status, response.text
        assert code_of(response) == code
        assert meter.received < parts * piece // 2  # cut off while it streamed
        assert temp_files(spool) == []
        assert await documents(sessions) == 0


async def test_uploads_are_refused_while_the_temp_directory_is_low_on_space(
    api_settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
    spool: Path,
) -> None:
    meter = BodyMeter()
    async with served(api_settings, meter, api_min_free_temp_bytes=2**62) as api:
        acme = await tenant("Acme LLP")
        case_id = await create_case(api, acme.key)  # what is not an upload still works
        meter.received = 0
        response = await post_upload(api, acme.key, case_id, b"Plain text notes.")
        assert response.status_code == 503, response.text
        assert code_of(response) == "SERVICE_UNAVAILABLE"
        assert "temporary space" in response.json()["errors"][0]["message"]
        assert int(response.headers["retry-after"]) > 0
        assert meter.received == 0  # refused before a byte of the body was read
        assert await documents(sessions) == 0


async def test_an_organization_has_at_most_n_uploads_in_flight(
    api_settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
    spool: Path,
) -> None:
    meter = BodyMeter()
    async with served(api_settings, meter, api_max_concurrent_uploads_per_org=2) as api:
        acme, globex = await tenant("Acme LLP"), await tenant("Globex")
        acme_case, globex_case = (
            await create_case(api, acme.key),
            await create_case(api, globex.key),
        )
        release = asyncio.Event()

        async def stalled(n: int) -> httpx.Response:
            head = multipart_head(acme_case, f"slow{n}.txt")

            async def body() -> AsyncIterator[bytes]:
                yield head + f"Notes, part one of upload {n}.".encode()
                await release.wait()
                yield b" Part two." + TAIL

            async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
                return await client.post(
                    "/graphql",
                    content=body(),
                    headers=headers(acme.key),
                )

        meter.received = 0
        uploads = [asyncio.create_task(stalled(n)) for n in range(2)]
        try:
            # Both are in flight once the server has read the start of both bodies.
            started = 2 * len(multipart_head(acme_case, "slow0.txt"))
            async with asyncio.timeout(30):
                while meter.received < started:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert await redis.zcard(keys.upload_slots_key(acme.organization_id)) == 2

            refused = await post_upload(api, acme.key, acme_case, b"A third upload.")
            assert refused.status_code == 429, refused.text
            assert code_of(refused) == "RATE_LIMITED"
            assert int(refused.headers["retry-after"]) > 0
            # Another organization is not held back.
            other = await post_upload(api, globex.key, globex_case, b"Globex notes.")
            assert other.status_code == 200, other.text
            assert "errors" not in other.json()
        finally:
            release.set()
            done = await asyncio.gather(*uploads)
        assert [response.status_code for response in done] == [200, 200]
        assert all("errors" not in response.json() for response in done)
        # The slots are given back, and slots a dead API process left (never renewed, so
        # expired) do not count: the next upload goes through.
        slots = keys.upload_slots_key(acme.organization_id)
        assert await redis.zcard(slots) == 0
        await redis.zadd(slots, {"dead-process-1": 0, "dead-process-2": 0})
        again = await post_upload(api, acme.key, acme_case, b"A fourth upload.")
        assert again.status_code == 200, again.text
        assert "errors" not in again.json()
        assert await documents(sessions) == 4


async def test_an_upload_without_a_valid_key_is_refused_before_its_body_is_read(
    api_settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
    spool: Path,
) -> None:
    meter = BodyMeter()
    async with served(api_settings, meter) as api:
        acme = await tenant("Acme LLP")
        case_id = await create_case(api, acme.key)
        meter.received = 0
        response = await post_upload(api, "lxk_not-a-key", case_id, b"Plain text notes.")
        assert response.status_code == 401, response.text
        assert code_of(response) == "UNAUTHENTICATED"
        assert meter.received == 0  # no slot, no temp file for a caller without a key
        assert await documents(sessions) == 0


class _ErrorLog(logging.Handler):
    """The records uvicorn logs at ERROR (an exception the app let out: "Exception in ASGI
    application")."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_client_that_leaves_mid_upload_frees_its_slot_and_is_no_server_error(
    api_settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    tenant: Callable[[str], Awaitable[Tenant]],
    spool: Path,
) -> None:
    errors = _ErrorLog()
    meter = BodyMeter()
    try:
        async with served(api_settings, meter) as api:
            # Once uvicorn has configured its loggers (which drops their handlers).
            logging.getLogger("uvicorn.error").addHandler(errors)
            acme = await tenant("Acme LLP")
            case_id = await create_case(api, acme.key)
            head = multipart_head(case_id, "notes.txt")
            slots = keys.upload_slots_key(acme.organization_id)

            async def body() -> AsyncIterator[bytes]:
                yield head + b"Notes, part one."
                await asyncio.Event().wait()  # the rest never comes

            meter.received = 0
            async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
                sending = asyncio.create_task(
                    client.post("/graphql", content=body(), headers=headers(acme.key))
                )
                async with asyncio.timeout(30):
                    while meter.received < len(head):  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                assert await redis.zcard(slots) == 1
                sending.cancel()  # the client goes away mid-body
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            async with asyncio.timeout(30):
                while await redis.zcard(slots):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert temp_files(spool) == []
            assert await documents(sessions) == 0
        # The server has finished the request (it waits for its connections on exit).
    finally:
        logging.getLogger("uvicorn.error").removeHandler(errors)
    assert [record.getMessage() for record in errors.records] == []
