"""A counter that every change to what the running server's directory holds bumps.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

The server keeps users, phone accounts, DIDs, trunks and restriction profiles
in memory and used to read them all again every two seconds, so that changes
made by another process (the CLI) reach it. With ten thousand users that
reload held the interpreter for a good part of a second. Now triggers on those
tables bump `directory_generation.generation` in the same transaction as the
change, and the server reloads only when the number moved: one indexed read
every two seconds instead of every row.

Statement-level triggers on PostgreSQL (one bump per statement), row-level on
SQLite (which has no other kind); either way the number only has to change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out so this revision does the same thing whatever later code says.
WATCHED = (
    "users",
    "phone_accounts",
    "dids",
    "trunks",
    "restriction_profiles",
    "user_restrictions",
)
EVENTS = ("INSERT", "UPDATE", "DELETE")
BUMP = "UPDATE directory_generation SET generation = generation + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "directory_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_generation")),
    )
    op.execute("INSERT INTO directory_generation (id, generation) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_directory_generation() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER directory_generation_{table} "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_generation()"
            )
        return
    for table in WATCHED:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER directory_generation_{table}_{event.lower()} "
                f"AFTER {event} ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER directory_generation_{table} ON {table}")
        op.execute("DROP FUNCTION bump_directory_generation()")
    else:
        for table in WATCHED:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER directory_generation_{table}_{event.lower()}")
    op.drop_table("directory_generation")
