"""Case queries."""

from __future__ import annotations

import uuid

import strawberry
from sqlalchemy import select

from lexintel_api.graphql.cases.types import CaseType
from lexintel_api.graphql.context import Context
from lexintel_api.graphql.pagination import Connection, newest_first
from lexintel_core.models import Case


@strawberry.type
class CaseQueries:
    @strawberry.field(description="Cases of your organization, newest first.")
    async def cases(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[CaseType]:
        principal = info.context.require_principal()
        statement = select(Case).where(Case.organization_id == principal.organization_id)
        return await newest_first(
            info.context.services.sessions, statement, Case, first, after, CaseType.from_model
        )

    @strawberry.field
    async def case(self, info: strawberry.Info[Context, None], id: uuid.UUID) -> CaseType | None:
        case = await info.context.loaders.case.load(id)
        return CaseType.from_model(case) if case is not None else None
