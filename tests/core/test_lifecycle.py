"""A document's terminal and requeue transitions, as the API and the workers share them."""

from __future__ import annotations

import uuid
from functools import partial

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core import lifecycle
from lexintel_core.coverage import TextCoverage
from lexintel_core.db import SessionFactory
from lexintel_core.documents import DocumentRepository
from lexintel_core.errors import IllegalTransition
from lexintel_core.lifecycle import Locate
from lexintel_core.models import Document, DocumentChunk
from lexintel_core.progress import ProgressEvent, Stage, publish_progress, read_snapshot
from lexintel_core.status import ProcessingStatus
from tests import factories


class Published(list[ProgressEvent]):
    async def __call__(self, event: ProgressEvent) -> None:
        self.append(event)


async def _document(
    sessions: SessionFactory, *statuses: ProcessingStatus, chunks: int = 2
) -> Document:
    """A document moved through `statuses`, with `chunks` chunks."""
    async with sessions.begin() as session:
        case = await factories.case(session)
        document = await DocumentRepository(session).add(factories.document(case.id))
        for status in statuses:
            document.transition_to(status)
        session.add_all(factories.chunk(document, ordinal) for ordinal in range(chunks))
    return document


def _locate(document: Document) -> Locate:
    async def locate(session: AsyncSession) -> Document | None:
        return await DocumentRepository(session).get(document.id, lock=True)

    return locate


async def _stored(sessions: SessionFactory, document: Document) -> tuple[Document, int]:
    async with sessions() as session:
        stored = await session.get(Document, document.id)
        chunks = await session.scalar(
            select(func.count()).where(DocumentChunk.document_id == document.id)
        )
    assert stored is not None
    return stored, int(chunks or 0)


RUNNING = (ProcessingStatus.EXTRACTING, ProcessingStatus.CHUNKING, ProcessingStatus.EMBEDDING)


async def test_finish_ready_keeps_the_chunks_and_publishes_the_end(
    sessions: SessionFactory, redis: Redis
) -> None:
    document = await _document(sessions, *RUNNING)
    finished = await lifecycle.finish(
        sessions,
        _locate(document),
        ProcessingStatus.READY,
        publish=partial(publish_progress, redis),
    )
    assert finished is not None
    stored, chunks = await _stored(sessions, document)
    assert stored.status is ProcessingStatus.READY
    assert stored.finished_at is not None
    assert (stored.error_code, stored.error_message) == (None, None)
    assert chunks == 2
    snapshot = await read_snapshot(redis, document.id)
    assert snapshot is not None
    assert (snapshot.stage, snapshot.status, snapshot.percent, snapshot.message) == (
        Stage.DONE,
        ProcessingStatus.READY,
        100.0,
        "ready",
    )


@pytest.mark.parametrize("status", [ProcessingStatus.FAILED, ProcessingStatus.CANCELLED])
async def test_finish_otherwise_drops_the_chunks_and_keeps_the_error(
    sessions: SessionFactory, status: ProcessingStatus
) -> None:
    document = await _document(sessions, ProcessingStatus.EXTRACTING)
    published = Published()
    await lifecycle.finish(
        sessions,
        _locate(document),
        status,
        publish=published,
        error_code="pdf_corrupt",
        error_message="x" * 400,
    )
    stored, chunks = await _stored(sessions, document)
    assert (stored.status, stored.error_code, stored.error_message) == (
        status,
        "pdf_corrupt",
        "x" * 400,
    )
    assert chunks == 0
    [event] = published
    assert (event.stage, event.status, event.message, event.error_code) == (
        Stage.DONE,
        status,
        status.value.lower(),
        "pdf_corrupt",
    )
    assert event.error_message == "x" * 300
    assert event.is_terminal


async def test_nothing_is_written_or_published_when_locate_finds_nothing(
    sessions: SessionFactory,
) -> None:
    document = await _document(sessions, ProcessingStatus.EXTRACTING)
    published = Published()

    async def nothing(session: AsyncSession) -> Document | None:
        return None

    assert (
        await lifecycle.finish(sessions, nothing, ProcessingStatus.FAILED, publish=published)
        is None
    )
    assert await lifecycle.requeue(sessions, nothing, publish=published, reason="retry") is None
    stored, chunks = await _stored(sessions, document)
    assert (stored.status, chunks, published) == (ProcessingStatus.EXTRACTING, 2, [])


