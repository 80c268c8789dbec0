"""Search over document chunks: SEMANTIC (pgvector HNSW), KEYWORD (BM25 over PostgreSQL's
full-text lexemes) and HYBRID (reciprocal-rank fusion of both).

Every search is scoped to one organization, optionally to a case or a list of documents,
and only sees chunks of READY documents (a half-processed document never shows partial
results). Results carry the pages they come from, for citations, and a snippet: the sentence
that best matches the query, with its page.

KEYWORD ranks by BM25 (Robertson/Spärck Jones; Lucene's idf = ln(1 + (N - df + 0.5) /
(df + 0.5)), k1 and b are settings) over the lexemes of `to_tsvector('english', ...)`, the same
lexemes as the full-text index. Statistics are per organization (chunks N, their average
length, chunks per lexeme df), kept exact by triggers (migration 0004) in the transaction
that makes a document READY or takes it out. Query words are optional (a chunk needs any of
them); `"quoted phrases"` must match, `-word` / `-"phrase"` must not, and `or` between
phrases makes either do: websearch syntax, as before. As Elasticsearch's common terms query
did, a query word found in more than `search_common_term_share` of the organization's chunks
(and in more than `search_common_depth` chunks) does not bring candidates of its own: it adds
its BM25 share to the `search_common_depth` best chunks that the rarer words found (when every
word is common, the rarest one finds them; when they find fewer chunks than wanted, as in a
small case, every word does). That keeps a ranking's cost to the postings of the rare words;
across a whole organization only each word's `search_term_depth` postings of highest impact
are read (migration 0005), so the cost does not grow with the organization's size.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import Float, Text

from lexintel_core import snippets
from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import Embedder
from lexintel_core.errors import InvalidInput
from lexintel_core.models import TEXT_SEARCH_CONFIG
from lexintel_core.settings import Settings

MAX_LIMIT = 100
MAX_OFFSET = 1000
MAX_QUERY_CHARS = 1000
_WORD = re.compile(r"\w")
# websearch_to_tsquery's syntax: "phrase", -word, -"phrase", or.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(-?)(\S+)')


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
    snippet: str  # the best matching sentence, HTML-escaped, query words in <mark>
    snippet_page: int  # the page the snippet is on
    relevance: float  # 0-1: SEMANTIC cosine, KEYWORD BM25 / its query maximum, HYBRID fused
    score: float  # the mode's ranking score (HYBRID: the fused RRF score)
    semantic_score: float | None  # cosine similarity, when the semantic list has the chunk
    keyword_score: float | None  # BM25, when the keyword list has the chunk
    semantic_rank: int | None  # 1-based place in the semantic list
    keyword_rank: int | None  # 1-based place in the keyword list


@dataclass(frozen=True)
class ParsedQuery:
    """`words`: what BM25 ranks by (every word not excluded, phrases' words too);
    `required`: websearch syntax every hit must match (phrases, exclusions), or None."""

    words: str
    required: str | None


def parse(query: str) -> ParsedQuery:
    """Split websearch syntax into optional ranking words and a required filter."""
    words: list[str] = []
    required: list[str] = []
    for match in _TOKEN.finditer(query):
        quoted_minus, phrase, minus, word = match.groups()
        if phrase is not None:
            if quoted_minus:
                required.append(f'-"{phrase}"')
            else:
                required.append(f'"{phrase}"')
                words.append(phrase)
        elif word.casefold() == "or":
            required.append("or")
        elif minus and len(word) > 0:
            required.append(f"-{word}")
        else:
            words.append(word)
    filter_ = " ".join(required)
    has_filter = any(part != "or" for part in required)
    return ParsedQuery(" ".join(words), filter_ if has_filter else None)


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


_SCOPE = """
      AND (CAST(:case_id AS uuid) IS NULL OR c.case_id = :case_id)
      AND (CAST(:document_ids AS uuid[]) IS NULL OR c.document_id = ANY(:document_ids))
"""

_SEMANTIC = f"""
    SELECT c.id, c.document_id, c.char_start, c.char_end, c.embedding <=> :embedding AS distance
    FROM document_chunks c
    JOIN documents d ON d.id = c.document_id
    JOIN cases k ON k.id = c.case_id
    WHERE k.organization_id = :organization_id
      AND d.status = 'READY'
      AND c.embedding_model = :model
      AND c.embedding IS NOT NULL
      {_SCOPE}
    ORDER BY c.embedding <=> :embedding, c.document_id, c.ordinal
    LIMIT :candidates
"""

# The query's lexemes with their document frequency, and the organization's statistics.
_TERMS = f"""
    SELECT q.lexeme, coalesce(t.chunks, 0) AS df, s.chunks AS n, s.length AS length
    FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector('{TEXT_SEARCH_CONFIG}', :words))) q
    LEFT JOIN keyword_terms t
      ON t.organization_id = :organization_id AND t.lexeme = q.lexeme COLLATE "C"
    LEFT JOIN keyword_statistics s ON s.organization_id = :organization_id
