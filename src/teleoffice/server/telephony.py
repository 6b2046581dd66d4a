"""What the portal (and feature codes) ask of the running PBX.

`Telephony` is the one place where locations change and where calls are placed
or ended from outside SIP.  It runs on the event loop's thread, like the SIP
service, so it may touch the call engine and the B2BUA directly; store writes
go to a worker thread, and only once they succeeded does the in-memory state
change (a failed write changes nothing, and the caller gets the error).

Every change is pushed as an event to the users it concerns (DESIGN.md section
3): `call.*` for calls, `location.changed` and `telecommuter.changed` for moves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from teleoffice.calls.engine import (
    CallEngine,
    CallRecord,
    CallState,
    Direction,
    Feature,
    FeatureName,
    Origination,
    Party,
    Refusal,
)
from teleoffice.calls.locations import Changes, Location, LocationBook, LocationKind
from teleoffice.calls.restrictions import Barred, PatternError, parse_pattern
from teleoffice.calls.routing import ToTrunk, normalize, route
from teleoffice.server.b2bua import B2bua
from teleoffice.server.directory import Directory
from teleoffice.sip.dialog_info import DialogEntry, DialogState
from teleoffice.store.locations import LocationKind as StoredKind
from teleoffice.store.locations import LocationRepo, StoredLocation
from teleoffice.store.telecommuter import TelecommuterRepo

log = logging.getLogger("teleoffice.telephony")

Publish = Callable[[Mapping[str, Any], Iterable[str]], object]


class TelephonyError(Exception):
    """A request the PBX refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def of(cls, refusal: Refusal) -> TelephonyError:
        return cls(refusal.status, refusal.code, refusal.message)


@dataclass(frozen=True, slots=True)
class TelephonyRepos:
    locations: LocationRepo
    telecommuter: TelecommuterRepo


# What a dialog-event watcher sees of a call (RFC 4235 section 3.7.1): ringing
# is "early" (a provisional response), a call being placed "trying".
_DIALOG_STATES: dict[CallState, DialogState] = {
    CallState.CALLING: "trying",
    CallState.RINGING: "early",
    CallState.WAITING: "early",
    CallState.CONNECTED: "confirmed",
    CallState.ENDED: "terminated",
}

_EVENT_OF_STATE = {
    CallState.CALLING: "call.calling",
    CallState.RINGING: "call.ringing",
    CallState.WAITING: "call.waiting",
    CallState.CONNECTED: "call.answered",
    CallState.ENDED: "call.ended",
}


