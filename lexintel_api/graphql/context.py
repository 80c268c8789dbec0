"""The per-request (per-connection for WebSockets) GraphQL context and its DataLoaders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader

from lexintel_api.auth import Principal
from lexintel_api.service_layer import CaseService, DocumentService
from lexintel_api.services import Services
from lexintel_core import keys
from lexintel_core.documents import DocumentRepository
from lexintel_core.errors import LexIntelError, Unauthenticated
from lexintel_core.models import Case, Document, DocumentChunk
from lexintel_core.progress import ProgressEvent


@dataclass
class Loaders:
    """Batch the lookups that list fields would otherwise run once per row (N+1)."""

    services: Services
    principal: Principal
    case: DataLoader[uuid.UUID, Case | None] = field(init=False)
    document: DataLoader[uuid.UUID, Document | None] = field(init=False)
    document_count: DataLoader[uuid.UUID, int] = field(init=False)
    chunk_count: DataLoader[uuid.UUID, int] = field(init=False)
    progress: DataLoader[uuid.UUID, ProgressEvent | None] = field(init=False)

    def __post_init__(self) -> None:
        self.case = DataLoader(self._cases)
        self.document = DataLoader(self._documents)
        self.document_count = DataLoader(self._document_counts)
        self.chunk_count = DataLoader(self._chunk_counts)
        self.progress = DataLoader(self._progress)

    async def _cases(self, ids: list[uuid.UUID]) -> Sequence[Case | None]:
        async with self.services.sessions() as session:
            rows = await session.scalars(
                select(Case).where(
                    Case.id.in_(ids), Case.organization_id == self.principal.organization_id
                )
            )
            found = {case.id: case for case in rows}
        return [found.get(case_id) for case_id in ids]

    async def _documents(self, ids: list[uuid.UUID]) -> Sequence[Document | None]:
        async with self.services.sessions() as session:
            repository = DocumentRepository(session, self.principal.organization_id)
            found = {document.id: document for document in await repository.get_many(ids)}
        return [found.get(document_id) for document_id in ids]

    async def _document_counts(self, case_ids: list[uuid.UUID]) -> Sequence[int]:
        # Callers pass ids of cases they already read under this organization.
        return await self._count_by(Document.case_id, case_ids)

    async def _chunk_counts(self, document_ids: list[uuid.UUID]) -> Sequence[int]:
        return await self._count_by(DocumentChunk.document_id, document_ids)

    async def _count_by(
        self, column: InstrumentedAttribute[uuid.UUID], ids: list[uuid.UUID]
    ) -> list[int]:
        """Rows per id in `column`, one GROUP BY query for the whole batch."""
        async with self.services.sessions() as session:
            rows = await session.execute(
                select(column, func.count()).where(column.in_(ids)).group_by(column)
            )
            counts: dict[uuid.UUID, int] = {row[0]: row[1] for row in rows}
        return [counts.get(key, 0) for key in ids]

    async def _progress(self, document_ids: list[uuid.UUID]) -> Sequence[ProgressEvent | None]:
        payloads = await self.services.redis.mget(
            [keys.progress_snapshot_key(document_id) for document_id in document_ids]
        )
        return [ProgressEvent.from_json(raw) if raw else None for raw in payloads]


@dataclass(slots=True)  # one per WebSocket connection: no __dict__
class Context:
    services: Services
    request: HTTPConnection
    response: Any = None
    principal: Principal | None = None
    # Why authentication failed (or was refused), reported by the first resolver that needs
    # a principal.
    auth_error: LexIntelError | None = None
    # Set by Strawberry from the WebSocket `connection_init` payload.
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = None

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise self.auth_error or Unauthenticated(
                "an API key is required: send `Authorization: Bearer <key>`"
            )
        return self.principal

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.services, self.require_principal())
        return self._loaders

    @property
    def cases(self) -> CaseService:
        return CaseService(self.services, self.require_principal())

    @property
    def documents(self) -> DocumentService:
        return DocumentService(self.services, self.require_principal())
