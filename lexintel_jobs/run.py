"""One run of one job for one document: status changes, progress and cancel checks.

Every write of a run is fenced by the document's lease (lexintel_jobs/lease.py): a run
whose lease was taken over by another writes nothing and publishes nothing more."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.cancellation import is_cancel_requested
from lexintel_core.errors import DocumentCancelled, DocumentGone, DocumentSuperseded
from lexintel_core.jobs import JobName
from lexintel_core.models import Document, DocumentChunk
from lexintel_core.progress import Stage, read_snapshot
from lexintel_core.status import ProcessingStatus
from lexintel_jobs.lease import Lease, LeaseLost
from lexintel_jobs.reporter import ProgressReporter
from lexintel_jobs.state import WorkerState

_STAGE_OF_STATUS = {
    ProcessingStatus.QUEUED: Stage.QUEUED,
    ProcessingStatus.EXTRACTING: Stage.EXTRACT,
    ProcessingStatus.CHUNKING: Stage.CHUNK,
    ProcessingStatus.EMBEDDING: Stage.EMBED,
    ProcessingStatus.READY: Stage.DONE,
    ProcessingStatus.FAILED: Stage.DONE,
    ProcessingStatus.CANCELLED: Stage.DONE,
}


async def get_document(
    session: AsyncSession, document_id: uuid.UUID, *, generation: int, lock: bool = True
) -> Document:
    """The document row (locked for this transaction). DocumentGone if it was deleted,
    DocumentSuperseded if it was queued again after this job was."""
    document = await session.get(Document, document_id, with_for_update=lock)
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
        self._announcer(document)
        await self.report(status, 0.0)
        return document

    async def _current(self, session: AsyncSession) -> Document | None:
        """The locked document, or None when it is gone or belongs to a newer job."""
        try:
            return await self.load(session)
        except DocumentGone:
            return None

    def _announcer(self, document: Document) -> ProgressReporter:
        """This run's one reporter (its throttle spans the whole run)."""
        if self._reporter is None:
            self._reporter = ProgressReporter(
                self.state.redis,
                document.id,
                document.case_id,
                allowed=lambda: self.holds_lease,
            )
        return self._reporter

    async def report(self, status: ProcessingStatus, percent: float, message: str = "") -> None:
        if self._reporter is not None:
            await self._reporter.report(_STAGE_OF_STATUS[status], status, percent, message)

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
        already terminal (e.g. cancelled through the API, which announced it itself)."""
        async with self.state.sessions.begin() as session:
            document = await self._current(session)
            if document is None or document.status.is_terminal:
                return False
            await self.fence(session)
            document.transition_to(status)
            document.error_code = error_code
            document.error_message = error_message
            if status is not ProcessingStatus.READY:
                # Half-written chunks of a failed or cancelled run must not linger.
                await session.execute(
                    delete(DocumentChunk).where(DocumentChunk.document_id == self.document_id)
                )
        await self._report_end(document)
        return True

    async def _report_end(self, document: Document) -> None:
        ready = document.status is ProcessingStatus.READY
        await self._announcer(document).report(
            Stage.DONE,
            document.status,
            100.0,
            (document.warning if ready else None) or document.status.value.lower(),
            error_code=document.error_code,
            error_message=document.error_message,
        )

    async def announce_end(self, document: Document) -> None:
        """Publish a finished document's terminal event again unless its snapshot already
        shows one: the run that finished it may have stopped between the commit and the
        publish (killed, or cancelled by a shutdown), leaving its subscribers waiting."""
        snapshot = await read_snapshot(self.state.redis, document.id)
        if snapshot is None or not snapshot.is_terminal:
            await self._report_end(document)

    async def requeue(self, message: str) -> None:
        """Put a running document back to QUEUED (retry backoff, shutdown) and say why."""
        async with self.state.sessions.begin() as session:
            document = await self._current(session)
            if document is None or document.status.is_terminal:
                return
            await self.fence(session)
            if document.status is not ProcessingStatus.QUEUED:
                document.transition_to(ProcessingStatus.QUEUED)
            document.error_message = message[:1000]
        await self._announcer(document).report(Stage.QUEUED, ProcessingStatus.QUEUED, 0.0, message)
