"""The running PBX as administrators see it: phones and their registrations,
calls in progress, telecommuters, trunk registrations.

Theory of operation
-------------------
The registrar's bindings, the calls in progress and the location book live in
memory on the event loop's thread (they are the SIP side's state). The
composition root hands read-only views of them over as `LiveSources`
(`attach_live`); these routes are `async def`, so FastAPI runs them on that same
thread and they read the state without locks. Database reads (accounts, users)
go to a worker thread first; the in-memory state is then read in one go, with
no `await` in between, so one answer is one consistent moment.

Live updates are by polling (`GET /api/admin/live` every `refresh_seconds`),
not by events on the WebSocket. Registrations come and go without any event
(a phone's binding simply expires), so a push feed would still need a timer;
a snapshot every few seconds is always complete and correct, costs two small
queries, is only asked for while an administrator has the live page open, and
needs no admin-only fan-out in the event hub (whose queues are per user).

A server without the SIP side (unit tests, tools) has no `LiveSources`: these
routes then answer 503, as the voicemail routes do without a mailbox store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Self

from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from teleoffice.calls.engine import CallRecord
from teleoffice.calls.locations import Location
from teleoffice.calls.registrar import Binding
from teleoffice.portal.deps import AdminUser, ContextDep, PortalContext
from teleoffice.portal.errors import ApiError, error_responses
from teleoffice.portal.schemas import NAME_PATTERN, Party
from teleoffice.store.repos import AccountRecord, AccountRepo, NotFound, UserRecord

router = APIRouter(prefix="/api/admin", tags=["admin"], responses=error_responses(401, 403, 503))

_STATE_KEY: Final = "admin_live"
# How often the live page asks again (see the module docstring).
REFRESH_SECONDS: Final = 3

AccountPath = Annotated[str, Path(pattern=NAME_PATTERN, description="The phone's SIP account.")]


@dataclass(frozen=True, slots=True)
class LiveSources:
    """Read-only views of the running PBX; every one is called on the event
    loop's thread and must not block."""

    # The live contacts of an account at a time (`Registrar.lookup`).
    bindings: Callable[[str, float], Sequence[Binding]]
    # Every call in progress.
    calls: Callable[[], Sequence[CallRecord]]
    # Users in telecommuter mode, with their location.
    telecommuters: Callable[[], Mapping[str, Location]]
    # The user a phone account rings for now (hot desking), or None.
    occupant: Callable[[str], str | None]
    # Registration state of the trunks that register with their provider.
    trunk_states: Callable[[], Mapping[str, str]]
    clock: Callable[[], float]


def attach_live(app: FastAPI, sources: LiveSources) -> None:
    """Give the admin routes of `app` their view of the running PBX."""
    setattr(app.state, _STATE_KEY, sources)


def optional_live(connection: HTTPConnection) -> LiveSources | None:
    found = getattr(connection.app.state, _STATE_KEY, None)
    return found if isinstance(found, LiveSources) else None


def require_live(live: Annotated[LiveSources | None, Depends(optional_live)]) -> LiveSources:
    if live is None:
        raise ApiError(503, "unavailable", "this server has no live telephony to show")
    return live


LiveDep = Annotated[LiveSources, Depends(require_live)]
OptionalLiveDep = Annotated[LiveSources | None, Depends(optional_live)]


# --- what goes out ------------------------------------------------------------------


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class RegistrationOut(BaseModel):
    """One contact a phone registered (a binding of the registrar)."""

    contact: str = Field(description="The Contact the phone registered.")
    uri: str = Field(description="The contact URI alone.")
    transport: str
    source: str = Field(description="Address the REGISTER came from (where calls go), host:port.")
    expires_at: datetime
    expires_in: int = Field(description="Seconds left, at the time of the answer.")
    user_agent: str | None = Field(description="The phone's User-Agent header, if it sent one.")

    @classmethod
    def of(cls, binding: Binding, now: float) -> Self:
        host = binding.source_host
        shown = f"[{host}]" if ":" in host else host
        return cls(
            contact=binding.contact,
            uri=binding.uri,
            transport=binding.transport,
            source=f"{shown}:{binding.source_port}",
            expires_at=_time(binding.expires_at),
            expires_in=max(0, int(binding.expires_at - now)),
            user_agent=binding.user_agent,
        )


class PhoneOut(BaseModel):
    account: str = Field(description="The SIP account (digest user name) of the phone.")
    owner: str | None = Field(description="The user the phone belongs to.")
    logged_in: str | None = Field(
        description="The user the phone rings for now (its owner, or whoever logged in on "
        "it by hot desking); null when nobody is."
    )
    registrations: list[RegistrationOut] = Field(description="Live contacts, best first.")


