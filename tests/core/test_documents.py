"""The tenant-scoped document repository: another organization's documents are not found."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from lexintel_core.db import SessionFactory
from lexintel_core.documents import DocumentRepository, select_documents
from lexintel_core.errors import DuplicateDocument
from lexintel_core.models import Case, Document
from lexintel_core.status import ProcessingStatus
from tests import factories


async def _two_tenants(sessions: SessionFactory) -> tuple[Case, Case, Case, list[Document]]:
    """Acme with two cases (three documents), Globex with one case (one document)."""
    async with sessions.begin() as session:
        acme = await factories.organization(session, "Acme LLP")
        globex = await factories.organization(session, "Globex")
        first = await factories.case(session, acme, "First")
        second = await factories.case(session, acme, "Second")
        foreign = await factories.case(session, globex, "Foreign")
        repository = DocumentRepository(session, acme.id)
        documents = [
            await repository.add(factories.document(first.id, b"a")),
            await repository.add(factories.document(first.id, b"b")),
            await repository.add(factories.document(second.id, b"c")),
            await DocumentRepository(session, globex.id).add(factories.document(foreign.id, b"d")),
        ]
        documents[1].transition_to(ProcessingStatus.FAILED)
    return first, second, foreign, documents


async def test_get_finds_only_the_organizations_own_documents(sessions: SessionFactory) -> None:
    first, _, foreign, documents = await _two_tenants(sessions)
    acme_document, globex_document = documents[0], documents[3]
    async with sessions() as session:
        acme = DocumentRepository(session, first.organization_id)
        globex = DocumentRepository(session, foreign.organization_id)
        assert (await acme.get(acme_document.id)) is not None
        assert await acme.get(globex_document.id) is None
        assert await globex.get(acme_document.id) is None
        assert await acme.get(uuid.uuid4()) is None
        # Unscoped (workers): any organization's.
        assert await DocumentRepository(session).get(globex_document.id) is not None


async def test_get_with_lock_holds_the_row_until_the_transaction_ends(
    sessions: SessionFactory,
) -> None:
    first, _, _, documents = await _two_tenants(sessions)
    async with sessions.begin() as session:
        repository = DocumentRepository(session, first.organization_id)
        locked = await repository.get(documents[0].id, lock=True)
        assert locked is not None
        async with sessions.begin() as other:
            held = await other.scalar(
                text("SELECT id FROM documents WHERE id = :id FOR UPDATE SKIP LOCKED"),
                {"id": documents[0].id},
            )
            assert held is None


async def test_get_many_returns_the_organizations_documents_among_the_ids(
    sessions: SessionFactory,
) -> None:
    first, _, _, documents = await _two_tenants(sessions)
    ids = [document.id for document in documents] + [uuid.uuid4()]
    async with sessions() as session:
        found = await DocumentRepository(session, first.organization_id).get_many(ids)
    assert {document.id for document in found} == {document.id for document in documents[:3]}


async def test_count_by_status_counts_only_the_organizations_documents(
    sessions: SessionFactory,
) -> None:
    first, _, foreign, _ = await _two_tenants(sessions)
    async with sessions() as session:
        acme = await DocumentRepository(session, first.organization_id).count_by_status()
        globex = await DocumentRepository(session, foreign.organization_id).count_by_status()
    assert acme == {ProcessingStatus.QUEUED: 2, ProcessingStatus.FAILED: 1}
    assert globex == {ProcessingStatus.QUEUED: 1}


async def test_select_documents_filters_by_organization_case_and_status(
    sessions: SessionFactory,
) -> None:
    first, second, foreign, documents = await _two_tenants(sessions)
    organization_id = first.organization_id

    async def ids(
        case_id: uuid.UUID | None = None, status: ProcessingStatus | None = None
    ) -> set[uuid.UUID]:
        statement = select_documents(organization_id, case_id=case_id, status=status)
        async with sessions() as session:
            return set(await session.scalars(statement.with_only_columns(Document.id)))

    assert await ids() == {document.id for document in documents[:3]}
    assert await ids(case_id=first.id) == {documents[0].id, documents[1].id}
    assert await ids(case_id=second.id, status=ProcessingStatus.QUEUED) == {documents[2].id}
    assert await ids(status=ProcessingStatus.FAILED) == {documents[1].id}
    assert await ids(case_id=foreign.id) == set()  # another organization's case


async def test_a_duplicate_names_the_existing_document_of_the_case(
    sessions: SessionFactory,
) -> None:
    first, _, foreign, documents = await _two_tenants(sessions)
    async with sessions() as session:
        repository = DocumentRepository(session, first.organization_id)
        with pytest.raises(DuplicateDocument) as duplicate:
            await repository.add(factories.document(first.id, b"a", "copy.pdf"))
        assert duplicate.value.existing_id == documents[0].id
        assert await repository.get_by_sha256(foreign.id, documents[3].sha256) is None
