"""One index on check (source_id, started_at) instead of check.source_id alone.

Thinning deletes a day's quiet checks a few hundred sources at a time, so that on SQLite no
delete holds the write lock (which every check waits for) for long; the index finds one batch of
sources' rows for one day without reading the whole day. A source's history, newest first, reads
it too. It replaces the index on source_id alone, which it covers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_check_source_id_started_at", "check", ["source_id", "started_at"])
    op.drop_index("ix_check_source_id", "check")


def downgrade() -> None:
    op.create_index("ix_check_source_id", "check", ["source_id"])
    op.drop_index("ix_check_source_id_started_at", "check")
