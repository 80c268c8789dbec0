"""Faults while 3 worker processes handle 30 documents uploaded through the API.

Each scenario ends the same way: every document READY with exactly one set of chunks, no job
left in the queue, and every subscriber (one graphql-transport-ws subscription per document,
open from upload to the end) saw the terminal event.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from gql import GraphQLRequest
from sqlalchemy import func, select

from lexintel_core import keys
from lexintel_core.models import Document, DocumentChunk
from lexintel_core.status import ProcessingStatus
from tests.api.conftest import (
    PROGRESS,
    create_case,
    execute,
    upload,
    ws_client,
)
from tests.faults.conftest import Stack
from tests.jobs.conftest import make_pdf

S = ProcessingStatus
DOCUMENTS = 30
PAGES = 40
WORKERS = 3
LINE = "The Licensee shall indemnify the Licensor against all claims arising from use."

Fault = Callable[[Stack], Awaitable[None]]


def _document(number: int) -> bytes:
    # Same shape for every document (so the same number of chunks), different bytes.
    return make_pdf(
        [f"Agreement {number:03d}, page {page}\n" + "\n".join([LINE] * 40) for page in range(PAGES)]
    )


async def _status_counts(stack: Stack) -> dict[S, int]:
    async with stack.sessions() as session:
        counts = select(Document.status, func.count()).group_by(Document.status)
        return {row[0]: row[1] for row in await session.execute(counts)}


async def _until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _ready_count(stack: Stack) -> int:
    return (await _status_counts(stack)).get(S.READY, 0)


async def _some_ready(stack: Stack, count: int = 3) -> None:
    """Until `count` documents are READY: the run is well under way, with more to do."""

    async def ready() -> bool:
        return await _ready_count(stack) >= count

    await _until(ready, 120, f"{count} READY documents")
    assert await _ready_count(stack) < DOCUMENTS - 5, "the fault would come too late"


async def _some_running(stack: Stack) -> bool:
    """Whether a job is under way (a document neither QUEUED nor finished): on a quick
    machine the workers can finish their documents together, and a shutdown that lands
    then finds nothing to hand back."""
    counts = await _status_counts(stack)
    return any(status is not S.QUEUED and not status.is_terminal for status in counts)


async def _queue_drained(stack: Stack) -> bool:
    in_progress = [key async for key in stack.redis.scan_iter("arq:in-progress:*")]
    return await stack.redis.zcard(keys.QUEUE_NAME) == 0 and not in_progress


async def _watch(stack: Stack, document_id: str, events: list[dict[str, Any]]) -> None:
    """Collect every event of one document's subscription until it completes."""
    async with ws_client(stack.api, stack.key) as session:
        request = GraphQLRequest(PROGRESS, variable_values={"id": document_id})
        async for result in session.subscribe(request):
            events.append(result["documentProgress"])


async def _all_started(streams: list[list[dict[str, Any]]]) -> bool:
    return all(streams)


async def run_scenario(stack: Stack, fault: Fault) -> list[Document]:
    """Upload the documents with subscribers watching, inject the fault, check the ending;
    returns the documents as stored."""
    case_id = await create_case(stack.api, stack.key, "Fault injection")
    ids: list[str] = []
    watchers: list[asyncio.Task[None]] = []
    streams: list[list[dict[str, Any]]] = []
    for number in range(DOCUMENTS):
        document_id = await upload(
            stack.api, stack.key, case_id, _document(number), f"agreement-{number:03d}.pdf"
        )
        ids.append(document_id)
        streams.append([])
        watchers.append(asyncio.create_task(_watch(stack, document_id, streams[-1])))
    try:
        # Every subscriber is watching before the fault.
        await _until(lambda: _all_started(streams), 60, "every subscriber's first event")
        for _ in range(WORKERS):
            stack.workers.start()
        await fault(stack)
        _, pending = await asyncio.wait(watchers, timeout=120)
        if pending:
            watching = zip(ids, streams, watchers, strict=True)
            unfinished = {i: events for i, events, w in watching if w in pending}
            raise AssertionError(
                f"{await _status_counts(stack)}\nunfinished: {unfinished}\n"
                f"{stack.workers.logs()[-6000:]}"
            )
        for watcher in watchers:
            watcher.result()
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    for document_id, events in zip(ids, streams, strict=True):
        assert events[-1]["status"] == "READY", (document_id, events[-1])
        seqs = [event["seq"] for event in events]
        assert seqs == sorted(set(seqs)), seqs

    async with stack.sessions() as session:
        documents = list((await session.scalars(select(Document))).all())
        ordinals = (
            await session.execute(
                select(DocumentChunk.document_id, DocumentChunk.ordinal).order_by(
                    DocumentChunk.document_id, DocumentChunk.ordinal
                )
            )
        ).all()
        chunks: dict[Any, list[int]] = {}
        for owner, ordinal in ordinals:
            chunks.setdefault(owner, []).append(ordinal)
    assert sorted(str(d.id) for d in documents) == sorted(ids)  # none lost, none duplicated
    assert {d.status for d in documents} == {S.READY}
    assert {d.page_count for d in documents} == {PAGES}
    # One set of chunks each: the same count for documents of the same shape, ordinals 0..n-1.
    counts = {len(chunks[d.id]) for d in documents}
    assert len(counts) == 1, counts
    assert all(chunks[d.id] == list(range(len(chunks[d.id]))) for d in documents)

    await _until(lambda: _queue_drained(stack), 30, "an empty queue")
    return documents


