"""The call engine: the PBX's decisions about calls, as plain Python.

Theory of operation
-------------------
A call has one inbound leg (the caller, "A") and any number of outbound
*branches* (the phones of the called user rung in parallel, or one trunk).  The
SIP layer reports what happens on the legs (`on_*` methods) and carries out the
commands the engine returns; the engine never sees a SIP message or a socket.

    CALLING --first 18x--> RINGING --first 2xx--> CONNECTED --BYE either side--> ENDED
       |                      |
       +----------------------+--> ENDED (all branches failed, caller cancelled,
                                          no answer within the user's time)

Rules of forking (RFC 3261 section 16.7 in spirit): the first branch to answer
wins and every other branch is cancelled; when all fail, the caller gets the
best of their answers (6xx first, then busy, then the lowest class); a branch
that answers after another already did is hung up at once.

Every change of a call produces a `CallUpdated` with a snapshot record, so the
call log (and later the portal) follow calls without knowing these rules.

Dialling restrictions (rule T11) are checked once the destination is known and
before anything is dialled: a barred call ends at once with 403, its reason
naming the profile, and outcome "barred".  The check is `may_dial`, the one
place every way of placing a call is to go through (forwards, transfers and
click-to-dial, when they come, call it too).  Calls from trunks are not
restricted: the caller is outside, and they can only reach users anyway.

Toll fraud and call limits (issue 9)
------------------------------------
A call from a trunk may only reach users: a number that routes to a trunk is
"not found", or the PBX would relay anyone who can reach its trunk address
to the world at its owner's expense.  `allow_trunk_to_trunk` (a setting of
the whole site, off by default) lifts this for sites that are a gateway
between two carriers or branch offices; relayed calls are then checked
against the `default` profile, since no user's profile applies to them.

`CallLimits` bound what is up at once: calls in total (503 beyond: our
capacity), calls one user places (403), and calls one user causes to leave
through a trunk (403: the hole a stolen SIP password or a forward to a
premium number opens).  An outside call is counted for the user who dials
it (from a phone, the portal or a transfer) or whose forward sends it out;
calls following a telecommuter to their number are not, since the line
carries at most one call and one waiting (rule T6).  Emergency numbers
dialled from a phone are never refused by a limit (rule T11).

Forwarding and do-not-disturb (rules T5, T6, T9)
-----------------------------------------------
Every time a call reaches a user (the one dialled, or one it was forwarded to),
that user's settings decide, in this order:

1. `forward_always`: the call goes straight to that number; the user's phones
   do not ring (and their do-not-disturb does not matter: nothing disturbs).
2. `dnd`: busy treatment at once, without ringing.
3. No phone registered: no-answer treatment (it cannot be answered).
4. Otherwise the phones ring, for the user's `no_answer_timeout`.  When every
   phone says busy (486, or 600 from any of them) the call gets busy treatment;
   when the time runs out, no-answer treatment.

Busy treatment is `forward_busy` if set, else 486 (600 when a phone said so);
no-answer treatment is `forward_no_answer` if set, else 480.  Both go through
`_unavailable_treatment`, where voicemail (rule T12) will come in.

A forward is a new stage of the same call: the branches of the previous stage
are cancelled and new `Dial`s go out, while the caller's leg stays in its early
state, so the SIP layer needs nothing special.  The number is routed like a
number the forwarding user dialled (an extension, a DID, or a trunk prefix and
an outside number) and checked against the *forwarding* user's restriction
profile, since that user causes, and pays for, the forwarded leg.  The called
side sees the original caller; a forward out of a trunk from an internal caller
presents the trunk's outside number as any outside call does.  A forward that
cannot be placed (barred, unroutable, back to a user the call already reached,
or more than `MAX_FORWARD_HOPS` forwards) gives the caller the failure the
forward stood in for (486, or 480), and the record's route says why.  The
record's callee stays the user originally called; its route lists the forwards
("extension 202, forwarded to 203").  A call forwarded to a trunk is not
forwarded any further: the outside number's busy or failure reaches the caller.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from teleoffice.calls.locations import Location, LocationKind
from teleoffice.calls.restrictions import (
    DEFAULT_PROFILE,
    Barred,
    RestrictionProfile,
    Verdict,
    check,
)
from teleoffice.calls.routing import (
    DirectoryView,
    RestrictingDirectory,
    ToTrunk,
    ToUser,
    Unroutable,
    UserView,
    normalize,
    route,
)

A_LEG = "a"


class CallState(Enum):
    CALLING = "calling"
    RINGING = "ringing"
    WAITING = "waiting"  # offered to a busy telecommuter line (call waiting, T6)
    CONNECTED = "connected"
    ENDED = "ended"


class BranchState(Enum):
    TRYING = "trying"
    RINGING = "ringing"
    ANSWERED = "answered"
    CANCELLING = "cancelling"
    FAILED = "failed"


class Direction(Enum):
    INTERNAL = "internal"
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class TimerName(Enum):
    NO_ANSWER = "no-answer"


class ForwardKind(Enum):
    ALWAYS = "always"
    BUSY = "busy"
    NO_ANSWER = "no-answer"


# The diversion reasons of RFC 5806 section 4 for each kind of forward.
DIVERSION_REASONS = {
    ForwardKind.ALWAYS: "unconditional",
    ForwardKind.BUSY: "user-busy",
    ForwardKind.NO_ANSWER: "no-answer",
}


@dataclass(frozen=True, slots=True)
class Diversion:
    """One forward the call went through: who forwarded it and why (RFC 5806)."""

    party: Party
    reason: str


# A chain of forwards longer than this is treated as unavailable.  Loops back
# to a user are caught sooner (see `_forward`); this bounds everything else.
MAX_FORWARD_HOPS = 5


@dataclass(frozen=True, slots=True)
class Party:
    number: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who places the call: a user's phone (authenticated) or a trunk."""

    party: Party
    user: str | None = None  # username when the call comes from a user's phone
    trunk: str | None = None  # trunk name when it comes from a provider
    # False for calls a user places some other way (the portal's click-to-dial):
    # emergency numbers are always allowed from a phone only (rule T11).
    from_phone: bool = True
    # The phone account the call comes from (hot desking: the phone a feature
    # code logs a user in on).  None for trunks and calls the PBX places.
    account: str | None = None


@dataclass(frozen=True, slots=True)
class PhoneTarget:
    """A registered contact of a user's phone account."""

    account: str
    uri: str
    transport: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TrunkTarget:
    trunk: str
    number: str


DialTarget = PhoneTarget | TrunkTarget


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A snapshot of a call, as the call log and the portal see it."""

    call_id: str
    direction: Direction
    caller: Party
    callee: Party
    dialled: str
    route: str | None
    trunk: str | None
    caller_user: str | None
    callee_user: str | None
    state: CallState
    started_at: float
    ringing_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    status: int | None = None
    ended_by: str | None = None
    held: bool = False  # on hold through the portal (its party hears nothing)


# ---- commands ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dial:
    call_id: str
    branch: str
    target: DialTarget
    identity: Party  # who the called side sees as calling
    callee: Party
    # The forwards that led here, oldest first, so the called side can tell
    # "forwarded from 202" (RFC 5806 Diversion; T5's diversion information).
    diversions: tuple[Diversion, ...] = ()
    # For a transfer target: the leg whose negotiated codec the offer keeps, so
    # the party already talking and the target need no transcoding.
    media_like: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Tell the caller the call is ringing (180) or relay early media (183)."""

    call_id: str
    branch: str
    status: int


@dataclass(frozen=True, slots=True)
class Connect:
    call_id: str
    branch: str


@dataclass(frozen=True, slots=True)
class Reject:
    call_id: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class CancelBranch:
    call_id: str
    branch: str


@dataclass(frozen=True, slots=True)
class Hangup:
    call_id: str
    leg: str  # A_LEG or a branch id


@dataclass(frozen=True, slots=True)
class StartTimer:
    call_id: str
    name: TimerName
    at: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    call_id: str
    name: TimerName


@dataclass(frozen=True, slots=True)
class CallUpdated:
    record: CallRecord


class ToneName(Enum):
    RINGBACK = "ringback"
    BUSY = "busy"
    CONGESTION = "congestion"
    CALL_WAITING = "call_waiting"


@dataclass(frozen=True, slots=True)
class PlayTone:
    """Play a tone to a leg of a call, in place of what the relay would send it."""

    call_id: str
    leg: str
    tone: ToneName


@dataclass(frozen=True, slots=True)
class StopTone:
    call_id: str
    leg: str


@dataclass(frozen=True, slots=True)
class Bridge:
    """Join the media of two legs of (possibly) different calls: the telecommuter
    line (a leg of its carrier call) and the party of the call now on it.
    A leg joined to nothing (`to_call` None) hears silence: it is on hold."""

    call_id: str
    leg: str
    to_call: str | None
    to_leg: str | None


@dataclass(frozen=True, slots=True)
class AnswerWaiting:
    """Answer a waiting call's caller (200 to its INVITE) without a branch: its
    media is joined to the line by a `Bridge` that follows."""

    call_id: str
    line_call: str  # the carrier, whose line leg's codec the answer should use
    line_leg: str


