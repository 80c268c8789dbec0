"""document_leases: which run of a document may write it (owner, fencing token, expiry)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

A worker run takes a document's lease before it writes anything and renews it with its
heartbeat; a lease past `expires_at` (database time) may be taken by another run, which
bumps `token`. Every write of a run checks its token in the same transaction, so a run
whose lease was taken over writes nothing. Replaces the session advisory lock, which a
worker host that died without closing its connection held until TCP keepalive gave up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(**kwargs: Any) -> None:
    op.create_table(
        "document_leases",
        sa.Column("document_id", sa.UUID(), primary_key=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name="fk_document_leases_document_id_documents",
            ondelete="CASCADE",
        ),
    )


def downgrade(**kwargs: Any) -> None:
    op.drop_table("document_leases")
