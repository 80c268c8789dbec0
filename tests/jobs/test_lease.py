"""Document leases (lexintel_jobs/lease.py): one run at a time, taken over once expired
(database time), renewed by the heartbeat, and every write of a run fenced by its token."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job
from arq.worker import Worker
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import Embedder
from lexintel_core.errors import DocumentGone
from lexintel_core.jobs import JobName, ProcessDocument, job_id, json_loads
from lexintel_core.models import DocumentLease
from lexintel_core.progress import read_snapshot
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs import lease
from lexintel_jobs.lease import Lease, LeaseLost
from lexintel_jobs.state import WorkerState
from tests.jobs.conftest import EventLog, Uploader, load, make_pdf, settle

RunWorker = Callable[..., Awaitable[Worker]]
_VOCABULARY = (
    "tenant landlord premises rent deposit notice breach remedy covenant assignment "
    "sublease repair insurance indemnity default termination renewal holdover easement"
)


def _prose(pages: int) -> list[str]:
    """Pages of distinct sentences (none repeats, so none is taken for boilerplate)."""
    chooser = random.Random(17)
    return [
        "\n".join(" ".join(chooser.choices(_VOCABULARY.split(), k=9)) + "." for _ in range(40))
        for _ in range(pages)
    ]


async def _held(engine: AsyncEngine, document_id: uuid.UUID, seconds: float) -> Lease:
    taken = await lease.take(engine, document_id, seconds)
    assert isinstance(taken, Lease), f"lease held for {taken}s more"
    return taken


async def _row(sessions: SessionFactory, document_id: uuid.UUID) -> DocumentLease:
    async with sessions() as session:
        row = await session.scalar(
            select(DocumentLease).where(DocumentLease.document_id == document_id)
        )
    assert row is not None
    return row


async def test_one_run_holds_a_lease_until_it_expires_then_another_takes_it_over(
    uploader: Uploader, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    document = await uploader.upload(make_pdf(["Recital A."]))
    first = await _held(engine, document.id, 0.5)
    assert first.token == 1
    waiting = await lease.take(engine, document.id, 0.5)
    assert isinstance(waiting, float)
    assert 0 < waiting <= 0.5

    await asyncio.sleep(0.8)  # the first run's lease expires unrenewed (a dead worker)
    second = await _held(engine, document.id, 30.0)
    assert second.token == 2
    async with engine.begin() as connection:
        assert not await first.renew(connection)
    assert first.lost
    async with sessions.begin() as session:
        with pytest.raises(LeaseLost):
            await first.fence(session)
    async with sessions.begin() as session:
        await second.fence(session)  # the current holder writes on

    await second.release(engine)  # free at once for the next run; its token retired
    async with sessions.begin() as session:
        with pytest.raises(LeaseLost):
            await second.fence(session)
    third = await _held(engine, document.id, 30.0)
    assert third.token > second.token
    assert (await _row(sessions, document.id)).token == third.token

    with pytest.raises(DocumentGone):
        await lease.take(engine, uuid.uuid4(), 30.0)


class _TakenOverWhileEmbedding:
    """Wraps the real embedder: while the first batch is being embedded, another worker
    takes the document's lease over (as if this worker's had expired during a partition)."""

    def __init__(self, inner: Embedder, engine: AsyncEngine, document_id: list[uuid.UUID]):
        self.inner = inner
        self.engine = engine
        self.document_id = document_id
        self.model_name = inner.model_name
        self.dimension = inner.dimension

    async def load(self) -> None:
        await self.inner.load()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        async with self.engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE document_leases SET token = token + 1, owner = 'another worker',"
                    " expires_at = clock_timestamp() + interval '60 seconds'"
                    " WHERE document_id = :document_id"
                ),
                {"document_id": self.document_id[0]},
            )
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_run_whose_lease_was_taken_over_writes_nothing_and_ends_quietly(
    uploader: Uploader,
    run_worker: RunWorker,
    worker_settings: Settings,
    sessions: SessionFactory,
    engine: AsyncEngine,
    queue: ArqRedis,
    events: EventLog,
) -> None:
    document_ids: list[uuid.UUID] = []

    def prepare(state: WorkerState) -> None:
        state.embedder = _TakenOverWhileEmbedding(state.embedder, engine, document_ids)

    document = await uploader.upload(make_pdf(_prose(pages=4)))
    document_ids.append(document.id)
    worker = await run_worker(
        worker_settings.model_copy(update={"embedding_batch_size": 2}), prepare
    )
    await settle()

    assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (1, 0, 0)
    payload = ProcessDocument(document_id=document.id)
    job = Job(job_id(JobName.DOCUMENT_PROCESS, payload), queue, _deserializer=json_loads)
    result = await job.result(timeout=5)
    assert result == "taken over"
    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.EMBEDDING  # for the run that took over to finish
    assert chunks == []  # chunks are written with their vectors, once: it wrote none
    row = await _row(sessions, document.id)
    assert (row.token, row.owner) == (2, "another worker")  # not released by the stale run
    seen = events.of(document.id)
    assert not any(event.is_terminal for event in seen)
    assert not any(
        event.status is ProcessingStatus.EMBEDDING and event.percent > 0 for event in seen
    )
    snapshot = await read_snapshot(queue, document.id)
    assert snapshot is not None
    assert snapshot.seq == seen[-1].seq


class _SlowEmbedder:
    """Wraps the real embedder; one call takes `seconds` (no write meanwhile)."""

    def __init__(self, inner: Embedder, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.model_name = inner.model_name
        self.dimension = inner.dimension

    async def load(self) -> None:
        await self.inner.load()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        await asyncio.sleep(self.seconds)
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_the_heartbeat_keeps_the_lease_of_a_run_longer_than_the_takeover_time(
    uploader: Uploader,
    run_worker: RunWorker,
    worker_settings: Settings,
    sessions: SessionFactory,
    engine: AsyncEngine,
) -> None:
    takeover = worker_settings.worker_takeover_seconds
    document = await uploader.upload(make_pdf(["Recital A.", "Recital B."]))

    def prepare(state: WorkerState) -> None:
        state.embedder = _SlowEmbedder(state.embedder, seconds=takeover * 2)

    refused: list[float] = []

    async def another_worker() -> None:
        """Tries to take the lease all along, as a worker that was given the job would."""
        while True:
            status = (await load(sessions, document.id))[0].status
            if status is ProcessingStatus.READY:
                return
            if status is ProcessingStatus.EMBEDDING:
                taken = await lease.take(engine, document.id, takeover)
                assert not isinstance(taken, Lease), "the lease was taken from a live run"
                refused.append(time.monotonic())
            await asyncio.sleep(0.2)

    contender = asyncio.create_task(another_worker())
    await run_worker(None, prepare)
    await asyncio.wait_for(contender, timeout=30)

    stored, chunks = await load(sessions, document.id)
    assert stored.status is ProcessingStatus.READY
    assert stored.attempts == 1
    assert chunks
    assert all(chunk.embedding is not None for chunk in chunks)
    assert refused[-1] - refused[0] > takeover  # held past its first expiry: renewed
    assert (await _row(sessions, document.id)).token == 2  # taken once, retired at the end