@dataclass(frozen=True, slots=True)
class Voicemail:
    """Connect leg A to a mailbox: leave a message (`deposit`) or listen to one's
    own.  The B2BUA answers leg A if it is not answered yet and hands its media
    to the voicemail menus; they end the call when they are done."""

    call_id: str
    mailbox: str
    deposit: bool
    caller: Party
    busy: bool = False  # the mailbox's owner is on the phone


@dataclass(frozen=True, slots=True)
class Abandon:
    """A party whose call failed after it was answered (a transfer target that
    did not take it) hears `tone` for a while and is then hung up."""

    call_id: str
    leg: str
    tone: ToneName


@dataclass(frozen=True, slots=True)
class Release:
    """The call carried a telecommuter line that has now ended: forget its legs."""

    call_id: str


class FeatureName(Enum):
    LOG_IN = "log-in"
    LOG_OUT = "log-out"
    UNKNOWN = "unknown"  # a star code nobody defined: refused with 404


@dataclass(frozen=True, slots=True)
class Feature:
    """A feature code dialled from a phone (see FEATURE CODES below).

    Not a call: nothing rings and nothing is logged (a login code must not end
    up in the call log).  The composition root carries it out, then tells the
    B2BUA whether it worked, which answers the phone with a confirmation tone or
    refuses it.
    """

    call_id: str
    name: FeatureName
    account: str
    extension: str | None = None
    code: str | None = None


Command = (
    Dial
    | Progress
    | Connect
    | Reject
    | CancelBranch
    | Hangup
    | StartTimer
    | StopTimer
    | CallUpdated
    | Feature
    | PlayTone
    | StopTone
    | Bridge
    | AnswerWaiting
    | Release
    | Abandon
    | Voicemail
)


# ---- state ------------------------------------------------------------------


@dataclass
class Branch:
    id: str
    target: DialTarget
    state: BranchState = BranchState.TRYING
    status: int | None = None
    # The forwarding stage the branch belongs to: answers of a stage the call
    # has moved past (cancelled for a forward) must not decide its outcome.
    stage: int = 0
    # The user whose telecommuter line this branch rings (rule T6: one call
    # through the system at a time on that line).
    line: str | None = None


class OriginPhase(Enum):
    """Where a call the PBX places for a user stands (rule T4, RFC 3725)."""

    CALLBACK = "callback"  # ringing the user's own line (phone or telecommuter number)
    PLACING = "placing"  # the user answered; the destination is being called
    TRANSFER = "transfer"  # leg A is being replaced by a transfer target


@dataclass
class Call:
    record: CallRecord
    caller: Caller
    branches: dict[str, Branch] = field(default_factory=dict)
    connected: str | None = None
    stage: int = 0
    # The user whose phones ring in the current stage; None when the current
    # stage is a trunk (or nothing rings yet), whose failures are not forwarded.
    ringing_user: UserView | None = None
    hops: int = 0
    reached: set[str] = field(default_factory=set)  # usernames, for loop detection
    diversions: tuple[Diversion, ...] = ()
    # Calls the PBX places for a user (click-to-dial, telecommuter callback):
    # leg A is the user's line, rung first; None for calls that came in.
    origin: OriginPhase | None = None
    a_line: str | None = None  # the telecommuter whose line leg A is
    a_answered: bool = False
    # The telecommuter whose line this call is on, once connected through it.
    on_line: str | None = None
    # The call ended, but one of its legs is a telecommuter line still in use
    # by other calls: the legs stay until the line ends (`Line`).
    carrier_only: bool = False
    # A blind transfer in progress: the party who stays (hearing ringback)
    # while the target rings; None otherwise.
    transfer_party: str | None = None
    # The mailbox whose voicemail the caller is connected to (answered by
    # teleoffice itself: no branch).
    local: str | None = None
    # The user whose outside call this is (they dialled a number behind a
    # trunk, or forwarded the call there), for `max_outside_calls_per_user`.
    # Set when the outside leg is dialled, or when a call placed from the
    # portal for an outside number is accepted (its callback rings first).
    outside_by: str | None = None

    @property
    def id(self) -> str:
        return self.record.call_id

    @property
    def state(self) -> CallState:
        return self.record.state

    def live_branches(self) -> list[Branch]:
        return [
            b
            for b in self.branches.values()
            if b.state in (BranchState.TRYING, BranchState.RINGING)
        ]


@dataclass
class Line:
    """A telecommuter's line while it is up (rule T6): one SIP leg to the remote
    phone, carried by the call that set it up, and the calls sharing it.

    Theory of operation: media is anchored, so the remote phone never learns
    that it is switched between calls.  The line leg stays in its carrier call;
    answering a waiting call (or resuming a held one) re-joins the line's media
    to that call's party (`Bridge`) and leaves the previous party joined to
    nothing, which is hold.  The carrier outlives its own party: when that
    party hangs up while other calls share the line, the carrier's record ends
    but its legs stay until the line itself goes.  When the remote phone hangs
    up, every call on the line ends, except a waiting one, which rings the line
    afresh (as a desk phone rings again after hanging up with a call waiting).
    """

    user: str
    carrier: str  # the call whose leg is the line
    leg: str  # that leg: a branch (an incoming call) or A_LEG (a call we placed)
    active: str | None  # the call joined to the line now; None: all on hold
    held: list[str] = field(default_factory=list)
    waiting: str | None = None

    def calls(self) -> list[str]:
        out = [*self.held, *([self.active] if self.active else [])]
        return out + ([self.waiting] if self.waiting else [])


Contacts = Callable[[str, float], list[PhoneTarget]]

# The order in which failures of parallel branches are reported to the caller:
# a global failure (6xx) says the callee does not want this call anywhere; busy
# beats "unavailable" because it is what the user did (RFC 3261 section 16.7).
_PREFERRED = (603, 600, 604, 606, 486, 480, 487, 408)


def best_failure(statuses: list[int]) -> int:
    for status in _PREFERRED:
        if status in statuses:
            return status
    best = min(statuses) if statuses else 480
    # RFC 3261 section 16.7 step 6: a 503 is passed on as 500, or the phone would
    # take the provider's outage for ours and stop using its PBX (section 21.5.4).
    # A 401/407 is a challenge to us (a trunk we could not satisfy): passed on, the
    # phone would answer the provider's realm with its own credentials.
    return 500 if best in (401, 407, 503) else best


_REASONS = {
    486: "Busy Here",
    480: "Temporarily Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
}
_OUTCOMES = {486: "busy", 600: "busy", 603: "declined", 480: "unavailable", 404: "not-found"}


@dataclass(frozen=True, slots=True)
class _Failure:
    """How a call ends when a treatment has nothing better to offer."""

    status: int
    reason: str
    outcome: str
    by: str


_BUSY = _Failure(486, "Busy Here", "busy", "callee")
_NO_ANSWER = _Failure(480, "No Answer", "no-answer", "system")
_NO_ANSWER_BUSY = _Failure(486, "Busy Here", "no-answer", "system")

# How long a transfer target may ring before the transferred party is told.
TRANSFER_RING_SECONDS = 30.0


def _failure_of(status: int) -> _Failure:
    if status in (486, 600):
        return replace(_BUSY, status=status)
    if status in (408, 480):
        return _NO_ANSWER
    return _Failure(status, "Call Failed", "failed", "callee")


_UNAVAILABLE = _Failure(480, "Temporarily Unavailable", "unavailable", "system")

# No username is empty, so the directory answers this one with the profile of
# everybody without one of their own, `default`: the one relayed calls get.
_NOBODY = ""


@dataclass(frozen=True, slots=True)
class CallLimits:
    """How much may be up at once (see "Toll fraud and call limits" above).

    The defaults leave room for any real office (a busy attendant has a few
    calls; the load tests place 60 from one account) while bounding what one
    stolen password can cost: 4 outside calls is a few lines' worth.  The
    total stays below what the default RTP port range can carry (10,000 ports,
    four per call), so a flood meets a clear 503 rather than media failures.
    """

    max_calls: int = 2000
    max_calls_per_user: int = 100
    max_outside_calls_per_user: int = 4

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_calls_per_user", "max_outside_calls_per_user"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


# SIP reason phrases of the refusals (short, as phones show them).
_SIP_REASONS = {
    "too_many_calls": "Too Many Calls",
    "too_many_outside_calls": "Too Many Outside Calls",
}

