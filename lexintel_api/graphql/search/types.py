"""GraphQL types of search."""

from __future__ import annotations

import uuid

import strawberry

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.documents.types import DocumentType
from lexintel_core.search import SearchHit, SearchMode

strawberry.enum(SearchMode)


@strawberry.type(name="SearchHit")
class SearchHitType:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    case_id: uuid.UUID
    filename: str
    page_start: int
    page_end: int
    text: str
    snippet: str = strawberry.field(description="HTML-escaped; matches wrapped in <mark>.")
    score: float
    semantic_score: float | None
    keyword_score: float | None

    @classmethod
    def from_hit(cls, hit: SearchHit) -> SearchHitType:
        return cls(
            chunk_id=hit.chunk_id,
            document_id=hit.document_id,
            case_id=hit.case_id,
            filename=hit.filename,
            page_start=hit.page_start,
            page_end=hit.page_end,
            text=hit.text,
            snippet=hit.snippet,
            score=hit.score,
            semantic_score=hit.semantic_score,
            keyword_score=hit.keyword_score,
        )

    @strawberry.field
    async def document(self, info: strawberry.Info[Context, None]) -> DocumentType | None:
        document = await info.context.loaders.document.load(self.document_id)
        return DocumentType.from_model(document) if document is not None else None
