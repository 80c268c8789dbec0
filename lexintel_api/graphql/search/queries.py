"""Search over the READY documents of your organization."""

from __future__ import annotations

import uuid

import strawberry

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.search.types import SearchHitType
from lexintel_core.search import SearchMode, SearchRequest


@strawberry.type
class SearchQueries:
    @strawberry.field(
        description="Chunks matching `query`, best first, with page numbers for citation."
    )
    async def search(
        self,
        info: strawberry.Info[Context, None],
        query: str,
        case_id: uuid.UUID | None = None,
        mode: SearchMode = SearchMode.HYBRID,
        limit: int = 10,
        offset: int = 0,
    ) -> list[SearchHitType]:
        principal = info.context.require_principal()
        hits = await info.context.services.search.search(
            SearchRequest(
                query=query,
                organization_id=principal.organization_id,
                mode=mode,
                case_id=case_id,
                limit=limit,
                offset=offset,
            )
        )
        return [SearchHitType.from_hit(hit) for hit in hits]
