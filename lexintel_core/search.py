"""Search over document chunks: SEMANTIC (pgvector HNSW), KEYWORD (PostgreSQL full text) and
HYBRID (reciprocal-rank fusion of both, in one SQL statement).

Every search is scoped to one organization, optionally to a case or a list of documents,
and only sees chunks of READY documents (a half-processed document never shows partial
results). Results carry the pages they come from, for citations.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import Embedder
from lexintel_core.errors import InvalidInput
from lexintel_core.models import TEXT_SEARCH_CONFIG
from lexintel_core.settings import Settings

MAX_LIMIT = 100
MAX_OFFSET = 1000
MAX_QUERY_CHARS = 1000
# Control characters mark highlights inside ts_headline's output, so that the chunk text
# can be HTML-escaped before the markers become <mark> tags.
_START, _STOP = "\x02", "\x03"
_HEADLINE_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=12, MaxFragments=2, "
    'FragmentDelimiter=" … "'
)
_WORD = re.compile(r"\w")


class SearchMode(StrEnum):
    SEMANTIC = "SEMANTIC"
    KEYWORD = "KEYWORD"
    HYBRID = "HYBRID"


@dataclass(frozen=True)
class SearchRequest:
    query: str
    organization_id: uuid.UUID
    mode: SearchMode = SearchMode.HYBRID
    case_id: uuid.UUID | None = None
    document_ids: Sequence[uuid.UUID] | None = None
    limit: int = 10
    offset: int = 0


@dataclass(frozen=True)
class SearchHit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    filename: str
    case_id: uuid.UUID
    page_start: int
    page_end: int
    text: str
    snippet: str  # HTML-escaped, matches wrapped in <mark>
    score: float  # the mode's ranking score (HYBRID: the fused RRF score)
    semantic_score: float | None  # cosine similarity, when the semantic list has the chunk
    keyword_score: float | None  # ts_rank_cd, when the keyword list has the chunk


def validate(request: SearchRequest) -> str:
    """The cleaned query text; InvalidInput for what cannot be searched."""
    query = request.query.strip()
    if not query:
        raise InvalidInput("the search query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the search query is longer than {MAX_QUERY_CHARS} characters")
    if not _WORD.search(query):
        raise InvalidInput("the search query has no words or numbers to search for")
    if not 1 <= request.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= request.offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}")
    if request.document_ids is not None and len(request.document_ids) > 1000:
        raise InvalidInput("at most 1000 document ids can be given")
    return query.replace("\x00", "")


# The scope every list applies: organization, READY documents, optional case / documents.
_SCOPE = """
    FROM document_chunks c
    JOIN documents d ON d.id = c.document_id
    JOIN cases k ON k.id = c.case_id
    WHERE k.organization_id = :organization_id
      AND d.status = 'READY'
      AND (CAST(:case_id AS uuid) IS NULL OR c.case_id = :case_id)
      AND (CAST(:document_ids AS uuid[]) IS NULL OR c.document_id = ANY(:document_ids))
"""

_SEMANTIC_LIST = f"""
    SELECT c.id, c.document_id, c.ordinal, c.embedding <=> :embedding AS distance
    {_SCOPE}
      AND c.embedding_model = :model
    ORDER BY c.embedding <=> :embedding
    LIMIT :candidates
"""

_TSQUERY = f"websearch_to_tsquery('{TEXT_SEARCH_CONFIG}', :query)"

_KEYWORD_LIST = f"""
    SELECT c.id, c.document_id, c.ordinal, ts_rank_cd(c.search_vector, {_TSQUERY}) AS rank
    {_SCOPE}
      AND c.search_vector @@ {_TSQUERY}
    ORDER BY rank DESC, c.document_id, c.ordinal
    LIMIT :candidates
