"""Where each user is: on a phone, on a telecommuter number, or logged out.

Pure: a `LocationBook` holds the locations in memory and every move returns the
changes it made, which the composition root writes to the store and pushes to
the portal.  Nothing here reads a clock (`now` is an argument) or the database.

Rules (DESIGN.md T3, T7, T10)
-----------------------------
- A user is in exactly one place.  Without a stored location a user is on their
  base phone (the phone account that belongs to them), unless another user has
  logged in on it; a user with no base phone is then logged out.
- One user per phone: logging in on a phone logs out whoever was there
  (hot desking, T10), and leaves the phone the user was on before empty.
- Starting telecommuter mode logs the user out of their phone (T3).
- Ending it returns the user to their base phone when nobody else is logged in
  there, else logs them out (T7).

A phone with nobody on it can still call emergency numbers and dial the
feature code that logs somebody in (see `calls.features`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum


class LocationKind(Enum):
    PHONE = "phone"
    TELECOMMUTER = "telecommuter"
    LOGGED_OUT = "logged-out"


@dataclass(frozen=True, slots=True)
class Location:
    kind: LocationKind
    account: str | None = None  # the phone account, for PHONE
    number: str | None = None  # as the user dials it (prefix included), for TELECOMMUTER
    since: float = 0.0

    def __post_init__(self) -> None:
        if self.kind is LocationKind.PHONE and (not self.account or self.number):
            raise ValueError("a phone location names an account and no number")
        if self.kind is LocationKind.TELECOMMUTER and (not self.number or self.account):
            raise ValueError("a telecommuter location names a number and no account")
        if self.kind is LocationKind.LOGGED_OUT and (self.account or self.number):
            raise ValueError("a logged-out location names nothing")


LOGGED_OUT = Location(LocationKind.LOGGED_OUT)

# username -> the location it now has stored, or None when it went back to the
# default (its base phone).
Changes = dict[str, Location | None]


class LocationBook:
    """Every user's location; `base_account(username)` gives a user's own phone
    account (or None), `owner(account)` the user a phone account belongs to."""

    def __init__(
        self,
        stored: Mapping[str, Location],
        *,
        base_account: Callable[[str], str | None],
        owner: Callable[[str], str | None],
    ) -> None:
        self._stored: dict[str, Location] = dict(stored)
        self._on_account: dict[str, str] = {
            loc.account: user
            for user, loc in self._stored.items()
            if loc.kind is LocationKind.PHONE and loc.account
        }
        self._base_account = base_account
        self._owner = owner

    # ---- questions -------------------------------------------------------------

    def of(self, username: str) -> Location:
        found = self._stored.get(username)
        if found is not None:
            return found
        base = self._base_account(username)
        if base is None or self._on_account.get(base, username) != username:
            return LOGGED_OUT
        return Location(LocationKind.PHONE, account=base)

    def occupant(self, account: str) -> str | None:
        """The user a phone rings for and dials as, or None (nobody logged in)."""
        user = self._on_account.get(account)
        if user is not None:
            return user
        owner = self._owner(account)
        if owner is None or owner in self._stored:
            # The owner has moved somewhere else (or logged out on purpose).
            return None
        return owner if self._base_account(owner) == account else None

    def stored(self) -> dict[str, Location]:
        return dict(self._stored)

    def telecommuters(self) -> dict[str, Location]:
        return {
            user: loc for user, loc in self._stored.items() if loc.kind is LocationKind.TELECOMMUTER
        }

    # ---- moves -----------------------------------------------------------------------

    def log_in(self, username: str, account: str, now: float) -> Changes:
        """`username` takes the phone `account` (T10)."""
        changes: Changes = {}
        previous = self.occupant(account)
        if previous == username:
            return changes
        if previous is not None:
            self._set(previous, Location(LocationKind.LOGGED_OUT, since=now), changes)
        if self._base_account(username) == account:
            self._set(username, None, changes)  # home again: the default
        else:
            self._set(username, Location(LocationKind.PHONE, account=account, since=now), changes)
        return changes

    def log_out(self, username: str, now: float) -> Changes:
        changes: Changes = {}
        if self.of(username).kind is not LocationKind.LOGGED_OUT:
            self._set(username, Location(LocationKind.LOGGED_OUT, since=now), changes)
        return changes

    def start_telecommuter(self, username: str, number: str, now: float) -> Changes:
        changes: Changes = {}
        self._set(username, Location(LocationKind.TELECOMMUTER, number=number, since=now), changes)
        return changes

    def end_telecommuter(self, username: str, now: float) -> Changes:
        """Back to the base phone if it is free, else logged out (T7)."""
        changes: Changes = {}
        if self.of(username).kind is not LocationKind.TELECOMMUTER:
            return changes
        base = self._base_account(username)
        if base is not None and base not in self._on_account:
            self._set(username, None, changes)
        else:
            self._set(username, Location(LocationKind.LOGGED_OUT, since=now), changes)
        return changes

    def forget(self, username: str) -> None:
        """The user was deleted."""
        self._set(username, None, {})

    def _set(self, username: str, location: Location | None, changes: Changes) -> None:
        old = self._stored.pop(username, None)
        if old is not None and old.account:
            self._on_account.pop(old.account, None)
        if location is not None:
            self._stored[username] = location
            if location.account:
                self._on_account[location.account] = username
        changes[username] = location
