"""Search behaviour against real PostgreSQL + pgvector: scope, isolation, filters, plans and
hostile queries. (Retrieval quality is measured in test_search_quality.py.)"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import HashingEmbedder
from lexintel_core.errors import ErrorCode, InvalidInput
from lexintel_core.models import Case
from lexintel_core.search import SearchHit, SearchMode, SearchRequest, SearchService
from lexintel_core.status import ProcessingStatus
from tests import factories

MODES = list(SearchMode)
LEASE = [
    "MASTER LEASE. The Landlord leases the Premises at 12 Harbour Road to the Tenant.",
    "Section 9. Indemnification. The Tenant shall indemnify the Landlord against all claims.",
    "Section 12. Claims under 42 U.S.C. § 1983 are excluded. Docket No. 1:24-cv-01234.",
]


async def _case(session: AsyncSession, org_name: str = "Acme LLP") -> Case:
    return await factories.case(session, await factories.organization(session, org_name))


@pytest.mark.parametrize("mode", MODES)
async def test_each_mode_finds_the_clause_and_cites_its_page(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService, mode: SearchMode
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        document, _ = await factories.indexed_document(
            session, embedder, case, "lease.pdf", LEASE, size_tokens=32
        )
    hits = await service.search(
        factories.search_request(case, "tenant indemnify landlord claims", mode, limit=3)
    )
    assert hits
    top = hits[0]
    assert (top.document_id, top.filename, top.case_id) == (document.id, "lease.pdf", case.id)
    assert top.page_start <= 2 <= top.page_end
    assert "Indemnification" in top.text
    if mode is not SearchMode.SEMANTIC:
        assert "<mark>" in top.snippet
    assert _scores_present(top, mode)


def _scores_present(hit: SearchHit, mode: SearchMode) -> bool:
    if mode is SearchMode.SEMANTIC:
        return hit.semantic_score is not None and hit.keyword_score is None
    if mode is SearchMode.KEYWORD:
        return hit.keyword_score is not None and hit.semantic_score is None
    return hit.semantic_score is not None and hit.keyword_score is not None


@pytest.mark.parametrize("query", ["§ 1983", "42 U.S.C. § 1983", "U.S.C.", "1:24-cv-01234"])
async def test_legal_tokens_stay_findable_by_keyword(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService, query: str
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        await factories.indexed_document(
            session, embedder, case, "lease.pdf", LEASE, size_tokens=32
        )
    hits = await service.search(factories.search_request(case, query, SearchMode.KEYWORD))
    assert hits, query
    assert hits[0].page_start <= 3 <= hits[0].page_end


async def test_websearch_syntax_quotes_and_exclusions(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        await factories.indexed_document(
            session, embedder, case, "lease.pdf", LEASE, size_tokens=32
        )
    assert await service.search(
        factories.search_request(case, '"shall indemnify"', SearchMode.KEYWORD)
    )
    assert not await service.search(
        factories.search_request(case, '"indemnify shall"', SearchMode.KEYWORD)
    )
    excluded = await service.search(
        factories.search_request(case, "claims -indemnify", SearchMode.KEYWORD)
    )
    assert excluded
    assert all("indemnify" not in hit.text for hit in excluded)


@pytest.mark.parametrize("mode", MODES)
async def test_an_organization_never_sees_another_organizations_chunks(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService, mode: SearchMode
) -> None:
    async with sessions.begin() as session:
        ours = await _case(session, "Ours LLP")
        theirs = await _case(session, "Theirs LLP")
        their_document, _ = await factories.indexed_document(
            session, embedder, theirs, "secret.pdf", LEASE
        )
    for fields in ({}, {"case_id": theirs.id}, {"document_ids": [their_document.id]}):
        hits = await service.search(
            factories.search_request(ours, "Tenant indemnify", mode, **fields)
        )
        assert hits == [], fields
    assert await service.search(factories.search_request(theirs, "Tenant indemnify", mode))


@pytest.mark.parametrize("mode", MODES)
async def test_only_ready_documents_are_searched(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService, mode: SearchMode
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        for status in (
            ProcessingStatus.EMBEDDING,
            ProcessingStatus.FAILED,
            ProcessingStatus.QUEUED,
        ):
            await factories.indexed_document(
                session, embedder, case, f"{status}.pdf", [f"{status} " + LEASE[1]], status=status
            )
    assert (
        await service.search(
            factories.search_request(case, "Tenant indemnify", mode, case_id=case.id)
        )
        == []
    )


@pytest.mark.parametrize("mode", MODES)
async def test_document_filter_and_paging(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService, mode: SearchMode
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        documents = [
            (await factories.indexed_document(session, embedder, case, f"lease-{n}.pdf", LEASE))[0]
            for n in range(4)
        ]
    chosen = [documents[1].id, documents[3].id]
    hits = await service.search(
        factories.search_request(case, "Landlord Tenant", mode, document_ids=chosen, limit=100)
    )
    assert hits
    assert {hit.document_id for hit in hits} <= set(chosen)

    everything = await service.search(
        factories.search_request(case, "Landlord Tenant", mode, limit=6)
    )
    first = await service.search(factories.search_request(case, "Landlord Tenant", mode, limit=3))
    second = await service.search(
        factories.search_request(case, "Landlord Tenant", mode, limit=3, offset=3)
    )
    assert [h.chunk_id for h in first + second] == [h.chunk_id for h in everything]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 10_240, "longer than"),
        ("?!... ;-- /* */ ''", "no words"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_unsearchable_queries_get_a_clear_error(
    sessions: SessionFactory, service: SearchService, query: str, message: str, mode: SearchMode
) -> None:
    with pytest.raises(InvalidInput, match=message) as raised:
        await service.search(SearchRequest(query=query, organization_id=uuid.uuid4(), mode=mode))
    assert raised.value.code == ErrorCode.INVALID_INPUT


@pytest.mark.parametrize(
    "query",
    [
        "'; DROP TABLE document_chunks; --",
        "tenant' OR '1'='1",
        "indemn:* & !landlord | (claims <-> tenant)",
        '"unterminated quote',
        "\\x00 \x00 null byte",
        "-rent",
        "rent)(",
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_sql_and_tsquery_metacharacters_are_just_text(
    sessions: SessionFactory,
    embedder: HashingEmbedder,
    service: SearchService,
    query: str,
    mode: SearchMode,
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        await factories.indexed_document(session, embedder, case, "lease.pdf", LEASE)
    hits = await service.search(factories.search_request(case, query, mode))
    assert isinstance(hits, list)
    async with sessions() as session:  # the table is still there
        assert await factories.chunk_count(session) > 0


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (101, 0), (10, -1), (10, 1001)])
async def test_limits_are_enforced(service: SearchService, limit: int, offset: int) -> None:
    with pytest.raises(InvalidInput):
        await service.search(
            SearchRequest(query="rent", organization_id=uuid.uuid4(), limit=limit, offset=offset)
        )


async def test_a_case_without_ready_documents_gives_an_empty_list(
    sessions: SessionFactory, service: SearchService
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
    for mode in MODES:
        assert (
            await service.search(factories.search_request(case, "rent", mode, case_id=case.id))
            == []
        )


async def test_snippets_escape_html_in_the_document_text(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        await factories.indexed_document(
            session,
            embedder,
            case,
            "x.html",
            ["The rent & fees < 500 dollars <script>alert(1)</script> are due."],
        )
    [hit] = await service.search(factories.search_request(case, "rent", SearchMode.KEYWORD))
    assert "<script>" not in hit.snippet
    assert "&amp; fees &lt; 500" in hit.snippet
    assert "<mark>rent</mark>" in hit.snippet