"""

# Each mode ranks candidate chunk ids; the final SELECT pages them and adds what results show.
# Ties break on (document, ordinal), so equal scores (overlapping chunks) rank reproducibly.
_RANKED = {
    SearchMode.SEMANTIC: f"""
    ranked AS (
        SELECT id, 1 - distance AS score, 1 - distance AS semantic_score,
               NULL::float8 AS keyword_score
        FROM ({_SEMANTIC_LIST}) s
    )""",
    SearchMode.KEYWORD: f"""
    ranked AS (
        SELECT id, rank AS score, NULL::float8 AS semantic_score, rank AS keyword_score
        FROM ({_KEYWORD_LIST}) k
    )""",
    SearchMode.HYBRID: f"""
    semantic AS (
        SELECT id, distance,
               row_number() OVER (ORDER BY distance, document_id, ordinal) AS position
        FROM ({_SEMANTIC_LIST}) s
    ),
    keyword AS (
        SELECT id, rank,
               row_number() OVER (ORDER BY rank DESC, document_id, ordinal) AS position
        FROM ({_KEYWORD_LIST}) k
    ),
    ranked AS (
        SELECT coalesce(s.id, k.id) AS id,
               coalesce(CAST(:semantic_weight AS float8) / (:rrf_k + s.position), 0)
                 + coalesce(CAST(:keyword_weight AS float8) / (:rrf_k + k.position), 0)
                 AS score,
               1 - s.distance AS semantic_score,
               k.rank AS keyword_score
        FROM semantic s FULL OUTER JOIN keyword k ON k.id = s.id
    )""",
}


def _statement(mode: SearchMode) -> TextClause:
    sql = f"""
    WITH {_RANKED[mode]}
    SELECT c.id, c.document_id, d.filename, c.case_id, c.page_start, c.page_end, c.text,
           ts_headline('{TEXT_SEARCH_CONFIG}', c.text, {_TSQUERY}, '{_HEADLINE_OPTIONS}')
             AS headline,
           r.score, r.semantic_score, r.keyword_score
    FROM ranked r
    JOIN document_chunks c ON c.id = r.id
    JOIN documents d ON d.id = c.document_id
    ORDER BY r.score DESC, c.document_id, c.ordinal
    LIMIT :limit OFFSET :offset
    """
    types = {
        "embedding": Vector(),
        "case_id": UUID(as_uuid=True),
        "organization_id": UUID(as_uuid=True),
        "document_ids": ARRAY(UUID(as_uuid=True)),
    }
    return text(sql).bindparams(
        *(bindparam(name, type_=type_) for name, type_ in types.items() if f":{name}" in sql)
    )


_STATEMENTS = {mode: _statement(mode) for mode in SearchMode}


def _snippet(headline: str) -> str:
    escaped = html.escape(headline, quote=False)
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")


class SearchService:
    def __init__(self, sessions: SessionFactory, embedder: Embedder, settings: Settings) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._settings = settings

    async def search(self, request: SearchRequest) -> list[SearchHit]:
        statement, parameters = await self._prepare(request)
        async with self._sessions() as session, session.begin():
            await self._tune(session)
            rows = (await session.execute(statement, parameters)).all()
        return [
            SearchHit(
                chunk_id=row.id,
                document_id=row.document_id,
                filename=row.filename,
                case_id=row.case_id,
                page_start=row.page_start,
                page_end=row.page_end,
                text=row.text,
                snippet=_snippet(row.headline),
                score=float(row.score),
                semantic_score=_float(row.semantic_score),
                keyword_score=_float(row.keyword_score),
            )
            for row in rows
        ]

    async def explain(self, request: SearchRequest) -> str:
        """PostgreSQL's plan for `request`, as the service would run it."""
        statement, parameters = await self._prepare(request)
        async with self._sessions() as session, session.begin():
            await self._tune(session)
            explained = text(f"EXPLAIN {statement.text}").bindparams(
                *statement._bindparams.values()
            )
            return "\n".join(await session.scalars(explained, parameters))

    async def _prepare(self, request: SearchRequest) -> tuple[TextClause, dict[str, Any]]:
        query = validate(request)
        settings = self._settings
        embedding: list[float] | None = None
        if request.mode is not SearchMode.KEYWORD:
            [embedding] = await self._embedder.embed([query])
        parameters: dict[str, Any] = {
            "query": query,
            "organization_id": request.organization_id,
            "case_id": request.case_id,
            "document_ids": list(request.document_ids)
            if request.document_ids is not None
            else None,
            "embedding": embedding,
            "model": self._embedder.model_name,
            "limit": request.limit,
            "offset": request.offset,
            # Every page is cut from the same `search_candidates` best chunks (at least), so
            # pages agree with each other even though HNSW and relaxed order are approximate.
            "candidates": max(settings.search_candidates, request.offset + request.limit),
            "rrf_k": settings.search_rrf_k,
            "semantic_weight": settings.search_semantic_weight,
            "keyword_weight": settings.search_keyword_weight,
        }
        return _STATEMENTS[request.mode], parameters

    async def _tune(self, session: AsyncSession) -> None:
        # Iterative scans keep an HNSW scan going until enough rows pass the filters, so a
        # case holding 1% of the chunks still gets k results (pgvector >= 0.8).
        # Custom plans always: asyncpg prepares statements, and after five runs PostgreSQL
        # may switch to a generic plan that misjudges the optional filters and LIMIT and
        # scans the whole table (measured 3-8x slower in bench/search_scale.py).
        await session.execute(
            text(
                "SELECT set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('plan_cache_mode', 'force_custom_plan', true)"
            ),
            {"ef": str(self._settings.search_ef_search)},
        )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
