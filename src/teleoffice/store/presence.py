"""Presence in the store: each user's chosen state and note, and whom they block (T9).

Only what a user chose is kept (`user_presence`, one optional row per user):
that is the state that must survive a restart. What phones publish is soft
state that they refresh anyway, and calls end; `teleoffice.calls.presence`
rebuilds both in memory.

Blocks (`presence_blocks`) are pairs of users: the first does not let the
second (the watcher) see their presence. Presence is only ever watched by
users of this PBX, so a watcher is a user too, and both rows go with either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, aliased

from teleoffice.calls.presence import PresenceError, PresenceState, parse_state, validate_note
from teleoffice.store.models import PresenceBlock, User, UserPresence
from teleoffice.store.repos import InvalidInput, NotFound, Sessions, _rowcount, _transaction

__all__ = ["PresenceRepo", "StoredPresence"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredPresence:
    """A user's chosen presence as stored. Anything the table could not hold
    (an unknown state, a hostile note, a naive time) is refused on
    construction with `InvalidInput`."""

    state: PresenceState
    note: str | None
    updated_at: datetime

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "state", parse_state(self.state))
            object.__setattr__(self, "note", validate_note(self.note))
        except PresenceError as exc:
            raise InvalidInput(str(exc)) from None
        if not isinstance(self.updated_at, datetime) or self.updated_at.tzinfo is None:
            raise InvalidInput("a presence's time must be a timezone-aware datetime")


def _stored(row: UserPresence) -> StoredPresence | None:
    try:
        return StoredPresence(row.state, row.note, row.updated_at)  # type: ignore[arg-type]
    except InvalidInput as exc:
        # Only a database edited by hand gets here. The user falls back to
        # having chosen nothing rather than stopping the server at start-up.
        log.warning("ignoring the stored presence of user id %s: %s", row.user_id, exc)
        return None


def _user_id(session: Session, username: str) -> int:
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFound(f"no user {username!r}")
    return user_id


class PresenceRepo:
    """The `user_presence` and `presence_blocks` tables."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    # ---- chosen states ---------------------------------------------------------------

    def load_all(self) -> dict[str, StoredPresence]:
        """Username -> chosen presence, for every user who chose one. Rows that
        make no sense are left out, with a warning."""
        with self._sessions() as session:
            rows = session.execute(
                select(User.username, UserPresence).join(User, UserPresence.user_id == User.id)
            ).all()
            out: dict[str, StoredPresence] = {}
            for username, row in rows:
                stored = _stored(row)
                if stored is not None:
                    out[username] = stored
            return out

    def get(self, username: str) -> StoredPresence | None:
        """The user's chosen presence; None when they never chose one.
        `NotFound` for an unknown user."""
        with self._sessions() as session:
            row = session.get(UserPresence, _user_id(session, username))
            return None if row is None else _stored(row)

    def save(
        self, username: str, state: PresenceState | str, note: str | None, at: datetime
    ) -> StoredPresence:
        """Store what the user chose at `at` (replacing what they chose before).

        The note is checked as the portal checks it (surrounding whitespace
        goes, an empty note is none). `NotFound` for an unknown user,
        `InvalidInput` for a state, note or time that cannot be stored; on any
        error nothing changes.
        """
        record = StoredPresence(state, note, at)  # type: ignore[arg-type]
        with _transaction(self._sessions, f"the presence of {username!r} changed meanwhile") as s:
            user_id = _user_id(s, username)
            row = s.get(UserPresence, user_id)
            if row is None:
                row = UserPresence(user_id=user_id)
                s.add(row)
            row.state = record.state.value
            row.note = record.note
            row.updated_at = record.updated_at
        return record

    def clear(self, username: str) -> bool:
        """Forget what the user chose; False when they had chosen nothing.
        `NotFound` for an unknown user."""
        with self._sessions.begin() as session:
            user_id = _user_id(session, username)
            result = session.execute(delete(UserPresence).where(UserPresence.user_id == user_id))
            return _rowcount(result) > 0

    # ---- blocks ----------------------------------------------------------------------

    def blocked(self, username: str) -> set[str]:
        """The watchers `username` blocks. `NotFound` for an unknown user."""
        watcher = aliased(User)
        with self._sessions() as session:
            user_id = _user_id(session, username)
            return set(
                session.scalars(
                    select(watcher.username)
                    .join(PresenceBlock, PresenceBlock.watcher_user_id == watcher.id)
                    .where(PresenceBlock.user_id == user_id)
                )
            )

    def blockers(self, watcher: str) -> set[str]:
        """The users who block `watcher`. `NotFound` for an unknown user."""
        with self._sessions() as session:
            watcher_id = _user_id(session, watcher)
            return set(
                session.scalars(
                    select(User.username)
                    .join(PresenceBlock, PresenceBlock.user_id == User.id)
                    .where(PresenceBlock.watcher_user_id == watcher_id)
                )
            )

    def is_blocked(self, username: str, watcher: str) -> bool:
        """Whether `username` blocks `watcher`; False when either is unknown
        (a SIP subscriber's name is not worth an exception)."""
        owner, watching = aliased(User), aliased(User)
        with self._sessions() as session:
            found = session.scalar(
                select(PresenceBlock.id)
                .join(owner, PresenceBlock.user_id == owner.id)
                .join(watching, PresenceBlock.watcher_user_id == watching.id)
                .where(owner.username == username, watching.username == watcher)
            )
            return found is not None

    def all_blocks(self) -> dict[str, set[str]]:
        """Username -> the watchers they block, for every user who blocks
        somebody (an in-memory copy for the SIP side's authorisation)."""
        owner, watching = aliased(User), aliased(User)
        with self._sessions() as session:
            rows = session.execute(
                select(owner.username, watching.username)
                .join(PresenceBlock, PresenceBlock.user_id == owner.id)
                .join(watching, PresenceBlock.watcher_user_id == watching.id)
            ).all()
        out: dict[str, set[str]] = {}
        for username, watcher in rows:
            out.setdefault(username, set()).add(watcher)
        return out

    def block(self, username: str, watcher: str, at: datetime) -> bool:
        """`username` stops `watcher` from seeing their presence; False when
        that was so already. `NotFound` for an unknown user or watcher,
        `InvalidInput` for blocking oneself."""
        if username == watcher:
            raise InvalidInput("a user cannot block themselves")
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidInput("a block's time must be a timezone-aware datetime")
        with _transaction(self._sessions, f"{username!r} blocked {watcher!r} meanwhile") as s:
            user_id, watcher_id = _user_id(s, username), _user_id(s, watcher)
            existing = s.scalar(
                select(PresenceBlock.id).where(
                    PresenceBlock.user_id == user_id, PresenceBlock.watcher_user_id == watcher_id
                )
            )
            if existing is not None:
                return False
            s.add(PresenceBlock(user_id=user_id, watcher_user_id=watcher_id, created_at=at))
            return True

    def unblock(self, username: str, watcher: str) -> bool:
        """`watcher` may see `username`'s presence again; False when they were
        not blocked. `NotFound` for an unknown user or watcher."""
        with self._sessions.begin() as session:
            user_id, watcher_id = _user_id(session, username), _user_id(session, watcher)
            result = session.execute(
                delete(PresenceBlock).where(
                    PresenceBlock.user_id == user_id, PresenceBlock.watcher_user_id == watcher_id
                )
            )
            return _rowcount(result) > 0
