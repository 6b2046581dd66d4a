"""Presence: the state and note each user chose, and whom they block.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-11

Two new tables keyed to `users` with ON DELETE CASCADE; `users` itself is not
touched (see 0003 for why it is never rebuilt). What devices publish is soft
state and is not stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out so this revision does the same thing whatever later code says.
PRESENCE_STATE_LENGTH = 16
PRESENCE_NOTE_LENGTH = 200


def _user_fk(table: str, column: str = "user_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=f"fk_{table}_{column}_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "user_presence",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=PRESENCE_STATE_LENGTH), nullable=False),
        sa.Column("note", sa.String(length=PRESENCE_NOTE_LENGTH), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_presence")),
        _user_fk("user_presence"),
    )
    op.create_table(
        "presence_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("watcher_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presence_blocks")),
        _user_fk("presence_blocks"),
        _user_fk("presence_blocks", "watcher_user_id"),
        sa.UniqueConstraint(
            "user_id", "watcher_user_id", name=op.f("uq_presence_blocks_user_id_watcher_user_id")
        ),
    )
    op.create_index(
        op.f("ix_presence_blocks_watcher_user_id"), "presence_blocks", ["watcher_user_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_presence_blocks_watcher_user_id"), table_name="presence_blocks")
    op.drop_table("presence_blocks")
    op.drop_table("user_presence")
