"""Cases and documents as the API changes them: upload, cancel, reprocess, delete.

Every method is scoped to one organization: a row of another organization is NotFound,
never PermissionDenied, so ids of other tenants cannot be probed. Each unit of work commits
once; jobs are enqueued and progress published only after the commit.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_api.auth import Principal
from lexintel_api.services import Services
from lexintel_core import lifecycle
from lexintel_core.cancellation import clear_cancel, request_cancel
from lexintel_core.documents import DocumentRepository
from lexintel_core.errors import (
    DuplicateDocument,
    FailureCode,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermanentError,
    UnsupportedType,
)
from lexintel_core.filetypes import HEAD_SIZE, detect_content_type
from lexintel_core.jobs import JobName, ProcessDocument, enqueue
from lexintel_core.models import Case, Document
from lexintel_core.progress import ProgressEvent, publish_progress, read_snapshot
from lexintel_core.status import ProcessingStatus

MAX_FILENAME_CHARS = 255

# Opens the uploaded bytes from the start; called again if the blob must be written twice.
OpenStream = Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True)
class Upload:
    document: Document
    duplicate: bool  # the case already held these bytes: `document` is that document


async def _lock_blob_key(session: AsyncSession, key: str) -> None:
    # Serialises "is this blob still used?" on delete against "use this blob" on upload.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
    )


class CaseService:
    def __init__(self, services: Services, principal: Principal) -> None:
        self.services = services
        self.principal = principal

    async def get(self, session: AsyncSession, case_id: uuid.UUID) -> Case:
        case = await session.scalar(
            select(Case).where(
                Case.id == case_id, Case.organization_id == self.principal.organization_id
            )
        )
        if case is None:
            raise NotFound(f"case {case_id} does not exist")
        return case

    async def create(self, name: str, reference: str | None) -> Case:
        name = name.strip()
        if not name or len(name) > 300:
            raise InvalidInput("a case name must have 1 to 300 characters")
        if reference is not None and len(reference) > 200:
            raise InvalidInput("a case reference must have at most 200 characters")
        async with self.services.sessions.begin() as session:
            case = Case(
                organization_id=self.principal.organization_id, name=name, reference=reference
            )
            session.add(case)
        return case

    async def delete(self, case_id: uuid.UUID) -> None:
        """Delete a case with its documents, chunks and the blobs nothing else uses."""
        async with self.services.sessions.begin() as session:
            case = await self.get(session, case_id)
            rows = (
                await session.execute(
                    select(Document.id, Document.blob_key, Document.status).where(
                        Document.case_id == case.id
                    )
                )
            ).all()
            # Documents and chunks go by ON DELETE CASCADE.
            await session.execute(delete(Case).where(Case.id == case.id))
        documents = DocumentService(self.services, self.principal)
        for document_id, _, status in rows:
            if not status.is_terminal:
                await request_cancel(self.services.redis, document_id)
            await documents.announce_deleted(document_id, case_id)
        for key in {key for _, key, _ in rows}:
            await documents.release_blob(key)


class DocumentService:
    def __init__(self, services: Services, principal: Principal) -> None:
        self.services = services
        self.principal = principal

    async def get(
        self, session: AsyncSession, document_id: uuid.UUID, *, lock: bool = False
    ) -> Document:
        repository = DocumentRepository(session, self.principal.organization_id)
        document = await repository.get(document_id, lock=lock)
        if document is None:
            raise NotFound(f"document {document_id} does not exist")
        return document

    # -- upload ------------------------------------------------------------------------

    async def upload(self, case_id: uuid.UUID, filename: str, open_stream: OpenStream) -> Upload:
        """Stream the bytes into blob storage, create the document, then queue it."""
        settings = self.services.settings
        filename = _clean_filename(filename)
        async with self.services.sessions() as session:
            await CaseService(self.services, self.principal).get(session, case_id)
        stream = open_stream()
        head = await _read_head(stream)
        if not head:
            raise InvalidInput(f"{filename} is empty")
        try:
            content_type = detect_content_type(head)
        except PermanentError as exc:
            raise UnsupportedType(f"{filename}: {exc.message}") from exc
        stored = await self.services.blobs.put(
            _chain(head, stream), max_bytes=settings.max_upload_bytes
        )
        try:
            async with self.services.sessions.begin() as session:
                await _lock_blob_key(session, stored.key)
                if not await self.services.blobs.exists(stored.key):
                    # A delete released these bytes between our write and the lock.
                    await self.services.blobs.put(open_stream(), max_bytes=None)
                repository = DocumentRepository(session, self.principal.organization_id)
                document = await repository.add(
                    Document(
                        case_id=case_id,
                        filename=filename,
                        content_type=content_type,
                        size_bytes=stored.size,
                        sha256=stored.key,
                        blob_key=stored.key,
                    )
                )
        except DuplicateDocument as exc:
            existing_id = exc.existing_id
        else:
            await self._queue(document)
            return Upload(document, duplicate=False)
        assert isinstance(existing_id, uuid.UUID)
        async with self.services.sessions() as session:
            return Upload(await self.get(session, existing_id), duplicate=True)

    async def _queue(self, document: Document) -> None:
        # Publish QUEUED before enqueueing: a fast worker's first event must come after it.
        await self._publish_restart(
            ProgressEvent.of(document.id, document.case_id, ProcessingStatus.QUEUED)
        )
        await self._enqueue(document)

    async def _publish_restart(self, event: ProgressEvent) -> None:
        # Queueing may follow a terminal event (reprocessing), which only a restart replaces.
        await publish_progress(self.services.redis, event, restart=True)

    async def _enqueue(self, document: Document) -> None:
        await enqueue(
            self.services.queue,
            JobName.DOCUMENT_PROCESS,
            ProcessDocument(document_id=document.id, generation=document.generation),
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def cancel(self, document_id: uuid.UUID) -> Document:
        async def cancellable(session: AsyncSession) -> Document:
            document = await self.get(session, document_id, lock=True)
            if document.status.is_terminal:
                raise IllegalTransition(
                    f"document {document_id} is already {document.status}; nothing to cancel"
                )
            return document

        document = await lifecycle.finish(
            self.services.sessions,
            cancellable,
            ProcessingStatus.CANCELLED,
            publish=partial(publish_progress, self.services.redis),
            error_code=FailureCode.CANCELLED.value,
            error_message="cancelled by a user",
        )
        assert document is not None  # `cancellable` raises instead
        await request_cancel(self.services.redis, document.id)
        return document

    async def reprocess(self, document_id: uuid.UUID) -> Document:
        """Queue a finished document again; re-queue a QUEUED one whose job was lost."""

        async def requeueable(session: AsyncSession) -> Document:
            document = await self.get(session, document_id, lock=True)
            if document.status is not ProcessingStatus.QUEUED and not document.status.is_terminal:
                raise IllegalTransition(
                    f"document {document_id} is being processed ({document.status})"
                )
            return document

        document = await lifecycle.requeue(
            self.services.sessions, requeueable, publish=self._publish_restart
        )
        assert document is not None  # `requeueable` raises instead
        await clear_cancel(self.services.redis, document.id)
        # Enqueued only now: a job must not find the cancel flag of an earlier run.
        await self._enqueue(document)
        return document

    async def delete(self, document_id: uuid.UUID) -> None:
        """Delete a document, its chunks, and its blob unless another document uses it."""
        async with self.services.sessions.begin() as session:
            document = await self.get(session, document_id, lock=True)
            await session.delete(document)  # chunks go by ON DELETE CASCADE
        if not document.status.is_terminal:
            await request_cancel(self.services.redis, document.id)
        await self.announce_deleted(document.id, document.case_id)
        await self.release_blob(document.blob_key)

    async def announce_deleted(self, document_id: uuid.UUID, case_id: uuid.UUID) -> None:
        """End the live streams of a deleted document (a terminal event; dropped by Redis
        when the document had already finished, whose streams are over anyway)."""
        event = ProgressEvent.of(
            document_id,
            case_id,
            ProcessingStatus.CANCELLED,
            message="deleted",
            error_code=FailureCode.DOCUMENT_DELETED.value,
        )
        with contextlib.suppress(Exception):  # best effort: the delete itself is committed
            await publish_progress(self.services.redis, event)

    async def release_blob(self, key: str) -> None:
        async with self.services.sessions.begin() as session:
            await _lock_blob_key(session, key)
            users = await session.scalar(
                select(func.count()).select_from(Document).where(Document.blob_key == key)
            )
            if not users:
                await self.services.blobs.delete(key)

    # -- live progress -----------------------------------------------------------------

    async def events(
        self, document_id: uuid.UUID, *, after_seq: int = 0
    ) -> AsyncGenerator[ProgressEvent, None]:
        """The document's snapshot, then its newer events, ending after the terminal one."""
        ended = await self._ended_event(document_id)
        if ended is not None:
            snapshot = await read_snapshot(self.services.redis, document_id)
            if snapshot is None:  # expired long after the document finished
                if after_seq == 0:
                    yield ended
                return
        async with contextlib.aclosing(
            self.services.hub.watch_document(document_id, after_seq=after_seq)
        ) as events:
            async for event in events:
                yield event
                del event  # not kept while waiting for the next one

    async def has_ended(self, document_id: uuid.UUID, after_seq: int) -> bool:
        """Whether a stream of the document resuming after `after_seq` has nothing left to
        send: the document is finished and its last event is not newer. NotFound when it
        is not this organization's."""
        if await self._ended_event(document_id) is None:
            return False
        snapshot = await read_snapshot(self.services.redis, document_id)
        if snapshot is None:  # events() sends the row's terminal state to a fresh stream
            return after_seq > 0
        return snapshot.seq <= after_seq

    async def _ended_event(self, document_id: uuid.UUID) -> ProgressEvent | None:
        """The terminal event of a finished document from its row, None while it runs;
        NotFound when it is not this organization's. A live stream keeps this answer, not
        the row and its session, for as long as it runs."""
        async with self.services.sessions() as session:
            document = await self.get(session, document_id)
            return lifecycle.ended_event(document) if document.status.is_terminal else None

    async def _check_case(self, case_id: uuid.UUID) -> None:
        """NotFound unless the case is this organization's (no row kept: see _ended_event)."""
        async with self.services.sessions() as session:
            await CaseService(self.services, self.principal).get(session, case_id)

    async def case_events(self, case_id: uuid.UUID) -> AsyncGenerator[ProgressEvent, None]:
        await self._check_case(case_id)
        async with contextlib.aclosing(self.services.hub.watch_case(case_id)) as events:
            async for event in events:
                yield event
                del event


def _clean_filename(filename: str | None) -> str:
    # Keep the last path component only: browsers may send "C:\\fakepath\\x.pdf".
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    if not name:
        return "untitled"
    return name[-MAX_FILENAME_CHARS:]


async def _read_head(stream: AsyncIterator[bytes]) -> bytes:
    head = bytearray()
    async for piece in stream:
        head += piece
        if len(head) >= HEAD_SIZE:
            break
    return bytes(head)


async def _chain(head: bytes, rest: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for piece in rest:
        yield piece
