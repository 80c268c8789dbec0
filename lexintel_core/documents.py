"""Document persistence. Repositories take a session and may flush, never commit: the unit
of work (request or job stage) commits once at its boundary."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.errors import DuplicateDocument
from lexintel_core.models import Document

_UNIQUE_SHA_PER_CASE = "uq_documents_case_id_sha256"


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, document_id: uuid.UUID) -> Document | None:
        return await self.session.get(Document, document_id)

    async def get_by_sha256(self, case_id: uuid.UUID, sha256: str) -> Document | None:
        return await self.session.scalar(
            select(Document).where(Document.case_id == case_id, Document.sha256 == sha256)
        )

    async def add(self, document: Document) -> Document:
        """Insert a document; raise `DuplicateDocument` if its case already holds the same
        bytes. The savepoint keeps the surrounding transaction usable either way."""
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
