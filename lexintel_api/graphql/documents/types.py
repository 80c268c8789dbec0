"""GraphQL types of the documents domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import select

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.pagination import Connection, connection, decode_cursor, page_size
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


@strawberry.type(name="ProgressEvent")
class ProgressEventType:
    document_id: uuid.UUID
    case_id: uuid.UUID
    seq: int
    stage: Stage
    status: ProcessingStatus
    percent: float
    message: str
    error_code: str | None
    error_message: str | None
    timestamp: datetime

    @classmethod
    def from_event(cls, event: ProgressEvent) -> ProgressEventType:
        return cls(
            document_id=event.document_id,
            case_id=event.case_id,
            seq=event.seq,
            stage=event.stage,
            status=event.status,
            percent=event.percent,
            message=event.message,
            error_code=event.error_code,
            error_message=event.error_message,
            timestamp=event.timestamp,
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
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_model(cls, document: Document) -> DocumentType:
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
            created_at=document.created_at,
            updated_at=document.updated_at,
            finished_at=document.finished_at,
        )

    @strawberry.field
    async def case(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[CaseType, strawberry.lazy("lexintel_api.graphql.cases.types")] | None:
        from lexintel_api.graphql.cases.types import CaseType

        case = await info.context.loaders.case.load(self.case_id)
        return CaseType.from_model(case) if case is not None else None

    @strawberry.field(description="Chunks stored for search (READY documents).")
    async def chunk_count(self, info: strawberry.Info[Context, None]) -> int:
        return await info.context.loaders.chunk_count.load(self.id)

    @strawberry.field(description="The latest progress event (null once it expired).")
    async def progress(self, info: strawberry.Info[Context, None]) -> ProgressEventType | None:
        event = await info.context.loaders.progress.load(self.id)
        return ProgressEventType.from_event(event) if event is not None else None

    @strawberry.field(description="The document's chunks in reading order.")
    async def chunks(
        self, info: strawberry.Info[Context, None], first: int = 20, after: str | None = None
    ) -> Connection[ChunkType]:
        size = page_size(first)
        after_ordinal = decode_cursor(after, lambda key: int(key[0]))
        statement = select(DocumentChunk).where(DocumentChunk.document_id == self.id)
        if after_ordinal is not None:
            statement = statement.where(DocumentChunk.ordinal > after_ordinal)
        statement = statement.order_by(DocumentChunk.ordinal).limit(size + 1)
        # `self` was loaded under the caller's organization, so its chunks are theirs.
        async with info.context.services.sessions() as session:
            rows = list(await session.scalars(statement))
        return connection(rows, size, lambda c: [c.ordinal], ChunkType.from_model)


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
