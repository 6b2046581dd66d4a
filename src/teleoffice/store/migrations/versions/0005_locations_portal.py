"""User locations, telecommuter settings, saved numbers and portal tokens.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Four new tables, each keyed to `users` with ON DELETE CASCADE; `users` itself
is not touched (see 0003 for why it is never rebuilt).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out so this revision does the same thing whatever later code says.
NAME_LENGTH = 64
NUMBER_LENGTH = 32


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "user_locations",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=NAME_LENGTH), nullable=True),
        sa.Column("number", sa.String(length=NUMBER_LENGTH), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_locations")),
        _user_fk("user_locations"),
        sa.UniqueConstraint("account", name=op.f("uq_user_locations_account")),
    )
    op.create_table(
        "user_telecommuter",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("patterns", sa.Text(), nullable=False),
        sa.Column("login_code_hash", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_telecommuter")),
        _user_fk("user_telecommuter"),
    )
    op.create_table(
        "saved_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=NUMBER_LENGTH), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_numbers")),
        _user_fk("saved_numbers"),
        sa.UniqueConstraint("user_id", "number", name=op.f("uq_saved_numbers_user_id_number")),
    )
    op.create_index(op.f("ix_saved_numbers_user_id"), "saved_numbers", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        _user_fk("api_tokens"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_index(op.f("ix_api_tokens_expires_at"), "api_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("saved_numbers")
    op.drop_table("user_telecommuter")
    op.drop_table("user_locations")