"""

_REQUIRED = f"websearch_to_tsquery('{TEXT_SEARCH_CONFIG}', :required)"


def _bm25(tf: str, length: str) -> str:
    """BM25's share of one lexeme: idf × saturated, length-normalized term frequency."""
    return f"w.idf * {tf} * (k.k1 + 1) / ({tf} + k.k1 * (1 - k.b + k.b * {length} / k.avgdl))"


# The postings of the rare lexemes: in a case or among documents, all of them (an index-only
# scan each, on the case's postings); across the organization, the :term_depth postings of
# each lexeme with the highest impact (its BM25 share at a reference chunk length, an
# index-only scan in impact order), so a lexeme in a large share of the organization's
# chunks costs no more than :term_depth rows.
_SCOPED_POSTINGS = """
        JOIN keyword_postings p
          ON p.organization_id = :organization_id AND p.lexeme = w.lexeme COLLATE "C"
        WHERE (CAST(:case_id AS uuid) IS NULL OR p.case_id = :case_id)
          AND (CAST(:document_ids AS uuid[]) IS NULL OR p.document_id = ANY(:document_ids))
"""
_TOP_POSTINGS = """
        CROSS JOIN LATERAL (
            SELECT t.chunk_id, t.tf, t.length
            FROM keyword_postings t
            WHERE t.organization_id = :organization_id AND t.lexeme = w.lexeme COLLATE "C"
            ORDER BY keyword_impact(t.tf, t.length) DESC
            LIMIT :term_depth
        ) p
"""


# BM25 from the postings of the rare lexemes, the best :depth chunks by it; then the common
# lexemes' shares from those chunks' own tsvector; the required filter; the best
# :candidates. The postings hold READY documents only.
def _keyword_sql(postings: str) -> str:
    return f"""
    WITH k AS (
        SELECT CAST(:k1 AS float8) AS k1, CAST(:b AS float8) AS b,
               CAST(:avgdl AS float8) AS avgdl
    ),
    rare AS (
        SELECT p.chunk_id, max(p.length) AS length, sum({_bm25("p.tf", "p.length")}) AS score
        FROM k
        CROSS JOIN unnest(CAST(:rare_lexemes AS text[]), CAST(:rare_idf AS float8[]))
             w(lexeme, idf)
        {postings}
        GROUP BY p.chunk_id
        ORDER BY score DESC, p.chunk_id
        LIMIT :depth
    ),
    scored AS (
        SELECT r.chunk_id, c.document_id, c.ordinal, c.char_start, c.char_end,
               r.score + coalesce((
                   SELECT sum({_bm25("x.tf", "r.length")})
                   FROM k
                   CROSS JOIN unnest(
                       CAST(:common_lexemes AS text[]), CAST(:common_idf AS float8[])
                   ) w(lexeme, idf)
                   CROSS JOIN LATERAL (
                       SELECT ts_rank_cd('{{1,1,1,1}}', c.search_vector,
                                         CAST(quote_literal(w.lexeme) AS tsquery), 0) AS tf
                   ) x
               ), 0) AS score
        FROM rare r
        JOIN document_chunks c ON c.id = r.chunk_id
        WHERE CAST(:required AS text) IS NULL OR c.search_vector @@ {_REQUIRED}
    )
    SELECT chunk_id AS id, document_id, char_start, char_end, score
    FROM scored
    ORDER BY score DESC, document_id, ordinal
    LIMIT :candidates
"""


