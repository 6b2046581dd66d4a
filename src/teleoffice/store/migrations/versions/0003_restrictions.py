"""Dialling restriction profiles and their assignment to users.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01

Only new tables, so existing rows are untouched and a downgrade drops nothing
but what this revision created. The built-in profiles are written here as
literal text rather than imported from teleoffice.calls.restrictions: a
migration must do the same thing forever, whatever later versions of the code
think the defaults are (tests/unit/test_store_restrictions.py checks that the
two agree today). No user gets a row: users without one use `default`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMERGENCY = "112\n911\n999"
BUILTIN = (
    {
        "name": "default",
        "description": "internal and national calls; international and premium numbers barred",
        "allowed": "",
        "barred": "00.=international\n+.=international\n090.=premium\n0900.=premium\n1900.=premium",
    },
    {
        "name": "internal-only",
        "description": "calls inside the PBX and emergency numbers only",
        "allowed": "internal",
        "barred": "",
    },
    {
        "name": "unrestricted",
        "description": "every number may be dialled",
        "allowed": "",
        "barred": "",
    },
)


def upgrade() -> None:
    # Column types and constraint names must match teleoffice.store.models exactly;
    # tests/unit/test_store.py compares the two.
    profiles = op.create_table(
        "restriction_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("allowed", sa.Text(), nullable=False),
        sa.Column("barred", sa.Text(), nullable=False),
        sa.Column("emergency", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restriction_profiles")),
        sa.UniqueConstraint("name", name=op.f("uq_restriction_profiles_name")),
    )
    op.create_table(
        "user_restrictions",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_restrictions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["restriction_profiles.id"],
            name=op.f("fk_user_restrictions_profile_id_restriction_profiles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_restrictions")),
    )
    op.create_index(
        op.f("ix_user_restrictions_profile_id"), "user_restrictions", ["profile_id"], unique=False
    )
    # Naive UTC, as teleoffice.store.models.UtcDateTime stores timestamps.
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(
        profiles,
        [{**row, "emergency": EMERGENCY, "created_at": now} for row in BUILTIN],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_user_restrictions_profile_id"), table_name="user_restrictions")
    op.drop_table("user_restrictions")
    op.drop_table("restriction_profiles")
