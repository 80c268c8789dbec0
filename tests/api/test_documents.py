"""Document lifecycle over the API: cancel, reprocess, delete, lists, loaders, SSE streams."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy.exc
from arq.worker import Worker
from httpx_sse import aconnect_sse
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from lexintel_api.cli import app as cli
from lexintel_api.sse import _events
from lexintel_core.db import SessionFactory, create_engine, create_session_factory
from lexintel_core.models import ApiKey, Blob, Document, DocumentChunk
from lexintel_core.progress import ProgressEvent, Stage
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from tests.api.conftest import (
    PROGRESS,
    Api,
    GraphQLFailed,
    Tenant,
    create_case,
    execute,
    running_worker,
    subscribe,
    upload,
)
from tests.jobs.conftest import make_pdf
from tests.tools import require_binary

CANCEL = "mutation($id: UUID!) { cancelDocument(id: $id) { status errorCode } }"
REPROCESS = "mutation($id: UUID!) { reprocessDocument(id: $id) { status } }"
STREAM = "mutation($id: UUID!) { createProgressStream(documentId: $id) { url token expiresAt } }"


async def _counts(sessions: SessionFactory) -> tuple[int, int, int]:
    async with sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Document, DocumentChunk, Blob)
        ]
    return (int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0))


async def _ready(api: Api, key: str, document_id: str) -> dict[str, Any]:
    events = await subscribe(api, key, PROGRESS, id=document_id)
    last: dict[str, Any] = events[-1]["documentProgress"]
    assert last["status"] == "READY"
    return last


async def test_cancel_ends_live_streams_and_reprocess_brings_the_document_back(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, make_pdf(["Deposition"]), "d.pdf")

    watcher = asyncio.create_task(subscribe(api, acme.key, PROGRESS, id=document_id))
    hub = api.services.hub
    async with asyncio.timeout(10):
        while hub.subscriber_count == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    data = await execute(api, acme.key, CANCEL, id=document_id)
    assert data["cancelDocument"] == {"status": "CANCELLED", "errorCode": "cancelled"}
    events = [e["documentProgress"] for e in await asyncio.wait_for(watcher, 10)]
    assert [e["status"] for e in events] == ["QUEUED", "CANCELLED"]

    with pytest.raises(GraphQLFailed) as failure:
        await execute(api, acme.key, CANCEL, id=document_id)
    assert failure.value.code == "ILLEGAL_TRANSITION"

    data = await execute(api, acme.key, REPROCESS, id=document_id)
    assert data["reprocessDocument"] == {"status": "QUEUED"}
    async with running_worker(api_settings):
        last = await _ready(api, acme.key, document_id)
    assert last["seq"] > events[-1]["seq"]


async def test_delete_removes_chunks_and_unshared_blobs(
    api: Api,
    worker: Worker,
    sessions: SessionFactory,
    tenant: Callable[[str], Awaitable[Tenant]],
) -> None:
    acme = await tenant("Acme LLP")
    first_case = await create_case(api, acme.key, "First")
    second_case = await create_case(api, acme.key, "Second")
    pdf = make_pdf(["Shared exhibit"])
    in_first = await upload(api, acme.key, first_case, pdf, "exhibit.pdf")
    in_second = await upload(api, acme.key, second_case, pdf, "exhibit.pdf")
    other = await upload(api, acme.key, second_case, make_pdf(["Other"]), "other.pdf")
    for document_id in (in_first, in_second, other):
        await _ready(api, acme.key, document_id)
    documents, chunks, blobs = await _counts(sessions)
    assert (documents, blobs) == (3, 2)
    assert chunks >= 3

    await execute(api, acme.key, "mutation($id: UUID!) { deleteDocument(id: $id) }", id=in_first)
    assert (await _counts(sessions))[0::2] == (2, 2)  # the blob is still used by in_second
    with pytest.raises(GraphQLFailed) as failure:
        await execute(api, acme.key, CANCEL, id=in_first)
    assert failure.value.code == "NOT_FOUND"

    await execute(api, acme.key, "mutation($id: UUID!) { deleteCase(id: $id) }", id=second_case)
    assert await _counts(sessions) == (0, 0, 0)
    remaining = await execute(api, acme.key, "{ cases { nodes { name documentCount } } }")
    assert remaining["cases"]["nodes"] == [{"name": "First", "documentCount": 0}]


async def test_lists_page_with_cursors_newest_first(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    created = [await create_case(api, acme.key, f"Case {n}") for n in range(5)]
    query = """
    query($after: String) {
      cases(first: 2, after: $after) {
        totalCount
        edges { cursor node { id } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }
    """
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await execute(api, acme.key, query, after=after))["cases"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        info = page["pageInfo"]
        assert page["totalCount"] == 5  # the whole list, on every page
        assert info["hasPreviousPage"] is (after is not None)
        assert (info["startCursor"], info["endCursor"]) == (
            page["edges"][0]["cursor"],
            page["edges"][-1]["cursor"],
        )
        pages += 1
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert pages == 3
    assert seen == created[::-1]
    # Counted with the list's filters: another tenant's cases are not in it.
    other = await tenant("Other LLP")
    await create_case(api, other.key, "Theirs")
    assert (await execute(api, acme.key, query, after=None))["cases"]["totalCount"] == 5
    chunks_and_documents = """
    { documents(first: 1) { totalCount } cases(first: 1) { nodes { documents { totalCount } } } }
    """
    counts = await execute(api, acme.key, chunks_and_documents)
    assert counts["documents"]["totalCount"] == 0
    assert counts["cases"]["nodes"][0]["documents"]["totalCount"] == 0


@contextmanager
def _count_statements(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_lists_batch_their_lookups_instead_of_one_query_per_row(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    query = """
    {
      cases(first: 50) { nodes { name documentCount } }
      documents(first: 50) { nodes { filename chunkCount case { name } progress { seq } } }
    }
    """
    counts: list[int] = []
    for n in (2, 6):
        for i in range(n - len(counts) * 2):
            case_id = await create_case(api, acme.key, f"Case {n}-{i}")
            await upload(api, acme.key, case_id, f"memo {n} {i}".encode(), f"m{n}{i}.txt")
        with _count_statements(api.services.engine.sync_engine) as statements:
            data = await execute(api, acme.key, query)
        assert len(data["documents"]["nodes"]) == len(data["cases"]["nodes"])
        counts.append(len(statements))
    assert counts[0] == counts[1], counts  # 2 rows or 6 rows: the same number of queries


async def test_plain_sse_streams_until_ready_and_resumes_from_last_event_id(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, make_pdf(["Brief"]), "brief.pdf")
    stream = (await execute(api, acme.key, STREAM, id=document_id))["createProgressStream"]
    assert acme.key not in stream["url"]
    # Absolute, as a browser page on another origin needs it.
    assert stream["url"].startswith(f"{api.url}/api/documents/{document_id}/progress?token=")

    received: list[tuple[str, dict[str, Any]]] = []
    async with httpx.AsyncClient(timeout=30) as client:
        async with aconnect_sse(client, "GET", stream["url"]) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            async with running_worker(api_settings):
                async for sse in source.aiter_sse():
                    assert sse.event == "message"  # EventSource.onmessage fires
                    received.append((sse.id, json.loads(sse.data)))
        statuses = [data["status"] for _, data in received]
        assert statuses[0] == "QUEUED"
        assert statuses[-1] == "READY"
        ids = [int(event_id) for event_id, _ in received]
        assert ids == sorted(set(ids))
        assert ids == [data["seq"] for _, data in received]

        # A reconnecting EventSource sends Last-Event-ID: only newer events follow.
        headers = {"Last-Event-ID": str(ids[-2])}
        async with aconnect_sse(client, "GET", stream["url"], headers=headers) as source:
            resumed = [json.loads(sse.data) async for sse in source.aiter_sse()]
        assert [data["seq"] for data in resumed] == [ids[-1]]
        # Resuming after the terminal event: 204 No Content, which stops an EventSource.
        headers = {"Last-Event-ID": str(ids[-1])}
        response = await client.get(stream["url"], headers=headers)
        assert (response.status_code, response.content) == (204, b"")
        # Not ended yet for a stream that missed the terminal event.
        async with aconnect_sse(client, "GET", stream["url"], headers={"Last-Event-ID": "1"}) as s:
            assert [json.loads(sse.data)["status"] async for sse in s.aiter_sse()] == ["READY"]


@pytest.mark.parametrize("position", ["²", "٣", "-1", "1.0", "9" * 19])
async def test_a_resume_position_that_is_not_ascii_digits_is_a_400(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]], position: str
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, b"Plain text notes.", "notes.txt")
    stream = (await execute(api, acme.key, STREAM, id=document_id))["createProgressStream"]
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            httpx.URL(stream["url"]).copy_add_param("lastEventId", position)
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_INPUT"


async def _progress_request(
    api: Api, tenant: Callable[[str], Awaitable[Tenant]]
) -> tuple[str, dict[str, Any]]:
    """A tenant's key and the body of a documentProgress subscription of a READY document."""
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    document_id = await upload(api, acme.key, case_id, b"Plain text notes.", "notes.txt")
    await _ready(api, acme.key, document_id)
    return acme.key, {"query": PROGRESS, "variables": {"id": document_id}}


async def test_graphql_over_sse_subscription(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    key, body = await _progress_request(api, tenant)
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=30) as client,
        aconnect_sse(client, "POST", "/graphql", json=body, headers=headers) as source,
    ):
        messages = [(sse.event, sse.data) async for sse in source.aiter_sse()]
    assert [kind for kind, _ in messages] == ["next", "complete"]
    assert json.loads(messages[0][1])["data"]["documentProgress"]["status"] == "READY"


async def test_a_subscription_over_http_incremental_delivery(
    api: Api, worker: Worker, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    # What GraphiQL and Apollo clients send for a subscription over plain HTTP.
    key, body = await _progress_request(api, tenant)
    accept = 'multipart/mixed;subscriptionSpec="1.0", application/json'
    headers = {"Authorization": f"Bearer {key}", "Accept": accept}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        response = await client.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/mixed")
    parts = [part.partition("\r\n\r\n")[2].strip() for part in response.text.split("--graphql")]
    payloads = [json.loads(part).get("payload") for part in parts if part.startswith("{")]
    statuses = [p["data"]["documentProgress"]["status"] for p in payloads if p]
    assert statuses == ["READY"], response.text


async def test_queue_stats_count_jobs_and_live_workers(
    api: Api, api_settings: Settings, tenant: Callable[[str], Awaitable[Tenant]]
) -> None:
    acme = await tenant("Acme LLP")
    case_id = await create_case(api, acme.key)
    await upload(api, acme.key, case_id, b"Plain text notes.", "notes.txt")
    query = "{ queueStats { queued inProgress workersAlive workersWithOcr } }"
    assert (await execute(api, acme.key, query))["queueStats"] == {
        "queued": 1,
        "inProgress": 0,
        "workersAlive": 0,
        "workersWithOcr": 0,
    }
    require_binary("tesseract")
    no_ocr = api_settings.model_copy(update={"ocr": "off"})
    async with running_worker(api_settings), running_worker(no_ocr):
        async with asyncio.timeout(10):
            while (await execute(api, acme.key, query))["queueStats"]["queued"]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        stats = (await execute(api, acme.key, query))["queueStats"]
        assert (stats["workersAlive"], stats["workersWithOcr"]) == (2, 1)
    assert (await execute(api, acme.key, query))["queueStats"]["workersAlive"] == 0


def test_apikey_create_prints_a_working_key_once(
    settings: Settings,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEXINTEL_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(cli, ["apikey", "create", "--org", "Acme LLP"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("lxk_")

    async def stored() -> ApiKey | None:
        engine = create_engine(settings)  # this test's own loop: the CLI ran asyncio.run
        try:
            async with create_session_factory(engine)() as session:
                return await session.scalar(select(ApiKey))
        finally:
            await engine.dispose()

    row = asyncio.run(stored())
    assert row is not None
    assert key.startswith(row.prefix)
    assert key not in row.secret_hash


def test_apikey_list_and_revoke(
    settings: Settings, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEXINTEL_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    created = runner.invoke(cli, ["apikey", "create", "--org", "Acme LLP", "--name", "ci"])
    key = created.output.strip().splitlines()[-1]
    listed = runner.invoke(cli, ["apikey", "list"])
    assert listed.exit_code == 0, listed.output
    assert key[:12] in listed.output
    assert "Acme LLP" in listed.output
    assert "active" in listed.output
    assert key not in listed.output

    revoked = runner.invoke(cli, ["apikey", "revoke", key[:12]])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in runner.invoke(cli, ["apikey", "list"]).output
    assert runner.invoke(cli, ["apikey", "revoke", key[:12]]).exit_code == 1


async def test_a_plain_sse_stream_that_loses_the_database_ends_for_the_client_to_resume() -> None:
    document_id = uuid.uuid4()
    first = ProgressEvent(
        document_id=document_id, case_id=uuid.uuid4(), seq=3, stage=Stage.EXTRACT,
        status=ProcessingStatus.EXTRACTING, percent=10,
    )  # fmt: skip

    class Overloaded:
        async def events(
            self, document_id: uuid.UUID, *, after_seq: int
        ) -> AsyncIterator[ProgressEvent]:
            yield first
            raise sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached")

    stream = _events(Overloaded(), document_id, 0)  # type: ignore[arg-type]
    # One event, then an ordinary end (no exception): the EventSource reconnects with
    # Last-Event-ID 3 and misses nothing.
    assert [(sse.id, sse.data) async for sse in stream] == [("3", first.to_json())]
