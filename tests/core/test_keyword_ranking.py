"""BM25 keyword ranking against real PostgreSQL: the scores are BM25's, the term statistics
stay exact as documents are added, reprocessed and deleted, natural-language queries match
any of their words, passages are collapsed, relevance is 0-1, snippets cite their page."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.db import SessionFactory
from lexintel_core.embeddings import HashingEmbedder
from lexintel_core.models import Case, Document, DocumentChunk
from lexintel_core.search import SearchMode, SearchService
from lexintel_core.status import ProcessingStatus
from tests import factories

K1, B = 1.2, 0.75


async def _case(session: AsyncSession, name: str = "Acme LLP") -> Case:
    return await factories.case(session, await factories.organization(session, name))


async def _lexemes(session: AsyncSession, chunk_text: str) -> Counter[str]:
    rows = await session.execute(
        text("SELECT lexeme, array_length(positions, 1) FROM unnest(to_tsvector('english', :t))"),
        {"t": chunk_text},
    )
    return Counter({lexeme: count or 1 for lexeme, count in rows})


async def _statistics(session: AsyncSession, organization: uuid.UUID) -> tuple[Any, Any]:
    stats = (
        await session.execute(
            text("SELECT chunks, length FROM keyword_statistics WHERE organization_id = :o"),
            {"o": organization},
        )
    ).one_or_none()
    terms: dict[str, int] = dict(
        (
            await session.execute(
                text("SELECT lexeme, chunks FROM keyword_terms WHERE organization_id = :o"),
                {"o": organization},
            )
        ).all()
    )
    return stats, terms


async def _expected_statistics(session: AsyncSession, organization: uuid.UUID) -> tuple[Any, Any]:
    """The statistics recomputed from scratch: chunks of the organization's READY documents."""
    chunk_texts = (
        await session.scalars(
            text(
                "SELECT coalesce(c.search_text, c.text) FROM document_chunks c "
                "JOIN documents d ON d.id = c.document_id JOIN cases k ON k.id = c.case_id "
                "WHERE k.organization_id = :o AND d.status = 'READY'"
            ),
            {"o": organization},
        )
    ).all()
    counts = [await _lexemes(session, t) for t in chunk_texts]
    counts = [c for c in counts if c]
    if not counts:
        return None, {}
    terms: Counter[str] = Counter()
    for c in counts:
        terms.update(c.keys())
    return (len(counts), sum(sum(c.values()) for c in counts)), dict(terms)


async def test_keyword_scores_are_bm25_with_the_organizations_statistics(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService
) -> None:
    pages = [
        "The tenant shall pay rent monthly. Rent is due on the first day.",
        "The landlord repairs the roof. The landlord insures the building.",
        "Subrogation of the insurer is waived. The tenant waives subrogation claims.",
    ]
    async with sessions.begin() as session:
        case = await _case(session)
        await factories.indexed_document(session, embedder, case, "lease.pdf", pages)
        for number in range(3):
            await factories.indexed_document(
                session, embedder, case, f"other{number}.pdf", [f"The tenant rent clause {number}."]
            )
        chunks = (
            await session.scalars(
                text("SELECT coalesce(search_text, text) FROM document_chunks WHERE case_id = :c"),
                {"c": case.id},
            )
        ).all()
        counts = [await _lexemes(session, t) for t in chunks]
    n = len(counts)
    avgdl = sum(sum(c.values()) for c in counts) / n

    def bm25(chunk: Counter[str], lexemes: list[str]) -> float:
        score, length = 0.0, sum(chunk.values())
        for lexeme in lexemes:
            df = sum(lexeme in c for c in counts)
            if lexeme in chunk:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                tf = chunk[lexeme]
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avgdl))
        return score

    hits = await service.search(
        factories.search_request(case, "tenant rent subrogation", SearchMode.KEYWORD, limit=10)
    )
    expected = sorted((bm25(c, ["tenant", "rent", "subrog"]) for c in counts), reverse=True)
    assert [round(h.keyword_score or 0, 6) for h in hits] == [
        round(score, 6) for score in expected if score > 0
    ]
    assert all(0 < h.relevance <= 1 for h in hits)
    assert [h.keyword_rank for h in hits] == list(range(1, len(hits) + 1))


