"""GraphQL types of the documents domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import select

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.pagination import (
    Connection,
    connection,
    counter,
    decode_cursor,
    newest_first,
    page_size,
)
from lexintel_core.coverage import TextCoverage
from lexintel_core.documents import select_documents
from lexintel_core.models import Document, DocumentChunk
from lexintel_core.progress import ProgressEvent, Stage
from lexintel_core.status import ProcessingStatus

if TYPE_CHECKING:
    from lexintel_api.graphql.cases.types import CaseType

strawberry.enum(ProcessingStatus)
strawberry.enum(Stage, name="ProgressStage")


@strawberry.type(name="Chunk")
class ChunkType:
    id: uuid.UUID
    ordinal: int
    text: str
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    token_count: int

    @classmethod
    def from_model(cls, chunk: DocumentChunk) -> ChunkType:
        return cls(
            id=chunk.id,
            ordinal=chunk.ordinal,
            text=chunk.text,
            page_start=chunk.page_start,
            page_end=chunk.page_end,
            char_start=chunk.char_start,
            char_end=chunk.char_end,
            token_count=chunk.token_count,
        )


@strawberry.experimental.pydantic.type(model=ProgressEvent, name="ProgressEvent")
class ProgressEventType:
    document_id: strawberry.auto
    case_id: strawberry.auto
    seq: strawberry.auto
    stage: strawberry.auto
    status: strawberry.auto
    percent: strawberry.auto
    message: strawberry.auto
    error_code: strawberry.auto
    error_message: strawberry.auto
    timestamp: strawberry.auto


def progress_event_type(event: ProgressEvent) -> ProgressEventType:
    """The event's fields, without the event: graphql-core holds a subscription's last
    result until the next one (maybe hours), and `from_pydantic` would keep the model in
    it as well."""
    return ProgressEventType(**dict(event))


@strawberry.type(name="FailedPage")
class FailedPageType:
    page: int
    code: str = strawberry.field(description="Stable error code: too_large, timeout, ...")
    message: str


@strawberry.type(
    name="TextCoverage",
    description="Where the document's text came from, page by page. Each page counts in "
    "exactly one of pagesTextLayer, pagesOcr, pagesBlank and pagesWithoutText.",
)
class TextCoverageType:
    pages_total: int
    pages_text_layer: int = strawberry.field(
        description="Pages read from the file's own text (a PDF's text layer, a Word file)."
    )
    pages_ocr: int = strawberry.field(description="Pages read by OCR (Tesseract).")
    pages_blank: int = strawberry.field(description="Pages with nothing to read.")
    pages_without_text: int = strawberry.field(
        description="Pages left without text: images not OCR'd, or pages that failed."
    )
    ocr_mean_confidence: float | None = strawberry.field(
        description="Tesseract's mean word confidence over OCR'd pages, 0-100."
    )
    failed_pages: list[FailedPageType]

    @classmethod
    def from_model(cls, coverage: TextCoverage) -> TextCoverageType:
        return cls(
            pages_total=coverage.pages_total,
            pages_text_layer=coverage.pages_text_layer,
            pages_ocr=coverage.pages_ocr,
            pages_blank=coverage.pages_blank,
            pages_without_text=coverage.pages_without_text,
            ocr_mean_confidence=coverage.ocr_mean_confidence,
            failed_pages=[
                FailedPageType(page=page.page, code=page.code, message=page.message)
                for page in coverage.failed_pages
            ],
        )


@strawberry.type(name="Document")
class DocumentType:
    id: uuid.UUID
    case_id: uuid.UUID
    filename: str
    content_type: str | None
    size_bytes: int
    sha256: str
    status: ProcessingStatus
    error_code: str | None
    error_message: str | None
    page_count: int | None
    text_coverage: TextCoverageType | None = strawberry.field(
        description="How the pages were read (null until extraction is done)."
    )
    warning: str | None = strawberry.field(
        description="Set when some pages have no text (a partial scan, failed pages): "
        "the document is searchable only in part."
    )
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_model(cls, document: Document) -> DocumentType:
        coverage = document.coverage
        return cls(
            id=document.id,
            case_id=document.case_id,
            filename=document.filename,
            content_type=document.content_type,
            size_bytes=document.size_bytes,
            sha256=document.sha256,
            status=document.status,
            error_code=document.error_code,
            error_message=document.error_message,
            page_count=document.page_count,
            text_coverage=TextCoverageType.from_model(coverage) if coverage else None,
            warning=coverage.warning() if coverage else None,
            created_at=document.created_at,
            updated_at=document.updated_at,
            finished_at=document.finished_at,
        )

    @strawberry.field
    async def case(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[CaseType, strawberry.lazy("lexintel_api.graphql.cases.types")] | None:
        # The Case row itself: Strawberry reads CaseType's fields from it by name (they are
        # its columns), so this module needs CaseType for the annotation only and cases/types
        # can import this one without a cycle.
        return await info.context.loaders.case.load(self.case_id)  # type: ignore[return-value]

    @strawberry.field(description="Chunks stored for search (READY documents).")
    async def chunk_count(self, info: strawberry.Info[Context, None]) -> int:
        return await info.context.loaders.chunk_count.load(self.id)

    @strawberry.field(description="The latest progress event (null once it expired).")
    async def progress(self, info: strawberry.Info[Context, None]) -> ProgressEventType | None:
        event = await info.context.loaders.progress.load(self.id)
        return ProgressEventType.from_pydantic(event) if event is not None else None

    @strawberry.field(description="The document's chunks in reading order.")
    async def chunks(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[ChunkType]:
        size = page_size(first)
        after_ordinal = decode_cursor(after, lambda key: int(key[0]))
        statement = select(DocumentChunk).where(DocumentChunk.document_id == self.id)
        total = counter(info.context.services.sessions, statement)
        if after_ordinal is not None:
            statement = statement.where(DocumentChunk.ordinal > after_ordinal)
        statement = statement.order_by(DocumentChunk.ordinal).limit(size + 1)
        # `self` was loaded under the caller's organization, so its chunks are theirs.
        async with info.context.services.sessions() as session:
            rows = list(await session.scalars(statement))
        return connection(
            rows, size, lambda c: [c.ordinal], ChunkType.from_model, after=after, total=total
        )


async def document_page(
    info: strawberry.Info[Context, None],
    *,
    case_id: uuid.UUID | None,
    status: ProcessingStatus | None,
    first: int,
    after: str | None,
) -> Connection[DocumentType]:
    """A page of the caller's organization's documents (of one case, in one status, when
    given), newest first (`Query.documents`, `Case.documents`)."""
    principal = info.context.require_principal()
    statement = select_documents(principal.organization_id, case_id=case_id, status=status)
    return await newest_first(
        info.context.services.sessions, statement, Document, first, after, DocumentType.from_model
    )


@strawberry.type
class UploadDocumentPayload:
    document: DocumentType
    duplicate: bool = strawberry.field(
        description="True when the case already held these bytes: `document` is that one."
    )


@strawberry.type
class ProgressStream:
    """Where a browser `EventSource` can follow one document without sending headers."""

    url: str
    token: str
    expires_at: datetime
