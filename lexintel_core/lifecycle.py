"""How a document ends or goes back to the queue, written once for the API and the workers.

Each transition is one transaction, then one progress event: `locate` finds and locks the
document (under the caller's rule of which documents it may change: the API's tenant, a
job's generation), `fence` may refuse the writes (a worker's lease), the transition is
written and committed, and only then is its event handed to `publish`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.db import SessionFactory
from lexintel_core.models import Document, DocumentChunk
from lexintel_core.progress import ProgressEvent
from lexintel_core.status import ProcessingStatus

# The document, locked for the transaction, or None when there is nothing to change.
Locate = Callable[[AsyncSession], Awaitable[Document | None]]
# Runs in the transaction after `locate`, before any write; what it raises rolls it back.
Fence = Callable[[AsyncSession], Awaitable[None]]
# Publishes an event once the transaction committed.
Publish = Callable[[ProgressEvent], Awaitable[object]]


def ended_event(document: Document) -> ProgressEvent:
    """The terminal event of a finished document, as its row tells it; a READY document
    with pages without text says so in the message."""
    warning = document.warning if document.status is ProcessingStatus.READY else None
    return ProgressEvent.of(
        document.id,
        document.case_id,
        document.status,
        message=warning,
        error_code=document.error_code,
        error_message=document.error_message,
    )


async def _locate_fenced(
    session: AsyncSession, locate: Locate, fence: Fence | None
) -> Document | None:
    document = await locate(session)
    if document is not None and fence is not None:
        await fence(session)
    return document


async def finish(
    sessions: SessionFactory,
    locate: Locate,
    status: ProcessingStatus,
    *,
    publish: Publish,
    error_code: str | None = None,
    error_message: str | None = None,
    fence: Fence | None = None,
) -> Document | None:
    """End the document in the terminal `status` (READY, FAILED or CANCELLED) with these
    error fields, then publish its terminal event (`ended_event`). A document that does not
    end READY loses its chunks: half-written ones of a stopped run must not linger.

    Returns the committed document, or None, writing and publishing nothing, when `locate`
    found none. IllegalTransition if the document cannot go to `status`."""
    async with sessions.begin() as session:
        document = await _locate_fenced(session, locate, fence)
        if document is None:
            return None
        document.transition_to(status)
        document.error_code = error_code
        document.error_message = error_message
        if status is not ProcessingStatus.READY:
            await session.execute(
                delete(DocumentChunk).where(DocumentChunk.document_id == document.id)
            )
    await publish(ended_event(document))
    return document


async def requeue(
    sessions: SessionFactory,
    locate: Locate,
    *,
    publish: Publish,
    reason: str | None = None,
    fence: Fence | None = None,
) -> Document | None:
    """Put the document back to QUEUED, then publish a QUEUED event (its message `reason`,
    else "queued"). A running document keeps its generation and attempts: its job comes
    back. A finished one is queued anew: the next generation, no attempts yet. `reason`,
    when given, stays on the document as its error message (why it waits).

    Returns the committed document, or None, writing and publishing nothing, when `locate`
    found none."""
    async with sessions.begin() as session:
        document = await _locate_fenced(session, locate, fence)
        if document is None:
            return None
        if document.status.is_terminal:
            document.generation += 1
            document.attempts = 0
        if document.status is not ProcessingStatus.QUEUED:
            document.transition_to(ProcessingStatus.QUEUED)
        if reason is not None:
            document.error_message = reason[:1000]
    await publish(
        ProgressEvent.of(document.id, document.case_id, ProcessingStatus.QUEUED, message=reason)
    )
    return document
