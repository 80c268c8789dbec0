"""Document queries."""

from __future__ import annotations

import uuid

import strawberry

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.documents.types import DocumentType, document_page
from lexintel_api.graphql.pagination import Connection
from lexintel_core.documents import DocumentRepository
from lexintel_core.status import ProcessingStatus


@strawberry.type
class StatusCount:
    status: ProcessingStatus
    count: int


@strawberry.type
class DocumentQueries:
    @strawberry.field(description="How many of your documents are in each status.")
    async def document_status_counts(
        self, info: strawberry.Info[Context, None]
    ) -> list[StatusCount]:
        principal = info.context.require_principal()
        async with info.context.services.sessions() as session:
            counts = await DocumentRepository(session, principal.organization_id).count_by_status()
        return [
            StatusCount(status=status, count=counts.get(status, 0)) for status in ProcessingStatus
        ]

    @strawberry.field(description="Documents of your organization, newest first.")
    async def documents(
        self,
        info: strawberry.Info[Context, None],
        case_id: uuid.UUID | None = None,
        status: ProcessingStatus | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[DocumentType]:
        return await document_page(info, case_id=case_id, status=status, first=first, after=after)

    @strawberry.field
    async def document(
        self, info: strawberry.Info[Context, None], id: uuid.UUID
    ) -> DocumentType | None:
        document = await info.context.loaders.document.load(id)
        return DocumentType.from_model(document) if document is not None else None
