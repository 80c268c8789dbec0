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
    snippet: str = strawberry.field(
        description="The sentences that best answer the query (one or two fragments joined by"
        " '…'), HTML-escaped, query words wrapped in <mark>."
    )
    snippet_page: int = strawberry.field(description="The page the snippet is on.")
    relevance: float = strawberry.field(
        description="0-1. SEMANTIC: cosine similarity; KEYWORD: BM25 as a share of the most"
        " the query's words could score; HYBRID: the fused score as a share of a hit ranked"
        " first by both lists."
    )
    score: float = strawberry.field(
        description="The mode's raw ranking score (HYBRID: reciprocal-rank fusion)."
    )
    semantic_score: float | None = strawberry.field(
        description="Cosine similarity, when the semantic list has the chunk."
    )
    keyword_score: float | None = strawberry.field(
        description="BM25 score, when the keyword list has the chunk."
    )
    semantic_rank: int | None = strawberry.field(description="1-based place in the semantic list.")
    keyword_rank: int | None = strawberry.field(description="1-based place in the keyword list.")

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
            snippet_page=hit.snippet_page,
            relevance=hit.relevance,
            score=hit.score,
            semantic_score=hit.semantic_score,
            keyword_score=hit.keyword_score,
            semantic_rank=hit.semantic_rank,
            keyword_rank=hit.keyword_rank,
        )

    @strawberry.field
    async def document(self, info: strawberry.Info[Context, None]) -> DocumentType | None:
        document = await info.context.loaders.document.load(self.document_id)
        return DocumentType.from_model(document) if document is not None else None
