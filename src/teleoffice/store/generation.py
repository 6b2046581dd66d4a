"""The directory generation: a number the database bumps on every change to what
the running server keeps in memory (migration 0008 installs the triggers)."""

from __future__ import annotations

from sqlalchemy import select

from teleoffice.store.models import DirectoryGeneration
from teleoffice.store.repos import Sessions


def directory_generation(sessions: Sessions) -> int:
    """The current number; it differs from an earlier reading exactly when a
    user, phone account, DID, trunk or restriction profile changed since."""
    with sessions() as session:
        value = session.scalar(
            select(DirectoryGeneration.generation).where(DirectoryGeneration.id == 1)
        )
    if value is None:
        # The row is made by the migration; its absence means a damaged schema.
        raise LookupError("directory_generation has no row: run `teleoffice init`")
    return value
