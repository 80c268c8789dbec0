"""Small builders for rows the tests need. They add and flush; the test commits."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.chunking import PageText, chunk_pages
from lexintel_core.embeddings import Embedder
from lexintel_core.models import Case, Document, DocumentChunk, Organization
from lexintel_core.search import SearchMode, SearchRequest
from lexintel_core.status import ProcessingStatus


async def organization(session: AsyncSession, name: str = "Acme LLP") -> Organization:
    org = Organization(name=name)
    session.add(org)
    await session.flush()
    return org


async def case(
    session: AsyncSession, org: Organization | None = None, name: str = "Doe v. Roe"
) -> Case:
    org = org or await organization(session)
    item = Case(organization_id=org.id, name=name, reference="1:24-cv-01234")
    session.add(item)
    await session.flush()
    return item


def document(
    case_id: uuid.UUID, content: bytes = b"lease agreement", filename: str = "lease.pdf"
) -> Document:
    digest = hashlib.sha256(content).hexdigest()
    return Document(
        case_id=case_id,
        filename=filename,
        content_type="application/pdf",
        size_bytes=len(content),
        sha256=digest,
        blob_key=digest,
    )


def chunk(
    document: Document, ordinal: int = 0, text: str = "clause", **fields: Any
) -> DocumentChunk:
    values: dict[str, Any] = {
        "page_start": 1,
        "page_end": 1,
        "char_start": 0,
        "char_end": len(text),
        "token_count": len(text.split()),
    }
    values.update(fields)
    return DocumentChunk(
        document_id=document.id, case_id=document.case_id, ordinal=ordinal, text=text, **values
    )


async def indexed_document(
    session: AsyncSession,
    embedder: Embedder,
    case_item: Case,
    filename: str,
    pages: list[str],
    *,
    status: ProcessingStatus = ProcessingStatus.READY,
    size_tokens: int = 224,
) -> tuple[Document, list[DocumentChunk]]:
    """A document as the pipeline leaves it: chunked, embedded, in `status`."""
    item = document(case_item.id, "\f".join([filename, *pages]).encode(), filename)
    item.status = status
    item.page_count = len(pages)
    session.add(item)
    await session.flush()
    pieces = chunk_pages(
        [PageText(number, text) for number, text in enumerate(pages, start=1)],
        size_tokens=size_tokens,
        overlap_tokens=min(32, size_tokens // 4),
    )
    # As the pipeline does: embed the text without boilerplate; nothing for an empty one.
    texts = [piece.search_text for piece in pieces if piece.search_text.strip()]
    embedded = iter(await embedder.embed(texts) if texts else [])
    vectors = [next(embedded) if piece.search_text.strip() else None for piece in pieces]
    rows = [
        chunk(
            item,
            piece.ordinal,
            piece.text,
            search_text=piece.search_text,
            page_breaks=list(piece.page_breaks),
            page_start=piece.page_start,
            page_end=piece.page_end,
            char_start=piece.char_start,
            char_end=piece.char_end,
            token_count=piece.token_count,
            embedding=vector,
            embedding_model=embedder.model_name,
        )
        for piece, vector in zip(pieces, vectors, strict=True)
    ]
    session.add_all(rows)
    await session.flush()
    return item, rows


async def chunk_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(DocumentChunk)) or 0)


def search_request(case_item: Case, query: str, mode: SearchMode, **fields: Any) -> SearchRequest:
    """A search by `case_item`'s organization."""
    return SearchRequest(
        query=query, organization_id=case_item.organization_id, mode=mode, **fields
    )
