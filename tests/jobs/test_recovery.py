"""Which documents the recovery sweep queues again (the fault test runs it in real workers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, result_key_prefix
from sqlalchemy import update

from lexintel_core.db import SessionFactory
from lexintel_core.jobs import JobName, ProcessDocument, job_id
from lexintel_core.models import Document, utcnow
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.recovery import requeue_stranded
from lexintel_jobs.state import WorkerState, build_state
from tests.jobs.conftest import Uploader, make_pdf


@pytest.fixture
async def state(worker_settings: Settings, queue: ArqRedis) -> AsyncIterator[WorkerState]:
    settings = worker_settings.model_copy(update={"recovery_after_seconds": 60})
    built = await build_state(settings, queue)
    yield built
    await built.aclose()


async def _age(
    sessions: SessionFactory, document: Document, status: ProcessingStatus, seconds: float
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Document)
            .where(Document.id == document.id)
            .values(status=status, updated_at=utcnow() - timedelta(seconds=seconds))
        )


async def test_only_old_unfinished_documents_without_a_job_are_queued_again(
    uploader: Uploader, state: WorkerState, sessions: SessionFactory, queue: ArqRedis
) -> None:
    pdf = make_pdf(["Exhibit"])
    lost = await uploader.upload(pdf, "lost.pdf")
    stuck = await uploader.upload(pdf + b" ", "stuck.pdf")
    recent = await uploader.upload(pdf + b"  ", "recent.pdf")
    done = await uploader.upload(pdf + b"   ", "done.pdf")
    await queue.flushdb()  # Redis lost its data: these four have no job any more
    waiting = await uploader.upload(pdf + b"    ", "waiting.pdf")  # a long queue: job kept
    await _age(sessions, lost, ProcessingStatus.QUEUED, 600)
    await _age(
        sessions, stuck, ProcessingStatus.EMBEDDING, 600
    )  # its worker's claim went with the data
    await _age(sessions, recent, ProcessingStatus.QUEUED, 5)
    await _age(sessions, done, ProcessingStatus.READY, 600)
    await _age(sessions, waiting, ProcessingStatus.QUEUED, 600)

    # arq recorded the lost document's job as failed: its kept result must not block it.
    lost_job = job_id(JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=lost.id))
    await queue.set(result_key_prefix + lost_job, b"{}")

    assert await requeue_stranded(state) == 2
    queued = {job.args[0]["document_id"] for job in await queue.queued_jobs()}
    assert queued == {str(lost.id), str(stuck.id), str(waiting.id)}
    assert await requeue_stranded(state) == 0  # now they have jobs: queued once


async def test_a_claim_on_a_job_that_never_started_is_cut_to_the_takeover_time(
    uploader: Uploader, state: WorkerState, sessions: SessionFactory, queue: ArqRedis
) -> None:
    pdf = make_pdf(["Exhibit"])
    orphaned = await uploader.upload(pdf, "orphaned.pdf")
    running = await uploader.upload(pdf + b" ", "running.pdf")
    for document in (orphaned, running):
        await _age(sessions, document, ProcessingStatus.QUEUED, 600)
    takeover_ms = state.settings.worker_takeover_seconds * 1000

    def claim(document: Document) -> str:
        return in_progress_key_prefix + job_id(
            JobName.DOCUMENT_PROCESS, ProcessDocument(document_id=document.id)
        )

    # arq's claim, as a worker stopped between claiming the job and starting it leaves it.
    await queue.psetex(claim(orphaned), 970_000, b"1")
    # A running job's claim, which its heartbeat keeps shorter than the takeover time.
    await queue.psetex(claim(running), 2_000, b"1")

    assert await requeue_stranded(state) == 0  # both have jobs
    assert 0 < await queue.pttl(claim(orphaned)) <= takeover_ms
    assert 0 < await queue.pttl(claim(running)) <= 2_000
    assert len(await queue.queued_jobs()) == 2
