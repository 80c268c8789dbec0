"""Small builders for rows the tests need. They add and flush; the test commits."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.models import Case, Document, DocumentChunk, Organization


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
