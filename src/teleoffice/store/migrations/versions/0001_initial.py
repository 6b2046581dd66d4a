"""Initial schema: users, their phone accounts, and registered contacts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Column types and constraint names must match teleoffice.store.models exactly;
    # tests/unit/test_store.py compares the two.
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("extension", sa.String(length=8), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("telecommuter_allowed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("call_waiting", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("voicemail_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("no_answer_timeout", sa.Integer(), server_default="15", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sa.UniqueConstraint("extension", name=op.f("uq_users_extension")),
    )
    op.create_table(
        "phone_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("ha1_md5", sa.String(length=32), nullable=False),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_phone_accounts_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_phone_accounts_username")),
    )
    op.create_index(op.f("ix_phone_accounts_user_id"), "phone_accounts", ["user_id"], unique=False)
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("cseq", sa.Integer(), nullable=False),
        sa.Column("q", sa.Float(), nullable=True),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("source_host", sa.String(length=255), nullable=False),
        sa.Column("source_port", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrations")),
        sa.UniqueConstraint("account", "uri", name=op.f("uq_registrations_account_uri")),
    )
    op.create_index("ix_registrations_expires_at", "registrations", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_registrations_expires_at", table_name="registrations")
    op.drop_table("registrations")
    op.drop_index(op.f("ix_phone_accounts_user_id"), table_name="phone_accounts")
    op.drop_table("phone_accounts")
    op.drop_table("users")
