"""The B2BUA: turns the call engine's decisions into SIP legs, still sans-IO.

Each call has an inbound leg A (we are its UAS) and outbound branches (we are
their UAC).  This module owns everything SIP about them: the 100 Trying, the
dialogs, ACKs for 2xx, CANCEL, BYE, relaying re-INVITE/UPDATE/INFO between the
legs, keeping sessions alive (RFC 4028), and rewriting SDP so media flows
through teleoffice.  What the call *does* (who rings, who wins, when to give
up) is decided by `calls.engine.CallEngine`.

Media sessions are opened by the asyncio runner: a new call first asks for one
(`take_media_requests`), and continues in `media_ready` once it has its ports.

SRTP (SDES, RFC 4568) is negotiated per leg, since media is anchored here: a
leg that offers RTP/SAVP with a key we can use gets an answer with a key of
ours, a leg reached over TLS is offered SRTP (and, if it refuses with 488,
plain RTP), and each leg's keys go to its side of the media session
(`_wire`).  SDP relayed from one leg to the other always loses the first leg's
keys on the way (`_secure`): a key never leaves the leg it was made for.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self, runtime_checkable

from teleoffice.calls.engine import (
    A_LEG,
    Abandon,
    AnswerWaiting,
    Bridge,
    CallEngine,
    Caller,
    CallRecord,
    CallState,
    CallUpdated,
    CancelBranch,
    Command,
    Connect,
    Dial,
    Direction,
    Feature,
    Hangup,
    Origination,
    Party,
    PhoneTarget,
    PlayTone,
    Progress,
    Reject,
    Release,
    StartTimer,
    StopTimer,
    StopTone,
    TimerName,
    ToneName,
    TrunkTarget,
    Voicemail,
)
from teleoffice.media.srtp import SrtpKeys, Suite
from teleoffice.media.tones import Tone, ToneSet
from teleoffice.sip.builders import (
    make_cancel,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
)
from teleoffice.sip.dialog import Dialog, DialogState, DialogTable
from teleoffice.sip.digest import DigestError
from teleoffice.sip.errors import LocalProtocolError, ParseError, RemoteProtocolError
from teleoffice.sip.headers import NameAddr, Via
from teleoffice.sip.message import Request, Response
from teleoffice.sip.sdes import (
    NoUsableCrypto,
    Sdes,
    SdesOffer,
    accept_answer,
    active_audio,
    answer_offer,
    make_offer,
    proto_for,
)
from teleoffice.sip.sdp import (
    Codec,
    SdpError,
    SessionDescription,
    build_answer,
    build_offer,
    bump_version,
    parse_sdp,
    with_connection,
    with_crypto,
)
from teleoffice.sip.transaction import Address, TransactionLayer, TxKey
from teleoffice.sip.uri import SipUri, parse_uri

log = logging.getLogger("teleoffice.calls")

SDP = "application/sdp"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"


# The two sides of a media session: "a" faces the caller, "b" the called party.
Side = Literal["a", "b"]


class MediaHandle(Protocol):
    """The part of a media session the B2BUA uses."""

    def local_port(self, side: Side) -> int: ...

    def set_remote(self, side: Side, host: str | None, port: int | None) -> None: ...

    def play_tone(self, side: Side, tone: Tone, payload_type: int) -> None: ...

    def stop_play(self, side: Side) -> None: ...

    def join(self, side: Side, other: Self, other_side: Side) -> None: ...

    def detach(self, side: Side) -> None: ...


@runtime_checkable
class SecureMedia(Protocol):
    """A media session that can terminate SRTP on a side (`media.session`)."""

    def set_srtp(self, side: Side, keys: SrtpKeys | None) -> None: ...


@dataclass(frozen=True, slots=True)
class TrunkPeer:
    """What the SIP side needs to reach a trunk."""

    name: str
    host: str
    port: int
    transport: str = "UDP"
    use_pai: bool = False
    # Builds an Authorization value for a 401/407 challenge, or None if we have
    # no credentials for that realm (`digest.build_authorization_from_ha1`).
    authorize: Callable[[str, str, str], str | None] | None = None


@dataclass
class Leg:
    """One side of a call as SIP sees it."""

    name: str  # A_LEG or a branch id
    peer: Address  # where requests for this leg go (the source we learnt, for NAT)
    dialog: Dialog | None = None
    # The last SDP we sent to this leg: a session refresh re-sends it unchanged.
    sent_sdp: bytes = b""
    sdp_version: int = 1
    # Outbound branches only.
    invite: Request | None = None
    invite_key: TxKey | None = None
    got_provisional: bool = False
    cancel_pending: bool = False
    auth_tried: bool = False
    trunk: TrunkPeer | None = None
    answer: SessionDescription | None = None  # this branch's SDP answer (early or final)
    refresh_by_invite: bool = False  # the peer answered UPDATE with 405/501
    # SRTP on this leg (SDES, RFC 4568), negotiated with it alone: the keys
    # agreed, what we offered it and await an answer to, and the audio
    # transport it offered us (an answer must echo it, RFC 3264 section 6).
    srtp: Sdes | None = None
    srtp_offer: SdesOffer | None = None
    media_proto: str = "RTP/AVP"
    plain_retry: bool = False  # it refused our SRTP offer; we offered plain RTP


@dataclass
class CallLegs:
    """The SIP side of one call.

    For a call that came in, leg A is the caller and we are its UAS (`a_key`,
    `a_invite` and `a_offer` are its INVITE).  For a call the PBX places for a
    user (`origin`: click-to-dial, telecommuter callback; RFC 3725 with media
    anchored here), leg A is the user's line and we are its UAC: it gets our own
    offer, and its answer becomes the offer the destination sees, so both legs
    end up with the same codec and the relay needs no transcoding.
    """

    call_id: str
    a: Leg
    a_key: TxKey | None
    a_invite: Request | None
    a_tag: str
    a_offer: SessionDescription | None
    caller: Caller
    dialled: str
    origin: Origination | None = None
    media: MediaHandle | None = None
    branches: dict[str, Leg] = field(default_factory=dict)
    a_answer: bytes = b""  # the SDP answer A got (a 183 and the 200 must agree)
    connected: str | None = None  # the branch that answered
    answered: bool = False  # a final response went to A (or A answered us)
    ended: bool = False
    media_playing: bool = False  # ringback is playing to A
    # After the call ended, leg A still hears a tone (busy after a failed
    # destination, the confirmation of a feature code) until a timer hangs up.
    lingering: bool = False
    linger_leg: str = A_LEG
    local: bool = False  # leg A talks to teleoffice itself (voicemail)
    waiting_tone_leg: str | None = None  # the line hearing call-waiting bursts
    feature_pending: bool = False
    a_payload: int = 0  # the payload type of A's audio, for tones played to it


@dataclass
class _Relay:
    """An in-dialog request forwarded to the other leg, awaiting its answer.

    Kept until the transaction ends, so a retransmitted 2xx to a relayed
    re-INVITE is ACKed again (RFC 3261 section 13.2.2.4)."""

    call_id: str
    from_leg: str
    server_key: TxKey
    request: Request
    ack: tuple[Request, Address] | None = None
    answered: bool = False


# What we offer a user's line for a call we place: both G.711 laws (every
# phone and provider has one) and RFC 4733 events for DTMF.
PCMU_PT, PCMA_PT, TELEPHONE_EVENT_PT = 0, 8, 101
OUR_CODECS = (
    Codec(name="PCMU", clock_rate=8000, payload_type=PCMU_PT),
    Codec(name="PCMA", clock_rate=8000, payload_type=PCMA_PT),
    Codec(name="telephone-event", clock_rate=8000, payload_type=TELEPHONE_EVENT_PT),
)
# How long the user hears busy or congestion after a failed call we placed,
# and the confirmation of a feature code, before we hang up.
FAILURE_TONE_SECONDS = 8.0
FEATURE_TONE_SECONDS = 1.5

# Keepalive interval of established legs.  We refresh sessions ourselves (re-INVITE
# with the SDP we last sent, RFC 4028 section 10) so a leg that vanished without
# a BYE is noticed: a 408 or 481, or no answer, ends the call.
DEFAULT_SESSION_INTERVAL = 1800.0


class B2bua:
    def __init__(
        self,
        *,
        engine: CallEngine,
        transactions: TransactionLayer,
        local: Address,
        domain: str,
        media_host: str,
        trunks: Callable[[str], TrunkPeer | None],
        session_interval: float = DEFAULT_SESSION_INTERVAL,
        server_name: str = "teleoffice",
        tones: ToneSet | None = None,
        on_record: Callable[[CallRecord], None] | None = None,
    ) -> None:
        self.engine = engine
        self.tones = tones or ToneSet.named()
        # Told of every change of every call as it happens (the portal's live
        # view); the call log gets the same records in batches (`take_records`).
        self.on_record = on_record
        self.tx = transactions
        self.local = local
        # Where SIP over TLS listens (None: nowhere); Via and Contact toward a
        # leg reached over TLS name this port (RFC 3261 sections 18.2.1, 26.2).
        self.tls_port: int | None = None
        self.domain = domain
        self.media_host = media_host
        self.trunks = trunks
        self.session_interval = session_interval
        self.server_name = server_name
        self.calls: dict[str, CallLegs] = {}
        self.dialogs = DialogTable()
        self._dialog_owner: dict[tuple[str, str, str], tuple[str, str]] = {}
        # Our client transactions: key -> (call id, leg, purpose).  Entries live
        # until the transaction layer reports the transaction terminated, so a
        # 2xx that arrives after its call ended can still be ACKed and ended.
        self._client: dict[TxKey, tuple[str, Leg, str]] = {}
        self._relays: dict[TxKey, _Relay] = {}
        self._a_keys: dict[TxKey, str] = {}
        # Timers are (due, generation, call id, name); stopping a timer bumps its
        # generation, so a stale heap entry is recognised and skipped.
        self._timers: list[tuple[float, int, str, str]] = []
        self._timer_gen: dict[tuple[str, str], int] = {}
        self._gen = itertools.count(1)
        self._media_requests: list[str] = []
        self._media_releases: list[MediaHandle] = []
        self._records: list[CallRecord] = []
        self._features: list[Feature] = []
        self._locals: list[LocalSession] = []
        self._local_ended: list[str] = []
        self._local_digits: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    # ---- outputs for the runner ------------------------------------------------------

    def take_media_requests(self) -> list[str]:
        out, self._media_requests = self._media_requests, []
        return out

    def take_media_releases(self) -> list[MediaHandle]:
        out, self._media_releases = self._media_releases, []
        return out

    def take_records(self) -> list[CallRecord]:
        out, self._records = self._records, []
        return out

    def take_locals(self) -> list[LocalSession]:
        """Calls answered by teleoffice itself since the last call (voicemail)."""
        out, self._locals = self._locals, []
        return out

    def take_local_ended(self) -> list[str]:
        """Local sessions whose call ended (their menus must stop)."""
        out, self._local_ended = self._local_ended, []
        return out

    def take_local_digits(self) -> list[tuple[str, str]]:
        """DTMF digits that arrived as SIP INFO on local sessions: (call id, digit)."""
        out, self._local_digits = self._local_digits, []
        return out

    def take_features(self) -> list[Feature]:
        """Feature codes dialled since the last call; answer each with `feature_done`."""
        out, self._features = self._features, []
        return out

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def leg_count(self) -> int:
        return sum(1 + len(c.branches) for c in self.calls.values())

    # ---- new calls ----------------------------------------------------------------------

    def new_call(
        self, key: TxKey, invite: Request, source: Address, caller: Caller, now: float
    ) -> None:
        if invite.max_forwards == 0:
            # Every leg we place is one more hop: a request that may take no more
            # hops must not be relayed, or two PBXs pointing at each other would
            # loop forever (RFC 3261 section 16.3 step 2).
            self._respond(key, make_response(invite, 483), now)
            return
        self._respond(key, make_response(invite, 100), now)
        offer = self._sdp_of(invite)
        if offer is None:
            # Without an offer in the INVITE we would have to invent one and
            # take the answer from the ACK; phones and trunks teleoffice talks to
            # offer early, so this is refused clearly rather than half-done.
            self._respond(key, make_response(invite, 488, "Offer Required In INVITE"), now)
            return
        a_leg = Leg(A_LEG, source)
        if not self._take_offer(a_leg, offer, key, invite, now):
            return
        call_id = self._new_call_id()
        uri = invite.uri
        dialled = uri.user if isinstance(uri, SipUri) and uri.user else ""
        a_tag = new_tag()
        call = CallLegs(
            call_id=call_id,
            a=a_leg,
            a_key=key,
            a_invite=invite,
            a_tag=a_tag,
            a_offer=offer,
            caller=caller,
            dialled=dialled,
        )
        self.calls[call_id] = call
        self._a_keys[key] = call_id
        self._media_requests.append(call_id)

    def originate(self, plan: Origination, now: float) -> str:
        """Place a call for a user (T4): ring their line, then the destination.

        `plan` comes from `CallEngine.prepare_call`, which has already refused
        whatever must be refused; the call id is returned at once and the call
        proceeds once its media session is open.
        """
        call_id = self._new_call_id()
        nowhere = Address("UDP", "0.0.0.0", 0)  # noqa: S104 - set when leg A is dialled
        call = CallLegs(
            call_id=call_id,
            a=Leg(A_LEG, nowhere),
            a_key=None,
            a_invite=None,
            a_tag=new_tag(),
            a_offer=None,
            caller=Caller(Party(plan.user.extension, plan.user.display_name), plan.user.username),
            dialled=plan.to,
            origin=plan,
        )
        self.calls[call_id] = call
        self._media_requests.append(call_id)
        return call_id

    def hang_up(self, call_id: str, now: float) -> bool:
        """End a call from outside SIP (the portal); False if there is no such call."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        if call.media is None and call.origin is not None:
            # Placed a moment ago: nothing has been sent yet.
            self._origin_failed(call, now, 487, "cancelled")
            self._forget(call)
            return True
        if call.lingering or call.feature_pending or call.media is None:
            self._send_bye(call, A_LEG, now)
            self._finish(call)
            return True
        self._run(self.engine.hang_up(call_id, now), now)
        return True

    def media_ready(self, call_id: str, media: MediaHandle, now: float) -> None:
        call = self.calls.get(call_id)
        if call is None or call.ended:
            self._media_releases.append(media)
            return
        call.media = media
        if call.origin is not None:
            self._run(self.engine.originate(call_id, call.origin, now), now)
            return
        assert call.a_offer is not None
        self._wire(call, "a", call.a, call.a_offer)
        self._run(
            self.engine.new_call(
                call_id=call_id, caller=call.caller, dialled=call.dialled, now=now
            ),
            now,
        )

    def media_failed(self, call_id: str, now: float) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        if call.a_key is not None and call.a_invite is not None:
            self._respond(call.a_key, make_response(call.a_invite, 503, "No Media Ports"), now)
        elif call.origin is not None:
            log.warning("call %s: no media ports, the call is not placed", call_id)
            self._origin_failed(call, now, 503, "failed")
        self._forget(call)

    def feature_done(self, call_id: str, ok: bool, status: int, reason: str, now: float) -> None:
        """The outcome of a feature code: a confirmation tone, or a refusal."""
        call = self.calls.get(call_id)
        if call is None or not call.feature_pending:
            return
        call.feature_pending = False
        if not ok:
            self._final_to_a(call, status, reason, now)
            self._finish(call)
            return
        if not self._answer_locally_a(call, now):
            self._finish(call)
            return
        assert call.media is not None
        assert call.a_offer is not None
        payload = call.a_payload
        call.ended = call.lingering = True
        call.linger_leg = A_LEG
        self._wire(call, "a", call.a, call.a_offer)
        call.media.play_tone("a", self.tones.confirm, payload)
        self._push_timer(now + FEATURE_TONE_SECONDS, call.call_id, "linger")

    def _answer_locally_a(self, call: CallLegs, now: float) -> bool:
        """Answer leg A ourselves (a feature code, voicemail): 200 with our SDP
        from its offer; False (and a 488 sent) when no G.711 is in common."""
        if call.media is None or call.a_offer is None:
            return False
        try:
            answer = build_answer(
                call.a_offer,
                address=self.media_host,
                port=call.media.local_port("a"),
                supported=OUR_CODECS,
                session_id=int(now),
                session_version=1,
                secure=call.a.srtp is not None,
            )
        except SdpError:
            answer = None
        payload = _audio_payload(answer) if answer is not None else None
        if answer is None or payload is None:
            self._final_to_a(call, 488, "Not Acceptable Here", now)
            return False
        call.a_answer = self._secure(answer, call.a, offer=False).to_bytes()
        self._answer_a(call, call.a_answer, now)
        call.a_payload = payload
        self._wire(call, "a", call.a, call.a_offer)
        return True

    def _voicemail(self, call: CallLegs, command: Voicemail, now: float) -> None:
        """Hand leg A to the voicemail menus (answering it first if need be)."""
        if call.media is None:
            return
        if call.origin is None and not call.answered:
            if not self._answer_locally_a(call, now):
                self._run(self.engine.on_hangup(call.call_id, A_LEG, now), now)
                return
        elif call.origin is not None:
            call.media.stop_play("a")
            call.media_playing = False
        else:
            # Answered already (a transfer to voicemail is not offered): A's codec.
            call.a_payload = self._leg_payload(call, A_LEG)
        call.media.detach("a")
        call.local = True
        self._locals.append(
            LocalSession(
                call_id=call.call_id,
                media=call.media,
                side="a",
                payload_type=call.a_payload,
                events_payload_type=_telephone_event_type(call),
                mailbox=command.mailbox,
                deposit=command.deposit,
                caller=command.caller,
                busy=command.busy,
            )
        )

    def _linger(self, call: CallLegs, leg_name: str, tone: Tone, now: float) -> None:
        """The call is over for the engine; `leg_name` hears `tone` for a while,
        then gets its BYE (unless it hangs up first)."""
        leg = call.a if leg_name == A_LEG else call.branches.get(leg_name)
        dialog = leg.dialog if leg is not None else None
        if dialog is None or dialog.state is not DialogState.CONFIRMED or call.media is None:
            return
        if call.lingering:
            return
        call.media.play_tone(_side(leg_name), tone, self._leg_payload(call, leg_name))
        call.lingering = True
        call.linger_leg = leg_name
        self._push_timer(now + FAILURE_TONE_SECONDS, call.call_id, "linger")

    def _waiting_burst(self, call: CallLegs, now: float) -> None:
        """One burst of the call-waiting tone, and the timer for the next."""
        leg = call.waiting_tone_leg
        if leg is None or call.media is None:
            return
        tone = self.tones.call_waiting
        burst = Tone(
            tone.name,
            tone.frequencies,
            tone.cadence[:-1] if len(tone.cadence) % 2 == 0 else tone.cadence,
            repeat=False,
            level_dbm0=tone.level_dbm0,
        )
        call.media.play_tone(_side(leg), burst, self._leg_payload(call, leg))
        self._push_timer(now + (tone.cycle or 5.0), call.call_id, "waiting-tone")

    def _media_command(
        self, call: CallLegs, command: PlayTone | StopTone | Bridge, now: float
    ) -> None:
        media = call.media
        if media is None:
            return
        side = _side(command.leg)
        if isinstance(command, PlayTone) and command.tone is ToneName.CALL_WAITING:
            # Only the bursts replace the call's audio: the user keeps hearing
            # the caller between them (T6: "a tone in the call").
            call.waiting_tone_leg = command.leg
            self._waiting_burst(call, now)
        elif isinstance(command, PlayTone):
            tone = getattr(self.tones, command.tone.value)
            media.play_tone(side, tone, self._leg_payload(call, command.leg))
        elif isinstance(command, StopTone):
            if call.waiting_tone_leg == command.leg:
                call.waiting_tone_leg = None
                self._timer_gen.pop((call.call_id, "waiting-tone"), None)
            media.stop_play(side)
        elif command.to_call is None or command.to_leg is None:
            media.detach(side)
        else:
            other = self.calls.get(command.to_call)
            if other is None or other.media is None:
                media.detach(side)
                return
            media.join(side, other.media, _side(command.to_leg))

    def _leg_payload(self, call: CallLegs, leg_name: str) -> int:
        """The G.711 payload type a leg's audio uses (tones are sent in it)."""
        if leg_name == A_LEG:
            if call.origin is not None:
                return call.a_payload
            sdp = parse_sdp(call.a_answer) if call.a_answer else call.a_offer
        else:
            leg = call.branches.get(leg_name)
            sdp = leg.answer if leg is not None else None
        found = _audio_payload(sdp) if sdp is not None else None
        return found if found is not None else PCMU_PT

    def _answer_waiting(self, call: CallLegs, command: AnswerWaiting, now: float) -> None:
        """200 to a waiting caller, in the codec the line already uses, so that
        the relay between them needs no transcoding."""
        if call.media is None or call.a_offer is None or call.answered:
            return
        line_call = self.calls.get(command.line_call)
        payload = (
            self._leg_payload(line_call, command.line_leg) if line_call is not None else PCMU_PT
        )
        preferred = [c for c in OUR_CODECS if c.payload_type in (payload, TELEPHONE_EVENT_PT)]
        answer = None
        for supported in (preferred, OUR_CODECS):
            try:
                answer = build_answer(
                    call.a_offer,
                    address=self.media_host,
                    port=call.media.local_port("a"),
                    supported=supported,
                    session_id=int(now),
                    session_version=1,
                    secure=call.a.srtp is not None,
                )
            except SdpError:
                break
            if _audio_payload(answer) is not None:
                break
            answer = None
        if answer is None:
            self._final_to_a(call, 488, "Not Acceptable Here", now)
            return
        if _audio_payload(answer) != payload:
            log.warning(
                "call %s: the waiting caller has no codec in common with the line; "
                "they will not hear each other well",
                call.call_id,
            )
        self._wire(call, "a", call.a, call.a_offer)
        call.a_answer = self._secure(answer, call.a, offer=False).to_bytes()
        self._answer_a(call, call.a_answer, now)

    def execute(self, commands: list[Command], now: float) -> None:
        """Carry out engine commands asked for from outside SIP (portal call control)."""
        self._run(commands, now)

    def _origin_failed(self, call: CallLegs, now: float, status: int, outcome: str) -> None:
        """The record of a call we placed that ended before the engine saw it."""
        plan = call.origin
        assert plan is not None
        record = CallRecord(
            call_id=call.call_id,
            direction=Direction.INTERNAL,
            caller=call.caller.party,
            callee=plan.callee,
            dialled=plan.to,
            route=None,
            trunk=None,
            caller_user=plan.user.username,
            callee_user=None,
            state=CallState.ENDED,
            started_at=now,
            ended_at=now,
            outcome=outcome,
            status=status,
            ended_by="system" if status == 503 else "caller",
        )
        self._run([CallUpdated(record)], now)

    def _new_call_id(self) -> str:
        return f"c{next(self._ids)}-{new_tag()[:8]}"

    # ---- incoming requests ---------------------------------------------------------------

    def cancel(self, key: TxKey, request: Request, cancels: TxKey | None, now: float) -> None:
        call_id = self._a_keys.get(cancels) if cancels else None
        if call_id is None:
            self._respond(key, make_response(request, 481), now)
            return
        self._respond(key, make_response(request, 200), now)
        call = self.calls.get(call_id)
        if call is not None and (call.media is None or call.feature_pending):
            self._final_to_a(call, 487, "Request Terminated", now)
            self._finish(call)
            return
        self._run(self.engine.on_cancel(call_id, now), now)

    def in_dialog(self, key: TxKey, request: Request, now: float) -> bool:
        """Handle a request inside one of our dialogs; False if it is not ours."""
        dialog = self.dialogs.find(request, as_uas=True)
        if dialog is None:
            return False
        owner = self._dialog_owner.get(dialog.id)
        call = self.calls.get(owner[0]) if owner else None
        if owner is None or call is None:
            self._respond(key, make_response(request, 481), now)
            return True
        leg_name = owner[1]
        error = dialog.receive_request(request)
        if error is not None:
            self._respond(key, make_response(request, error), now)
            return True
        method = request.method
        if method == "BYE":
            self._respond(key, make_response(request, 200), now)
            # The dialog is over (RFC 3261 section 15.1.2): nothing more is sent
            # on it, not even a tone.
            dialog.state = DialogState.TERMINATED
            if call.lingering:
                # The engine is done with this call; only a tone was left.
                self._finish(call)
                return True
            self._run(self.engine.on_hangup(call.call_id, leg_name, now), now)
        elif method in ("INVITE", "UPDATE", "INFO"):
            self._relay(call, leg_name, key, request, now)
        else:
            self._respond(key, make_response(request, 405, headers=[("Allow", ALLOW)]), now)
        return True

    def ack(self, request: Request) -> None:
        """An ACK for a 2xx we sent: the transaction layer stopped retransmitting."""
        dialog = self.dialogs.find(request, as_uas=True)
        if dialog is not None:
            dialog.receive_request(request)

    def ack_timeout(self, key: TxKey, now: float) -> None:
        """Our 2xx to A was never ACKed (RFC 3261 section 13.3.1.4): end the call."""
        call_id = self._a_keys.get(key)
        if call_id is not None and call_id in self.calls:
            log.info("call %s: no ACK for our 200, hanging up", call_id)
            self._run(self.engine.on_hangup(call_id, A_LEG, now), now)
            self._send_bye(self.calls.get(call_id), A_LEG, now)

    # ---- responses and timeouts on our client transactions --------------------------------

    def owns(self, key: TxKey) -> bool:
        return key in self._client or key in self._relays

    def response(self, key: TxKey, response: Response, now: float) -> None:
        relay = self._relays.get(key)
        if relay is not None:
            self._relay_response(key, relay, response, now)
            return
        entry = self._client.get(key)
        if entry is None:
            return
        call_id, leg, purpose = entry
        call = self.calls.get(call_id)
        if purpose == "invite":
            self._invite_response(call, leg, response, now)
        elif purpose in ("refresh", "refresh-invite") and call is not None:
            self._refresh_response(call, leg, purpose, response, now)

    def timeout(self, key: TxKey, now: float) -> None:
        relay = self._relays.pop(key, None)
        if relay is not None:
            if not relay.answered:
                self._respond(relay.server_key, make_response(relay.request, 408), now)
            return
        entry = self._client.pop(key, None)
        if entry is None:
            return
        call_id, leg, purpose = entry
        call = self.calls.get(call_id)
        if purpose == "invite":
            self._run(self.engine.on_failure(call_id, leg.name, 408, now), now)
        elif purpose in ("refresh", "refresh-invite") and call is not None:
            self._leg_lost(call, leg.name, now)

    def handle_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, gen, call_id, name = heapq.heappop(self._timers)
            if self._timer_gen.get((call_id, name)) != gen:
                continue
            del self._timer_gen[(call_id, name)]
            call = self.calls.get(call_id)
            if name == TimerName.NO_ANSWER.value:
                self._run(self.engine.on_timer(call_id, TimerName.NO_ANSWER, now), now)
            elif name == "waiting-tone" and call is not None:
                self._waiting_burst(call, now)
            elif name == "linger" and call is not None:
                self._send_bye(call, call.linger_leg, now)
                self._finish(call)
            elif name.startswith("refresh:") and call is not None:
                self._refresh(call, name.split(":", 1)[1], now)

    def terminated(self, key: TxKey) -> None:
        """The transaction layer forgot a transaction of ours."""
        self._client.pop(key, None)
        self._relays.pop(key, None)

    # ---- carrying out the engine's commands -------------------------------------------------

    def _run(self, commands: list[Command], now: float) -> None:
        for command in commands:
            call = self.calls.get(
                command.record.call_id if isinstance(command, CallUpdated) else command.call_id
            )
            if isinstance(command, CallUpdated):
                self._records.append(command.record)
                if self.on_record is not None:
                    self.on_record(command.record)
                if command.record.ended_at is not None and call is not None:
                    call.ended = True
                    # A call whose leg is a telecommuter line still in use keeps
                    # its legs until the engine releases them.
                    if not call.lingering and not self.engine.is_carrier(call.call_id):
                        self._finish(call)
                continue
            if call is None:
                continue
            if isinstance(command, Feature):
                call.feature_pending = True
                self._features.append(command)
                continue
            if isinstance(command, PlayTone | StopTone | Bridge):
                self._media_command(call, command, now)
                continue
            if isinstance(command, AnswerWaiting):
                self._answer_waiting(call, command, now)
                continue
            if isinstance(command, Release):
                self._finish(call)
                continue
            if isinstance(command, Voicemail):
                self._voicemail(call, command, now)
                continue
            if isinstance(command, Abandon):
                tone = getattr(self.tones, command.tone.value)
                self._linger(call, command.leg, tone, now)
                continue
            if isinstance(command, Dial):
                self._dial(call, command, now)
            elif isinstance(command, Progress):
                self._progress(call, command, now)
            elif isinstance(command, Connect):
                self._connect(call, command.branch, now)
            elif isinstance(command, Reject):
                self._final_to_a(call, command.status, command.reason, now)
            elif isinstance(command, CancelBranch):
                self._cancel_branch(call, command.branch, now)
            elif isinstance(command, Hangup):
                self._send_bye(call, command.leg, now)
            elif isinstance(command, StartTimer):
                self._push_timer(command.at, call.call_id, command.name.value)
            elif isinstance(command, StopTimer):
                self._timer_gen.pop((call.call_id, command.name.value), None)

    def _dial(self, call: CallLegs, command: Dial, now: float) -> None:
        target = command.target
        trunk: TrunkPeer | None = None
        if isinstance(target, PhoneTarget):
            try:
                uri = parse_uri(target.uri)
            except ParseError:
                uri = SipUri(host=target.host, port=target.port)
            request_uri = (
                uri if isinstance(uri, SipUri) else SipUri(host=target.host, port=target.port)
            )
            peer = Address(target.transport, target.host, target.port)
            to = NameAddr(SipUri(host=self.domain, user=command.callee.number), command.callee.name)
        else:
            assert isinstance(target, TrunkTarget)
            trunk = self.trunks(target.trunk)
            if trunk is None:
                self._run(self.engine.on_failure(call.call_id, command.branch, 503, now), now)
                return
            request_uri = SipUri(host=trunk.host, port=trunk.port, user=target.number)
            peer = Address(trunk.transport, trunk.host, trunk.port)
            to = NameAddr(SipUri(host=trunk.host, port=trunk.port, user=target.number))
        identity = command.identity
        from_ = NameAddr(
            SipUri(host=self.domain, user=identity.number), identity.name, (("tag", new_tag()),)
        )
        if command.branch == A_LEG:
            # The user's own line, rung first for a call the PBX places; or a
            # transfer target taking leg A's place (the old leg got its BYE).
            old = call.a
            if old.dialog is not None:
                self.dialogs.remove(old.dialog)
                self._dialog_owner.pop(old.dialog.id, None)
            leg = call.a = Leg(A_LEG, peer, trunk=trunk)
            codecs: tuple[Codec, ...] = OUR_CODECS
            if command.media_like is not None:
                payload = self._leg_payload(call, command.media_like)
                codecs = tuple(
                    c for c in OUR_CODECS if c.payload_type in (payload, TELEPHONE_EVENT_PT)
                )
            body = self._own_offer(call, leg, codecs)
        else:
            leg = Leg(command.branch, peer, trunk=trunk)
            call.branches[command.branch] = leg
            offer = call.a_offer
            if call.answered and call.origin is None and call.a_answer:
                # A transfer target: offered what the caller already talks, so
                # the two agree without transcoding.
                offer = parse_sdp(call.a_answer)
            assert offer is not None
            self._offer_srtp(leg)
            body = self._sdp_for(call, leg, offer, "b", offer=True)
        headers = [
            ("Allow", ALLOW),
            ("Supported", "timer"),
            ("Session-Expires", f"{int(self.session_interval)};refresher=uac"),
        ]
        if trunk is not None and trunk.use_pai:
            headers.append(("P-Asserted-Identity", str(NameAddr(from_.uri, identity.name))))
        # RFC 5806: the most recent diversion first, each with its reason and a
        # counter, so phones show "forwarded from" and providers bill correctly.
        for diversion in reversed(command.diversions):
            diverted_by = NameAddr(
                SipUri(host=self.domain, user=diversion.party.number),
                diversion.party.name,
                (("reason", diversion.reason), ("counter", "1")),
            )
            headers.append(("Diversion", str(diverted_by)))
        max_forwards = call.a_invite.max_forwards if call.a_invite is not None else None
        invite = make_request(
            "INVITE",
            request_uri,
            from_=from_,
            to=to,
            call_id=new_call_id(self.local.host),
            cseq=1,
            via=self._via(peer),
            contact=self._contact(peer),
            max_forwards=max(1, (max_forwards if max_forwards is not None else 70) - 1),
            headers=headers,
            body=body,
            content_type=SDP,
        )
        self._send_invite(call, leg, invite, now)

    def _send_invite(self, call: CallLegs, leg: Leg, invite: Request, now: float) -> None:
        leg.invite = invite
        key = self.tx.send_request(invite, leg.peer, now)
        leg.invite_key = key
        self._client[key] = (call.call_id, leg, "invite")

    def _invite_response(
        self, call: CallLegs | None, leg: Leg, response: Response, now: float
    ) -> None:
        status = response.status
        if leg.invite is None:
            return
        if status < 200:
            # Any provisional, 100 included, allows a CANCEL (RFC 3261 section 9.1).
            leg.got_provisional = True
            if leg.cancel_pending:
                self._send_cancel(leg, now)
                return
        if call is None or call.ended:
            if 200 <= status < 300:
                self._end_orphan(leg, response, now)
            return
        call_id = call.call_id
        if status == 100:
            return
        if leg.name == A_LEG:
            self._callback_response(call, leg, response, now)
            return
        if status < 200:
            early = self._sdp_of(response)
            if early is not None and not self._take_answer(leg, early):
                early = None  # keys we cannot use: no early media from this branch
            if early is not None:
                leg.answer = early
                self._wire(call, "b", leg, early)
                call.a_answer = self._sdp_for(call, call.a, early, "a", offer=False)
            self._run(
                self.engine.on_provisional(call_id, leg.name, 183 if early else 180, now), now
            )
            return
        if 200 <= status < 300:
            if leg.dialog is not None:
                # A retransmitted 2xx: our ACK was lost (RFC 3261 section 13.2.2.4).
                self._send_ack(leg)
                return
            if not self._open_uac_dialog(call_id, leg, response):
                self._run(self.engine.on_failure(call_id, leg.name, 502, now), now)
                return
            answer = self._sdp_of(response)
            if answer is None or not self._take_answer(leg, answer):
                self._send_bye(call, leg.name, now)
                self._run(self.engine.on_failure(call_id, leg.name, 488, now), now)
                return
            leg.answer = answer
            self._run(self.engine.on_answer(call_id, leg.name, now), now)
            return
        challenged = status in (401, 407) and leg.trunk is not None and not leg.auth_tried
        if challenged and self._retry_with_auth(call, leg, response, now):
            return
        if self._refused_srtp(leg, status) and self._retry_plain(call, leg, now):
            return
        self._run(self.engine.on_failure(call_id, leg.name, status, now), now)

    def _callback_response(self, call: CallLegs, leg: Leg, response: Response, now: float) -> None:
        """A final (or early) answer of the user's own line, for a call we place."""
        status, call_id = response.status, call.call_id
        if status < 200:
            self._run(self.engine.on_provisional(call_id, A_LEG, status, now), now)
            return
        if status >= 300:
            challenged = status in (401, 407) and leg.trunk is not None and not leg.auth_tried
            if challenged and self._retry_with_auth(call, leg, response, now):
                return
            if self._refused_srtp(leg, status) and self._retry_plain(call, leg, now):
                return
            self._run(self.engine.on_failure(call_id, A_LEG, status, now), now)
            return
        if leg.dialog is not None:
            self._send_ack(leg)  # a retransmitted 2xx
            return
        if not self._open_uac_dialog(call_id, leg, response):
            self._run(self.engine.on_failure(call_id, A_LEG, 502, now), now)
            return
        answer = self._sdp_of(response)
        payload = _audio_payload(answer) if answer is not None else None
        if answer is None or payload is None or not self._take_answer(leg, answer):
            self._send_bye(call, A_LEG, now)
            self._run(self.engine.on_failure(call_id, A_LEG, 488, now), now)
            return
        leg.answer = answer
        # What the user's line chose is all the destination is offered (its
        # keys stay with it: `_sdp_for` scrubs them).
        call.a_offer = answer
        call.a_payload = payload
        call.answered = True
        self._wire(call, "a", leg, answer)
        self._push_timer(now + self.session_interval / 2, call_id, f"refresh:{A_LEG}")
        self._run(self.engine.on_answer(call_id, A_LEG, now), now)

    def _open_uac_dialog(self, call_id: str, leg: Leg, response: Response) -> bool:
        """Create the dialog of a 2xx and ACK it (the ACK is ours to send, not the
        transaction's: RFC 3261 section 13.2.2.4)."""
        assert leg.invite is not None
        try:
            leg.dialog = Dialog.from_uac(leg.invite, response)
        except (LocalProtocolError, RemoteProtocolError, ParseError) as exc:
            log.info("call %s: unusable 2xx on %s: %s", call_id, leg.name, exc)
            return False
        self.dialogs.add(leg.dialog)
        self._dialog_owner[leg.dialog.id] = (call_id, leg.name)
        self._send_ack(leg)
        return True

    def _end_orphan(self, leg: Leg, response: Response, now: float) -> None:
        """A 2xx for a call that already ended (it crossed our CANCEL): ACK it and
        hang up at once, or the callee's phone would stay off-hook."""
        if leg.dialog is not None:
            self._send_ack(leg)
            return
        try:
            leg.dialog = Dialog.from_uac(leg.invite, response)  # type: ignore[arg-type]
        except (LocalProtocolError, RemoteProtocolError, ParseError):
            return
        self._send_ack(leg)
        bye, _ = leg.dialog.create_request("BYE", via=self._via(leg.peer))
        self.tx.send_request(bye, leg.peer, now)
        leg.dialog.state = DialogState.TERMINATED

    def _retry_with_auth(self, call: CallLegs, leg: Leg, response: Response, now: float) -> bool:
        """Answer a trunk's digest challenge once (RFC 3261 section 22.2)."""
        trunk = leg.trunk
        assert trunk is not None
        assert leg.invite is not None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenges = response.headers.get_all(header)
        if trunk.authorize is None or not challenges:
            return False
        try:
            value = trunk.authorize(challenges[0], "INVITE", str(leg.invite.uri))
        except DigestError as exc:
            log.warning("trunk %s: cannot answer its challenge: %s", trunk.name, exc)
            return False
        if value is None:
            log.warning("trunk %s challenged with a realm we have no credentials for", trunk.name)
            return False
        leg.auth_tried = True
        invite = leg.invite
        retry = Request("INVITE", invite.uri, invite.headers.copy(), invite.body)
        retry.vias = [self._via(leg.peer)]
        seq = invite.cseq.seq + 1
        retry.headers.set("CSeq", f"{seq} INVITE")
        retry.invalidate()
        retry.headers.set(
            "Authorization" if response.status == 401 else "Proxy-Authorization", value
        )
        self._send_invite(call, leg, retry, now)
        return True

    def _progress(self, call: CallLegs, command: Progress, now: float) -> None:
        if call.origin is not None:
            # The user is already on the line: they hear our ringback, or the
            # destination's early media when it sends some.
            if call.media is not None:
                if command.status == 183:
                    call.media.stop_play("a")
                elif not call.media_playing:
                    call.media.play_tone("a", self.tones.ringback, call.a_payload)
                    call.media_playing = True
            return
        if call.answered:
            return
        assert call.a_key is not None
        assert call.a_invite is not None
        # Early media: the branch's SDP is wired into the media session and the
        # caller gets our side of it.
        body = call.a_answer if command.status == 183 else b""
        response = make_response(
            call.a_invite,
            command.status,
            to_tag=call.a_tag,
            headers=[("Contact", str(self._contact(call.a.peer))), ("Allow", ALLOW)],
            body=body,
            content_type=SDP if body else None,
        )
        self._respond(call.a_key, response, now)

    def _connect(self, call: CallLegs, branch: str, now: float) -> None:
        winner = call.branches[branch]
        call.connected = branch
        self._push_timer(now + self.session_interval / 2, call.call_id, f"refresh:{branch}")
        if call.origin is not None or call.answered:
            # Leg A is connected already (it answered the callback): the tone
            # stops and the relay joins the two.
            if call.media is not None:
                call.media.stop_play("a")
                call.media_playing = False
                if winner.answer is not None:
                    self._wire(call, "b", winner, winner.answer)
            return
        # Only now, when this branch has won, does media go to it.
        if winner.answer is not None:
            self._wire(call, "b", winner, winner.answer)
            call.a_answer = self._sdp_for(call, call.a, winner.answer, "a", offer=False)
        self._answer_a(call, call.a_answer, now)

    def _answer_a(self, call: CallLegs, body: bytes, now: float) -> None:
        """200 to the caller's INVITE, and the dialog it makes."""
        assert call.a_key is not None
        assert call.a_invite is not None
        response = make_response(
            call.a_invite,
            200,
            to_tag=call.a_tag,
            headers=[
                ("Contact", str(self._contact(call.a.peer))),
                ("Allow", ALLOW),
                ("Supported", "timer"),
            ],
            body=body,
            content_type=SDP,
        )
        call.a.sent_sdp = body
        call.answered = True
        self._respond(call.a_key, response, now)
        dialog = Dialog.from_uas(call.a_invite, call.a_tag, self._contact(call.a.peer))
        call.a.dialog = dialog
        self.dialogs.add(dialog)
        self._dialog_owner[dialog.id] = (call.call_id, A_LEG)
        self._push_timer(now + self.session_interval / 2, call.call_id, f"refresh:{A_LEG}")

    def _final_to_a(self, call: CallLegs, status: int, reason: str, now: float) -> None:
        if call.origin is not None:
            # A call we placed failed after the user answered: they hear busy
            # (or congestion for any other failure) for a while, as on a desk
            # phone, and the portal shows why (T4).
            tone = self.tones.busy if status in (486, 600) else self.tones.congestion
            self._linger(call, A_LEG, tone, now)
            return
        if call.answered:
            return
        assert call.a_key is not None
        assert call.a_invite is not None
        call.answered = True
        response = make_response(call.a_invite, status, reason, to_tag=call.a_tag)
        self._respond(call.a_key, response, now)

    def _cancel_branch(self, call: CallLegs, branch: str, now: float) -> None:
        leg = call.a if branch == A_LEG else call.branches.get(branch)
        if leg is None or leg.invite is None:
            return
        if leg.got_provisional:
            self._send_cancel(leg, now)
        else:
            # RFC 3261 section 9.1: no CANCEL before a provisional response; send
            # it when one arrives (or the INVITE times out by itself).
            leg.cancel_pending = True

    def _send_cancel(self, leg: Leg, now: float) -> None:
        assert leg.invite is not None
        leg.cancel_pending = False
        cancel = make_cancel(leg.invite)
        self.tx.send_request(cancel, leg.peer, now)

    def _send_bye(self, call: CallLegs | None, leg_name: str, now: float) -> None:
        if call is None:
            return
        leg = call.a if leg_name == A_LEG else call.branches.get(leg_name)
        if leg is None or leg.dialog is None or leg.dialog.state is DialogState.TERMINATED:
            return
        bye, _ = leg.dialog.create_request("BYE", via=self._via(leg.peer))
        key = self.tx.send_request(bye, leg.peer, now)
        self._client[key] = (call.call_id, leg, "bye")
        leg.dialog.state = DialogState.TERMINATED

    def _send_ack(self, leg: Leg) -> None:
        assert leg.dialog is not None
        assert leg.invite is not None
        ack, _ = leg.dialog.create_ack(leg.invite.cseq.seq, via=self._via(leg.peer))
        self.tx.send_stateless(ack, leg.peer)

    # ---- relaying in-dialog requests ---------------------------------------------------------

    def _relay(
        self, call: CallLegs, from_leg: str, key: TxKey, request: Request, now: float
    ) -> None:
        if call.local:
            self._local_request(call, key, request, now)
            return
        if request.method != "INFO" and self.engine.shares_line(call.call_id):
            # The legs of a telecommuter line are switched between calls: a
            # re-INVITE or UPDATE (a session refresh, a hold) is this hop's
            # business, answered here, not relayed to whoever is joined now.
            self._answer_locally(call, from_leg, key, request, now)
            return
        other_name = self._other_leg(call, from_leg)
        other = call.a if other_name == A_LEG else call.branches.get(other_name or "")
        if other is None or other.dialog is None or other.dialog.state is not DialogState.CONFIRMED:
            self._respond(
                key, make_response(request, 491 if request.method == "INVITE" else 481), now
            )
            return
        body = request.body
        content_type = request.headers.get("Content-Type")
        if body and (content_type or "").lower().startswith(SDP):
            try:
                offer = parse_sdp(body)
            except SdpError:
                self._respond(key, make_response(request, 488, "Bad SDP"), now)
                return
            side: Side = "a" if from_leg == A_LEG else "b"
            offerer = call.a if from_leg == A_LEG else call.branches.get(from_leg)
            if offerer is not None:
                if not self._take_offer(offerer, offer, key, request, now):
                    return
                self._wire(call, side, offerer, offer)
            self._offer_srtp(other)
            body = self._sdp_for(
                call, other, offer, "b" if other_name != A_LEG else "a", offer=True
            )
        headers = [
            (name, value)
            for name, value in request.headers
            if name in ("Content-Disposition", "Info-Package", "Session-Expires", "Supported")
        ]
        forwarded, _ = other.dialog.create_request(
            request.method,
            via=self._via(other.peer),
            contact=self._contact(other.peer),
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        out_key = self.tx.send_request(forwarded, other.peer, now)
        self._relays[out_key] = _Relay(call.call_id, from_leg, key, request)

    def _local_request(self, call: CallLegs, key: TxKey, request: Request, now: float) -> None:
        """In-dialog requests of a call answered by teleoffice (voicemail)."""
        if request.method != "INFO":
            self._answer_locally(call, A_LEG, key, request, now)
            return
        digit = _info_digit(request)
        if digit is None:
            self._respond(key, make_response(request, 415, "Unsupported Info"), now)
            return
        self._local_digits.append((call.call_id, digit))
        self._respond(key, make_response(request, 200), now)

    def _answer_locally(
        self, call: CallLegs, leg_name: str, key: TxKey, request: Request, now: float
    ) -> None:
        leg = call.a if leg_name == A_LEG else call.branches.get(leg_name)
        if leg is None:
            self._respond(key, make_response(request, 481), now)
            return
        offer = self._sdp_of(request)
        body = b""
        if offer is not None and call.media is not None:
            if not self._take_offer(leg, offer, key, request, now):
                return
            side = _side(leg_name)
            payload = self._leg_payload(call, leg_name)
            codecs = [c for c in OUR_CODECS if c.payload_type in (payload, TELEPHONE_EVENT_PT)]
            try:
                leg.sdp_version += 1
                answer = build_answer(
                    offer,
                    address=self.media_host,
                    port=call.media.local_port(side),
                    supported=codecs,
                    session_id=int(now),
                    session_version=leg.sdp_version,
                    secure=leg.srtp is not None,
                )
            except SdpError:
                self._respond(key, make_response(request, 488, "Bad SDP"), now)
                return
            self._wire(call, side, leg, offer)
            body = self._secure(answer, leg, offer=False).to_bytes()
            leg.sent_sdp = body
        response = make_response(
            request,
            200,
            headers=[("Contact", str(self._contact(leg.peer))), ("Allow", ALLOW)],
            body=body,
            content_type=SDP if body else None,
        )
        self._respond(key, response, now)

    def _relay_response(self, key: TxKey, relay: _Relay, response: Response, now: float) -> None:
        if response.status < 200:
            return
        if relay.answered:
            if relay.ack is not None and response.status < 300:
                self.tx.send_stateless(*relay.ack)
            return
        relay.answered = True
        call = self.calls.get(relay.call_id)
        leg = None
        if call is not None:
            leg = call.a if relay.from_leg == A_LEG else call.branches.get(relay.from_leg)
            other_name = self._other_leg(call, relay.from_leg)
            other = call.a if other_name == A_LEG else call.branches.get(other_name or "")
            if other is not None and other.dialog is not None and response.status < 300:
                other.dialog.update_from_response(response)
                if relay.request.method == "INVITE":
                    ack, _ = other.dialog.create_ack(response.cseq.seq, via=self._via(other.peer))
                    relay.ack = (ack, other.peer)
                    self.tx.send_stateless(ack, other.peer)
        body = response.body
        content_type = response.headers.get("Content-Type")
        if (
            call is not None
            and leg is not None
            and body
            and (content_type or "").lower().startswith(SDP)
        ):
            try:
                answer = parse_sdp(body)
            except SdpError:
                answer = None
            if answer is not None:
                side: Side = "b" if relay.from_leg == A_LEG else "a"
                answerer = call.a if side == "a" else call.branches.get(call.connected or "")
                if answerer is not None:
                    if not self._take_answer(answerer, answer):
                        log.warning(
                            "call %s: unusable SRTP keys in a re-INVITE answer; keeping the "
                            "old ones",
                            call.call_id,
                        )
                    self._wire(call, side, answerer, answer)
                body = self._sdp_for(
                    call, leg, answer, "a" if relay.from_leg == A_LEG else "b", offer=False
                )
        headers: list[tuple[str, str]] = []
        if leg is not None and response.status < 300:
            headers.append(("Contact", str(self._contact(leg.peer))))
        answer_response = make_response(
            relay.request,
            response.status,
            response.reason,
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        self._respond(relay.server_key, answer_response, now)
        if response.status in (408, 481) and call is not None:
            self._leg_lost(call, self._other_leg(call, relay.from_leg) or A_LEG, now)

    # ---- session refresh ----------------------------------------------------------------------

    def _refresh(self, call: CallLegs, leg_name: str, now: float) -> None:
        leg = call.a if leg_name == A_LEG else call.branches.get(leg_name)
        if leg is None or leg.dialog is None or leg.dialog.state is not DialogState.CONFIRMED:
            return
        session_expires = ("Session-Expires", f"{int(self.session_interval)};refresher=uac")
        if leg.refresh_by_invite:
            # The peer has no UPDATE: a re-INVITE with the very SDP we last sent
            # it (same o= version, RFC 3264 section 8) changes nothing but proves
            # the peer is still there.
            request, _ = leg.dialog.create_request(
                "INVITE",
                via=self._via(leg.peer),
                contact=self._contact(leg.peer),
                headers=[session_expires],
                body=leg.sent_sdp,
                content_type=SDP if leg.sent_sdp else None,
            )
            purpose = "refresh-invite"
        else:
            # An UPDATE without a body refreshes the session without touching
            # media (RFC 4028 section 9) and needs no ACK.
            request, _ = leg.dialog.create_request(
                "UPDATE",
                via=self._via(leg.peer),
                contact=self._contact(leg.peer),
                headers=[session_expires],
            )
            purpose = "refresh"
        key = self.tx.send_request(request, leg.peer, now)
        self._client[key] = (call.call_id, leg, purpose)
        self._push_timer(now + self.session_interval / 2, call.call_id, f"refresh:{leg_name}")

    def _refresh_response(
        self, call: CallLegs, leg: Leg, purpose: str, response: Response, now: float
    ) -> None:
        status = response.status
        if status < 200:
            return
        if status in (408, 481):
            self._leg_lost(call, leg.name, now)
        elif purpose == "refresh" and status in (405, 501):
            # No UPDATE there: refresh by re-INVITE from now on, starting at once.
            leg.refresh_by_invite = True
            self._refresh(call, leg.name, now)
        elif purpose == "refresh-invite" and 200 <= status < 300 and leg.dialog is not None:
            ack, _ = leg.dialog.create_ack(response.cseq.seq, via=self._via(leg.peer))
            self.tx.send_stateless(ack, leg.peer)

    def _leg_lost(self, call: CallLegs, leg_name: str, now: float) -> None:
        log.info("call %s: leg %s is gone, ending the call", call.call_id, leg_name)
        leg = call.a if leg_name == A_LEG else call.branches.get(leg_name)
        if leg is not None and leg.dialog is not None:
            leg.dialog.state = DialogState.TERMINATED
        self._run(self.engine.on_hangup(call.call_id, leg_name, now), now)

    # ---- helpers ---------------------------------------------------------------------------------

    def _finish(self, call: CallLegs) -> None:
        if call.local:
            call.local = False
            self._local_ended.append(call.call_id)
        if call.media is not None:
            self._media_releases.append(call.media)
            call.media = None
        self._forget(call)

    def _forget(self, call: CallLegs) -> None:
        self.calls.pop(call.call_id, None)
        if call.a_key is not None:
            self._a_keys.pop(call.a_key, None)
        for leg in (call.a, *call.branches.values()):
            if leg.dialog is not None:
                self.dialogs.remove(leg.dialog)
                self._dialog_owner.pop(leg.dialog.id, None)

    @staticmethod
    def _other_leg(call: CallLegs, leg_name: str) -> str | None:
        # The far end of A is the branch that answered, never a losing fork.
        return call.connected if leg_name == A_LEG else A_LEG

    def _push_timer(self, at: float, call_id: str, name: str) -> None:
        gen = next(self._gen)
        self._timer_gen[(call_id, name)] = gen
        heapq.heappush(self._timers, (at, gen, call_id, name))

    def _respond(self, key: TxKey, response: Response, now: float) -> None:
        response.headers.add("Server", self.server_name)
        try:
            self.tx.send_response(key, response, now)
        except LocalProtocolError as exc:
            log.debug("could not send %s: %s", response.status, exc)

    def local_toward(self, peer: Address) -> Address:
        """Our address as `peer` should see it in Via and Contact."""
        return Address(peer.transport, self.local.host, self.local_port_for(peer))

    def local_port_for(self, peer: Address) -> int:
        """Our port for a transport: TLS listens on a port of its own."""
        if peer.transport.upper() == "TLS" and self.tls_port is not None:
            return self.tls_port
        return self.local.port

    def _via(self, peer: Address) -> Via:
        # "SIP/2.0/TLS host:tls-port" toward a TLS leg (RFC 3261 section 18.2.1:
        # the sent-by is where responses would be sent were the connection lost).
        return Via(
            peer.transport,
            self.local.host,
            self.local_port_for(peer),
            (("branch", new_branch()), ("rport", None)),
        )

    def _contact(self, peer: Address) -> NameAddr:
        # transport=tls rather than a sips: URI (RFC 5630 section 3.1.3 calls the
        # parameter deprecated): a sips: Contact would oblige the phone to use TLS
        # on every hop of every later request, which is not ours to promise, and
        # phones that register with transport=tls expect it back.
        params = (("transport", peer.transport.lower()),) if peer.transport != "UDP" else ()
        return NameAddr(
            SipUri(
                host=self.local.host,
                port=self.local_port_for(peer),
                user="teleoffice",
                params=params,
            )
        )

    @staticmethod
    def _sdp_of(message: Request | Response) -> SessionDescription | None:
        ctype = message.headers.get("Content-Type")
        if not message.body or not (ctype or "").lower().startswith(SDP):
            return None
        try:
            return parse_sdp(message.body)
        except SdpError:
            return None

    def _own_offer(self, call: CallLegs, leg: Leg, codecs: tuple[Codec, ...] = OUR_CODECS) -> bytes:
        """Our offer to the user's line (media side A) for a call we place."""
        port = call.media.local_port("a") if call.media is not None else 9
        leg.sdp_version += 1
        offer = build_offer(
            address=self.media_host,
            port=port,
            codecs=codecs,
            session_id=leg.sdp_version * 1000 + port,
            session_version=leg.sdp_version,
        )
        self._offer_srtp(leg)
        data = self._secure(offer, leg, offer=True).to_bytes()
        leg.sent_sdp = data
        return data

    def _sdp_for(
        self, call: CallLegs, leg: Leg, sdp: SessionDescription, side: Side, *, offer: bool
    ) -> bytes:
        """`sdp` as `leg` must see it: media at our port for that side of the call,
        and the leg's own SRTP keys (an `offer` to it, or an answer to its offer)."""
        if call.media is not None:
            port = call.media.local_port(side)
            ports = [port if m.port != 0 and m.media == "audio" else 0 for m in sdp.media]
            leg.sdp_version += 1
            sdp = with_connection(sdp, self.media_host, ports, leg.sdp_version)
        data = self._secure(sdp, leg, offer=offer).to_bytes()
        leg.sent_sdp = data
        return data

    # ---- SRTP (SDES, RFC 4568) ---------------------------------------------------------

    def _take_offer(
        self, leg: Leg, offer: SessionDescription, key: TxKey, request: Request, now: float
    ) -> bool:
        """`leg` offered `offer`: settle its keys, or answer 488 and return False when
        it insists on SRTP we cannot do (RFC 4568 section 7.1.2)."""
        media = active_audio(offer)
        if media is None:
            return True  # no stream to secure (all rejected): the keys stay as they were
        try:
            leg.srtp = answer_offer(media, leg.srtp)
        except NoUsableCrypto as exc:
            log.info("refusing an offer from %s: %s", leg.peer.host, exc)
            response = make_response(
                request,
                488,
                "Not Acceptable Here",
                headers=[("Warning", '305 teleoffice "no usable SRTP crypto suite"')],
            )
            self._respond(key, response, now)
            return False
        leg.media_proto = media.proto
        return True

    def _take_answer(self, leg: Leg, answer: SessionDescription) -> bool:
        """`leg` answered our offer: the keys it agreed to.  False when its
        answer's keys do not fit what we offered (the answer is unusable)."""
        media = active_audio(answer)
        offered = leg.srtp_offer
        if media is None:
            return True  # the stream was rejected: nothing to secure
        if offered is None:
            # We offered plain RTP; keys the answer should not carry are ignored.
            leg.srtp = None
            return True
        try:
            leg.srtp = accept_answer(offered, media)
        except SdpError as exc:
            log.info("unusable SRTP answer from %s: %s", leg.peer.host, exc)
            return False
        return True

    def _offer_srtp(self, leg: Leg) -> None:
        """Decide what we offer `leg`: the keys it already has; SRTP when it is
        reached over TLS, where SDES keys are safe to send (RFC 4568 section 8.3:
        they travel in the clear otherwise) and a phone that registered that way
        likely wants them; else plain RTP."""
        if leg.srtp is not None:
            leg.srtp_offer = make_offer(leg.srtp)
        elif leg.peer.transport.upper() == "TLS" and not leg.plain_retry:
            leg.srtp_offer = make_offer()
        else:
            leg.srtp_offer = None

    def _secure(self, sdp: SessionDescription, leg: Leg, *, offer: bool) -> SessionDescription:
        """`sdp` with `leg`'s own keys and audio transport, and no one else's keys."""
        if offer:
            offered = leg.srtp_offer
            if offered is not None:
                return with_crypto(sdp, offered.proto, offered.lines)
            media = active_audio(sdp)
            plain = proto_for(media.proto if media is not None else "RTP/AVP", secure=False)
            return with_crypto(sdp, plain, ())
        agreed = leg.srtp
        return with_crypto(sdp, leg.media_proto, (agreed.ours,) if agreed is not None else ())

    def _wire(self, call: CallLegs, side: Side, leg: Leg, sdp: SessionDescription) -> None:
        """Point `side` of the media where `leg`'s `sdp` says, with its SRTP keys."""
        media = call.media
        if media is None:
            return
        media.set_remote(side, *_media_address(sdp))
        keys = None
        if leg.srtp is not None:
            suite = Suite.named(leg.srtp.suite)
            assert suite is not None  # sdes only agrees to suites media.srtp runs
            keys = SrtpKeys(suite, send=leg.srtp.send_key, receive=leg.srtp.receive_key)
        if isinstance(media, SecureMedia):
            media.set_srtp(side, keys)
        elif keys is not None:
            # Never fall back to plain RTP silently on a leg that agreed to SRTP.
            raise TypeError(f"{type(media).__name__} cannot terminate SRTP")

    @staticmethod
    def _refused_srtp(leg: Leg, status: int) -> bool:
        """A leg we offered SRTP for the first time refused the offer itself."""
        return status in (488, 606) and leg.srtp_offer is not None and leg.srtp is None

    def _retry_plain(self, call: CallLegs, leg: Leg, now: float) -> bool:
        """Offer `leg` plain RTP after it refused SRTP (once), as a new INVITE with
        the next CSeq, as for an authentication retry (RFC 3261 section 22.2)."""
        invite = leg.invite
        if leg.plain_retry or invite is None or not invite.body:
            return False
        try:
            sdp = parse_sdp(invite.body)
        except SdpError:
            return False
        log.info("call %s: %s refused SRTP; offering plain RTP", call.call_id, leg.name)
        leg.plain_retry = True
        leg.srtp_offer = None
        leg.sdp_version += 1
        body = self._secure(bump_version(sdp), leg, offer=True).to_bytes()
        leg.sent_sdp = body
        retry = Request("INVITE", invite.uri, invite.headers.copy(), body)
        retry.vias = [self._via(leg.peer)]
        retry.headers.set("CSeq", f"{invite.cseq.seq + 1} INVITE")
        retry.invalidate()
        leg.got_provisional = False
        self._send_invite(call, leg, retry, now)
        return True


@dataclass(frozen=True, slots=True)
class LocalSession:
    """A call answered by teleoffice itself, for the runner to run a menu on."""

    call_id: str
    media: MediaHandle
    side: Side
    payload_type: int  # the G.711 type the caller's audio uses
    events_payload_type: int  # RFC 4733 telephone-event type, -1 when none
    mailbox: str
    deposit: bool
    caller: Party
    busy: bool = False  # the mailbox's owner is on the phone (for the greeting)


_DTMF_RELAY_SIGNAL = re.compile(
    rb"^\s*signal\s*=\s*([0-9*#A-Da-d])\s*$", re.IGNORECASE | re.MULTILINE
)


def _info_digit(request: Request) -> str | None:
    """The key of an INFO with `application/dtmf-relay` or `application/dtmf`
    (what phones send when RFC 4733 is off; no RFC, but every PBX reads it)."""
    ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    body = request.body or b""
    if ctype == "application/dtmf-relay":
        found = _DTMF_RELAY_SIGNAL.search(body)
        return found.group(1).decode().upper() if found else None
    if ctype == "application/dtmf":
        text = body.strip().decode("ascii", "replace")
        return text.upper() if len(text) == 1 and text in "0123456789*#ABCDabcd" else None
    return None


def _telephone_event_type(call: CallLegs) -> int:
    """The telephone-event payload type leg A negotiated with us, or -1."""
    sdp = None
    if call.origin is not None:
        sdp = call.a_offer  # the user's answer to our offer
    elif call.a_answer:
        with contextlib.suppress(SdpError):
            sdp = parse_sdp(call.a_answer)
    if sdp is None:
        return -1
    for media in sdp.media:
        if media.media == "audio" and media.port != 0:
            for codec in media.codecs():
                if codec.is_telephone_event and codec.payload_type is not None:
                    return codec.payload_type
    return -1


def _side(leg_name: str) -> Side:
    """The media side of a leg: A faces side "a", every branch side "b"."""
    return "a" if leg_name == A_LEG else "b"


def _audio_payload(sdp: SessionDescription) -> int | None:
    """The G.711 payload type the first audio stream uses (tones are played in
    it), or None when it has neither PCMU nor PCMA."""
    for media in sdp.media:
        if media.media != "audio" or media.port == 0:
            continue
        for codec in media.codecs():
            if codec.payload_type in (PCMU_PT, PCMA_PT):
                return codec.payload_type
    return None


def _media_address(sdp: SessionDescription) -> tuple[str | None, int | None]:
    """Where the peer wants audio: None when it is on hold or rejected."""
    for index, media in enumerate(sdp.media):
        if media.media != "audio" or media.port == 0:
            continue
        connection = media.connection or sdp.connection
        if connection is None or connection.address in ("0.0.0.0", "::"):  # noqa: S104 - RFC 2543 hold
            return None, None
        direction = sdp.media_direction(index).value
        if direction in ("sendonly", "inactive"):
            return None, None
        return connection.address, media.port
    return None, None
