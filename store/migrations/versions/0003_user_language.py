"""Each user's language for the pages (French or English; null = the browser's, else the plant's).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Re-runnable after a killed upgrade (MariaDB's DDL is not transactional); offline SQL has no database.
    if not context.is_offline_mode() and "language" in {
            c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")}:
        return
    op.add_column("users", sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "language")
