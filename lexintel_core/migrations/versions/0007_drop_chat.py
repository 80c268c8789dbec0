"""drop chat_conversations and chat_messages: nothing used them

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Created by 0001 for a chat over a case's documents that was never built; they come back, in
the shape chat then needs, with it. The downgrade recreates them as 0001 made them (empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(**kwargs: Any) -> None:
    op.drop_table("chat_messages")  # its indexes and foreign key go with it
    op.drop_table("chat_conversations")


def downgrade(**kwargs: Any) -> None:
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(300)),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name="fk_chat_conversations_case_id_cases",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_chat_conversations_case_id", "chat_conversations", ["case_id"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.UUID(), primary_key=True),
        sa.Column("conversation_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("cited_chunk_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name="fk_chat_messages_conversation_id_chat_conversations",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_chat_messages_conversation_id", "chat_messages", ["conversation_id"])
