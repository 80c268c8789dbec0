"""Case queries."""

from __future__ import annotations

import uuid

import strawberry
from sqlalchemy import select, tuple_

from lexintel_api.graphql.cases.types import CaseType
from lexintel_api.graphql.context import Context
from lexintel_api.graphql.pagination import (
    Connection,
    connection,
    counter,
    created_key,
    decode_cursor,
    page_size,
)
from lexintel_core.models import Case


@strawberry.type
class CaseQueries:
    @strawberry.field(description="Cases of your organization, newest first.")
    async def cases(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[CaseType]:
        principal = info.context.require_principal()
        size = page_size(first)
        statement = select(Case).where(Case.organization_id == principal.organization_id)
        total = counter(info.context.services.sessions, statement)
        key = decode_cursor(after, created_key)
        if key is not None:
            statement = statement.where(tuple_(Case.created_at, Case.id) < key)
        statement = statement.order_by(Case.created_at.desc(), Case.id.desc()).limit(size + 1)
        async with info.context.services.sessions() as session:
            rows = list(await session.scalars(statement))
        return connection(
            rows,
            size,
            lambda c: [c.created_at.isoformat(), str(c.id)],
            CaseType.from_model,
            after=after,
            total=total,
        )

    @strawberry.field
    async def case(self, info: strawberry.Info[Context, None], id: uuid.UUID) -> CaseType | None:
        case = await info.context.loaders.case.load(id)
        return CaseType.from_model(case) if case is not None else None
