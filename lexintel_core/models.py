"""ORM models (SQLAlchemy 2, typed). The schema itself is created by the Alembic migrations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lexintel_core.coverage import TextCoverage
from lexintel_core.status import ProcessingStatus, ensure_transition

# Named constraints, so migrations are reproducible and errors can be matched by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The text search configuration of the generated `search_vector` column; keyword queries
# must use the same one for the GIN index to apply.
TEXT_SEARCH_CONFIG = "english"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
    }


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow, server_default=func.now())


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="organization")
    cases: Mapped[list[Case]] = relationship(back_populates="organization")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # Shown to people so they can tell keys apart; never enough to authenticate.
    prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 hex of the whole secret: keys are random and long, so a slow hash adds nothing.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    organization: Mapped[Organization] = relationship(back_populates="api_keys")

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = _pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(300))
    reference: Mapped[str | None] = mapped_column(String(200))  # docket / matter number
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    organization: Mapped[Organization] = relationship(back_populates="cases")
    documents: Mapped[list[Document]] = relationship(back_populates="case")


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("case_id", "sha256"),)

    id: Mapped[uuid.UUID] = _pk()
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[ProcessingStatus] = mapped_column(
        Enum(ProcessingStatus, name="processing_status", native_enum=False, length=16),
        default=ProcessingStatus.QUEUED,
        index=True,
    )
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped each time the document is queued again (reprocessing); jobs carry the value
    # they were queued for, so a stale job of an earlier queueing ends without touching it.
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    page_count: Mapped[int | None] = mapped_column(Integer)
    # TextCoverage (coverage.py) as JSON: where each page's text came from, failed pages.
    text_coverage: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    # Stage timestamps: when each stage last started, and when processing last finished.
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    extracting_at: Mapped[datetime | None]
    chunking_at: Mapped[datetime | None]
    embedding_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    case: Mapped[Case] = relationship(back_populates="documents")
    chunks: Mapped[list[DocumentChunk]] = relationship(
        back_populates="document", order_by="DocumentChunk.ordinal", passive_deletes=True
    )

    def __init__(self, **kwargs: Any) -> None:
        # Column defaults apply only at INSERT; a new document is QUEUED from the start.
        kwargs.setdefault("status", ProcessingStatus.QUEUED)
        kwargs.setdefault("attempts", 0)
        kwargs.setdefault("generation", 0)
        kwargs.setdefault("queued_at", utcnow())
        super().__init__(**kwargs)

    @property
    def coverage(self) -> TextCoverage | None:
        if self.text_coverage is None:
            return None
        return TextCoverage.model_validate(self.text_coverage)

    @property
    def warning(self) -> str | None:
        """Why a READY document is not wholly searchable (pages without text), else None."""
        coverage = self.coverage
        return coverage.warning() if coverage is not None else None

    def transition_to(self, new: ProcessingStatus) -> None:
        """Move to `new`, enforcing `ALLOWED_TRANSITIONS`, and stamp the stage time."""
        ensure_transition(self.status, new)
        now = utcnow()
        self.status = new
        if new is ProcessingStatus.QUEUED:
            self.queued_at = now
            self.error_code = None
            self.error_message = None
        elif new is ProcessingStatus.EXTRACTING:
            self.extracting_at = now
        elif new is ProcessingStatus.CHUNKING:
            self.chunking_at = now
        elif new is ProcessingStatus.EMBEDDING:
            self.embedding_at = now
        else:
            self.finished_at = now


class DocumentChunk(Base):
    __tablename__ = "document_chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "ordinal"),
        # Cosine distance: queries must order by `embedding <=> :q` for this index to apply.
        Index(
            "ix_document_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_document_chunks_search_vector", "search_vector", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _pk()
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    # Denormalised from the document so filtered search needs no join.
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)  # for display and citations
    # `text` without boilerplate lines (filing stamps, running headers, page and line
    # numbers): what is embedded and ranked. NULL (chunks written before): `text`.
    search_text: Mapped[str | None] = mapped_column(Text)
    page_start: Mapped[int] = mapped_column(Integer)
    page_end: Mapped[int] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)
    # Offsets into `text` where pages page_start + 1 ... page_end begin.
    page_breaks: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), default=list, server_default="{}"
    )
    # Dimension is fixed by the migration from settings.embedding_dimension.
    embedding: Mapped[Any | None] = mapped_column(Vector())
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    search_vector: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed(
            f"to_tsvector('{TEXT_SEARCH_CONFIG}', coalesce(search_text, text))", persisted=True
        ),
    )
    created_at: Mapped[datetime] = _created_at()

    document: Mapped[Document] = relationship(back_populates="chunks")


class DocumentLease(Base):
    """Which run of a document may write it: lexintel_jobs/lease.py takes, renews and
    checks it. The row outlives its runs, so `token` only ever grows."""

    __tablename__ = "document_leases"

    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    # The fencing token: bumped by each run that takes the lease, and by its release.
    token: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(String(200))  # host:pid of the worker, for people
    expires_at: Mapped[datetime]  # database time


class Blob(Base):
    """Content-addressed bytes for the PostgreSQL blob store; parts hold the data."""

    __tablename__ = "blobs"

    id: Mapped[uuid.UUID] = _pk()
    # SHA-256 hex of the content; NULL only while the blob is being written (one transaction).
    key: Mapped[str | None] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created_at()


class BlobPart(Base):
    __tablename__ = "blob_parts"

    blob_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes]
