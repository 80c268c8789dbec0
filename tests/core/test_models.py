from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from lexintel_core.db import SessionFactory
from lexintel_core.documents import DocumentRepository
from lexintel_core.errors import DuplicateDocument, ErrorCode
from lexintel_core.models import (
    ApiKey,
    Document,
    DocumentChunk,
    Organization,
)
from lexintel_core.settings import Settings
from lexintel_core.status import ProcessingStatus
from tests import factories


def _unit_vector(dimension: int, rng: random.Random) -> list[float]:
    values = [rng.gauss(0, 1) for _ in range(dimension)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


async def test_organization_api_key_and_case_round_trip(sessions: SessionFactory) -> None:
    async with sessions.begin() as session:
        org = await factories.organization(session, "Smith & Jones")
        case = await factories.case(session, org, "In re Estate of Smith")
        session.add(
            ApiKey(organization_id=org.id, name="ci", prefix="lx_ab12", secret_hash="f" * 64)
        )
    async with sessions() as session:
        loaded = await session.scalar(
            select(Organization)
            .where(Organization.id == org.id)
            .options(selectinload(Organization.api_keys), selectinload(Organization.cases))
        )
        assert loaded is not None
        assert loaded.name == "Smith & Jones"
        assert [key.prefix for key in loaded.api_keys] == ["lx_ab12"]
        assert loaded.api_keys[0].is_active
        assert loaded.api_keys[0].created_at.tzinfo is not None
        assert [c.id for c in loaded.cases] == [case.id]
        assert loaded.cases[0].reference == "1:24-cv-01234"


async def test_document_round_trips_with_status_and_timestamps(sessions: SessionFactory) -> None:
    async with sessions.begin() as session:
        case = await factories.case(session)
        document = factories.document(case.id, b"%PDF-1.7 \xc2\xa7 1983")
        document.page_count = 12
        document.transition_to(ProcessingStatus.EXTRACTING)
        await DocumentRepository(session).add(document)
    async with sessions() as session:
        loaded = await DocumentRepository(session).get(document.id)
        assert loaded is not None
        assert loaded.status is ProcessingStatus.EXTRACTING
        assert loaded.page_count == 12
        assert loaded.attempts == 0
        assert loaded.sha256 == document.sha256
        assert loaded.extracting_at is not None
        assert loaded.extracting_at <= datetime.now(UTC)
        stored = await session.scalar(text("SELECT status FROM documents"))
        assert stored == "EXTRACTING"


async def test_same_bytes_twice_in_one_case_is_a_clear_duplicate_error(
    sessions: SessionFactory,
) -> None:
    async with sessions.begin() as session:
        case = await factories.case(session)
        first = await DocumentRepository(session).add(factories.document(case.id, b"nda"))
    async with sessions() as session:
        with pytest.raises(DuplicateDocument) as raised:
            await DocumentRepository(session).add(factories.document(case.id, b"nda", "copy.pdf"))
        assert raised.value.code == ErrorCode.DUPLICATE
        assert raised.value.existing_id == first.id
        # The savepoint kept the transaction usable: other work can still commit.
        other = await DocumentRepository(session).add(factories.document(case.id, b"other"))
        await session.commit()
    async with sessions() as session:
        count = await session.scalar(text("SELECT count(*) FROM documents"))
        assert count == 2
        assert await DocumentRepository(session).get(other.id) is not None


async def test_same_bytes_in_two_cases_are_two_documents(sessions: SessionFactory) -> None:
    async with sessions.begin() as session:
        org = await factories.organization(session)
        first, second = (
            await factories.case(session, org, "A"),
            await factories.case(session, org, "B"),
        )
        repository = DocumentRepository(session)
        await repository.add(factories.document(first.id, b"same"))
        await repository.add(factories.document(second.id, b"same"))
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM documents")) == 2


async def test_chunk_stores_a_vector_and_generates_its_tsvector(
    sessions: SessionFactory, settings: Settings
) -> None:
    vector = _unit_vector(settings.embedding_dimension, random.Random(7))
    async with sessions.begin() as session:
        case = await factories.case(session)
        document = await DocumentRepository(session).add(factories.document(case.id))
        chunk = DocumentChunk(
            document_id=document.id,
            case_id=case.id,
            ordinal=0,
            text="The tenant shall pay rent under 42 U.S.C. § 1983 monthly.",
            page_start=3,
            page_end=4,
            char_start=100,
            char_end=159,
            token_count=14,
            embedding=vector,
            embedding_model="all-MiniLM-L6-v2",
        )
        session.add(chunk)
    async with sessions() as session:
        loaded = await session.get(DocumentChunk, chunk.id)
        assert loaded is not None
        assert (loaded.page_start, loaded.page_end) == (3, 4)
        assert loaded.embedding is not None
        assert len(loaded.embedding) == settings.embedding_dimension
        assert list(loaded.embedding) == pytest.approx(vector, abs=1e-6)
        matched = await session.scalar(
            text(
                "SELECT count(*) FROM document_chunks "
                "WHERE search_vector @@ websearch_to_tsquery('english', 'tenants paying rent')"
            )
        )
        assert matched == 1


async def test_vector_of_the_wrong_dimension_is_rejected(
    sessions: SessionFactory, settings: Settings
) -> None:
    async with sessions() as session:
        case = await factories.case(session)
        document = await DocumentRepository(session).add(factories.document(case.id))
        session.add(factories.chunk(document, embedding=[1.0] * (settings.embedding_dimension + 1)))
        with pytest.raises(Exception, match="expected 384 dimensions"):
            await session.flush()


async def test_hnsw_index_serves_nearest_neighbour_queries(
    sessions: SessionFactory, settings: Settings
) -> None:
    rng = random.Random(42)
    async with sessions.begin() as session:
        case = await factories.case(session)
        document = await DocumentRepository(session).add(factories.document(case.id))
        session.add_all(
            factories.chunk(
                document,
                i,
                f"clause {i}",
                embedding=_unit_vector(settings.embedding_dimension, rng),
            )
            for i in range(2000)
        )
    query = _unit_vector(settings.embedding_dimension, rng)
    async with sessions() as session:
        await session.execute(text("ANALYZE document_chunks"))
        plan = "\n".join(
            await session.scalars(
                text(
                    "EXPLAIN SELECT id FROM document_chunks "
                    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 5"
                ),
                {"q": str(query)},
            )
        )
        assert "ix_document_chunks_embedding_hnsw" in plan, plan
        nearest = (
            await session.scalars(
                select(DocumentChunk.id)
                .order_by(DocumentChunk.embedding.cosine_distance(query))
                .limit(5)
            )
        ).all()
        assert len(nearest) == 5


async def test_deleting_a_case_removes_its_documents_and_chunks(sessions: SessionFactory) -> None:
    async with sessions.begin() as session:
        case = await factories.case(session)
        document = await DocumentRepository(session).add(factories.document(case.id))
        session.add(factories.chunk(document))
    async with sessions.begin() as session:
        await session.execute(text("DELETE FROM cases WHERE id = :id"), {"id": case.id})
    async with sessions() as session:
        assert await session.scalar(select(Document.id)) is None
        assert await session.scalar(select(DocumentChunk.id)) is None