async def test_a_fence_that_refuses_rolls_the_transition_back(sessions: SessionFactory) -> None:
    document = await _document(sessions, ProcessingStatus.EXTRACTING)
    published = Published()
    fenced: list[bool] = []

    async def refuse(session: AsyncSession) -> None:
        fenced.append(session.in_transaction())
        raise LookupError("the lease was taken over")

    with pytest.raises(LookupError):
        await lifecycle.finish(
            sessions, _locate(document), ProcessingStatus.FAILED, publish=published, fence=refuse
        )
    with pytest.raises(LookupError):
        await lifecycle.requeue(sessions, _locate(document), publish=published, fence=refuse)
    stored, chunks = await _stored(sessions, document)
    assert (stored.status, chunks, published, fenced) == (
        ProcessingStatus.EXTRACTING,
        2,
        [],
        [True, True],
    )


async def test_an_ended_document_cannot_end_again(sessions: SessionFactory) -> None:
    document = await _document(sessions, ProcessingStatus.CANCELLED)
    published = Published()
    with pytest.raises(IllegalTransition):
        await lifecycle.finish(
            sessions, _locate(document), ProcessingStatus.FAILED, publish=published
        )
    assert published == []


async def test_requeue_of_a_running_document_keeps_its_generation_and_says_why(
    sessions: SessionFactory,
) -> None:
    document = await _document(sessions, ProcessingStatus.EXTRACTING)
    async with sessions.begin() as session:
        await session.execute(update(Document).where(Document.id == document.id).values(attempts=2))
    published = Published()
    reason = "try 2 failed, retrying in 4s: " + "y" * 1200
    await lifecycle.requeue(sessions, _locate(document), publish=published, reason=reason)
    stored, _ = await _stored(sessions, document)
    assert (stored.status, stored.generation, stored.attempts) == (ProcessingStatus.QUEUED, 0, 2)
    assert stored.error_message == reason[:1000]
    [event] = published
    assert (event.stage, event.status, event.percent) == (
        Stage.QUEUED,
        ProcessingStatus.QUEUED,
        0.0,
    )
    assert event.message == reason[:200]
    assert not event.is_terminal


async def test_requeue_of_a_finished_document_starts_a_new_generation(
    sessions: SessionFactory,
) -> None:
    document = await _document(sessions, ProcessingStatus.FAILED)
    published = Published()
    await lifecycle.requeue(sessions, _locate(document), publish=published)
    stored, _ = await _stored(sessions, document)
    assert (stored.status, stored.generation, stored.attempts) == (ProcessingStatus.QUEUED, 1, 0)
    assert stored.error_message is None
    assert [(event.status, event.message) for event in published] == [
        (ProcessingStatus.QUEUED, "queued")
    ]


async def test_requeue_of_a_queued_document_changes_nothing_but_publishes(
    sessions: SessionFactory,
) -> None:
    document = await _document(sessions)
    published = Published()
    await lifecycle.requeue(sessions, _locate(document), publish=published)
    stored, _ = await _stored(sessions, document)
    assert (stored.status, stored.generation, stored.queued_at) == (
        ProcessingStatus.QUEUED,
        0,
        document.queued_at,
    )
    assert len(published) == 1


def test_the_end_of_a_ready_document_with_unread_pages_says_so() -> None:
    document = factories.document(uuid.uuid4())
    document.id = uuid.uuid4()
    document.text_coverage = TextCoverage(
        pages_total=3, pages_text_layer=2, pages_without_text=1
    ).model_dump(mode="json")
    document.status = ProcessingStatus.READY
    ready = lifecycle.ended_event(document)
    assert ready.message == document.warning
    assert ready.message is not None
    assert "1 of 3 pages has no text" in ready.message

    document.status = ProcessingStatus.FAILED
    document.error_code = "no_text"
    failed = lifecycle.ended_event(document)
    assert (failed.stage, failed.message, failed.error_code) == (Stage.DONE, "failed", "no_text")