class LiveCallOut(BaseModel):
    """A call in progress, as the system sees it (not from one user's side)."""

    id: str
    kind: str = Field(description="internal, inbound (from a trunk) or outbound (to a trunk).")
    state: str = Field(description="calling, ringing, waiting (call waiting) or connected.")
    held: bool
    from_: Party = Field(serialization_alias="from")
    to: Party
    dialled: str = Field(description="The number as dialled.")
    caller_user: str | None = Field(description="The calling user, when a user called.")
    callee_user: str | None = Field(description="The called user, when it reached one.")
    trunk: str | None = Field(description="The trunk the call uses, if any.")
    started_at: datetime
    answered_at: datetime | None

    @classmethod
    def of(cls, record: CallRecord) -> Self:
        return cls(
            id=record.call_id,
            kind=record.direction.value,
            state=record.state.value,
            held=record.held,
            from_=Party(number=record.caller.number, name=record.caller.name),
            to=Party(number=record.callee.number, name=record.callee.name),
            dialled=record.dialled,
            caller_user=record.caller_user,
            callee_user=record.callee_user,
            trunk=record.trunk,
            started_at=_time(record.started_at),
            answered_at=None if record.answered_at is None else _time(record.answered_at),
        )


class TelecommuterOut(BaseModel):
    username: str
    display_name: str
    extension: str
    number: str = Field(description="The number the user works from, as dialled.")
    since: datetime
    online: bool = Field(description="Whether the user has the portal open now.")


class TrunkStateOut(BaseModel):
    name: str
    state: str = Field(description="unregistered, registering, registered or failed.")


class LiveOut(BaseModel):
    at: datetime = Field(description="The moment this snapshot shows.")
    refresh_seconds: int = Field(description="How soon to ask again for a live display.")
    phones: list[PhoneOut] = Field(description="Phones with at least one live registration.")
    calls: list[LiveCallOut] = Field(description="Calls in progress, oldest first.")
    telecommuters: list[TelecommuterOut] = Field(description="By username.")
    trunks: list[TrunkStateOut] = Field(description="Trunks that register with their provider.")


# --- building the answers -------------------------------------------------------------


def _accounts(context: PortalContext) -> list[AccountRecord]:
    return AccountRepo(context.users.sessions).list_accounts()


def phone_view(live: LiveSources, account: AccountRecord, now: float) -> PhoneOut:
    return PhoneOut(
        account=account.username,
        owner=account.owner,
        logged_in=live.occupant(account.username),
        registrations=[RegistrationOut.of(b, now) for b in live.bindings(account.username, now)],
    )


def telecommuter_view(
    username: str, location: Location, users: Mapping[str, UserRecord], online: set[str]
) -> TelecommuterOut:
    user = users.get(username)
    return TelecommuterOut(
        username=username,
        display_name=user.display_name if user is not None else "",
        extension=user.extension if user is not None else "",
        number=location.number or "",
        since=_time(location.since),
        online=username in online,
    )


def live_view(
    live: LiveSources,
    accounts: Sequence[AccountRecord],
    users: Mapping[str, UserRecord],
    online: set[str],
) -> LiveOut:
    """One snapshot of the running system (call on the event loop's thread)."""
    now = live.clock()
    phones = [phone_view(live, account, now) for account in accounts]
    calls = sorted(live.calls(), key=lambda record: (record.started_at, record.call_id))
    telecommuters = sorted(live.telecommuters().items())
    return LiveOut(
        at=_time(now),
        refresh_seconds=REFRESH_SECONDS,
        phones=[phone for phone in phones if phone.registrations],
        calls=[LiveCallOut.of(record) for record in calls],
        telecommuters=[
            telecommuter_view(name, location, users, online) for name, location in telecommuters
        ],
        trunks=[
            TrunkStateOut(name=name, state=state)
            for name, state in sorted(live.trunk_states().items())
        ],
    )


# --- routes -------------------------------------------------------------------------------


@router.get(
    "/phones",
    summary="List phones and their registrations",
    description=(
        "Every SIP phone account with its owner, the user it rings for now (hot "
        "desking) and its live registrations: contact, source address, expiry and "
        "user agent."
    ),
)
async def list_phones(admin: AdminUser, context: ContextDep, live: LiveDep) -> list[PhoneOut]:
    accounts = await asyncio.to_thread(_accounts, context)
    now = live.clock()
    return [phone_view(live, account, now) for account in accounts]


@router.get(
    "/phones/{account}",
    summary="Show a phone and its registrations",
    responses=error_responses(404, 422),
)
async def get_phone(
    account: AccountPath, admin: AdminUser, context: ContextDep, live: LiveDep
) -> PhoneOut:
    found = await asyncio.to_thread(AccountRepo(context.users.sessions).find, account)
    if found is None:
        raise NotFound(f"no phone {account!r}")
    return phone_view(live, found, live.clock())


@router.get(
    "/live",
    summary="The system now: registered phones, calls, telecommuters",
    description=(
        "A snapshot of the running system: phones with live registrations, every "
        "call in progress (all users), the users in telecommuter mode (which number, "
        "since when, whether their portal is open) and the trunks' registrations "
        "with their providers. Live displays ask again every `refresh_seconds`."
    ),
)
async def get_live(admin: AdminUser, context: ContextDep, live: LiveDep) -> LiveOut:
    def read() -> tuple[list[AccountRecord], dict[str, UserRecord]]:
        users = {user.username: user for user in context.users.list_users()}
        return _accounts(context), users

    accounts, users = await asyncio.to_thread(read)
    return live_view(live, accounts, users, context.hub.online_users())