_DETAILS = f"""
    SELECT c.id, c.document_id, d.filename, c.case_id, c.page_start, c.page_end, c.text,
           c.char_start, c.char_end, c.search_text, c.page_breaks,
           c.embedding IS NOT NULL AS embedded,
           ts_headline('{TEXT_SEARCH_CONFIG}', c.text, CAST(:marked AS tsquery),
                       'HighlightAll=true, StartSel={snippets.START_MARK}, '
                       'StopSel={snippets.STOP_MARK}') AS headline
    FROM document_chunks c
    JOIN documents d ON d.id = c.document_id
    WHERE c.id = ANY(:ids)
"""


def _statement(sql: str, **types: Any) -> TextClause:
    return text(sql).bindparams(*(bindparam(name, type_=type_) for name, type_ in types.items()))


_UUID = UUID(as_uuid=True)
_SCOPE_TYPES = {"organization_id": _UUID, "case_id": _UUID, "document_ids": ARRAY(_UUID)}
_STATEMENTS = {
    "semantic": _statement(_SEMANTIC, embedding=Vector(), **_SCOPE_TYPES),
    "terms": _statement(_TERMS, organization_id=_UUID),
    **{
        name: _statement(
            _keyword_sql(postings),
            rare_lexemes=ARRAY(Text),
            rare_idf=ARRAY(Float),
            common_lexemes=ARRAY(Text),
            common_idf=ARRAY(Float),
            **scope,
        )
        for name, postings, scope in (
            ("keyword", _SCOPED_POSTINGS, _SCOPE_TYPES),
            ("keyword_top", _TOP_POSTINGS, {"organization_id": _UUID}),
        )
    },
    "details": _statement(_DETAILS, ids=ARRAY(_UUID)),
}


@dataclass
class _Candidate:
    id: uuid.UUID
    document_id: uuid.UUID
    char_start: int
    char_end: int
    score: float = 0.0
    semantic_score: float | None = None
    keyword_score: float | None = None
    semantic_rank: int | None = None
    keyword_rank: int | None = None
    relevance: float = 0.0
    # Lower ranked chunks of the same passage (overlapping this one), shown with it.
    merged: list[_Candidate] = field(default_factory=list)


@dataclass
class _Keyword:
    """What a query's words weigh in one organization: idf per lexeme."""

    idf: dict[str, float] = field(default_factory=dict)
    common: set[str] = field(default_factory=set)
    avgdl: float = 1.0
    # The idf of every query lexeme summed, those in no chunk (df 0, the highest idf) too:
    # what a passage holding all the query's words would weigh.
    query: float = 0.0

    @property
    def maximum(self) -> float:
        """The highest BM25 any chunk could score (every word, saturated)."""
        return sum(self.idf.values())


def collapse(ranked: Sequence[_Candidate]) -> list[_Candidate]:
    """One hit per passage: a chunk that overlaps a better ranked one of the same document
    (neighbours share `chunk_overlap_tokens`) is merged into it, so its words stay shown
    and the list moves on to other passages. A merged candidate's char range grows to the
    union."""
    kept: list[_Candidate] = []
    for candidate in ranked:
        overlapping = [
            better
            for better in kept
            if better.document_id == candidate.document_id
            and candidate.char_start < better.char_end
            and better.char_start < candidate.char_end
        ]
        if not overlapping:
            kept.append(candidate)
            continue
        # The best passage it touches takes it, and any other it bridges to.
        best, *bridged = overlapping
        for other in [candidate, *bridged]:
            best.merged += [other, *other.merged]
            other.merged = []
            best.char_start = min(best.char_start, other.char_start)
            best.char_end = max(best.char_end, other.char_end)
        kept = [passage for passage in kept if passage not in bridged]
    return kept


