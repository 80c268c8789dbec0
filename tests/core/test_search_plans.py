"""Search at a size where the planner's choices matter: 10,000 chunks, one case holding 1%.

The data is generated once for the module inside PostgreSQL and removed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lexintel_core.db import create_session_factory
from lexintel_core.embeddings import HashingEmbedder
from lexintel_core.models import Base, Case
from lexintel_core.search import SearchMode, SearchService
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from tests import factories

_HNSW_INDEX = "ix_document_chunks_embedding_hnsw"

# Random words (one rare word in 2% of the chunks) and random unit vectors.
_GENERATE_CHUNKS = """
INSERT INTO document_chunks (id, document_id, case_id, ordinal, text, page_start, page_end,
                             char_start, char_end, token_count, embedding, embedding_model)
SELECT gen_random_uuid(), d.id, d.case_id, g,
       CASE WHEN g = 0 THEN 'subrogation ' ELSE '' END || array_to_string(ARRAY(
           SELECT (ARRAY['lease', 'tenant', 'rent', 'indemnity', 'court', 'order', 'motion',
                         'notice'])[1 + floor(random() * 8)::int]
           FROM generate_series(1, 12 + 0 * g)), ' '),
       1, 1, 100 * g, 100 * g + 90, 12,
       l2_normalize(
           ARRAY(SELECT random() - 0.5 + 0 * g FROM generate_series(1, :dimension))::vector),
       :model
FROM documents d CROSS JOIN generate_series(0, 49) g
"""


@pytest.fixture(scope="module")
def embedder(settings: Settings) -> HashingEmbedder:
    return HashingEmbedder(settings.embedding_dimension)


@pytest.fixture(scope="module")
def service(engine: AsyncEngine, embedder: HashingEmbedder, settings: Settings) -> SearchService:
    return SearchService(create_session_factory(engine), embedder, settings)


@pytest.fixture(scope="module")
async def cases(engine: AsyncEngine, embedder: HashingEmbedder) -> AsyncIterator[tuple[Case, Case]]:
    """(big case, small case): 10,000 READY chunks, 1% of them in the small case."""
    sessions = create_session_factory(engine)
    async with sessions.begin() as session:
        org = await factories.organization(session)
        big = await factories.case(session, org, "Big")
        small = await factories.case(session, org, "Small")
        for case_item, documents in ((big, 198), (small, 2)):  # 50 chunks each
            for n in range(documents):
                item = factories.document(case_item.id, f"{case_item.id}-{n}".encode(), f"d{n}.pdf")
                item.status = ProcessingStatus.READY
                session.add(item)
        await session.flush()
        # Building the HNSW index once after the load is far faster than growing it row by
        # row; the index is re-created from its own definition, so the schema stays the same.
        hnsw = await session.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
            {"name": _HNSW_INDEX},
        )
        await session.execute(text(f"DROP INDEX {_HNSW_INDEX}"))
        await session.execute(text("SELECT setseed(0.42)"))
        await session.execute(
            text(_GENERATE_CHUNKS),
            {"dimension": embedder.dimension, "model": embedder.model_name},
        )
        await session.execute(text(hnsw))
    # Statistics and the visibility map, as autovacuum would leave them: without the map an
    # index-only scan is costed as the heap reads it would then need, and whether autovacuum
    # has run by now depends on the machine's load.
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE keyword_postings, document_chunks"))
        await autocommit.execute(text("ANALYZE"))
    yield big, small
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.mark.parametrize("mode", list(SearchMode))
async def test_a_case_with_one_percent_of_the_chunks_still_gets_k_results(
    cases: tuple[Case, Case], service: SearchService, mode: SearchMode
) -> None:
    _, small = cases
    hits = await service.search(
        factories.search_request(
            small, "tenant or rent or notice", mode, case_id=small.id, limit=10
        )
    )
    assert len(hits) == 10
    assert {hit.case_id for hit in hits} == {small.id}


async def test_unfiltered_semantic_search_uses_the_hnsw_index(
    cases: tuple[Case, Case], service: SearchService
) -> None:
    big, _ = cases
    plan = await service.explain(
        factories.search_request(big, "tenant rent notice", SearchMode.SEMANTIC)
    )
    assert _HNSW_INDEX in plan, plan


async def test_keyword_search_reads_the_postings_indexes(
    cases: tuple[Case, Case], service: SearchService
) -> None:
    big, small = cases
    # In a case: the case's postings of each word.
    request = factories.search_request(small, "subrogation", SearchMode.KEYWORD, case_id=small.id)
    plan = await service.explain(request)
    assert "ix_keyword_postings_lexeme" in plan, plan
    # Across the organization: each word's best postings, in impact order.
    plan = await service.explain(factories.search_request(big, "subrogation", SearchMode.KEYWORD))
    assert "Index Only Scan using ix_keyword_postings_impact" in plan, plan


async def test_an_organization_wide_search_reads_only_each_words_best_postings(
    cases: tuple[Case, Case], engine: AsyncEngine, embedder: HashingEmbedder, settings: Settings
) -> None:
    big, _ = cases
    sessions = create_session_factory(engine)
    # "tenant" is in most of the 10,000 chunks; 20 of its postings are read, not thousands.
    shallow = SearchService(
        sessions, embedder, settings.model_copy(update={"search_term_depth": 20})
    )
    deep = SearchService(
        sessions, embedder, settings.model_copy(update={"search_term_depth": 100000})
    )
    request = factories.search_request(big, "tenant", SearchMode.KEYWORD, limit=10)
    found = [(hit.chunk_id, hit.keyword_score) for hit in await shallow.search(request)]
    exact = [(hit.chunk_id, hit.keyword_score) for hit in await deep.search(request)]
    # One word: its postings of highest impact are its best chunks by BM25.
    assert len(found) == 10
    assert found == exact


async def test_common_words_re_rank_what_the_rare_words_found(
    cases: tuple[Case, Case], service: SearchService
) -> None:
    big, _ = cases
    # "subrogation" is in 2% of the chunks: rare; "lease" in most: common (settings: 5%).
    hits = await service.search(
        factories.search_request(big, "subrogation lease", SearchMode.KEYWORD, limit=10)
    )
    assert len(hits) == 10
    assert all("subrogation" in hit.text for hit in hits)
    scores = [hit.keyword_score or 0 for hit in hits]
    assert scores == sorted(scores, reverse=True)
    # The common word adds to the score: chunks with more "lease" rank first.
    leases = [hit.text.count("lease") for hit in hits]
    assert leases[0] >= leases[-1]
    # Every word common: the rarest finds the candidates, and there are enough of them.
    hits = await service.search(factories.search_request(big, "tenant rent", SearchMode.KEYWORD))
    assert len(hits) == 10


async def test_common_words_still_find_chunks_in_a_small_case(
    cases: tuple[Case, Case], service: SearchService
) -> None:
    _, small = cases
    # In the 1% case the rare word is in 2 chunks: the common word finds the others.
    hits = await service.search(
        factories.search_request(
            small, "subrogation lease", SearchMode.KEYWORD, case_id=small.id, limit=10
        )
    )
    assert len(hits) == 10
    assert all("lease" in hit.text or "subrogation" in hit.text for hit in hits)