Restrictions = Callable[[str], RestrictionProfile]
Locate = Callable[[UserView], Location]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call the portal asked for is not placed; `status` is the HTTP one."""

    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Origination:
    """A call the portal may place: whom to ring first, and the destination."""

    user: UserView
    to: str
    target: DialTarget  # the user's own line
    callee: Party  # the destination, as the user's phone will show it
    line: str | None  # the telecommuter whose line is rung, if it is one


class CallEngine:
    def __init__(
        self,
        directory: DirectoryView,
        contacts: Contacts,
        *,
        restrictions: Restrictions | None = None,
        locate: Locate | None = None,
        voicemail_number: str = "",
        has_mailbox: Callable[[str], bool] | None = None,
        limits: CallLimits | None = None,
        allow_trunk_to_trunk: bool = False,
    ) -> None:
        self.limits = limits or CallLimits()
        # Off unless the site says otherwise (module docstring: toll fraud).
        self.allow_trunk_to_trunk = allow_trunk_to_trunk
        # Dialled by a user, this reaches their own mailbox ("" turns it off).
        self.voicemail_number = voicemail_number
        self.has_mailbox: Callable[[str], bool] = has_mailbox or (lambda username: False)
        self.directory = directory
        self.contacts = contacts
        if restrictions is None:
            # A directory that knows no profiles gets the built-in default for
            # everyone: a missing piece of wiring must never mean "unrestricted".
            if isinstance(directory, RestrictingDirectory):
                restrictions = directory.restriction_for
            else:
                restrictions = _default_restrictions
        self.restrictions = restrictions
        self.locate: Locate = locate or _at_base_phone
        self.calls: dict[str, Call] = {}
        self.lines: dict[str, Line] = {}
        self._branch_ids = itertools.count(1)

    def active_count(self) -> int:
        return len(self.calls)

    def calls_placed_by(self, username: str, *, besides: str | None = None) -> int:
        """Calls up that `username` placed (from a phone or the portal), not
        counting call `besides`."""
        return sum(
            1
            for call in self.calls.values()
            if call.record.caller_user == username and not call.carrier_only and call.id != besides
        )

    def outside_calls_of(self, username: str, *, besides: str | None = None) -> int:
        """Outside calls up that `username` caused (see `Call.outside_by`)."""
        return sum(
            1
            for call in self.calls.values()
            if call.outside_by == username and not call.carrier_only and call.id != besides
        )

    def _admission(
        self,
        username: str | None,
        pending: Sequence[Origination] = (),
        *,
        besides: str | None = None,
    ) -> Refusal | None:
        """Whether one more call fits: in total, and for `username` if a user places it.

        `pending` are calls the portal asked for whose media is still being
        opened: the engine has not seen them yet, but they are coming.  Call
        `besides` (the one being decided on) is not counted.
        """
        limits = self.limits
        others = len(self.calls) - (besides in self.calls)
        if others + len(pending) >= limits.max_calls:
            return Refusal(
                503,
                "too_many_calls",
                f"The system is at its limit of {limits.max_calls} calls at once; try again later",
            )
        if username is None:
            return None
        placed = self.calls_placed_by(username, besides=besides) + sum(
            1 for plan in pending if plan.user.username == username
        )
        if placed >= limits.max_calls_per_user:
            return Refusal(
                403,
                "too_many_calls",
                f"You have {placed} calls up, the most allowed at once; end one first",
            )
        return None

    def _outside_refusal(
        self, username: str, *, besides: str | None = None, pending: Sequence[Origination] = ()
    ) -> Refusal | None:
        """Whether `username` may cause one more outside call (toll fraud guard)."""
        limit = self.limits.max_outside_calls_per_user
        count = self.outside_calls_of(username, besides=besides) + sum(
            1 for plan in pending if plan.user.username == username and self._goes_outside(plan.to)
        )
        if count < limit:
            return None
        return Refusal(
            403,
            "too_many_outside_calls",
            f"You have {count} outside calls up, the most allowed at once ({limit}); end one first",
        )

    def _goes_outside(self, dialled: str) -> bool:
        return isinstance(route(dialled, from_trunk=False, directory=self.directory), ToTrunk)

    def _refuse(self, call: Call, now: float, refusal: Refusal) -> list[Command]:
        """End a call a limit refused, with a SIP status fit for a phone."""
        self._note(call, refusal.message)
        status = 503 if refusal.status == 503 else 403
        reason = _SIP_REASONS.get(refusal.code, "Forbidden")
        outcome = "failed" if status == 503 else "barred"
        return self._end(call, now, status, reason, outcome=outcome, by="system")

    def _emergency(self, caller: Caller, dialled: str) -> bool:
        """Whether a phone dials one of its user's emergency numbers (rule T11)."""
        if not caller.from_phone or caller.trunk is not None:
            return False
        found = route(dialled, from_trunk=False, directory=self.directory)
        if not isinstance(found, ToTrunk):
            return False
        profile = self.restrictions(caller.user) if caller.user else DEFAULT_PROFILE
        return found.number in profile.emergency

    # ---- inputs ---------------------------------------------------------------

    def new_call(self, *, call_id: str, caller: Caller, dialled: str, now: float) -> list[Command]:
        if (
            caller.account is not None
            and dialled.startswith(FEATURE_PREFIX)
            and dialled != self.voicemail_number
        ):
            return [_feature(call_id, caller.account, dialled)]
        call = self._open(call_id, caller, dialled, now)
        if caller.user is None and caller.trunk is None:
            # A phone nobody is logged in on (hot desking): emergency numbers
            # only (rule T11), and the login feature code above.
            found = route(dialled, from_trunk=False, directory=self.directory)
            if not (isinstance(found, ToTrunk) and found.number in DEFAULT_PROFILE.emergency):
                return self._end(
                    call,
                    now,
                    403,
                    f"Nobody is logged in on this phone (log in with {LOG_IN_CODE})",
                    outcome="barred",
                    by="system",
                )
        if not self._emergency(caller, dialled):
            refusal = self._admission(caller.user, besides=call_id)
            if refusal is not None:
                return self._refuse(call, now, refusal)
        return self._place(call, now)

    def _open(self, call_id: str, caller: Caller, dialled: str, now: float) -> Call:
        record = CallRecord(
            call_id=call_id,
            direction=Direction.INBOUND if caller.trunk else Direction.INTERNAL,
            caller=caller.party,
            callee=Party(dialled),
            dialled=dialled,
            route=None,
            trunk=caller.trunk,
            caller_user=caller.user,
            callee_user=None,
            state=CallState.CALLING,
            started_at=now,
        )
        call = Call(record, caller)
        self.calls[call_id] = call
        return call

    def _place(self, call: Call, now: float) -> list[Command]:
        """Route the dialled number and ring it (after the callback, for calls the
        PBX places for a user)."""
        caller, dialled = call.caller, call.record.dialled
        if self.voicemail_number and dialled == self.voicemail_number and caller.trunk is None:
            return self._voicemail_box(call, now)
        relaying = caller.trunk is not None and not self.allow_trunk_to_trunk
        found = route(dialled, from_trunk=relaying, directory=self.directory)
        if isinstance(found, Unroutable):
            return self._end(
                call, now, found.status, found.reason, outcome="not-found", by="system"
            )
        if isinstance(found, ToUser):
            user = found.user
            call.record = replace(
                call.record,
                callee=Party(user.extension, user.display_name),
                callee_user=user.username,
                route=_joined(call.record.route, f"extension {user.extension}"),
            )
            # The number as dialled (an extension or a DID), which is what an
            # administrator writes patterns for.
            verdict = self._verdict(caller, normalize(dialled) or user.extension, internal=True)
            if isinstance(verdict, Barred):
                return self._bar(call, now, verdict)
            return self._reach_user(call, user, now)
        # A relayed outside caller is presented as themselves, as after a forward.
        identity = caller.party if caller.trunk else self._outside_identity(caller, found)
        call.record = replace(
            call.record,
            direction=Direction.OUTBOUND,
            callee=Party(found.number),
            route=_joined(call.record.route, f"trunk {found.trunk.name}"),
            trunk=found.trunk.name,
        )
        # What leaves the building: the number without the trunk prefix.
        verdict = self._verdict(caller, found.number, internal=False)
        if isinstance(verdict, Barred):
            return self._bar(call, now, verdict)
        if caller.user is not None and not self._emergency(caller, dialled):
            refusal = self._outside_refusal(caller.user, besides=call.id)
            if refusal is not None:
                return self._refuse(call, now, refusal)
            call.outside_by = caller.user
        branch = self._add_branch(call, TrunkTarget(found.trunk.name, found.number))
        return [
            Dial(call.id, branch.id, branch.target, identity, call.record.callee),
            CallUpdated(call.record),
        ]

    # ---- calls the PBX places for a user (rule T4) ---------------------------------

    def prepare_call(
        self, user: UserView, to: str, now: float, *, pending: Sequence[Origination] = ()
    ) -> Refusal | Origination:
        """Everything that can refuse `POST /api/calls` before any SIP is sent.

        The restriction check comes first, exactly as if `user` dialled `to` from
        the desk (T4, T11): a barred number places no call at all, not even the
        callback.  Then the call limits (`pending`: calls accepted a moment ago
        that the engine has not seen yet, see `_admission`), then where the user
        is decides whom to ring first.
        """
        if self.voicemail_number and to == self.voicemail_number:
            # One's own mailbox (T12: a telecommuter reaches it through the
            # callback); nothing leaves the building, nothing to restrict.
            if not user.voicemail:
                return Refusal(409, "no_mailbox", "You have no mailbox")
            admitted = self._admission(user.username, pending)
            if admitted is not None:
                return admitted
            return self._origination(user, to, Party(to, "Voicemail"), now)
        found = route(to, from_trunk=False, directory=self.directory)
        if isinstance(found, Unroutable):
            return Refusal(422, "unroutable", f"{to!r} cannot be dialled: {found.reason.lower()}")
        if isinstance(found, ToUser):
            number = normalize(to) or found.user.extension
            verdict = self.may_dial(user.username, number, internal=True, from_phone=False)
            callee = Party(found.user.extension, found.user.display_name)
        else:
            verdict = self.may_dial(user.username, found.number, internal=False, from_phone=False)
            callee = Party(found.number)
        if isinstance(verdict, Barred):
            return Refusal(403, "barred", verdict.reason)
        refusal = self._admission(user.username, pending)
        if refusal is None and isinstance(found, ToTrunk):
            refusal = self._outside_refusal(user.username, pending=pending)
        if refusal is not None:
            return refusal
        return self._origination(user, to, callee, now)

    def _origination(
        self, user: UserView, to: str, callee: Party, now: float
    ) -> Refusal | Origination:
        """Whom to ring first for a call placed for `user`: where they are."""
        location = self.locate(user)
        if location.kind is LocationKind.LOGGED_OUT:
            return Refusal(
                409,
                "logged_out",
                "You are logged out: log in on a phone or start telecommuter mode first",
            )
        if self.line_busy(user.username):
            return Refusal(409, "line_busy", "Your line is busy with another call")
        line: str | None = None
        if location.kind is LocationKind.TELECOMMUTER:
            assert location.number is not None
            leg = route(location.number, from_trunk=False, directory=self.directory)
            if not isinstance(leg, ToTrunk):
                return Refusal(
                    409, "unreachable", f"Your telecommuter number {location.number} has no route"
                )
            # The callback is a call the user causes: their profile applies to it
            # as well (T11), in case it changed since the mode started.
            verdict = self.may_dial(user.username, leg.number, internal=False, from_phone=False)
            if isinstance(verdict, Barred):
                return Refusal(403, "barred", verdict.reason)
            target: DialTarget = TrunkTarget(leg.trunk.name, leg.number)
            line = user.username
        else:
            assert location.account is not None
            phones = self.contacts(location.account, now)
            if not phones:
                return Refusal(
                    409, "unreachable", f"Your phone {location.account} is not registered"
                )
            # One phone, not a fork: the user is at one of them, and a callback
            # answered by two phones at once would leave one of them talking to
            # nobody.  The registrar's order puts the freshest registration first.
            target = phones[0]
        return Origination(user, to, target, callee, line)

    def originate(self, call_id: str, plan: Origination, now: float) -> list[Command]:
        """Ring the user first; `on_answer(A_LEG)` then dials the destination."""
        user = plan.user
        caller = Caller(
            Party(user.extension, user.display_name), user=user.username, from_phone=False
        )
        call = self._open(call_id, caller, plan.to, now)
        call.origin = OriginPhase.CALLBACK
        call.a_line = plan.line
        if self._goes_outside(plan.to):
            # Counted from now on, while the callback rings, so that calls
            # asked for in a burst cannot all pass `prepare_call`.
            call.outside_by = user.username
        where = (
            f"callback to {plan.target.number}"
            if isinstance(plan.target, TrunkTarget)
            else f"click-to-dial from phone {plan.target.account}"
        )
        call.record = replace(call.record, callee=plan.callee, route=where)
        return [
            # The user's phone shows whom it is about to be connected to (T4).
            Dial(call_id, A_LEG, plan.target, plan.callee, caller.party),
            StartTimer(call_id, TimerName.NO_ANSWER, now + user.no_answer_timeout),
            CallUpdated(call.record),
        ]

    def line_busy(self, username: str) -> bool:
        """Whether the user's telecommuter line carries a call (rule T6)."""
        for call in self.calls.values():
            if call.a_line == username:
                return True
            for branch in call.branches.values():
                if branch.line == username and branch.state in (
                    BranchState.TRYING,
                    BranchState.RINGING,
                    BranchState.ANSWERED,
                ):
                    return True
        return False

    def on_provisional(
        self, call_id: str, branch_id: str, status: int, now: float
    ) -> list[Command]:
        if branch_id == A_LEG:
            return []  # the user's own line ringing: nothing to tell anybody
        call, branch = self._branch(call_id, branch_id)
        if call is None or branch is None:
            return []
        if branch.state not in (BranchState.TRYING, BranchState.RINGING):
            return []
        branch.state = BranchState.RINGING
        if call.state is CallState.CONNECTED:
            return []
        commands: list[Command] = [Progress(call_id, branch_id, status)]
        if call.state is CallState.CALLING:
            call.record = replace(call.record, state=CallState.RINGING, ringing_at=now)
            commands.append(CallUpdated(call.record))
        return commands

    def on_answer(self, call_id: str, branch_id: str, now: float) -> list[Command]:
        if branch_id == A_LEG:
            return self._callback_answered(call_id, now)
        call, branch = self._branch(call_id, branch_id)
        if (
            call is not None
            and branch is not None
            and call.transfer_party is not None
            and branch.stage == call.stage
            and branch.state in (BranchState.TRYING, BranchState.RINGING)
        ):
            branch.state = BranchState.ANSWERED
            return self._transfer_answered(call, branch_id, now)
        if call is None or branch is None:
            return []
        if (
            call.state in (CallState.CONNECTED, CallState.ENDED)
            or branch.state is BranchState.CANCELLING
        ):
            # Another branch won, or we had cancelled this one: the 2xx crossed
            # our CANCEL.  The SIP layer ACKs it; we end that dialog at once.
            branch.state = BranchState.FAILED
            return [Hangup(call_id, branch_id)]
        branch.state = BranchState.ANSWERED
        call.connected = branch_id
        commands: list[Command] = [
            Connect(call_id, branch_id),
            StopTimer(call_id, TimerName.NO_ANSWER),
        ]
        for other in call.live_branches():
            other.state = BranchState.CANCELLING
            commands.append(CancelBranch(call_id, other.id))
        call.record = replace(
            call.record,
            state=CallState.CONNECTED,
            answered_at=now,
            ringing_at=call.record.ringing_at or now,
        )
        if branch.line is not None:
            self._open_line(call, branch.line, branch_id)
        commands.append(CallUpdated(call.record))
        return commands

    def on_failure(self, call_id: str, branch_id: str, status: int, now: float) -> list[Command]:
        if branch_id == A_LEG:
            return self._callback_failed(call_id, status, now)
        call, branch = self._branch(call_id, branch_id)
        if (
            call is None
            or branch is None
            or branch.state in (BranchState.FAILED, BranchState.ANSWERED)
        ):
            return []
        branch.state = BranchState.FAILED
        branch.status = status
        if call.state is CallState.ENDED or branch.stage != call.stage:
            return []
        if call.state is CallState.CONNECTED and call.transfer_party is None:
            return []
        if 600 <= status < 700:
            # A global failure ends the search everywhere (RFC 3261 section 16.7).
            return self._stage_failed(call, now, status)
        if call.live_branches():
            return []
        statuses = [
            b.status
            for b in call.branches.values()
            if b.status is not None and b.stage == call.stage
        ]
        return self._stage_failed(call, now, best_failure(statuses))

    def on_cancel(self, call_id: str, now: float) -> list[Command]:
        """The caller gave up before an answer (CANCEL, RFC 3261 section 9)."""
        call = self.calls.get(call_id)
        if call is None or call.state in (CallState.CONNECTED, CallState.ENDED):
            return []
        commands = self._cancel_all(call)
        commands += self._end(
            call, now, 487, "Request Terminated", outcome="cancelled", by="caller"
        )
        return commands

    def on_hangup(self, call_id: str, leg: str, now: float) -> list[Command]:
        """A BYE arrived on a leg (or the leg is dead: session timer, transport)."""
        call = self.calls.get(call_id)
        if call is None:
            return []
        if call.transfer_party is not None:
            if leg != call.transfer_party:
                return []  # the transferring user's old leg, already let go
            # The party gave up while the transfer target rang.
            commands = self._cancel_all(call)
            if call.origin is OriginPhase.TRANSFER:
                commands.append(CancelBranch(call_id, A_LEG))
            return commands + self._finish(call, now, _who(call, leg))
        if call.local is not None:
            return self._finish(call, now, "caller") if leg == A_LEG else []
        line = self._line_of(call)
        if line is not None and line.carrier == call_id and leg == line.leg:
            return self._line_dropped(line, now)
        if call.carrier_only:
            return []
        if line is not None and leg == _party_leg(call) and call.state is CallState.CONNECTED:
            return self._party_left(call, line, now)
        if leg == A_LEG:
            if call.state is not CallState.CONNECTED:
                return self.on_cancel(call_id, now)
            assert call.connected is not None
            return [Hangup(call_id, call.connected), *self._finish(call, now, "caller")]
        if call.connected == leg:
            return [Hangup(call_id, A_LEG), *self._finish(call, now, "callee")]
        return []

    def hang_up(self, call_id: str, now: float) -> list[Command]:
        """End the call from outside SIP (the portal's hang-up, T4): every leg goes."""
        call = self.calls.get(call_id)
        if call is None:
            return []
        if call.carrier_only:
            return []
        if call.local is not None:
            return [Hangup(call_id, A_LEG), *self._finish(call, now, "system")]
        if call.transfer_party is not None:
            # The target still rings: cancel it, and let the party go.
            pending = self._cancel_all(call)
            if call.origin is OriginPhase.TRANSFER:
                pending.append(CancelBranch(call_id, A_LEG))
            pending.append(Hangup(call_id, call.transfer_party))
            return pending + self._finish(call, now, "system")
        line = self._line_of(call)
        if line is not None and call.state is CallState.CONNECTED and len(line.calls()) > 1:
            # Only this call's party goes; the line stays for the other calls on it.
            party = _party_leg(call)
            return [Hangup(call_id, party), *self._party_left(call, line, now, "system")]
        commands: list[Command] = []
        if call.origin is OriginPhase.CALLBACK and not call.a_answered:
            commands.append(CancelBranch(call_id, A_LEG))
        elif call.origin is not None or call.state is CallState.CONNECTED:
            commands.append(Hangup(call_id, A_LEG))
        if call.state is CallState.CONNECTED:
            assert call.connected is not None
            commands.append(Hangup(call_id, call.connected))
            return commands + self._finish(call, now, "system")
        commands += self._cancel_all(call)
        return commands + self._end(
            call, now, 487, "Request Terminated", outcome="cancelled", by="system"
        )

    def _callback_answered(self, call_id: str, now: float) -> list[Command]:
        call = self.calls.get(call_id)
        if call is not None and call.origin is OriginPhase.TRANSFER:
            return self._transfer_answered(call, A_LEG, now)
        if call is None or call.origin is not OriginPhase.CALLBACK:
            # Answered after we gave up on it (it crossed our CANCEL): end it.
            return [Hangup(call_id, A_LEG)]
        call.origin = OriginPhase.PLACING
        call.a_answered = True
        if call.a_line is not None:
            self._open_line(call, call.a_line, A_LEG)
        # Only now, after a real answer, is the destination dialled (T4).
        return [StopTimer(call_id, TimerName.NO_ANSWER), *self._place(call, now)]

    def _callback_failed(self, call_id: str, status: int, now: float) -> list[Command]:
        call = self.calls.get(call_id)
        if call is not None and call.origin is OriginPhase.TRANSFER:
            return self._fail(call, now, _failure_of(status))
        if call is None or call.origin is not OriginPhase.CALLBACK:
            return []
        # The user did not take the callback: nothing is dialled onward (T4).
        self._note(call, "not answered by the user")
        outcome = "busy" if status in (486, 600) else "no-answer" if status == 408 else "failed"
        return self._end(call, now, status, "Callback Not Answered", outcome=outcome, by="callee")

    def on_timer(self, call_id: str, name: TimerName, now: float) -> list[Command]:
        call = self.calls.get(call_id)
        if call is None or name is not TimerName.NO_ANSWER:
            return []
        transferring = call.transfer_party is not None
        if (
            call.state not in (CallState.CALLING, CallState.RINGING, CallState.WAITING)
            and not transferring
        ):
            return []
        if call.origin is OriginPhase.TRANSFER:
            return [CancelBranch(call_id, A_LEG), *self._fail(call, now, _NO_ANSWER)]
        if call.origin is OriginPhase.CALLBACK:
            self._note(call, "not answered by the user")
            ended = self._end(
                call, now, 480, "Callback Not Answered", outcome="no-answer", by="system"
            )
            return [CancelBranch(call_id, A_LEG), *ended]
        commands = self._cancel_all(call) + self._leave_line(call)
        user = call.ringing_user
        if user is None:
            return commands + self._fail(call, now, _NO_ANSWER)
        # T5: a telecommuter's unanswered call ends in busy when nothing takes it.
        failure = _NO_ANSWER_BUSY if self._at_telecommuter(user) else _NO_ANSWER
        return commands + self._unavailable_treatment(
            call, user, ForwardKind.NO_ANSWER, now, failure
        )

    # ---- restrictions -------------------------------------------------------------

    def may_dial(
        self, username: str, number: str, *, internal: bool, from_phone: bool = True
    ) -> Verdict:
        """Whether the user may call `number` (rule T11).

        `number` is what the call reaches: the number after the trunk prefix for
        an outside call (`internal=False`), the dialled extension or DID for a
        call that stays inside.  Every way of placing a call goes through here.
        """
        return check(self.restrictions(username), number, from_phone=from_phone, internal=internal)

    def _verdict(self, caller: Caller, number: str, *, internal: bool) -> Verdict | None:
        if caller.user is not None:
            return self.may_dial(
                caller.user, number, internal=internal, from_phone=caller.from_phone
            )
        if caller.trunk is not None and not internal:
            # Relayed from one trunk to another (only with allow_trunk_to_trunk):
            # no user's profile applies, so everybody's default does.
            return check(self.restrictions(_NOBODY), number, from_phone=False, internal=False)
        return None  # from a trunk to a user: not ours to restrict

    def _bar(self, call: Call, now: float, verdict: Barred) -> list[Command]:
        # 403 (RFC 3261 section 21.4.4): understood, and refused; the reason phrase
        # tells the caller which profile refused and why.
        return self._end(call, now, 403, verdict.reason, outcome="barred", by="system")

    # ---- helpers ----------------------------------------------------------------

    def _reach_user(self, call: Call, user: UserView, now: float) -> list[Command]:
        """The call arrives at `user` (dialled, or forwarded to): apply their
        settings in the order the module docstring gives, else ring their phones."""
        call.reached.add(user.username)
        call.ringing_user = None
        if user.forward_always:
            return self._forward(call, user, ForwardKind.ALWAYS, user.forward_always, now)
        if user.dnd:
            self._note(call, "do not disturb")
            return self._unavailable_treatment(call, user, ForwardKind.BUSY, now, _BUSY)
        location = self.locate(user)
        if location.kind is LocationKind.LOGGED_OUT:
            # T7: a logged-out user is treated as busy (voicemail, else busy).
            self._note(call, "logged out")
            return self._unavailable_treatment(call, user, ForwardKind.BUSY, now, _BUSY)
        if location.kind is LocationKind.TELECOMMUTER:
            return self._reach_telecommuter(call, user, location, now)
        assert location.account is not None
        targets = self.contacts(location.account, now)
        if not targets:
            return self._unavailable_treatment(call, user, ForwardKind.NO_ANSWER, now, _UNAVAILABLE)
        call.ringing_user = user
        # The callee sees the caller as the SIP layer identified them: a user's
        # extension and display name, or the number a provider presented; after
        # a forward, still the original caller, not the user who forwarded.
        identity = call.caller.party
        callee = Party(user.extension, user.display_name)
        commands: list[Command] = []
        for target in targets:
            branch = self._add_branch(call, target)
            commands.append(Dial(call.id, branch.id, target, identity, callee, call.diversions))
        commands.append(StartTimer(call.id, TimerName.NO_ANSWER, now + user.no_answer_timeout))
        commands.append(CallUpdated(call.record))
        return commands

    # ---- blind transfer (T4) -------------------------------------------------------------

    def transfer(self, username: str, call_id: str, to: str, now: float) -> Refusal | list[Command]:
        """Hand the other party of `username`'s call to `to` and let the user go.

        Checked against the user's restrictions as if they dialled `to` (T11:
        transfers are calls the user causes).  The party hears ringback while
        the target rings, is joined to it when it answers, and hears busy (or
        congestion) and is hung up when it does not.

        When the user's leg is a branch (they were called), the target is rung
        like any call: phones in parallel, forwards, do not disturb.  When it is
        leg A (they placed the call, from a phone or the portal), the target
        replaces leg A and is one destination: a forward-always is followed
        once, and a user who is not reachable on one line refuses the transfer.
        """
        call = self.calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED or call.carrier_only:
            return Refusal(409, "not_connected", "That call is not connected")
        if call.transfer_party is not None:
            return Refusal(409, "transferring", "That call is already being transferred")
        line = self._line_of(call)
        if line is not None and len(line.calls()) > 1:
            return Refusal(
                409, "line_busy", "Finish or hang up your other call before transferring this one"
            )
        user_leg = self._user_leg(call, username)
        if user_leg is None:
            return Refusal(404, "not_found", "That is not your call")
        party = A_LEG if user_leg != A_LEG else call.connected
        assert party is not None
        found = route(to, from_trunk=False, directory=self.directory)
        if isinstance(found, Unroutable):
            return Refusal(422, "unroutable", f"{to!r} cannot be dialled: {found.reason.lower()}")
        if isinstance(found, ToUser):
            if found.user.username == username:
                return Refusal(422, "self", "A call cannot be transferred to yourself")
            number = normalize(to) or found.user.extension
            verdict = self.may_dial(username, number, internal=True, from_phone=False)
        else:
            verdict = self.may_dial(username, found.number, internal=False, from_phone=False)
        if isinstance(verdict, Barred):
            return Refusal(403, "barred", verdict.reason)
        if isinstance(found, ToTrunk):
            refusal = self._outside_refusal(username, besides=call_id)
            if refusal is not None:
                return refusal
        identity = call.caller.party if party == A_LEG else call.record.callee
        party_inside = call.caller.trunk is None if party == A_LEG else call.record.trunk is None
        if isinstance(found, ToTrunk) and party_inside:
            # An internal party leaves the building as any call of theirs would:
            # with the trunk's outside number (as forwards do).
            identity = Party(found.trunk.outside_number or identity.number, identity.name)
        target: DialTarget | None = None
        target_line: str | None = None
        if user_leg == A_LEG:
            single = self._single_target(found, now)
            if isinstance(single, Refusal):
                return single
            target, target_line = single
        commands: list[Command] = [Hangup(call_id, user_leg)]
        if isinstance(found, ToTrunk):
            call.outside_by = username  # the user sends the party out, and pays
        if line is not None:
            del self.lines[line.user]
            call.on_line = None
        old = call.branches.get(user_leg)
        if old is not None:
            # The user's leg is done: it no longer holds their line busy.
            old.state = BranchState.FAILED
            old.line = None
        call.ringing_user = None
        commands += self._cancel_all(call)
        call.stage += 1
        call.transfer_party = party
        self._note(call, f"transferred by {username} to {to}")
        # The call is no longer the transferring user's: it now joins the party
        # and the target (the call log keeps both ends as they finished).
        new_user = found.user.username if isinstance(found, ToUser) else None
        new_party = (
            Party(found.user.extension, found.user.display_name)
            if isinstance(found, ToUser)
            else Party(found.number)
        )
        if user_leg == A_LEG:
            call.record = replace(call.record, caller=new_party, caller_user=new_user)
        else:
            call.record = replace(call.record, callee=new_party, callee_user=new_user)
        commands.append(PlayTone(call_id, party, ToneName.RINGBACK))
        if target is not None:
            call.origin = OriginPhase.TRANSFER
            call.a_line = target_line  # a telecommuting target's line is now busy
            call.a_answered = False
            commands.append(Dial(call_id, A_LEG, target, identity, Party(to), media_like=party))
            commands.append(StartTimer(call_id, TimerName.NO_ANSWER, now + TRANSFER_RING_SECONDS))
            return [*commands, CallUpdated(call.record)]
        call.connected = None
        if isinstance(found, ToUser):
            # The target's own settings apply (forwards, DND, location); the
            # party is presented as the caller.
            return commands + self._reach_user(call, found.user, now)
        branch = self._add_branch(call, TrunkTarget(found.trunk.name, found.number))
        commands.append(
            Dial(call_id, branch.id, branch.target, identity, Party(found.number), media_like=party)
        )
        commands.append(StartTimer(call_id, TimerName.NO_ANSWER, now + TRANSFER_RING_SECONDS))
        return [*commands, CallUpdated(call.record)]

    def _user_leg(self, call: Call, username: str) -> str | None:
        """Which leg of the call is `username`'s own."""
        if call.record.caller_user == username:
            return A_LEG
        if call.record.callee_user == username:
            return call.connected
        return None

    def _single_target(
        self, found: ToUser | ToTrunk, now: float
    ) -> tuple[DialTarget, str | None] | Refusal:
        """The one leg a transfer target gets, and whose telecommuter line it is."""
        if isinstance(found, ToTrunk):
            return TrunkTarget(found.trunk.name, found.number), None
        user = found.user
        if user.forward_always:
            ahead = route(user.forward_always, from_trunk=False, directory=self.directory)
            if isinstance(ahead, ToTrunk):
                return TrunkTarget(ahead.trunk.name, ahead.number), None
            if isinstance(ahead, ToUser):
                user = ahead.user
        if user.dnd:
            return Refusal(409, "target_busy", f"{user.extension} does not take calls now")
        location = self.locate(user)
        if location.kind is LocationKind.TELECOMMUTER and location.number:
            leg = route(location.number, from_trunk=False, directory=self.directory)
            if isinstance(leg, ToTrunk) and not self.line_busy(user.username):
                return TrunkTarget(leg.trunk.name, leg.number), user.username
        elif location.kind is LocationKind.PHONE and location.account:
            phones = self.contacts(location.account, now)
            if phones:
                return phones[0], None
        return Refusal(409, "target_unavailable", f"{user.extension} cannot take a call now")

    def _transfer_answered(self, call: Call, leg: str, now: float) -> list[Command]:
        party = call.transfer_party
        assert party is not None
        call.transfer_party = None
        commands: list[Command] = [StopTimer(call.id, TimerName.NO_ANSWER)]
        commands += self._cancel_all(call)
        commands.append(StopTone(call.id, party))
        if leg == A_LEG:
            call.origin = OriginPhase.PLACING
            call.a_answered = True
            if call.a_line is not None:
                self._open_line(call, call.a_line, A_LEG)
            commands.append(Bridge(call.id, A_LEG, call.id, party))
        else:
            call.connected = leg
            commands.append(Connect(call.id, leg))
            commands.append(Bridge(call.id, A_LEG, call.id, leg))
        self._note(call, "transfer answered")
        call.record = replace(call.record, held=False)
        return [*commands, CallUpdated(call.record)]

    # ---- the telecommuter line: call waiting, hold, resume (rule T6) ----------------

    def answer_waiting(self, username: str, call_id: str, now: float) -> Refusal | list[Command]:
        """The user takes the waiting call; the current one goes on hold."""
        line = self.lines.get(username)
        call = self.calls.get(call_id)
        if line is None or call is None or line.waiting != call_id:
            return Refusal(409, "not_waiting", "That call is not waiting for you")
        line.waiting = None
        commands: list[Command] = [
            StopTone(line.carrier, line.leg),
            StopTimer(call_id, TimerName.NO_ANSWER),
            AnswerWaiting(call_id, line.carrier, line.leg),
        ]
        commands += self._hold_active(line)
        line.active = call_id
        call.on_line = username
        call.record = replace(call.record, state=CallState.CONNECTED, answered_at=now, held=False)
        self._note(call, "answered while another call was on the line (call waiting)")
        commands.append(Bridge(line.carrier, line.leg, call_id, _party_leg(call)))
        commands.append(CallUpdated(call.record))
        return commands

    def reject_waiting(self, username: str, call_id: str, now: float) -> Refusal | list[Command]:
        """The user turns the waiting call away: it gets busy treatment (T6)."""
        line = self.lines.get(username)
        call = self.calls.get(call_id)
        if line is None or call is None or line.waiting != call_id or call.ringing_user is None:
            return Refusal(409, "not_waiting", "That call is not waiting for you")
        commands = [StopTimer(call_id, TimerName.NO_ANSWER), *self._leave_line(call)]
        self._note(call, "rejected while busy")
        return commands + self._unavailable_treatment(
            call, call.ringing_user, ForwardKind.BUSY, now, _BUSY, busy=True
        )

    def hold(self, call_id: str) -> Refusal | list[Command]:
        """Put a connected call on hold: its party and the user hear nothing."""
        call = self.calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED or call.carrier_only:
            return Refusal(409, "not_connected", "That call is not connected")
        if call.record.held:
            return []
        line = self._line_of(call)
        if line is not None:
            return self._hold_active(line) if line.active == call_id else []
        assert call.connected is not None
        call.record = replace(call.record, held=True)
        return [
            Bridge(call_id, A_LEG, None, None),
            Bridge(call_id, call.connected, None, None),
            CallUpdated(call.record),
        ]

    def resume(self, call_id: str) -> Refusal | list[Command]:
        """Take a call off hold; on a telecommuter line, the active call goes on
        hold in its place (switching between two calls)."""
        call = self.calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED or call.carrier_only:
            return Refusal(409, "not_connected", "That call is not connected")
        if not call.record.held:
            return []
        call.record = replace(call.record, held=False)
        line = self._line_of(call)
        if line is None:
            assert call.connected is not None
            return [Bridge(call_id, A_LEG, call_id, call.connected), CallUpdated(call.record)]
        commands = self._hold_active(line)
        if call_id in line.held:
            line.held.remove(call_id)
        line.active = call_id
        commands.append(Bridge(line.carrier, line.leg, call_id, _party_leg(call)))
        commands.append(CallUpdated(call.record))
        return commands

    def is_carrier(self, call_id: str) -> bool:
        call = self.calls.get(call_id)
        return call is not None and call.carrier_only

    def shares_line(self, call_id: str) -> bool:
        """Whether the call is on a telecommuter line (its legs' media may be
        joined to another call's)."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        if call.carrier_only:
            return True
        line = self._line_of(call)
        # A line with one call on it is an ordinary two-party call: relayed.
        return line is not None and (line.carrier != call_id or len(line.calls()) > 1)

    def line_leg(self, call_id: str, leg: str) -> bool:
        """Whether `leg` of the call is a telecommuter line (shared between calls)."""
        return any(line.carrier == call_id and line.leg == leg for line in self.lines.values())

    def _open_line(self, call: Call, username: str, leg: str) -> None:
        self.lines[username] = Line(username, call.id, leg, active=call.id)
        call.on_line = username

    def _line_of(self, call: Call) -> Line | None:
        return self.lines.get(call.on_line) if call.on_line else None

    def _at_telecommuter(self, user: UserView) -> bool:
        return self.locate(user).kind is LocationKind.TELECOMMUTER

    def _may_wait(self, line: Line) -> bool:
        # Offered only while a call is connected on the line and nothing else
        # waits: the user is talking, not dialling or answering (T6).
        active = self.calls.get(line.active) if line.active else None
        return (
            line.waiting is None
            and active is not None
            and active.state is CallState.CONNECTED
            and (active.origin is None or active.connected is not None)
        )

    def _offer_waiting(self, call: Call, user: UserView, line: Line, now: float) -> list[Command]:
        line.waiting = call.id
        call.on_line = user.username
        call.ringing_user = user
        self._note(call, "call waiting")
        call.record = replace(call.record, state=CallState.WAITING, ringing_at=now)
        return [
            # The caller hears ringing; the user hears the call-waiting tone in
            # the call they are on, and the portal shows answer and reject.
            Progress(call.id, A_LEG, 180),
            PlayTone(line.carrier, line.leg, ToneName.CALL_WAITING),
            StartTimer(call.id, TimerName.NO_ANSWER, now + user.no_answer_timeout),
            CallUpdated(call.record),
        ]

    def _hold_active(self, line: Line) -> list[Command]:
        """Whatever is joined to the line goes on hold; the line hears silence."""
        active = self.calls.get(line.active) if line.active else None
        line.active = None
        commands: list[Command] = [Bridge(line.carrier, line.leg, None, None)]
        if active is None:
            return commands
        line.held.append(active.id)
        active.record = replace(active.record, held=True)
        commands.append(Bridge(active.id, _party_leg(active), None, None))
        commands.append(CallUpdated(active.record))
        return commands

    def _leave_line(self, call: Call) -> list[Command]:
        """The call ends or stops waiting: take it off its line."""
        line = self._line_of(call)
        if line is None:
            return []
        call.on_line = None
        commands: list[Command] = []
        if line.waiting == call.id:
            line.waiting = None
            commands.append(StopTone(line.carrier, line.leg))
        if call.id in line.held:
            line.held.remove(call.id)
        if line.active == call.id:
            line.active = None
            if line.carrier != call.id:
                commands.append(Bridge(line.carrier, line.leg, None, None))
        if line.carrier == call.id:
            # The carrier ends with the line itself (`_line_dropped`).
            return commands
        carrier = self.calls.get(line.carrier)
        if carrier is not None and carrier.carrier_only and not line.calls():
            # The last call on a line whose own call had ended: the line goes.
            del self.lines[line.user]
            del self.calls[carrier.id]
            commands += [Hangup(carrier.id, line.leg), Release(carrier.id)]
        return commands

    def _party_left(
        self, call: Call, line: Line, now: float, by: str | None = None
    ) -> list[Command]:
        """The party of a call on a telecommuter line hung up (or, with `by`
        "system", the portal hung up on it)."""
        if line.carrier != call.id:
            return self._finish(call, now, by or ("caller" if call.origin is None else "callee"))
        if not [c for c in line.calls() if c != call.id]:
            # Nothing else on the line: the line goes with the call.
            del self.lines[line.user]
            call.on_line = None
            party = _party_leg(call)
            return [Hangup(call.id, line.leg), *self._finish(call, now, by or _who(call, party))]
        # Other calls share the line: the call ends, its line leg stays.
        commands: list[Command] = []
        if line.active == call.id:
            line.active = None
            commands.append(Bridge(call.id, line.leg, None, None))
        if call.id in line.held:
            line.held.remove(call.id)
        call.carrier_only = True
        call.record = replace(
            call.record,
            state=CallState.ENDED,
            ended_at=now,
            outcome="answered",
            status=200,
            ended_by=by or _who(call, _party_leg(call)),
            held=False,
        )
        return [*commands, CallUpdated(call.record)]

    def _line_dropped(self, line: Line, now: float) -> list[Command]:
        """The remote phone hung up: every call on the line ends, but a waiting
        one rings the line afresh."""
        del self.lines[line.user]
        commands: list[Command] = [StopTone(line.carrier, line.leg)]
        waiting = self.calls.get(line.waiting) if line.waiting else None
        for call_id in [*line.held, *([line.active] if line.active else [])]:
            call = self.calls.get(call_id)
            if call is None or call_id == line.carrier:
                continue
            call.on_line = None
            commands.append(Hangup(call_id, _party_leg(call)))
            commands += self._finish(call, now, "callee")
        carrier = self.calls.get(line.carrier)
        if carrier is not None:
            carrier.on_line = None
            if carrier.carrier_only:
                del self.calls[carrier.id]
                commands.append(Release(carrier.id))
            else:
                party = _party_leg(carrier)
                by = "caller" if party != A_LEG else "callee"
                if carrier.state is CallState.CONNECTED:
                    commands.append(Hangup(carrier.id, party))
                    commands += self._finish(carrier, now, by)
                else:  # a call we placed, still ringing the destination
                    commands += self._cancel_all(carrier)
                    commands += self._end(
                        carrier, now, 487, "Request Terminated", outcome="cancelled", by="caller"
                    )
        if waiting is not None and waiting.ringing_user is not None:
            waiting.on_line = None
            waiting.record = replace(waiting.record, state=CallState.RINGING)
            commands.append(StopTimer(waiting.id, TimerName.NO_ANSWER))
            commands += self._reach_user(waiting, waiting.ringing_user, now)
        return commands

    def _reach_telecommuter(
        self, call: Call, user: UserView, location: Location, now: float
    ) -> list[Command]:
        """The call follows the user to their telecommuter number (T5, T6)."""
        assert location.number is not None
        if self.line_busy(user.username):
            line = self.lines.get(user.username)
            if line is not None and user.call_waiting and self._may_wait(line):
                return self._offer_waiting(call, user, line, now)
            # One line: any further call gets busy treatment (T6).
            self._note(call, "telecommuter line busy")
            return self._unavailable_treatment(call, user, ForwardKind.BUSY, now, _BUSY, busy=True)
        found = route(location.number, from_trunk=False, directory=self.directory)
        if not isinstance(found, ToTrunk):
            self._note(call, f"telecommuter number {location.number} has no route")
            return self._unavailable_treatment(call, user, ForwardKind.BUSY, now, _BUSY)
        # Following the user out is a call the user causes, like a forward (T11):
        # a profile changed since the mode started still applies.
        verdict = self.may_dial(user.username, found.number, internal=False, from_phone=False)
        if isinstance(verdict, Barred):
            self._note(call, f"telecommuter number {location.number} not placed: {verdict.reason}")
            return self._unavailable_treatment(call, user, ForwardKind.BUSY, now, _BUSY)
        call.ringing_user = user
        self._note(call, f"telecommuter {location.number}")
        # The remote phone sees the original caller; the diversion says the
        # call was for this user (RFC 5806 "follow-me"), so the user can tell a
        # company call from a private one.
        diversions = (
            *call.diversions,
            Diversion(Party(user.extension, user.display_name), "follow-me"),
        )
        branch = self._add_branch(call, TrunkTarget(found.trunk.name, found.number))
        branch.line = user.username
        return [
            Dial(
                call.id,
                branch.id,
                branch.target,
                call.caller.party,
                Party(user.extension, user.display_name),
                diversions,
            ),
            StartTimer(call.id, TimerName.NO_ANSWER, now + user.no_answer_timeout),
            CallUpdated(call.record),
        ]

    def _stage_failed(self, call: Call, now: float, status: int) -> list[Command]:
        """Every branch of the current stage failed; `status` is the best of them."""
        user = call.ringing_user
        if user is not None and status in (486, 600):
            commands = self._cancel_all(call)
            # Busy as the phones said it: 600 stays 600 when nothing takes over.
            failure = replace(_BUSY, status=status, reason=_REASONS[status])
            return commands + self._unavailable_treatment(
                call, user, ForwardKind.BUSY, now, failure, busy=True
            )
        return self._give_up(call, now, status)

    def _unavailable_treatment(
        self,
        call: Call,
        user: UserView,
        kind: ForwardKind,
        now: float,
        failure: _Failure,
        *,
        busy: bool = False,
    ) -> list[Command]:
        """What happens to a call `user` cannot take (busy, DND, no answer).

        The one place for it, so that voicemail (rule T12) slots in here: after
        the forward, before `failure`, for users who have a box.
        """
        number = user.forward_busy if kind is ForwardKind.BUSY else user.forward_no_answer
        if number:
            return self._forward(call, user, kind, number, now, failure=failure)
        if user.voicemail:
            return self._to_voicemail(call, user, now, busy=busy)
        return self._fail(call, now, failure)

    # ---- voicemail (T12) ------------------------------------------------------------------

    def _to_voicemail(
        self, call: Call, user: UserView, now: float, *, busy: bool = False
    ) -> list[Command]:
        """The caller leaves a message for `user`: teleoffice answers the call.

        `busy`: the user is on the phone (the greeting says so); not said for
        do not disturb or logged out, which are nobody's business."""
        commands: list[Command] = [StopTimer(call.id, TimerName.NO_ANSWER)]
        commands += self._cancel_all(call)
        commands += self._leave_line(call)
        call.ringing_user = None
        call.local = user.username
        self._note(call, f"voicemail of {user.extension}")
        call.record = replace(
            call.record,
            state=CallState.CONNECTED,
            answered_at=now,
            ringing_at=call.record.ringing_at or now,
        )
        commands.append(Voicemail(call.id, user.username, True, call.caller.party, busy))
        return [*commands, CallUpdated(call.record)]

    def _voicemail_box(self, call: Call, now: float) -> list[Command]:
        """The caller dialled the voicemail number: their own mailbox (PIN asked
        unless the call comes from a phone they are logged in on)."""
        username = call.caller.user
        if username is None or not self.has_mailbox(username):
            return self._end(call, now, 404, "No Mailbox", outcome="not-found", by="system")
        call.local = username
        call.record = replace(
            call.record,
            callee=Party(self.voicemail_number, "Voicemail"),
            callee_user=username,
            route=_joined(call.record.route, "voicemail"),
            state=CallState.CONNECTED,
            answered_at=now,
            ringing_at=now,
        )
        return [
            Voicemail(call.id, username, False, call.caller.party),
            CallUpdated(call.record),
        ]

    def _forward(
        self,
        call: Call,
        user: UserView,
        kind: ForwardKind,
        number: str,
        now: float,
        *,
        failure: _Failure = _UNAVAILABLE,
    ) -> list[Command]:
        """Send the call on to `number` as `user`'s forward: a new stage.

        `failure` is what the caller gets when the forward cannot be placed.
        """
        call.hops += 1
        if call.hops > MAX_FORWARD_HOPS:
            return self._refuse_forward(
                call, number, f"more than {MAX_FORWARD_HOPS} forwards", now, failure, user=user
            )
        # Routed as if `user` had dialled it: a forward to an outside number is
        # the user's call out, allowed even when the call came from a trunk
        # (the restriction check below is what stops toll fraud here).
        found = route(number, from_trunk=False, directory=self.directory)
        if isinstance(found, Unroutable):
            return self._refuse_forward(call, number, found.reason.lower(), now, failure, user=user)
        if isinstance(found, ToUser) and found.user.username in call.reached:
            # 202 -> 203 -> 202 would go round until the hop limit, ringing
            # phones all the way; a user is reached at most once per call.
            return self._refuse_forward(call, number, "loop", now, failure, user=user)
        if isinstance(found, ToUser):
            verdict = self.may_dial(
                user.username,
                normalize(number) or found.user.extension,
                internal=True,
                from_phone=False,
            )
        else:
            verdict = self.may_dial(user.username, found.number, internal=False, from_phone=False)
        if isinstance(verdict, Barred):
            return self._refuse_forward(call, number, verdict.reason, now, failure, user=user)
        if isinstance(found, ToTrunk):
            # Each call forwarded out is an outside call of the forwarding user:
            # a forward to a premium number cannot be flooded with calls.
            refusal = self._outside_refusal(user.username, besides=call.id)
            if refusal is not None:
                return self._refuse_forward(
                    call, number, "too many outside calls", now, failure, user=user
                )
            call.outside_by = user.username
        commands: list[Command] = [StopTimer(call.id, TimerName.NO_ANSWER)]
        call.stage += 1
        call.diversions = (
            *call.diversions,
            Diversion(Party(user.extension, user.display_name), DIVERSION_REASONS[kind]),
        )
        self._note(call, f"forwarded to {number}")
        if isinstance(found, ToUser):
            return commands + self._reach_user(call, found.user, now)
        call.ringing_user = None
        caller = call.caller
        # An outside caller is presented as themselves; an internal one as any
        # call of theirs out of this trunk would be (an extension means nothing
        # outside).
        identity = caller.party if caller.trunk else self._outside_identity(caller, found)
        branch = self._add_branch(call, TrunkTarget(found.trunk.name, found.number))
        commands.append(
            Dial(call.id, branch.id, branch.target, identity, Party(found.number), call.diversions)
        )
        commands.append(CallUpdated(call.record))
        return commands

    def _refuse_forward(
        self,
        call: Call,
        number: str,
        why: str,
        now: float,
        failure: _Failure,
        *,
        user: UserView | None = None,
    ) -> list[Command]:
        self._note(call, f"forward to {number} not placed: {why}")
        if user is not None and user.voicemail:
            return self._to_voicemail(call, user, now)
        return self._fail(call, now, failure)

    @staticmethod
    def _note(call: Call, text: str) -> None:
        call.record = replace(call.record, route=_joined(call.record.route, text))

    def _fail(self, call: Call, now: float, failure: _Failure) -> list[Command]:
        return self._end(
            call, now, failure.status, failure.reason, outcome=failure.outcome, by=failure.by
        )

    @staticmethod
    def _outside_identity(caller: Caller, found: ToTrunk) -> Party:
        # Calls out of a trunk present the trunk's outside number when one is
        # configured, else the caller's own extension.
        return Party(found.trunk.outside_number or caller.party.number, caller.party.name)

    def _add_branch(self, call: Call, target: DialTarget) -> Branch:
        branch = Branch(f"b{next(self._branch_ids)}", target, stage=call.stage)
        call.branches[branch.id] = branch
        return branch

    def _branch(self, call_id: str, branch_id: str) -> tuple[Call | None, Branch | None]:
        call = self.calls.get(call_id)
        return call, (call.branches.get(branch_id) if call else None)

    def _cancel_all(self, call: Call) -> list[Command]:
        commands: list[Command] = []
        for branch in call.live_branches():
            branch.state = BranchState.CANCELLING
            commands.append(CancelBranch(call.id, branch.id))
        return commands

    def _give_up(self, call: Call, now: float, status: int) -> list[Command]:
        commands = self._cancel_all(call)
        outcome = _OUTCOMES.get(status, "failed")
        reason = _REASONS.get(status, "Call Failed")
        commands += self._end(call, now, status, reason, outcome=outcome, by="callee")
        return commands

    def _end(
        self, call: Call, now: float, status: int, reason: str, *, outcome: str, by: str
    ) -> list[Command]:
        failed: Command = Reject(call.id, status, reason)
        if call.transfer_party is not None:
            # The party was answered long ago: it hears the failure, then goes.
            tone = ToneName.BUSY if status in (486, 600) else ToneName.CONGESTION
            failed = Abandon(call.id, call.transfer_party, tone)
            self._note(call, f"transfer failed ({status})")
            outcome = "failed"
        commands: list[Command] = [
            failed,
            StopTimer(call.id, TimerName.NO_ANSWER),
            *self._leave_line(call),
        ]
        call.record = replace(
            call.record,
            state=CallState.ENDED,
            ended_at=now,
            outcome=outcome,
            status=status,
            ended_by=by,
        )
        del self.calls[call.id]
        commands.append(CallUpdated(call.record))
        return commands

    def _finish(self, call: Call, now: float, by: str) -> list[Command]:
        commands = self._leave_line(call)
        call.record = replace(
            call.record,
            state=CallState.ENDED,
            ended_at=now,
            outcome="answered",
            status=200,
            ended_by=by,
            held=False,
        )
        del self.calls[call.id]
        return [*commands, CallUpdated(call.record)]


