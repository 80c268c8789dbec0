"""GraphQL types of the cases domain."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.documents.types import DocumentType, document_page
from lexintel_api.graphql.pagination import Connection
from lexintel_core.models import Case
from lexintel_core.status import ProcessingStatus


@strawberry.type(name="Case")
class CaseType:
    id: uuid.UUID
    name: str
    reference: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, case: Case) -> CaseType:
        return cls(
            id=case.id,
            name=case.name,
            reference=case.reference,
            created_at=case.created_at,
            updated_at=case.updated_at,
        )

    @strawberry.field
    async def document_count(self, info: strawberry.Info[Context, None]) -> int:
        return await info.context.loaders.document_count.load(self.id)

    @strawberry.field(description="The case's documents, newest first.")
    async def documents(
        self,
        info: strawberry.Info[Context, None],
        status: ProcessingStatus | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[DocumentType]:
        return await document_page(info, case_id=self.id, status=status, first=first, after=after)
