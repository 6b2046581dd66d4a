"""Presence in the portal: my state and note, whom I block, and everyone's (rule T9).

The routes talk to a `PresenceService` that the composition root provides
(`PortalContext.presence`; without one they answer 503). It owns the one
`PresenceBook` the SIP side shares, so a state set here reaches phones and
every other portal tab, and it runs on the event loop: the handlers here are
coroutines, and whatever touches the database inside the service must hand
that to a thread.

Authorisation: a user reads and changes only their own presence and blocks
(no route names another user's state); every logged-in user may read the
directory with everyone's presence. A user who blocks the caller appears
there as offline with no note ("polite blocking", as RFC 3856 calls it): the
entry stays, since the directory is also the phone book.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal, Protocol, Self

from fastapi import APIRouter, Path
from pydantic import AfterValidator, BaseModel, Field

from teleoffice.calls.presence import (
    MAX_NOTE_LENGTH,
    PresenceState,
    PresenceView,
    validate_note,
)
from teleoffice.portal.deps import ContextDep, CurrentUser, PortalContext
from teleoffice.portal.errors import ApiError, error_responses
from teleoffice.portal.schemas import NAME_PATTERN, InputModel
from teleoffice.store.repos import InvalidInput, NotFound

__all__ = ["DirectoryEntry", "PresenceService", "router"]

router = APIRouter(tags=["presence"], responses=error_responses(401, 503))


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One user of the directory with their presence, as the service sees it."""

    username: str
    display_name: str
    extension: str
    view: PresenceView


class PresenceService(Protocol):
    """What the presence routes need; the composition root implements it on
    the shared `PresenceBook` and `PresenceRepo`.

    `set_chosen` is the hook for everything a choice sets off. An
    implementation must, before its awaitable completes:

    1. apply it to the book (`PresenceBook.set_chosen`) and persist
       `Changes.chosen` (`PresenceRepo.save`), so it survives a restart;
    2. couple call routing to it: for every user in `Changes.dnd`, switch the
       routing do-not-disturb flag (`users.dnd`) on (True) or off (False) and
       refresh what the SIP side routes by, so that choosing "dnd" sends the
       very next call to voicemail, else busy (T9, T12), and leaving it lets
       calls ring again. A PUBLISH that the book adopts as a choice needs the
       same treatment;
    3. tell everybody in `Changes.users`'s audience: `presence.changed` events
       to portal connections (not to watchers the user blocks) and NOTIFYs
       to SIP watchers.

    It returns the user's view afterwards. Choosing what is already chosen
    changes nothing and is not an error.
    """

    def view(self, username: str) -> PresenceView:
        """The user's current view (memory only; called on the event loop)."""
        ...

    def everyone(self) -> Awaitable[Sequence[DirectoryEntry]]:
        """Every user of the directory, in extension order, with their view
        (unfiltered: the routes apply blocking)."""
        ...

    def set_chosen(
        self, username: str, state: PresenceState, note: str | None
    ) -> Awaitable[PresenceView]: ...

    def blocked(self, username: str) -> Awaitable[set[str]]:
        """The watchers `username` blocks."""
        ...

    def blockers(self, watcher: str) -> Awaitable[set[str]]:
        """The users who block `watcher`."""
        ...

    def block(self, username: str, watcher: str) -> Awaitable[bool]:
        """`username` blocks `watcher` (False: already so); a SIP subscription
        of `watcher` to `username` must end. `NotFound` for an unknown user."""
        ...

    def unblock(self, username: str, watcher: str) -> Awaitable[bool]:
        """False when `watcher` was not blocked. `NotFound` for an unknown user."""
        ...


# --- what goes in and out -----------------------------------------------------------------

StateName = Literal["available", "away", "busy", "dnd", "offline"]


def _note(note: str | None) -> str | None:
    # PresenceError is a ValueError: pydantic reports it as a 422 with its message.
    return validate_note(note)


Note = Annotated[
    str | None,
    AfterValidator(_note),
    Field(
        description=(
            f"A status message in any language, at most {MAX_NOTE_LENGTH} characters, "
            "one line without control characters; surrounding spaces are removed, and "
            "an empty note is none."
        )
    ),
]
Username = Annotated[str, Path(pattern=NAME_PATTERN, description="A user's username.")]


class PresenceIn(InputModel):
    state: StateName
    note: Note = None


