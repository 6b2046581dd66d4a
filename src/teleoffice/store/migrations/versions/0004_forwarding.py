"""Call forwarding and do-not-disturb settings of users.

Revision ID: 0004
Revises: 0003
Create Date: 2025-03-15

Four columns on `users`, added in place: three nullable numbers (NULL: that
forward is off) and `dnd` with a server default, so existing rows get "off"
without a data migration. SQLite can add such columns with a plain ALTER TABLE
(no foreign key, no constraint), and drop them again the same way (3.35 and
later), so `users` is never copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Must match teleoffice.store.models.FORWARD_NUMBER_LENGTH today; written out so
# this revision does the same thing whatever later code says.
NUMBER_LENGTH = 32
FORWARDS = ("forward_always", "forward_busy", "forward_no_answer")


def upgrade() -> None:
    for name in FORWARDS:
        op.add_column("users", sa.Column(name, sa.String(length=NUMBER_LENGTH), nullable=True))
    op.add_column(
        "users", sa.Column("dnd", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later), not batch mode:
    # batch mode rebuilds `users` by dropping it, and with foreign keys on that
    # drop cascades to every DID and restriction assignment of every user.
    op.drop_column("users", "dnd")
    for name in reversed(FORWARDS):
        op.drop_column("users", name)
