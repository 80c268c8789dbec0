"""Document queries."""

from __future__ import annotations

import uuid

import strawberry
from sqlalchemy import func, select

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.documents.types import DocumentType
from lexintel_api.graphql.pagination import Connection, newest_first
from lexintel_core.models import Case, Document
from lexintel_core.status import ProcessingStatus


async def document_page(
    context: Context,
    *,
    case_id: uuid.UUID | None,
    status: ProcessingStatus | None,
    first: int,
    after: str | None,
) -> Connection[DocumentType]:
    """Newest first; only documents of the caller's organization."""
    principal = context.require_principal()
    statement = (
        select(Document)
        .join(Case, Case.id == Document.case_id)
        .where(Case.organization_id == principal.organization_id)
    )
    if case_id is not None:
        statement = statement.where(Document.case_id == case_id)
    if status is not None:
        statement = statement.where(Document.status == status)
    return await newest_first(
        context.services.sessions, statement, Document, first, after, DocumentType.from_model
    )


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
        statement = (
            select(Document.status, func.count())
            .join(Case, Case.id == Document.case_id)
            .where(Case.organization_id == principal.organization_id)
            .group_by(Document.status)
        )
        async with info.context.services.sessions() as session:
            rows = (await session.execute(statement)).all()
        counts = {row[0]: int(row[1]) for row in rows}
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
        return await document_page(
            info.context, case_id=case_id, status=status, first=first, after=after
        )

    @strawberry.field
    async def document(
        self, info: strawberry.Info[Context, None], id: uuid.UUID
    ) -> DocumentType | None:
        document = await info.context.loaders.document.load(id)
        return DocumentType.from_model(document) if document is not None else None