class Telephony:
    def __init__(
        self,
        *,
        engine: CallEngine,
        b2bua: B2bua,
        directory: Directory,
        repos: TelephonyRepos,
        clock: Callable[[], float],
        publish: Publish | None = None,
        poke: Callable[[], None] | None = None,
        portal_timeout: float = 0.0,
        account_changed: Callable[[str], None] | None = None,
        calls_changed: Callable[[str, int], None] | None = None,
        dialogs_changed: Callable[[str], None] | None = None,
        domain: str = "teleoffice",
    ) -> None:
        # Busy-lamp watchers of a user's calls (RFC 4235) are told of each change.
        self.dialogs_changed = dialogs_changed or (lambda username: None)
        self.domain = domain
        # Calls that just ended, shown once as "terminated" to dialog watchers.
        self._just_ended: dict[str, list[CallRecord]] = {}
        # Told how many calls a user is on whenever that changes (presence shows
        # them busy while on the phone, T9).
        self.calls_changed = calls_changed or (lambda username, calls: None)
        self._call_counts: dict[str, int] = {}
        # Told of every phone whose user changed (its message-waiting lamp
        # must now show the new user's mailbox).
        self.account_changed = account_changed or (lambda account: None)
        # T8: a telecommuter without any portal connection for this long is
        # returned per T7; 0 turns it off (the default).
        self.portal_timeout = portal_timeout
        self._last_online: dict[str, float] = {}
        self.engine = engine
        self.b2bua = b2bua
        self.directory = directory
        self.repos = repos
        self.clock = clock
        self.publish: Publish = publish or (lambda event, users: None)
        # Sends what the SIP side queued (the runner flushes after network input
        # and timers; a call placed from the portal is neither).
        self.poke = poke or (lambda: None)
        self.book = LocationBook(
            {}, base_account=directory.base_account, owner=directory.account_owner
        )
        self._live: dict[str, CallRecord] = {}
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Read the stored locations (at start-up: telecommuter mode survives a restart)."""
        stored = self.repos.locations.load_all()
        self.load_book({user: _from_stored(loc) for user, loc in stored.items()})

    # ---- questions ------------------------------------------------------------------

    def location_of(self, username: str) -> Location:
        return self.book.of(username)

    def occupant(self, account: str) -> str | None:
        return self.book.occupant(account)

    def calls_of(self, username: str) -> list[CallRecord]:
        return [r for r in self._live.values() if username in (r.caller_user, r.callee_user)]

    def live_calls(self) -> list[CallRecord]:
        """Every call in progress, whoever is on it (the administrators' live view)."""
        return list(self._live.values())

    def telecommuters(self) -> dict[str, Location]:
        """Users in telecommuter mode now, with their number and since when."""
        return self.book.telecommuters()

    def location_view(self, username: str) -> dict[str, Any]:
        location = self.book.of(username)
        base = self.directory.base_account(username)
        return {
            "kind": location.kind.value,
            "phone": location.account,
            "number": location.number,
            "base_phone": base,
            "since": _iso(location.since) if location.since else None,
        }

    def snapshot(self, username: str) -> dict[str, Any]:
        """What a portal that (re)connects needs at once (T8)."""
        return {
            "location": self.location_view(username),
            "calls": [call_view(r, username) for r in self.calls_of(username)],
        }

    # ---- moves ------------------------------------------------------------------------

    async def start_telecommuter(self, username: str, number: str) -> Location:
        """T1, T2, T3: checks, then the move; the user's phone stops ringing."""
        if self.directory.user(username) is None:
            raise TelephonyError(404, "not_found", f"no user {username!r}")
        # Read fresh, not from the directory snapshot: a permission granted a
        # moment ago counts.
        settings = await asyncio.to_thread(self.repos.telecommuter.get, username)
        if not settings.allowed:
            raise TelephonyError(
                403,
                "not_allowed",
                "Telecommuter mode is not enabled for you; ask an administrator to allow it",
            )
        found = route(number, from_trunk=False, directory=self.directory)
        if not isinstance(found, ToTrunk):
            raise TelephonyError(
                422,
                "unroutable",
                f"{number!r} is not an outside number any trunk can reach "
                "(dial it as you would from your desk, with the trunk prefix)",
            )
        verdict = self.engine.may_dial(username, found.number, internal=False, from_phone=False)
        if isinstance(verdict, Barred):
            raise TelephonyError(403, "barred", verdict.reason)
        if settings.patterns and not _matches_any(settings.patterns, found.number):
            raise TelephonyError(
                403,
                "number_not_allowed",
                f"{number} is not among the numbers your administrator allows for "
                f"telecommuter mode ({', '.join(settings.patterns)})",
            )
        number = normalize(number) or number
        await self._move(lambda now: self.book.start_telecommuter(username, number, now))
        return self.book.of(username)

    async def end_telecommuter(self, username: str) -> Location:
        """T7: back to the base phone if free, else logged out; calls go on."""
        if self.book.of(username).kind is not LocationKind.TELECOMMUTER:
            raise TelephonyError(409, "not_active", "Telecommuter mode is not on")
        await self._move(lambda now: self.book.end_telecommuter(username, now))
        return self.book.of(username)

    async def log_in(self, username: str, account: str) -> Location:
        """T10: `username` takes the phone; whoever was there is logged out."""
        if self.directory.user(username) is None:
            raise TelephonyError(404, "not_found", f"no user {username!r}")
        if not self.directory.has_account(account):
            raise TelephonyError(422, "no_such_phone", f"there is no phone {account!r}")
        await self._move(lambda now: self.book.log_in(username, account, now))
        return self.book.of(username)

    async def log_out(self, username: str) -> Location:
        await self._move(lambda now: self.book.log_out(username, now))
        return self.book.of(username)

    async def _move(self, change: Callable[[float], Changes]) -> None:
        # One move at a time: each is computed on the current book, written, and
        # only then published; two concurrent logins on one phone cannot both win.
        async with self._lock:
            before = self.book.stored()
            changes = change(self.clock())
            if not changes:
                return
            stored = {
                user: None if loc is None else _to_stored(loc) for user, loc in changes.items()
            }
            try:
                await asyncio.to_thread(self.repos.locations.apply, stored)
            except Exception:
                self.load_book(before)
                raise
            for user in changes:
                self._announce_location(user)
            accounts = {
                loc.account
                for loc in (*before.values(), *self.book.stored().values())
                if loc.account is not None
            }
            for user in changes:
                base = self.directory.base_account(user)
                if base is not None:
                    accounts.add(base)
            for account in accounts:
                self.account_changed(account)

    def load_book(self, stored: Mapping[str, Location]) -> None:
        self.book = LocationBook(
            stored, base_account=self.directory.base_account, owner=self.directory.account_owner
        )

    def _announce_location(self, username: str) -> None:
        view = self.location_view(username)
        self.publish({"type": "location.changed", "location": view}, [username])
        self.publish(
            {
                "type": "telecommuter.changed",
                "active": view["kind"] == LocationKind.TELECOMMUTER.value,
                "number": view["number"],
                "location": view,
            },
            [username],
        )

    async def housekeeping(self, online: set[str]) -> None:
        """Run every few seconds: end telecommuter mode for users who may no
        longer use it (deleted, or the permission taken away, T1/T7), and for
        those whose portal has been gone too long (T8, when configured)."""
        now = self.clock()
        for username, location in self.book.stored().items():
            if self.directory.user(username) is None:
                # Deleted: its stored row went with it (ON DELETE CASCADE).
                self.book.forget(username)
                self._last_online.pop(username, None)
            elif location.account is not None and not self.directory.has_account(location.account):
                # Logged in on a phone that has since been deleted.
                await self.log_out(username)
        for username, location in self.book.telecommuters().items():
            user = self.directory.user(username)
            why = None
            if user is None or not user.telecommuter_allowed:
                why = "telecommuter mode is no longer allowed"
            elif self.portal_timeout > 0:
                if username in online:
                    self._last_online[username] = now
                else:
                    seen = self._last_online.get(username, location.since)
                    if now - seen > self.portal_timeout:
                        why = f"no portal connection for {self.portal_timeout:g} s"
            if why is None:
                continue
            log.info("ending telecommuter mode of %s: %s", username, why)
            self._last_online.pop(username, None)
            try:
                await self.end_telecommuter(username)
            except TelephonyError:
                continue
            except Exception:
                log.exception("could not end telecommuter mode of %s", username)

    # ---- calls ----------------------------------------------------------------------------

    def place_call(self, username: str, to: str) -> str:
        """T4: restrictions first, then ring the user, then the destination."""
        view = self.directory.user_view(username)
        if view is None:
            raise TelephonyError(404, "not_found", f"no user {username!r}")
        plan = self.engine.prepare_call(view, to, self.clock(), pending=self._pending_calls())
        if isinstance(plan, Refusal):
            raise TelephonyError.of(plan)
        now = self.clock()
        call_id = self.b2bua.originate(plan, now)
        # Known (and cancellable) at once, before its media is open and the
        # engine takes it up.
        self.on_record(
            CallRecord(
                call_id=call_id,
                direction=Direction.INTERNAL,
                caller=Party(view.extension, view.display_name),
                callee=plan.callee,
                dialled=to,
                route=None,
                trunk=None,
                caller_user=username,
                callee_user=None,
                state=CallState.CALLING,
                started_at=now,
            )
        )
        self.poke()
        return call_id

    def _pending_calls(self) -> list[Origination]:
        """Calls placed from the portal that wait for their media: the engine
        has not seen them yet, but the call limits must count them, or a burst
        of requests would all pass."""
        engine_calls = self.engine.calls
        return [
            legs.origin
            for legs in self.b2bua.calls.values()
            if legs.origin is not None and not legs.ended and legs.call_id not in engine_calls
        ]

    def hang_up(self, username: str, call_id: str) -> None:
        legs = self.b2bua.calls.get(call_id)
        if not (legs is not None and legs.lingering and legs.caller.user == username):
            # (A call that failed after the user answered still plays them its
            # busy tone: they may hang that up too.)
            self._own_call(username, call_id)
        self.b2bua.hang_up(call_id, self.clock())
        self.poke()

    def control(self, username: str, call_id: str, action: str) -> None:
        """Call control from the portal: answer/reject a waiting call, hold, resume."""
        self._own_call(username, call_id)
        now = self.clock()
        if action == "answer":
            result = self.engine.answer_waiting(username, call_id, now)
        elif action == "reject":
            result = self.engine.reject_waiting(username, call_id, now)
        elif action == "hold":
            result = self.engine.hold(call_id)
        elif action == "resume":
            result = self.engine.resume(call_id)
        else:
            raise TelephonyError(422, "unknown_action", f"no call action {action!r}")
        if isinstance(result, Refusal):
            raise TelephonyError.of(result)
        self.b2bua.execute(result, now)
        self.poke()

    def transfer(self, username: str, call_id: str, to: str) -> None:
        """Blind transfer of the user's call to `to` (T4, checked like a call of theirs)."""
        self._own_call(username, call_id)
        result = self.engine.transfer(username, call_id, to, self.clock())
        if isinstance(result, Refusal):
            raise TelephonyError.of(result)
        self.b2bua.execute(result, self.clock())
        self.poke()

    def dialogs_of(self, username: str) -> list[DialogEntry]:
        """The user's calls as RFC 4235 dialogs, for busy-lamp fields."""
        records = [*self.calls_of(username), *self._just_ended.get(username, [])]
        return [self._dialog_entry(record, username) for record in records]

    def _dialog_entry(self, record: CallRecord, username: str) -> DialogEntry:
        outgoing = record.caller_user == username
        me, other = (record.caller, record.callee) if outgoing else (record.callee, record.caller)
        state: DialogState = _DIALOG_STATES[record.state]
        return DialogEntry(
            id=record.call_id,
            call_id=record.call_id,
            direction="initiator" if outgoing else "recipient",
            state=state,
            local=f"sip:{me.number}@{self.domain}",
            local_display=me.name,
            remote=f"sip:{other.number}@{self.domain}",
            remote_display=other.name,
        )

    def _busy_count(self, username: str) -> int:
        """Calls that make the user busy: connected ones, and their own calls
        still being placed (they are dialling)."""

        def busy(record: CallRecord) -> bool:
            if record.state is CallState.CONNECTED:
                return username in (record.caller_user, record.callee_user)
            return record.caller_user == username and record.state in (
                CallState.CALLING,
                CallState.RINGING,
            )

        return sum(1 for record in self._live.values() if busy(record))

    def _own_call(self, username: str, call_id: str) -> CallRecord:
        record = self._live.get(call_id)
        if record is None or username not in (record.caller_user, record.callee_user):
            # Somebody else's call is as invisible as one that does not exist.
            raise TelephonyError(404, "not_found", f"no call {call_id!r}")
        return record

    def on_record(self, record: CallRecord) -> None:
        """Every change of every call, from the B2BUA (on the loop thread)."""
        previous = self._live.get(record.call_id)
        if record.state is CallState.ENDED:
            self._live.pop(record.call_id, None)
        else:
            self._live[record.call_id] = record
        users = [u for u in {record.caller_user, record.callee_user} if u]
        touched = set(users)
        if previous is not None:
            touched |= {u for u in (previous.caller_user, previous.callee_user) if u}
        if record.state is CallState.ENDED:
            for user in touched:
                self._just_ended.setdefault(user, []).append(record)
        for user in touched:
            self.dialogs_changed(user)
            self._just_ended.pop(user, None)
        for user in touched:
            count = self._busy_count(user)
            if count != self._call_counts.get(user, 0):
                self._call_counts[user] = count
                if count == 0:
                    del self._call_counts[user]
                self.calls_changed(user, count)
        if previous is not None:
            # A user the call left (they transferred it) sees it go.
            for gone in {previous.caller_user, previous.callee_user} - {None, *users}:
                assert gone is not None
                view = call_view(previous, gone)
                self.publish({"type": "call.transferred", "call": view}, [gone])
        if not users:
            return
        kind = _EVENT_OF_STATE[record.state]
        if previous is not None and previous.state is record.state:
            kind = "call.updated"
        for user in users:
            self.publish({"type": kind, "call": call_view(record, user)}, [user])

    # ---- feature codes ----------------------------------------------------------------------

    async def run_feature(self, feature: Feature) -> None:
        """Carry out a feature code dialled from a phone, then answer the phone."""
        ok, status, reason = False, 500, "Server Error"
        try:
            ok, status, reason = await self._feature(feature)
        except TelephonyError as exc:
            ok, status, reason = False, exc.status if exc.status >= 400 else 403, exc.message
        except Exception:
            log.exception("feature code %s failed", feature.name.value)
        self.b2bua.feature_done(feature.call_id, ok, _sip_status(status), reason, self.clock())
        self.poke()

    async def _feature(self, feature: Feature) -> tuple[bool, int, str]:
        if feature.name is FeatureName.LOG_IN:
            assert feature.extension is not None
            assert feature.code is not None
            username = await asyncio.to_thread(
                self.repos.telecommuter.verify_login_code, feature.extension, feature.code
            )
            if username is None:
                log.info("hot-desk login on phone %s refused: wrong code", feature.account)
                return False, 403, "Wrong Extension Or Login Code"
            await self.log_in(username, feature.account)
            log.info("user %s logged in on phone %s", username, feature.account)
            return True, 200, "OK"
        if feature.name is FeatureName.LOG_OUT:
            occupant = self.book.occupant(feature.account)
            if occupant is None:
                return False, 404, "Nobody Is Logged In Here"
            await self.log_out(occupant)
            log.info("user %s logged out of phone %s", occupant, feature.account)
            return True, 200, "OK"
        return False, 404, "Unknown Feature Code"


def call_view(record: CallRecord, username: str) -> dict[str, Any]:
    """A call as the portal shows it to `username` (T5: caller, callee, times, state)."""
    outgoing = record.caller_user == username
    return {
        "id": record.call_id,
        "from": {"number": record.caller.number, "name": record.caller.name},
        "to": {"number": record.callee.number, "name": record.callee.name},
        "dialled": record.dialled,
        "direction": "outgoing" if outgoing else "incoming",
        "kind": record.direction.value,
        "state": record.state.value,
        "held": record.held,
        "route": record.route,
        "started_at": _iso(record.started_at),
        "ringing_at": _iso(record.ringing_at),
        "answered_at": _iso(record.answered_at),
        "ended_at": _iso(record.ended_at),
        "outcome": record.outcome,
        "status": record.status,
    }


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _sip_status(status: int) -> int:
    return status if 400 <= status < 700 else 403


def _matches_any(patterns: Iterable[str], number: str) -> bool:
    for text in patterns:
        try:
            pattern = parse_pattern(text.split("=", 1)[0])
        except PatternError:
            continue
        if pattern.matches(number, internal=False):
            return True
    return False


def _from_stored(stored: StoredLocation) -> Location:
    return Location(
        LocationKind(stored.kind.value),
        account=stored.account,
        number=stored.number,
        since=stored.since.timestamp(),
    )


def _to_stored(location: Location) -> StoredLocation:
    return StoredLocation(
        StoredKind(location.kind.value),
        location.account,
        location.number,
        datetime.fromtimestamp(location.since, UTC),
    )