def _default_restrictions(username: str) -> RestrictionProfile:
    return DEFAULT_PROFILE


def _party_leg(call: Call) -> str:
    """The leg of the other party, seen from a telecommuter's line: the caller
    of a call that came in, the destination of a call placed for the user."""
    if call.a_line is not None:
        return call.connected or ""
    return A_LEG


def _who(call: Call, leg: str) -> str:
    return "caller" if leg == A_LEG else "callee"


def _at_base_phone(user: UserView) -> Location:
    # Without hot desking wired in, everybody is on the phone account named by
    # their extension (what `teleoffice user add` creates).
    return Location(LocationKind.PHONE, account=user.extension)


def _joined(route: str | None, text: str) -> str:
    return text if not route else f"{route}, {text}"


# ---- feature codes ------------------------------------------------------------------
#
# In the style of classic PBXs (star codes; the digits follow without a
# separator, a '*' separates two arguments, since '#' needs escaping in a SIP
# URI and many phones use it as "dial now"):
#
#   *11<extension>*<login code>   log in on this phone as that user (hot desking, T10)
#   *12                           log out of this phone
#
# Codes are only recognised from a phone (never from a trunk), and never reach
# the call log: the login code is a secret.

FEATURE_PREFIX = "*"
LOG_IN_CODE = "*11"
LOG_OUT_CODE = "*12"
_LOG_IN_RE = re.compile(r"\*11([0-9]{1,8})\*([0-9]{1,16})")


def _feature(call_id: str, account: str, dialled: str) -> Feature:
    match = _LOG_IN_RE.fullmatch(dialled)
    if match is not None:
        return Feature(call_id, FeatureName.LOG_IN, account, match.group(1), match.group(2))
    if dialled == LOG_OUT_CODE:
        return Feature(call_id, FeatureName.LOG_OUT, account)
    return Feature(call_id, FeatureName.UNKNOWN, account)
