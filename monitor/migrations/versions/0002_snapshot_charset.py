"""Snapshot.charset: the HTTP charset a snapshot was read with.

A page whose charset only its Content-Type header gives (no BOM, no <meta charset>) must be read
with it again when a stored snapshot is re-normalised (after a select/drop edit, `renormalise`),
or a guessed encoding could make the same bytes read as a changed text. Older snapshots keep
NULL: they are read as before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 01:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshot") as batch:
        batch.add_column(sa.Column("charset", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshot") as batch:
        batch.drop_column("charset")
