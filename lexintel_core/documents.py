"""Document persistence, scoped to one organization. Repositories take a session and may
flush, never commit: the unit of work (request or job stage) commits once at its boundary."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.errors import DuplicateDocument
from lexintel_core.models import Case, Document
from lexintel_core.status import ProcessingStatus

_UNIQUE_SHA_PER_CASE = "uq_documents_case_id_sha256"


def select_documents(
    organization_id: uuid.UUID,
    *,
    case_id: uuid.UUID | None = None,
    status: ProcessingStatus | None = None,
) -> Select[Document]:
    """The documents of an organization; of one of its cases, in one status, when given.
    Unordered: a list pages it (newest first) itself."""
    statement = (
        select(Document)
        .join(Case, Case.id == Document.case_id)
        .where(Case.organization_id == organization_id)
    )
    if case_id is not None:
        statement = statement.where(Document.case_id == case_id)
    if status is not None:
        statement = statement.where(Document.status == status)
    return statement


class DocumentRepository:
    """Documents of the organization `organization_id`: another organization's are not
    found. Workers, which act for whichever organization owns a job's document, pass none."""

    def __init__(self, session: AsyncSession, organization_id: uuid.UUID | None = None) -> None:
        self.session = session
        self.organization_id = organization_id

    def _select(self) -> Select[Document]:
        if self.organization_id is None:
            return select(Document)
        return select_documents(self.organization_id)

    async def get(self, document_id: uuid.UUID, *, lock: bool = False) -> Document | None:
        """The document, or None; `lock`: locked (FOR UPDATE) until the transaction ends."""
        statement = self._select().where(Document.id == document_id)
        if lock:
            statement = statement.with_for_update(of=Document)
        return await self.session.scalar(statement)

    async def get_many(self, document_ids: Sequence[uuid.UUID]) -> list[Document]:
        """The documents of `document_ids` that exist, in no particular order."""
        return list(await self.session.scalars(self._select().where(Document.id.in_(document_ids))))

    async def count_by_status(self) -> dict[ProcessingStatus, int]:
        """How many documents are in each status (statuses without any are left out)."""
        statement = (
            self._select()
            .with_only_columns(Document.status, func.count())
            .group_by(Document.status)
        )
        rows = await self.session.execute(statement)
        return {status: int(count) for status, count in rows}

    async def get_by_sha256(self, case_id: uuid.UUID, sha256: str) -> Document | None:
        return await self.session.scalar(
            self._select().where(Document.case_id == case_id, Document.sha256 == sha256)
        )

    async def add(self, document: Document) -> Document:
        """Insert a document into a case the caller found to be the organization's; raise
        `DuplicateDocument` if the case already holds the same bytes. The savepoint keeps
        the surrounding transaction usable either way."""
        try:
            async with self.session.begin_nested():
                self.session.add(document)
        except IntegrityError as exc:
            if _UNIQUE_SHA_PER_CASE not in str(exc.orig):
                raise
            existing = await self.get_by_sha256(document.case_id, document.sha256)
            raise DuplicateDocument(
                f"this case already holds a document with the same content "
                f"(sha256 {document.sha256[:12]}...)",
                existing_id=existing.id if existing else None,
            ) from exc
        return document
