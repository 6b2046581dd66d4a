"""Where a dialled number goes: a user, a trunk, or nowhere.

Pure: the directory is a read-only view passed in.  Numbers are compared as
digits (with an optional leading '+'); anything else is not a number we route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from teleoffice.calls.restrictions import RestrictionProfile

_NUMBER_RE = re.compile(r"\+?[0-9*#]{1,32}")


@dataclass(frozen=True, slots=True)
class UserView:
    """What routing needs to know of a user."""

    username: str
    extension: str
    display_name: str | None
    no_answer_timeout: int = 15
    # Call forwarding and do-not-disturb (see the call engine's docstring for
    # what each one does).  Numbers are as the user would dial them: an
    # extension, a DID, or a trunk prefix and an outside number.
    forward_always: str | None = None
    forward_busy: str | None = None
    forward_no_answer: str | None = None
    dnd: bool = False
    # A second call while the telecommuter line is busy is offered, not refused (T6).
    call_waiting: bool = True
    # Unavailable calls end in the user's mailbox rather than busy (T12).
    voicemail: bool = False


@dataclass(frozen=True, slots=True)
class TrunkView:
    name: str
    prefix: str | None
    outside_number: str | None = None


class DirectoryView(Protocol):
    def user_by_number(self, number: str) -> UserView | None:
        """The user an extension number or a DID belongs to."""

    def trunks(self) -> list[TrunkView]: ...


@runtime_checkable
class RestrictingDirectory(DirectoryView, Protocol):
    """A directory that also knows the users' dialling restrictions (rule T11).

    Kept apart from `DirectoryView` so that a directory of numbers alone still
    routes; the call engine gives users of such a directory the built-in
    `default` profile, never no restrictions at all.
    """

    def restriction_for(self, username: str) -> RestrictionProfile:
        """The profile that applies to the user: theirs, else `default`."""


@dataclass(frozen=True, slots=True)
class ToUser:
    user: UserView


@dataclass(frozen=True, slots=True)
class ToTrunk:
    trunk: TrunkView
    number: str  # the digits sent to the provider, prefix removed


@dataclass(frozen=True, slots=True)
class Unroutable:
    status: int
    reason: str


Route = ToUser | ToTrunk | Unroutable


def normalize(dialled: str) -> str | None:
    """The number as digits, or None when it is not a dialable number."""
    cleaned = dialled.replace(" ", "").replace("-", "")
    return cleaned if _NUMBER_RE.fullmatch(cleaned) else None


def route(dialled: str, *, from_trunk: bool, directory: DirectoryView) -> Route:
    number = normalize(dialled)
    if number is None:
        return Unroutable(404, "Not a number")
    user = directory.user_by_number(number)
    if user is not None:
        return ToUser(user)
    if from_trunk:
        # Trunk-to-trunk calls are off: a call from a provider may only reach
        # users, or anyone who can reach us becomes a free relay for toll fraud.
        return Unroutable(404, "No such number")
    # The longest matching prefix wins, so a specific route ("900" for
    # international) is never shadowed by a general one ("9").
    matches = [
        trunk
        for trunk in directory.trunks()
        if trunk.prefix and number.startswith(trunk.prefix) and len(number) > len(trunk.prefix)
    ]
    if matches:
        trunk = max(matches, key=lambda t: len(t.prefix or ""))
        return ToTrunk(trunk, number[len(trunk.prefix or "") :])
    return Unroutable(404, "No such number")
