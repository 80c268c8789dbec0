"""One run of one job for one document: status changes, progress and cancel checks.

Every write of a run is fenced by the document's lease (lexintel_jobs/lease.py): a run
whose lease was taken over by another writes nothing and publishes nothing more."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core import lifecycle
from lexintel_core.cancellation import is_cancel_requested
from lexintel_core.documents import DocumentRepository
from lexintel_core.errors import DocumentCancelled, DocumentGone, DocumentSuperseded
from lexintel_core.jobs import JobName
from lexintel_core.models import Document
from lexintel_core.progress import ProgressEvent, read_snapshot
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.lease import Lease, LeaseLost
from lexintel_jobs.reporter import ProgressReporter
from lexintel_jobs.state import WorkerState


async def get_document(
    session: AsyncSession, document_id: uuid.UUID, *, generation: int, lock: bool = True
) -> Document:
    """The document row (locked for this transaction). DocumentGone if it was deleted,
    DocumentSuperseded if it was queued again after this job was."""
    document = await DocumentRepository(session).get(document_id, lock=lock)
    if document is None:
        raise DocumentGone(f"document {document_id} was deleted")
    if document.generation != generation:
        raise DocumentSuperseded(
            f"document {document_id} was queued again (generation {document.generation}, "
            f"this job {generation})"
        )
    return document


@dataclass
class JobRun:
    state: WorkerState
    name: JobName
    document_id: uuid.UUID
    job_id: str
    job_try: int
    generation: int = 0
    lease: Lease | None = None
    _reporter: ProgressReporter | None = field(default=None, repr=False)

    @property
    def holds_lease(self) -> bool:
        return self.lease is not None and not self.lease.lost

    async def fence(self, session: AsyncSession) -> None:
        """Refuse this transaction's writes (LeaseLost) unless the run still holds the
        document's lease; call it after locking the document row, before writing."""
        if self.lease is None:
            raise LeaseLost(f"this run holds no lease on document {self.document_id}")
        await self.lease.fence(session)

    async def confirm_lease(self) -> None:
        """Renew the lease now, or raise LeaseLost: a run doing long work between writes
        (embedding a document before its one write) learns of a takeover at once, not at
        its next write, and publishes no more progress."""
        async with self.state.engine.begin() as connection:
            if self.lease is None or not await self.lease.renew(connection):
                raise LeaseLost(f"the lease on document {self.document_id} was taken over")

    async def release_lease(self) -> None:
        """Hand the document's lease back now: this run writes nothing more."""
        if self.lease is not None and not self.lease.lost:
            held, self.lease = self.lease, None
            await held.release(self.state.engine)

    async def load(self, session: AsyncSession, *, lock: bool = True) -> Document:
        return await get_document(session, self.document_id, generation=self.generation, lock=lock)

    async def transition(self, status: ProcessingStatus, **fields: Any) -> Document:
        """Commit `status` (and `fields`) on the document, then announce it."""
        async with self.state.sessions.begin() as session:
            document = await self.load(session)
            if document.status is ProcessingStatus.CANCELLED:
                raise DocumentCancelled("the document was cancelled")
            await self.fence(session)
            document.transition_to(status)
            for name, value in fields.items():
                setattr(document, name, value)
        await self._announcer(document.case_id).report(status, 0.0)
        return document

    async def _unfinished(self, session: AsyncSession) -> Document | None:
        """The locked document, or None when it is gone, belongs to a newer job, or has
        ended (e.g. cancelled through the API, which announced it itself)."""
        try:
            document = await self.load(session)
        except DocumentGone:
            return None
        return None if document.status.is_terminal else document

    def _announcer(self, case_id: uuid.UUID) -> ProgressReporter:
        """This run's one reporter (its throttle spans the whole run)."""
        if self._reporter is None:
            self._reporter = ProgressReporter(
                self.state.redis, self.document_id, case_id, allowed=lambda: self.holds_lease
            )
        return self._reporter

    async def _publish(self, event: ProgressEvent) -> None:
        await self._announcer(event.case_id).publish(event)

    async def report(self, status: ProcessingStatus, percent: float, message: str = "") -> None:
        if self._reporter is not None:
            await self._reporter.report(status, percent, message)

    async def check_cancelled(self) -> None:
        """Stop here if the document was cancelled, or its lease taken over (as the
        heartbeat found out)."""
        if self.lease is not None and self.lease.lost:
            raise LeaseLost(f"the lease on document {self.document_id} was taken over")
        if await is_cancel_requested(self.state.redis, self.document_id):
            raise DocumentCancelled("the document was cancelled")

    async def finish(
        self,
        status: ProcessingStatus,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """End the document in a terminal `status` and publish the one terminal event.

        Returns False, publishing nothing, when the document is gone, queued again, or
        already terminal."""
        document = await lifecycle.finish(
            self.state.sessions,
            self._unfinished,
            status,
            publish=self._publish,
            error_code=error_code,
            error_message=error_message,
            fence=self.fence,
        )
        return document is not None

    async def announce_end(self, document: Document) -> None:
        """Publish a finished document's terminal event again unless its snapshot already
        shows one: the run that finished it may have stopped between the commit and the
        publish (killed, or cancelled by a shutdown), leaving its subscribers waiting."""
        snapshot = await read_snapshot(self.state.redis, document.id)
        if snapshot is None or not snapshot.is_terminal:
            await self._publish(lifecycle.ended_event(document))

    async def requeue(self, message: str) -> None:
        """Put a running document back to QUEUED (retry backoff, shutdown) and say why."""
        await lifecycle.requeue(
            self.state.sessions,
            self._unfinished,
            publish=self._publish,
            reason=message,
            fence=self.fence,
        )
