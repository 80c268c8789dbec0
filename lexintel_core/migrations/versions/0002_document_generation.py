"""documents.generation: which queueing of a document its jobs belong to

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(**kwargs: Any) -> None:
    op.add_column(
        "documents",
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )


def downgrade(**kwargs: Any) -> None:
    op.drop_column("documents", "generation")
