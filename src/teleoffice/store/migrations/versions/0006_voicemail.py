"""Voicemail: mailbox settings and the index of recorded messages.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Two new tables keyed to `users` with ON DELETE CASCADE; `users` itself is not
touched (see 0003 for why it is never rebuilt). The audio lives in files named
by `voicemail_boxes.greeting` and `voicemail_messages.file`; downgrading drops
the index, and the store's start-up recovery removes files no row names.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out so this revision does the same thing whatever later code says.
PIN_HASH_LENGTH = 255
LOGGED_NUMBER_LENGTH = 64
DISPLAY_NAME_LENGTH = 128


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "voicemail_boxes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("pin_hash", sa.String(length=PIN_HASH_LENGTH), nullable=True),
        sa.Column("greeting", sa.Text(), nullable=True),
        sa.Column("unsolicited_mwi", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_voicemail_boxes")),
        _user_fk("voicemail_boxes"),
    )
    op.create_table(
        "voicemail_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("caller_number", sa.String(length=LOGGED_NUMBER_LENGTH), nullable=False),
        sa.Column("caller_name", sa.String(length=DISPLAY_NAME_LENGTH), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("heard", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("file", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_messages")),
        _user_fk("voicemail_messages"),
        sa.UniqueConstraint("file", name=op.f("uq_voicemail_messages_file")),
    )
    op.create_index(op.f("ix_voicemail_messages_user_id"), "voicemail_messages", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_voicemail_messages_user_id"), table_name="voicemail_messages")
    op.drop_table("voicemail_messages")
    op.drop_table("voicemail_boxes")
