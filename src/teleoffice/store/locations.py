"""Where each user's calls ring, when it is not the default (rules T3, T7, T10).

The call layer decides who is where; this module only keeps its decisions, so
that locations survive a restart and every node sees the same ones.  A user
without a row is at the default: their base phone, unless somebody else is
logged in on it (the call layer works that out, since it depends on the other
users' rows).

Moves come in groups: a hot-desk login puts the new user on the phone and logs
out whoever was there; starting telecommuter mode moves the user off a phone
that the previous occupant's base phone may then fall back to.  `apply` writes
such a group in one transaction, so no reader ever sees two users on one phone
or a half-finished move.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from teleoffice.store.models import NAME_LENGTH, PhoneAccount, User, UserLocation
from teleoffice.store.repos import (
    USERNAME_RE,
    Conflict,
    InvalidInput,
    NotFound,
    Sessions,
    _transaction,
    validate_forward_number,
)

__all__ = ["LocationKind", "LocationRepo", "StoredLocation"]

log = logging.getLogger(__name__)


class LocationKind(enum.StrEnum):
    """The kinds of place a user can be; the values are what the table holds."""

    PHONE = "phone"  # logged in on a phone account (hot desking)
    TELECOMMUTER = "telecommuter"  # calls go to an outside number
    LOGGED_OUT = "logged-out"  # nowhere: voicemail, else busy


@dataclass(frozen=True, slots=True)
class StoredLocation:
    """One user's location as stored.

    `account` is the phone account for PHONE and nothing else; `number` the
    telecommuter number (as the user would dial it) for TELECOMMUTER and nothing
    else. Anything inconsistent is refused on construction with `InvalidInput`,
    so a record that exists is one the table can hold.
    """

    kind: LocationKind
    account: str | None
    number: str | None
    since: datetime

    def __post_init__(self) -> None:
        try:
            kind = LocationKind(self.kind)
        except ValueError:
            raise InvalidInput(
                f"location kind {self.kind!r} must be one of "
                + ", ".join(k.value for k in LocationKind)
            ) from None
        # A plain string of a valid kind becomes the enum, so comparisons with
        # `is` work for every record.
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.since, datetime) or self.since.tzinfo is None:
            raise InvalidInput("a location's time must be a timezone-aware datetime")
        if kind is LocationKind.PHONE:
            if self.account is None or self.number is not None:
                raise InvalidInput("a phone location needs an account and no number")
            if not isinstance(self.account, str) or not USERNAME_RE.fullmatch(self.account):
                raise InvalidInput(
                    f"phone account {self.account!r} must be letters, digits, '.', '_' or '-' "
                    f"(at most {NAME_LENGTH} characters)"
                )
        elif kind is LocationKind.TELECOMMUTER:
            if self.number is None or self.account is not None:
                raise InvalidInput("a telecommuter location needs a number and no account")
            if not isinstance(self.number, str):
                raise InvalidInput(f"telecommuter number {self.number!r} must be a string")
            validate_forward_number(self.number, "telecommuter number")
        elif self.account is not None or self.number is not None:
            raise InvalidInput("a logged-out location has neither an account nor a number")


def _location(row: UserLocation) -> StoredLocation | None:
    try:
        return StoredLocation(LocationKind(row.kind), row.account, row.number, row.since)
    except (InvalidInput, ValueError) as exc:
        # Only a database edited by hand gets here. The user falls back to the
        # default location rather than stopping the whole server at start-up.
        log.warning("ignoring the stored location of user id %s: %s", row.user_id, exc)
        return None


class LocationRepo:
    """The `user_locations` table: one optional row per user."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def load_all(self) -> dict[str, StoredLocation]:
        """Username -> location, for every user with a row (the others are at
        their default). Rows that make no sense are left out, with a warning."""
        with self._sessions() as session:
            rows = session.execute(
                select(User.username, UserLocation).join(User, UserLocation.user_id == User.id)
            ).all()
            out: dict[str, StoredLocation] = {}
            for username, row in rows:
                location = _location(row)
                if location is not None:
                    out[username] = location
            return out

    def location_of(self, username: str) -> StoredLocation | None:
        """The user's stored location; None when they are at the default.
        `NotFound` for an unknown user."""
        with self._sessions() as session:
            user_id = session.scalar(select(User.id).where(User.username == username))
            if user_id is None:
                raise NotFound(f"no user {username!r}")
            row = session.get(UserLocation, user_id)
            return None if row is None else _location(row)

    def apply(self, changes: Mapping[str, StoredLocation | None]) -> None:
        """Store the new locations of several users at once; None puts a user
        back at the default (their row is removed).

        All or nothing, in one transaction. Raises `NotFound` for an unknown
        user or phone account, `InvalidInput` for something that is not a
        location, and `Conflict` when two users would be on the same phone:
        two in `changes`, or one in `changes` and one already there who is not
        moved by the same call (log them out in the same `apply`).
        """
        if not changes:
            return
        for username, location in changes.items():
            if location is not None and not isinstance(location, StoredLocation):
                raise InvalidInput(f"the new location of {username!r} is not a location")
        claimed: dict[str, str] = {}  # account -> the user moving there
        for username, location in changes.items():
            if location is None or location.account is None:
                continue
            other = claimed.setdefault(location.account, username)
            if other != username:
                raise Conflict(
                    f"users {other!r} and {username!r} cannot both be logged in on "
                    f"phone {location.account}"
                )
        clash = "two users would be logged in on the same phone"
        with _transaction(self._sessions, clash) as session:
            ids = self._user_ids(session, changes.keys())
            self._check_accounts(session, claimed, set(ids.values()))
            # Remove every affected row before writing any: a user leaving a
            # phone and another arriving on it must not meet in between, which
            # the unique `account` would reject at the first write.
            session.execute(delete(UserLocation).where(UserLocation.user_id.in_(ids.values())))
            rows = [
                {
                    "user_id": ids[username],
                    "kind": location.kind.value,
                    "account": location.account,
                    "number": location.number,
                    "since": location.since,
                }
                for username, location in changes.items()
                if location is not None
            ]
            if rows:
                session.execute(insert(UserLocation), rows)

    @staticmethod
    def _user_ids(session: Session, usernames: Iterable[str]) -> dict[str, int]:
        names = list(usernames)
        found: dict[str, int] = {
            username: user_id
            for username, user_id in session.execute(
                select(User.username, User.id).where(User.username.in_(names))
            )
        }
        missing = [name for name in names if name not in found]
        if missing:
            raise NotFound(f"no user {missing[0]!r}")
        return found

    @staticmethod
    def _check_accounts(session: Session, claimed: Mapping[str, str], moving: set[int]) -> None:
        if not claimed:
            return
        known = set(
            session.scalars(
                select(PhoneAccount.username).where(PhoneAccount.username.in_(claimed.keys()))
            )
        )
        for account in claimed:
            if account not in known:
                raise NotFound(f"no phone account {account!r}")
        occupied = session.execute(
            select(UserLocation.account, User.username)
            .join(User, UserLocation.user_id == User.id)
            .where(UserLocation.account.in_(claimed.keys()), UserLocation.user_id.not_in(moving))
        ).first()
        if occupied is not None:
            taken, occupant = occupied
            raise Conflict(
                f"user {occupant!r} is logged in on phone {taken}; log them out in the same "
                f"change to log {claimed.get(taken or '')!r} in there"
            )