async def test_workers_killed_at_random_while_documents_are_in_flight(stack: Stack) -> None:
    chooser = random.Random(7)
    kills = 0

    async def kill_workers(stack: Stack) -> None:
        nonlocal kills
        await _some_ready(stack, 1)
        while await _ready_count(stack) < DOCUMENTS - 5 and kills < 6:
            victim = chooser.choice(stack.workers.alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            stack.workers.start()
            await asyncio.sleep(1.5)

    documents = await run_scenario(stack, kill_workers)
    assert kills >= 2
    # Some documents were taken over from a killed worker (a try burnt, then READY).
    assert any(d.attempts > 1 for d in documents), [d.attempts for d in documents]


async def test_all_workers_stopped_with_sigterm_and_replaced(stack: Stack) -> None:
    async def replace_workers(stack: Stack) -> None:
        await _some_ready(stack)
        await _until(lambda: _some_running(stack), 60, "a document being processed")
        running = stack.workers.alive
        for process in running:
            process.send_signal(signal.SIGTERM)
        # Every worker stops at once. (Usually with exit status 0; 1 when the signal lands
        # while arq records a finished job's result: see docs/RELIABILITY.md, known limits.)
        for process in running:
            await asyncio.to_thread(process.wait, 60)
        for _ in range(WORKERS):
            stack.workers.start()

    documents = await run_scenario(stack, replace_workers)
    # Jobs still running after the grace period went back to the queue...
    assert "job handed back to the queue" in stack.workers.logs()
    # ...and a shutdown does not burn a try: nobody needed more than one.
    retried = {str(d.id) for d in documents if d.attempts != 1}
    lines = [line for line in stack.workers.logs().splitlines() if any(i in line for i in retried)]
    assert not retried, "\n".join(lines)


async def test_redis_restarted_mid_run(stack: Stack) -> None:
    async def restart_redis(stack: Stack) -> None:
        await _some_ready(stack)
        await asyncio.to_thread(stack.servers.redis.stop)
        await asyncio.sleep(2)
        await asyncio.to_thread(stack.servers.redis.start)

    await run_scenario(stack, restart_redis)
    assert len(stack.workers.alive) == WORKERS, stack.workers.logs()[-6000:]


async def test_postgres_restarted_mid_run(stack: Stack) -> None:
    async def restart_postgres(stack: Stack) -> None:
        await _some_ready(stack)
        await asyncio.to_thread(stack.servers.postgres.stop, "fast")
        await asyncio.sleep(2)
        await asyncio.to_thread(stack.servers.postgres.start)

    await run_scenario(stack, restart_postgres)
    assert len(stack.workers.alive) == WORKERS, stack.workers.logs()[-6000:]


async def test_requests_while_postgres_is_down_get_a_retryable_code(stack: Stack) -> None:
    await asyncio.to_thread(stack.servers.postgres.stop, "fast")
    async with httpx.AsyncClient(base_url=stack.api.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        # Authentication needs the database: a 503 with a code, not a 500.
        response = await client.post(
            "/graphql",
            json={"query": "{ cases(first: 5) { nodes { id } } }"},
            headers={"Authorization": f"Bearer {stack.key}"},
        )
        assert response.status_code == 503
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert "try again" in error["message"]

        await asyncio.to_thread(stack.servers.postgres.start)
        assert (await client.get("/readyz")).status_code == 200
    listed = await execute(stack.api, stack.key, "{ cases(first: 5) { nodes { id } } }")
    assert listed["cases"]["nodes"] == []


async def test_documents_whose_jobs_redis_lost_are_queued_again(stack: Stack) -> None:
    case_id = await create_case(stack.api, stack.key, "Lost queue")
    lost = [
        await upload(stack.api, stack.key, case_id, _document(n), f"lost-{n}.pdf") for n in range(3)
    ]
    await stack.redis.flushdb()  # Redis lost its data: the three jobs are gone
    kept = [
        await upload(stack.api, stack.key, case_id, _document(n), f"kept-{n}.pdf")
        for n in range(3, 6)
    ]
    await asyncio.sleep(2.5)  # older than the recovery threshold, jobs or not
    stack.workers.start(RECOVERY_AFTER_SECONDS=2)

    async def all_ready() -> bool:
        return await _ready_count(stack) == len(lost) + len(kept)

    await _until(all_ready, 60, "every document READY")
    async with stack.sessions() as session:
        documents = list((await session.scalars(select(Document))).all())
    assert {d.attempts for d in documents} == {1}  # the kept ones were not queued twice
    queued_again = re.findall(r"document (\S+) was QUEUED with no job", stack.workers.logs())
    assert sorted(queued_again) == sorted(lost)