@dataclass(frozen=True)
class _Passage:
    """What a hit shows: one chunk, or overlapping chunks of one document merged."""

    text: str
    marked: snippets.Marked
    search_text: str | None
    page_start: int
    page_end: int
    page_breaks: list[int]
    embedded: bool

    @classmethod
    def of(cls, rows: Sequence[Any]) -> _Passage:
        rows = sorted(rows, key=lambda row: row.char_start)
        start = rows[0].char_start
        text, end = "", start
        marks: set[tuple[int, int]] = set()
        breaks: set[int] = set()
        for row in rows:
            shift = row.char_start - start
            if row.char_end > end:  # chunk texts are slices of one document text
                text += row.text[end - row.char_start :]
                end = row.char_end
            marks.update((a + shift, b + shift) for a, b in _marked(row).marks)
            breaks.update(at + shift for at in row.page_breaks)
        searched = [row.search_text for row in rows]
        return cls(
            text=text,
            marked=snippets.Marked(text, tuple(sorted(marks))),
            search_text=None if None in searched else "\n".join(searched),
            page_start=min(row.page_start for row in rows),
            page_end=max(row.page_end for row in rows),
            page_breaks=sorted(breaks),
            embedded=any(row.embedded for row in rows),
        )


class SearchService:
    def __init__(self, sessions: SessionFactory, embedder: Embedder, settings: Settings) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._settings = settings

    async def search(self, request: SearchRequest) -> list[SearchHit]:
        """The page `request` asks for, best first; InvalidInput for what cannot be searched."""
        return await self._search(request, None)

    async def explain(self, request: SearchRequest) -> str:
        """PostgreSQL's plans of the statements that rank `request`, as the service runs them."""
        plans: list[str] = []
        await self._search(request, plans)
        return "\n\n".join(plans)

    async def _search(self, request: SearchRequest, plans: list[str] | None) -> list[SearchHit]:
        query = validate(request)
        parsed = parse(query)
        settings = self._settings
        # Enough candidates that the page survives collapsing overlapping chunks.
        candidates = max(settings.search_candidates, 2 * (request.offset + request.limit))
        embedding: list[float] | None = None
        if request.mode is not SearchMode.KEYWORD:
            [embedding] = await self._embedder.embed([query])
        scope = {
            "organization_id": request.organization_id,
            "case_id": request.case_id,
            "document_ids": list(request.document_ids)
            if request.document_ids is not None
            else None,
            "candidates": candidates,
        }
        async with self._sessions() as session, session.begin():
            await self._tune(session)
            run = _Runner(session, plans)
            semantic: list[_Candidate] = []
            keyword: list[_Candidate] = []
            # The query's lexemes and their weights: for ranking, and to mark the words.
            weights = await self._weights(run, parsed, scope)
            if embedding is not None:
                semantic = await self._semantic(run, embedding, scope)
            if request.mode is not SearchMode.SEMANTIC:
                keyword = await self._keyword(run, parsed, weights, scope)
            if plans is not None:
                return []
            ranked = collapse(self._fuse(request.mode, semantic, keyword))
            page = ranked[request.offset : request.offset + request.limit]
            details = await self._details(run, page, weights)
        return await self._hits(page, details, weights, embedding)

    async def _semantic(
        self, run: _Runner, embedding: list[float], scope: dict[str, Any]
    ) -> list[_Candidate]:
        parameters = {**scope, "embedding": embedding, "model": self._embedder.model_name}
        rows = await run("semantic", parameters)
        return [
            _Candidate(
                row.id,
                row.document_id,
                row.char_start,
                row.char_end,
                semantic_score=1 - float(row.distance),
                semantic_rank=rank,
            )
            for rank, row in enumerate(rows, 1)
        ]

    async def _weights(self, run: _Runner, parsed: ParsedQuery, scope: dict[str, Any]) -> _Keyword:
        parameters = {"words": parsed.words, "organization_id": scope["organization_id"]}
        rows = await run("terms", parameters, explain=False)
        found = [row for row in rows if row.df > 0]
        if not found:
            return _Keyword()
        n, length = int(found[0].n), int(found[0].length)
        idf = {row.lexeme: math.log(1 + (n - row.df + 0.5) / (row.df + 0.5)) for row in rows}
        weights = _Keyword(
            idf={row.lexeme: idf[row.lexeme] for row in found},
            avgdl=max(length / n, 1.0),
            query=sum(idf.values()),
        )
        # Common: in more chunks than the share, and than the re-ranking depth (below that,
        # reading a word's postings costs no more than re-ranking would).
        settings = self._settings
        limit = max(settings.search_common_term_share * n, settings.search_common_depth)
        weights.common = {row.lexeme for row in found if row.df > limit}
        if len(weights.common) == len(found):  # every word is common: the rarest leads
            weights.common.remove(min(found, key=lambda row: (row.df, row.lexeme)).lexeme)
        return weights

    async def _keyword(
        self,
        run: _Runner,
        parsed: ParsedQuery,
        weights: _Keyword,
        scope: dict[str, Any],
    ) -> list[_Candidate]:
        if not weights.idf:
            return []
        settings = self._settings
        rare = {k: v for k, v in weights.idf.items() if k not in weights.common}
        common = {k: v for k, v in weights.idf.items() if k in weights.common}
        parameters = {
            **scope,
            "rare_lexemes": list(rare),
            "rare_idf": list(rare.values()),
            "common_lexemes": list(common),
            "common_idf": list(common.values()),
            "required": parsed.required,
            "k1": settings.search_bm25_k1,
            "b": settings.search_bm25_b,
            "avgdl": weights.avgdl,
            # Without common words (or a filter) the best candidates are the best by rare
            # words alone: no deeper list is needed.
            "depth": None
            if parsed.required
            else max(settings.search_common_depth, scope["candidates"])
            if common
            else scope["candidates"],
            "term_depth": max(settings.search_term_depth, scope["candidates"]),
        }
        # Across the organization, each word's postings of highest impact; in a case, among
        # documents or under a required filter (which may reject the best), all of them.
        everywhere = scope["case_id"] is None and scope["document_ids"] is None
        statement = "keyword_top" if everywhere and not parsed.required else "keyword"
        rows = await run(statement, parameters)
        if common and len(rows) < scope["candidates"]:
            # The rare words found too few (a small case, a narrow filter): every word finds.
            everything = {"rare_lexemes": list(weights.idf), "rare_idf": list(weights.idf.values())}
            parameters |= {**everything, "common_lexemes": [], "common_idf": [], "depth": None}
            rows = await run(statement, parameters)
        maximum = weights.maximum * (settings.search_bm25_k1 + 1)
        return [
            _Candidate(
                row.id,
                row.document_id,
                row.char_start,
                row.char_end,
                keyword_score=float(row.score),
                keyword_rank=rank,
                relevance=min(1.0, float(row.score) / maximum),
            )
            for rank, row in enumerate(rows, 1)
        ]

    def _fuse(
        self, mode: SearchMode, semantic: list[_Candidate], keyword: list[_Candidate]
    ) -> list[_Candidate]:
        settings = self._settings
        if mode is SearchMode.SEMANTIC:
            for candidate in semantic:
                candidate.score = candidate.semantic_score or 0.0
                candidate.relevance = max(0.0, min(1.0, candidate.score))
            return semantic
        if mode is SearchMode.KEYWORD:
            for candidate in keyword:
                candidate.score = candidate.keyword_score or 0.0
            return keyword
        k = settings.search_rrf_k
        ws, wk = settings.search_semantic_weight, settings.search_keyword_weight
        fused: dict[uuid.UUID, _Candidate] = {}
        for candidate in semantic:
            candidate.score = ws / (k + (candidate.semantic_rank or 0))
            fused[candidate.id] = candidate
        for candidate in keyword:
            share = wk / (k + (candidate.keyword_rank or 0))
            if (known := fused.get(candidate.id)) is not None:
                known.score += share
                known.keyword_score = candidate.keyword_score
                known.keyword_rank = candidate.keyword_rank
            else:
                candidate.score = share
                fused[candidate.id] = candidate
        best = (ws + wk) / (k + 1) or 1.0
        for candidate in fused.values():
            candidate.relevance = min(1.0, candidate.score / best)
        return sorted(fused.values(), key=lambda c: -c.score)

    async def _details(
        self, run: _Runner, page: list[_Candidate], weights: _Keyword
    ) -> dict[uuid.UUID, Any]:
        if not page:
            return {}
        marked = " | ".join(_quote(lexeme) for lexeme in weights.idf) or None
        ids = [c.id for candidate in page for c in (candidate, *candidate.merged)]
        parameters = {"ids": ids, "marked": marked}
        rows = await run("details", parameters)
        return {row.id: row for row in rows}

    async def _hits(
        self,
        page: list[_Candidate],
        details: dict[uuid.UUID, Any],
        weights: _Keyword,
        embedding: list[float] | None,
    ) -> list[SearchHit]:
        shown = [
            _Passage.of([details[c.id] for c in (candidate, *candidate.merged)])
            for candidate in page
        ]
        chosen = await self._snippets(shown, weights, embedding)
        hits = []
        for candidate, passage, snippet in zip(page, shown, chosen, strict=True):
            row = details[candidate.id]
            hits.append(
                SearchHit(
                    chunk_id=row.id,
                    document_id=row.document_id,
                    filename=row.filename,
                    case_id=row.case_id,
                    page_start=passage.page_start,
                    page_end=passage.page_end,
                    text=passage.text,
                    snippet=snippet.html,
                    snippet_page=passage.page_start
                    + sum(1 for at in passage.page_breaks if at <= snippet.focus),
                    relevance=round(candidate.relevance, 4),
                    score=candidate.score,
                    semantic_score=candidate.semantic_score,
                    keyword_score=candidate.keyword_score,
                    semantic_rank=candidate.semantic_rank,
                    keyword_rank=candidate.keyword_rank,
                )
            )
        return hits

    async def _snippets(
        self, shown: Sequence[_Passage], weights: _Keyword, embedding: list[float] | None
    ) -> list[snippets.Passage]:
        """Each passage's best sentence; with a query embedding, sentences are also compared
        with the query by embedding them (one batch for the page of results)."""
        spans = [snippets.sentences(p.text, p.search_text) for p in shown]
        similarities: list[list[float] | None] = [None] * len(shown)
        wanted = [(i, p.text[a:b]) for i, p in enumerate(shown) if p.embedded for a, b in spans[i]]
        if wanted and embedding is not None and self._settings.search_snippet_similarity:
            vectors = np.asarray(await self._embedder.embed([sentence for _, sentence in wanted]))
            query = np.asarray(embedding)
            norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
            cosines = (vectors @ query) / np.where(norms > 0, norms, 1.0)
            for (i, _), cosine in zip(wanted, cosines.tolist(), strict=True):
                found = similarities[i]
                if found is None:
                    found = similarities[i] = []
                found.append(cosine)
        return [
            snippets.best_passage(
                p.marked, weights.idf, spans[i], similarities[i], query_weight=weights.query
            )
            for i, p in enumerate(shown)
        ]

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


class _Runner:
    """Runs the service's statements in one session; with `plans`, EXPLAINs them instead
    (collecting the plans) and returns no rows."""

    def __init__(self, session: AsyncSession, plans: list[str] | None) -> None:
        self._session = session
        self._plans = plans

    async def __call__(
        self, name: str, parameters: dict[str, Any], *, explain: bool = True
    ) -> Sequence[Any]:
        statement = _STATEMENTS[name]
        if self._plans is None or not explain:
            return (await self._session.execute(statement, parameters)).all()
        explained = text(f"EXPLAIN {statement.text}").bindparams(*statement._bindparams.values())
        plan = await self._session.scalars(explained, parameters)
        self._plans.append(f"-- {name}\n" + "\n".join(plan))
        return []


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _marked(row: Any) -> snippets.Marked:
    # No headline when the query has no lexemes. ts_headline gives the text back whole;
    # should it ever not, the text is shown without marks.
    marked = snippets.Marked.parse(row.headline or "")
    return marked if marked.text == row.text else snippets.Marked(row.text, ())
