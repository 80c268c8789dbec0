"""initial schema: tenants, cases, documents, chunks (pgvector + full text), chat, blobs

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.UUID(), primary_key=True)


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _fk(column: str, target: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=f"fk_{table}_{column}_{target}",
        ondelete="CASCADE",
    )


def upgrade(**kwargs: Any) -> None:
    dimension = int(kwargs.get("embedding_dimension", 384))
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "organizations",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        _timestamp("created_at"),
    )
    op.create_table(
        "api_keys",
        _id(),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        _timestamp("created_at"),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        _fk("organization_id", "organizations", "api_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_index("ix_api_keys_organization_id", "api_keys", ["organization_id"])

    op.create_table(
        "cases",
        _id(),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("reference", sa.String(200)),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _fk("organization_id", "organizations", "cases"),
    )
    op.create_index("ix_cases_organization_id", "cases", ["organization_id"])

    op.create_table(
        "documents",
        _id(),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(200)),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("page_count", sa.Integer()),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("queued_at", sa.DateTime(timezone=True)),
        sa.Column("extracting_at", sa.DateTime(timezone=True)),
        sa.Column("chunking_at", sa.DateTime(timezone=True)),
        sa.Column("embedding_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        _fk("case_id", "cases", "documents"),
        sa.UniqueConstraint("case_id", "sha256", name="uq_documents_case_id_sha256"),
    )
    op.create_index("ix_documents_blob_key", "documents", ["blob_key"])
    op.create_index("ix_documents_status", "documents", ["status"])

    op.create_table(
        "document_chunks",
        _id(),
        sa.Column("document_id", sa.UUID(), nullable=False),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("page_start", sa.Integer(), nullable=False),
        sa.Column("page_end", sa.Integer(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("embedding", Vector(dimension)),
        sa.Column("embedding_model", sa.String(200)),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', text)", persisted=True),
            nullable=False,
        ),
        _timestamp("created_at"),
        _fk("document_id", "documents", "document_chunks"),
        _fk("case_id", "cases", "document_chunks"),
        sa.UniqueConstraint(
            "document_id", "ordinal", name="uq_document_chunks_document_id_ordinal"
        ),
    )
    op.create_index("ix_document_chunks_case_id", "document_chunks", ["case_id"])
    op.create_index(
        "ix_document_chunks_embedding_hnsw",
        "document_chunks",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index(
        "ix_document_chunks_search_vector",
        "document_chunks",
        ["search_vector"],
        postgresql_using="gin",
    )

    op.create_table(
        "chat_conversations",
        _id(),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(300)),
        _timestamp("created_at"),
        _fk("case_id", "cases", "chat_conversations"),
    )
    op.create_index("ix_chat_conversations_case_id", "chat_conversations", ["case_id"])
    op.create_table(
        "chat_messages",
        _id(),
        sa.Column("conversation_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("cited_chunk_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        _timestamp("created_at"),
        _fk("conversation_id", "chat_conversations", "chat_messages"),
    )
    op.create_index("ix_chat_messages_conversation_id", "chat_messages", ["conversation_id"])

    op.create_table(
        "blobs",
        _id(),
        sa.Column("key", sa.String(64)),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        sa.UniqueConstraint("key", name="uq_blobs_key"),
    )
    op.create_table(
        "blob_parts",
        sa.Column("blob_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("blob_id", "seq", name="pk_blob_parts"),
        _fk("blob_id", "blobs", "blob_parts"),
    )


def downgrade(**kwargs: Any) -> None:
    # The `vector` extension stays: other schemas in the database may use it.
    for table in (
        "blob_parts",
        "blobs",
        "chat_messages",
        "chat_conversations",
        "document_chunks",
        "documents",
        "cases",
        "api_keys",
        "organizations",
    ):
        op.drop_table(table)
