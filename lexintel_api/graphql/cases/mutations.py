"""Case mutations."""

from __future__ import annotations

import uuid

import strawberry

from lexintel_api.graphql.cases.types import CaseType
from lexintel_api.graphql.context import Context


@strawberry.type
class CaseMutations:
    @strawberry.mutation
    async def create_case(
        self, info: strawberry.Info[Context, None], name: str, reference: str | None = None
    ) -> CaseType:
        return CaseType.from_model(await info.context.cases.create(name, reference))

    @strawberry.mutation(description="Delete a case with its documents, chunks and unshared blobs.")
    async def delete_case(self, info: strawberry.Info[Context, None], id: uuid.UUID) -> uuid.UUID:
        await info.context.cases.delete(id)
        return id