async def test_term_statistics_stay_exact_as_documents_come_and_go(
    sessions: SessionFactory, embedder: HashingEmbedder
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        other = await _case(session, "Other LLP")
        organization = case.organization_id
        first, _ = await factories.indexed_document(
            session, embedder, case, "a.pdf", ["Indemnity clause. The tenant indemnifies."]
        )
        second, _ = await factories.indexed_document(
            session, embedder, case, "b.pdf", ["Rent review clause.", "The landlord reviews rent."]
        )
        queued, _ = await factories.indexed_document(
            session,
            embedder,
            case,
            "c.pdf",
            ["Queued words only."],
            status=ProcessingStatus.EMBEDDING,
        )
        await factories.indexed_document(session, embedder, other, "x.pdf", ["Rent rent rent."])

    async def check() -> None:
        async with sessions() as session:
            assert await _statistics(session, organization) == await _expected_statistics(
                session, organization
            )

    await check()
    async with sessions.begin() as session:  # becomes READY: counted
        await session.execute(
            update(Document).where(Document.id == queued.id).values(status="READY")
        )
    await check()
    async with sessions.begin() as session:  # reprocessed: leaves READY, chunks replaced
        await session.execute(
            update(Document).where(Document.id == second.id).values(status="QUEUED")
        )
        await session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == second.id))
    await check()
    async with sessions.begin() as session:
        await session.execute(delete(Document).where(Document.id == first.id))
    await check()
    async with sessions.begin() as session:  # the last document of the organization
        await session.execute(delete(Document).where(Document.id == queued.id))
    await check()
    async with sessions() as session:
        stats, terms = await _statistics(session, organization)
        assert stats is None
        assert terms == {}
        other_stats, other_terms = await _statistics(session, other.organization_id)
        assert other_stats == (1, 3)
        assert other_terms == {"rent": 1}


async def test_a_natural_language_question_matches_any_of_its_words(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        await factories.indexed_document(
            session, embedder, case, "policy.pdf", ["Pets: one cat is permitted on the premises."]
        )
    question = "am I allowed to keep a cat in my apartment"  # "allowed", "apartment": absent
    hits = await service.search(factories.search_request(case, question, SearchMode.KEYWORD))
    assert [hit.filename for hit in hits] == ["policy.pdf"]
    assert "<mark>cat</mark>" in hits[0].snippet


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ('"force majeure" delay', {"a.pdf"}),  # the phrase is required, "delay" optional
        ('"majeure force"', set()),  # a phrase keeps its order
        ("delay -pandemic", {"b.pdf", "c.pdf"}),
        ('delay -"force majeure"', {"b.pdf", "c.pdf"}),
        ('"force majeure" or "act of god"', {"a.pdf", "c.pdf"}),
        ("delay or pandemic", {"a.pdf", "b.pdf", "c.pdf"}),
    ],
)
async def test_phrases_exclusions_and_or_keep_their_websearch_meaning(
    sessions: SessionFactory,
    embedder: HashingEmbedder,
    service: SearchService,
    query: str,
    found: set[str],
) -> None:
    async with sessions.begin() as session:
        case = await _case(session)
        for name, words in (
            ("a.pdf", "A force majeure event excuses delay. A pandemic is one."),
            ("b.pdf", "Delay in payment bears interest. Majeure and force are words."),
            ("c.pdf", "An act of God excuses delay."),
        ):
            await factories.indexed_document(session, embedder, case, name, [words])
    hits = await service.search(factories.search_request(case, query, SearchMode.KEYWORD))
    assert {hit.filename for hit in hits} == found


async def test_overlapping_chunks_of_one_passage_come_back_as_one_hit(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService
) -> None:
    page = " ".join(f"Clause {n}: the tenant pays utility charge {n}." for n in range(40))
    async with sessions.begin() as session:
        case = await _case(session)
        _, chunks = await factories.indexed_document(
            session, embedder, case, "lease.pdf", [page], size_tokens=32
        )
    assert len(chunks) > 5
    for mode in SearchMode:
        hits = await service.search(factories.search_request(case, "tenant utility", mode))
        ranges = sorted((hit.text, hit.chunk_id) for hit in hits)
        assert len({hit.chunk_id for hit in hits}) == len(hits)
        texts = [hit.text for hit in hits]
        # No two hits share text: each overlap was merged into the better ranked hit.
        for i, a in enumerate(texts):
            for b in texts[i + 1 :]:
                assert not (a in page and b in page and _overlap(page, a, b)), ranges
        assert all(0 <= hit.relevance <= 1 for hit in hits)


def _overlap(page: str, a: str, b: str) -> bool:
    start_a, start_b = page.index(a), page.index(b)
    return start_a < start_b + len(b) and start_b < start_a + len(a)


async def test_the_snippet_cites_the_page_of_its_sentence(
    sessions: SessionFactory, embedder: HashingEmbedder, service: SearchService
) -> None:
    pages = ["Recitals of the parties.", "The escrow agent holds the deposit <b>in trust</b>."]
    async with sessions.begin() as session:
        case = await _case(session)
        _, chunks = await factories.indexed_document(session, embedder, case, "deed.pdf", pages)
    assert (chunks[0].page_start, chunks[0].page_end) == (1, 2)  # one chunk, two pages
    for mode in SearchMode:
        [hit] = await service.search(factories.search_request(case, "escrow deposit", mode))
        assert hit.snippet_page == 2
        assert "<mark>escrow</mark>" in hit.snippet
        assert "&lt;b&gt;in trust&lt;/b&gt;" in hit.snippet
