"""documents.text_coverage: where each page's text came from (text layer, OCR, none)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade(**kwargs: Any) -> None:
    op.add_column("documents", sa.Column("text_coverage", postgresql.JSONB(), nullable=True))


def downgrade(**kwargs: Any) -> None:
    op.drop_column("documents", "text_coverage")
