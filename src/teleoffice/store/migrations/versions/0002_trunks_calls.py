"""SIP trunks, DIDs and the call log.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Only new tables: existing rows are untouched, so upgrading a running site is
safe and downgrading drops nothing but what this revision created.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Column types and constraint names must match teleoffice.store.models exactly;
    # tests/unit/test_store.py compares the two.
    op.create_table(
        "trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=8), server_default="udp", nullable=False),
        sa.Column("prefix", sa.String(length=4), nullable=True),
        sa.Column("username", sa.String(length=128), nullable=True),
        sa.Column("realm", sa.String(length=255), nullable=True),
        sa.Column("ha1_md5", sa.String(length=32), nullable=True),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=True),
        sa.Column("outside_number", sa.String(length=32), nullable=True),
        sa.Column("use_pai", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("register", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("register_expires", sa.Integer(), server_default="3600", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trunks")),
        sa.UniqueConstraint("name", name=op.f("uq_trunks_name")),
        sa.UniqueConstraint("prefix", name=op.f("uq_trunks_prefix")),
        sa.UniqueConstraint("host", "port", name=op.f("uq_trunks_host_port")),
    )
    op.create_table(
        "dids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_dids_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dids")),
        sa.UniqueConstraint("number", name=op.f("uq_dids_number")),
    )
    op.create_index(op.f("ix_dids_user_id"), "dids", ["user_id"], unique=False)
    op.create_table(
        "call_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=False),
        sa.Column("caller_name", sa.String(length=128), nullable=True),
        sa.Column("callee_number", sa.String(length=64), nullable=False),
        sa.Column("callee_name", sa.String(length=128), nullable=True),
        sa.Column("route", sa.Text(), nullable=True),
        sa.Column("trunk", sa.String(length=64), nullable=True),
        sa.Column("caller_user", sa.String(length=64), nullable=True),
        sa.Column("callee_user", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ringing_at", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("ended_by", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_log")),
        sa.UniqueConstraint("call_id", name=op.f("uq_call_log_call_id")),
    )
    op.create_index("ix_call_log_started_at", "call_log", ["started_at"], unique=False)
    op.create_index(op.f("ix_call_log_caller_user"), "call_log", ["caller_user"], unique=False)
    op.create_index(op.f("ix_call_log_callee_user"), "call_log", ["callee_user"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_call_log_callee_user"), table_name="call_log")
    op.drop_index(op.f("ix_call_log_caller_user"), table_name="call_log")
    op.drop_index("ix_call_log_started_at", table_name="call_log")
    op.drop_table("call_log")
    op.drop_index(op.f("ix_dids_user_id"), table_name="dids")
    op.drop_table("dids")
    op.drop_table("trunks")