class PresenceOut(BaseModel):
    state: PresenceState = Field(
        description="What everybody sees: the chosen state, `busy` during a call "
        "(`dnd` stays), `offline` for `available` with no client connected."
    )
    note: str | None
    on_the_phone: bool
    chosen: PresenceState = Field(description="What the user chose, underneath.")
    since: datetime = Field(description="When `state` last changed.")

    @classmethod
    def of(cls, view: PresenceView) -> Self:
        return cls(
            state=view.state,
            note=view.note,
            on_the_phone=view.on_the_phone,
            chosen=view.chosen,
            since=_time(view.since),
        )


class DirectoryEntryOut(BaseModel):
    username: str
    display_name: str
    extension: str
    state: PresenceState
    note: str | None
    on_the_phone: bool
    since: datetime | None = Field(description="Null for a user who blocks the caller.")

    @classmethod
    def of(cls, entry: DirectoryEntry, *, hidden: bool) -> Self:
        view = entry.view
        return cls(
            username=entry.username,
            display_name=entry.display_name,
            extension=entry.extension,
            state=PresenceState.OFFLINE if hidden else view.state,
            note=None if hidden else view.note,
            on_the_phone=False if hidden else view.on_the_phone,
            since=None if hidden else _time(view.since),
        )


class BlockedOut(BaseModel):
    username: str


def _time(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def presence_service(context: PortalContext) -> PresenceService:
    if context.presence is None:
        raise ApiError(503, "unavailable", "presence is not available on this server")
    return context.presence


# --- routes ---------------------------------------------------------------------------------


@router.get(
    "/api/me/presence",
    summary="My presence",
    description="My state and note as everybody sees them, and what I chose underneath.",
)
async def get_my_presence(user: CurrentUser, context: ContextDep) -> PresenceOut:
    return PresenceOut.of(presence_service(context).view(user.username))


@router.put(
    "/api/me/presence",
    summary="Set my presence",
    description=(
        "Chooses my state (`available`, `away`, `busy`, `dnd`, `offline`) and note, "
        "leaving out `note` clears it. Every client of mine shows it at once (other "
        "portal tabs, my phones), and `dnd` also sends calls to voicemail, else busy. "
        "During a call I show as busy and the choice shows again afterwards."
    ),
    responses=error_responses(422),
)
async def put_my_presence(body: PresenceIn, user: CurrentUser, context: ContextDep) -> PresenceOut:
    view = await presence_service(context).set_chosen(
        user.username, PresenceState(body.state), body.note
    )
    return PresenceOut.of(view)


@router.get(
    "/api/presence",
    summary="Everyone's presence",
    description=(
        "The directory in extension order, with each user's presence. Users who "
        "block me show as offline, with no note."
    ),
)
async def get_directory(user: CurrentUser, context: ContextDep) -> list[DirectoryEntryOut]:
    service = presence_service(context)
    entries = await service.everyone()
    hidden = await service.blockers(user.username)
    return [DirectoryEntryOut.of(entry, hidden=entry.username in hidden) for entry in entries]


@router.get(
    "/api/me/presence/blocked",
    summary="Whom I block",
    description="The users who may not see my presence, by username.",
)
async def list_blocked(user: CurrentUser, context: ContextDep) -> list[BlockedOut]:
    blocked = await presence_service(context).blocked(user.username)
    return [BlockedOut(username=name) for name in sorted(blocked)]


@router.get(
    "/api/me/presence/blocked/{username}",
    summary="Whether I block a user",
    description="200 when I block them, 404 when I do not.",
    responses=error_responses(404, 422),
)
async def get_blocked(username: Username, user: CurrentUser, context: ContextDep) -> BlockedOut:
    if username not in await presence_service(context).blocked(user.username):
        raise NotFound(f"you do not block {username!r}")
    return BlockedOut(username=username)


@router.put(
    "/api/me/presence/blocked/{username}",
    status_code=204,
    summary="Block a user",
    description=(
        "They no longer see my presence: their phones' subscriptions end and the "
        "directory shows me offline to them. Blocking twice is the same as once."
    ),
    responses=error_responses(404, 422),
)
async def put_blocked(username: Username, user: CurrentUser, context: ContextDep) -> None:
    if username == user.username:
        raise InvalidInput("you cannot block yourself")
    await presence_service(context).block(user.username, username)


@router.delete(
    "/api/me/presence/blocked/{username}",
    status_code=204,
    summary="Unblock a user",
    description="They see my presence again. 404 when I did not block them.",
    responses=error_responses(404, 422),
)
async def delete_blocked(username: Username, user: CurrentUser, context: ContextDep) -> None:
    if not await presence_service(context).unblock(user.username, username):
        raise NotFound(f"you do not block {username!r}")
