"""The SIP service: teleoffice's UA core, still sans-IO.

Bytes come in with their source address and the current time; responses, store
commands and the next timer come out.  The asyncio runner (`server.runner`) does
nothing but move bytes and call `handle_timers`.

Per message:
1. parse (`sip.message`); a request that cannot be parsed gets 400/505 when the
   error can be addressed (its Via survived), else it is dropped (RFC 4475);
2. stamp the top Via with `received` and `rport` (RFC 3261 section 18.2.1,
   RFC 3581 section 4) so the answer goes back where the request came from;
3. the transaction layer absorbs retransmissions and reports new requests;
4. the UAS checks of RFC 3261 section 8.2 (`sip.uas`), then the method's handler.

Before any of this, a request from an address the `AuthGuard` has blocked for
password guessing is dropped without an answer: see `receive`.

SUBSCRIBE serves message waiting (`server.mwi`) and, when the composition root
wires presence in (`presence=PresenceProviders(...)`), the presence and dialog
packages and PUBLISH (`server.presence_sip`).  Each is authenticated like
REGISTER; then the subscription or publication is `self.mwi`'s or
`self.presence`'s.  Allow-Events and Allow list only what is wired in.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from teleoffice.calls.engine import Caller, Party
from teleoffice.calls.registrar import Registrar, StoreCommand
from teleoffice.server.b2bua import B2bua
from teleoffice.server.guard import AuthGuard
from teleoffice.server.mwi import EVENT_PACKAGE as MWI_PACKAGE
from teleoffice.server.mwi import Mailbox, MessageWaiting, MwiLimits
from teleoffice.server.overload import LoadMonitor
from teleoffice.server.presence_sip import PACKAGES as PRESENCE_PACKAGES
from teleoffice.server.presence_sip import (
    PIDF_TYPE,
    PresenceAgent,
    PresenceProviders,
    Watcher,
)
from teleoffice.server.presence_sip import Directory as PresenceDirectory
from teleoffice.server.subscriptions import event_of
from teleoffice.server.trunk_registration import TrunkRegistrations
from teleoffice.sip.builders import make_response, new_tag
from teleoffice.sip.digest import Algorithm, AuthOutcome, DigestServer
from teleoffice.sip.errors import LocalProtocolError, ParseError
from teleoffice.sip.headers import Via
from teleoffice.sip.message import Headers, MessageParseError, Request, Response, parse_message
from teleoffice.sip.transaction import (
    AckReceived,
    AckTimeout,
    Address,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TxKey,
    response_address,
)
from teleoffice.sip.uas import UasPolicy, check_request
from teleoffice.sip.uri import SipUri

log = logging.getLogger("teleoffice.sip")
# Security events (failed authentications, blocks) have a logger of their own so
# that an administrator can route them to fail2ban, a SIEM or a separate file.
# Its lines name the address, the account tried and the counts; never the
# Authorization header, the digest response, the nonce or anything else secret.
security_log = logging.getLogger("teleoffice.security")

# Longest account name written to the log: the name is attacker-chosen text.
_LOGGED_NAME_MAX = 64

HA1Lookup = Callable[[str, Algorithm], str | None]
# The identity a phone account presents when it calls: (extension and display
# name, username of the user logged in on it), (the account, None) when nobody
# is logged in on it (hot desking), or None for an account without a user.
AccountIdentity = Callable[[str], tuple[Party, str | None] | None]
# The trunk a request comes from, by its source address (RFC 3261 has no other
# way to recognise a provider that does not authenticate itself).
TrunkAt = Callable[[Address], str | None]

SERVER_NAME = "teleoffice"
GUARD_PRUNE_INTERVAL = 60.0
ALLOWED_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "UPDATE", "INFO", "SUBSCRIBE"}
)


@dataclass
class SipCounters:
    """Plain counters the metrics layer reads; no I/O here."""

    received: int = 0
    parse_errors: int = 0
    dropped: int = 0
    responses_sent: dict[int, int] = field(default_factory=dict)
    auth_failures: int = 0
    registrations: int = 0
    # Requests from blocked addresses dropped before parsing.
    blocked_dropped: int = 0


class SipService:
    def __init__(
        self,
        *,
        registrar: Registrar,
        digest: DigestServer,
        ha1_lookup: HA1Lookup,
        account_identity: AccountIdentity,
        trunk_at: TrunkAt,
        b2bua: B2bua,
        transactions: TransactionLayer,
        trunk_registrations: TrunkRegistrations | None = None,
        guard: AuthGuard | None = None,
        overload: LoadMonitor | None = None,
        server_name: str = SERVER_NAME,
        mailbox_of: Callable[[str], Mailbox | None] | None = None,
        counts: Callable[[str], tuple[int, int]] | None = None,
        unsolicited: Callable[[str], bool] | None = None,
        mwi_limits: MwiLimits | None = None,
        presence: PresenceProviders | None = None,
    ) -> None:
        self._presence_providers = presence
        self.guard = guard if guard is not None else AuthGuard()
        self.overload = (
            overload
            if overload is not None
            else LoadMonitor(transactions=transactions.transaction_count, random=random.random)
        )
        self.trunk_registrations = trunk_registrations
        self.registrar = registrar
        self.digest = digest
        self.ha1_lookup = ha1_lookup
        self.account_identity = account_identity
        self.trunk_at = trunk_at
        self.b2bua = b2bua
        self.transactions = transactions
        self.server_name = server_name
        self.counters = SipCounters()
        self._commands: list[StoreCommand] = []
        self._guard_pruned_at = float("-inf")
        # Message waiting (RFC 3842).  The phone shows the mailbox of whoever its
        # account calls as, unless told otherwise; the B2BUA's address is read
        # on every use because the port is known only once the socket is bound.
        self.mwi = MessageWaiting(
            transactions=transactions,
            respond=self._respond,
            local=b2bua.local_toward,
            domain=b2bua.domain,
            mailbox_of=mailbox_of if mailbox_of is not None else self._identity_mailbox,
            contacts=registrar.lookup,
            counts=counts,
            unsolicited=unsolicited,
            limits=mwi_limits,
        )
        # Presence (RFC 3856, 3903, 4235), when wired in.
        self.presence: PresenceAgent | None = None
        packages = [MWI_PACKAGE]
        methods = set(ALLOWED_METHODS)
        if presence is not None:
            self.presence = PresenceAgent(
                transactions=transactions,
                respond=self._respond,
                local=b2bua.local_toward,
                domain=b2bua.domain,
                model=presence.model,
                dialogs_of=presence.dialogs_of,
                directory=PresenceDirectory(
                    who_is=self._watcher,
                    user_of_extension=presence.user_of_extension or self._extension_owner,
                    may_watch=presence.may_watch,
                ),
                on_change=presence.on_change,
                limits=presence.limits,
                on_publication=presence.on_publication,
            )
            packages.extend(PRESENCE_PACKAGES)
            methods.add("PUBLISH")
        # What a 489 and OPTIONS list (RFC 6665 section 8.2.2).
        self.allow_events = ", ".join(packages)
        for notifier in (self.mwi, *(self.presence.notifiers if self.presence else ())):
            notifier.allow_events = self.allow_events
        self.policy = UasPolicy(allowed_methods=frozenset(methods))
        # A PUBLISH carries PIDF, not SDP (RFC 3903); its body is checked with this.
        self.publish_policy = UasPolicy(
            allowed_methods=self.policy.allowed_methods, accepted_bodies=(PIDF_TYPE,)
        )

    # ---- inputs -------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self.counters.received += 1
        if not data.strip(b"\r\n\t "):
            return  # keepalive
        if self.guard.blocked(source.host, now) and not data.lstrip().startswith(b"SIP/"):
            # A blocked address gets silence rather than 403: a scanner learns
            # nothing (not even that the host is still there, nor when the block
            # ends), answering costs no parsing, no transaction state and no
            # bytes on the wire, and silence cannot be turned into reflection
            # traffic towards a spoofed address.  The price is that a phone
            # behind the same address sees timeouts instead of a clear refusal;
            # the security log tells its administrator why.  Responses still
            # pass: they can only match transactions we started ourselves (calls
            # already ringing or running towards that address).
            self.counters.blocked_dropped += 1
            return
        try:
            message = parse_message(data, stream=source.transport != "UDP")
        except MessageParseError as exc:
            self.counters.parse_errors += 1
            self._answer_unparseable(exc, source)
            return
        except ParseError:
            self.counters.parse_errors += 1
            return
        if isinstance(message, Request):
            self._receive_request(message, source, now)
        else:
            self._dispatch(self.transactions.receive(message, source, now), now)

    def handle_timers(self, now: float) -> None:
        self._dispatch(self.transactions.handle_timers(now), now)
        self.b2bua.handle_timers(now)
        self.mwi.handle_timers(now)
        if self.presence is not None:
            self.presence.handle_timers(now)
        if self.trunk_registrations is not None:
            self.trunk_registrations.handle_timers(now)
        expiry = self.registrar.next_expiry()
        if expiry is not None and expiry <= now:
            self._commands.extend(self.registrar.expire(now))
        # The guard's tables are bounded anyway; sweeping out expired entries now
        # and then just keeps them small.  It needs no timer of its own: any
        # other timer (transactions, registrations) gives it a turn.
        if now - self._guard_pruned_at >= GUARD_PRUNE_INTERVAL:
            self._guard_pruned_at = now
            self.guard.prune(now)

    # ---- outputs ------------------------------------------------------------

    def next_timer(self) -> float | None:
        candidates = (
            self.transactions.next_timer(),
            self.registrar.next_expiry(),
            self.b2bua.next_timer(),
            self.mwi.next_timer(),
            self.presence.next_timer() if self.presence else None,
            self.trunk_registrations.next_timer() if self.trunk_registrations else None,
        )
        deadlines = [t for t in candidates if t is not None]
        return min(deadlines) if deadlines else None

    def shutdown(self, now: float) -> None:
        """Leave cleanly: end the subscriptions, un-register from providers."""
        self.mwi.shutdown(now)
        if self.presence is not None:
            self.presence.shutdown(now)
        if self.trunk_registrations is not None:
            self.trunk_registrations.stop_all(now)

    def outgoing(self) -> list[tuple[bytes, Address]]:
        return self.transactions.outgoing()

    def take_commands(self) -> list[StoreCommand]:
        commands, self._commands = self._commands, []
        return commands

    # ---- requests -----------------------------------------------------------

    def _receive_request(self, request: Request, source: Address, now: float) -> None:
        try:
            request.vias = [stamp_via(request.top_via, source), *request.vias[1:]]
        except ParseError:
            self.counters.dropped += 1
            return
        self._dispatch(self.transactions.receive(request, source, now), now)

    def _dispatch(self, events: list[Event], now: float) -> None:
        b2bua = self.b2bua
        trunks = self.trunk_registrations
        mwi = self.mwi
        presence = self.presence
        for event in events:
            if isinstance(event, RequestReceived):
                try:
                    self._handle_request(event, now)
                except ParseError as exc:
                    # A header we only parse on demand turned out malformed.
                    self._respond(event.key, make_response(event.request, 400, exc.reason), now)
            elif isinstance(event, AckReceived):
                b2bua.ack(event.request)
            elif isinstance(event, ResponseReceived):
                if trunks is not None and trunks.owns(event.key):
                    trunks.response(event.key, event.response, now)
                elif mwi.owns(event.key):
                    mwi.response(event.key, event.response, now)
                elif presence is not None and presence.owns(event.key):
                    presence.response(event.key, event.response, now)
                else:
                    b2bua.response(event.key, event.response, now)
            elif isinstance(event, TransactionTimeout):
                if event.key.server:
                    continue
                if trunks is not None and trunks.owns(event.key):
                    trunks.timeout(event.key, now)
                elif mwi.owns(event.key):
                    mwi.timeout(event.key, now)
                elif presence is not None and presence.owns(event.key):
                    presence.timeout(event.key, now)
                else:
                    b2bua.timeout(event.key, now)
            elif isinstance(event, AckTimeout):
                b2bua.ack_timeout(event.key, now)
            elif isinstance(event, TransactionTerminated):
                b2bua.terminated(event.key)
                mwi.terminated(event.key)
                if presence is not None:
                    presence.terminated(event.key)
                if trunks is not None:
                    trunks.terminated(event.key)

    def _handle_request(self, event: RequestReceived, now: float) -> None:
        key, request, source = event.key, event.request, event.source
        # Overload control comes first, before the UAS checks, digest and any
        # store work: a shed request must cost as little as possible.  It runs
        # after the transaction layer on purpose, so that the refused request's
        # retransmissions get the same 503 from the transaction without another
        # decision (see `server.overload` for what is shed and why).
        admission = self.overload.admit(request.method, request.to.tag is not None, now)
        if admission.shed:
            self._respond(
                key,
                make_response(
                    request,
                    503,
                    "Overloaded",
                    headers=[("Retry-After", str(admission.retry_after))],
                ),
                now,
            )
            return
        method = request.method
        policy = self.publish_policy if method == "PUBLISH" else self.policy
        error = check_request(request, policy)
        if error is not None:
            self._respond(key, error, now)
            return
        if method == "OPTIONS":
            self._respond(key, self._options_response(request), now)
        elif method == "REGISTER":
            self._register(key, request, source, now)
        elif method == "CANCEL":
            self.b2bua.cancel(key, request, event.cancels, now)
        elif method == "SUBSCRIBE":
            self._subscribe(key, request, source, now)
        elif method == "PUBLISH":
            self._publish(key, request, source, now)
        elif request.to.tag is not None:
            if not self.b2bua.in_dialog(key, request, now):
                self._respond(key, make_response(request, 481), now)
        elif method == "INVITE":
            self._invite(key, request, source, now)
        else:
            # BYE, UPDATE or INFO outside any dialog (RFC 3261 section 12.2.2).
            self._respond(key, make_response(request, 481), now)

    def _options_response(self, request: Request) -> Response:
        # RFC 3261 section 11.2: say what we allow, accept and support.
        return make_response(
            request,
            200,
            headers=[
                ("Allow", self.policy.allow_header),
                ("Accept", "application/sdp"),
                ("Accept-Encoding", "identity"),
                ("Accept-Language", "en"),
                ("Supported", ", ".join(self.policy.supported)),
                ("Allow-Events", self.allow_events),
            ],
        )

    def _invite(self, key: TxKey, request: Request, source: Address, now: float) -> None:
        trunk = self.trunk_at(source)
        if trunk is not None:
            # A provider's request: accepted without digest, by its address.
            frm = request.from_
            number = frm.uri.user if isinstance(frm.uri, SipUri) and frm.uri.user else "anonymous"
            caller = Caller(Party(number, frm.display_name), trunk=trunk)
        else:
            account = self._authenticate(key, request, source, now)
            if account is None:
                return
            identity = self.account_identity(account)
            if identity is None:
                self._respond(key, make_response(request, 403, "Account Has No User"), now)
                return
            party, username = identity
            caller = Caller(party, user=username, account=account)
        self.b2bua.new_call(key, request, source, caller, now)

    def _register(self, key: TxKey, request: Request, source: Address, now: float) -> None:
        account = self._authenticate(key, request, source, now)
        if account is None:
            return
        outcome = self.registrar.register(request, account=account, source=source, now=now)
        self._commands.extend(outcome.commands)
        if outcome.response.status == 200:
            self.counters.registrations += 1
            self.mwi.note_registered(account)
        self._respond(key, outcome.response, now)
        presence = self._presence_providers
        if outcome.response.status == 200 and presence and presence.on_registration:
            try:
                presence.on_registration(account)
            except Exception:
                log.exception("registration hook failed")

    def _subscribe(self, key: TxKey, request: Request, source: Address, now: float) -> None:
        presence = self.presence
        if request.to.tag is not None:
            # A refresh or unsubscribe; a SUBSCRIBE inside a call's dialog gets
            # the B2BUA's 405, one inside no dialog at all 481.
            if not (
                self.mwi.in_dialog(key, request, source, now)
                or (presence is not None and presence.in_dialog(key, request, source, now))
                or self.b2bua.in_dialog(key, request, now)
            ):
                self._respond(key, make_response(request, 481), now)
            return
        # Event package, Accept and Expires first: a phone subscribing to a
        # package we do not serve learns it without a digest round trip.
        event = event_of(request)
        handler = self.mwi.subscribe
        if (
            presence is not None
            and event is not None
            and presence.notifier_for(event.package) is not None
        ):
            error = presence.check(request)
            handler = presence.subscribe
        else:
            error = self.mwi.check(request)
        if error is not None:
            self._respond(key, error, now)
            return
        account = self._authenticate(key, request, source, now)
        if account is None:
            return
        if self.account_identity(account) is None:
            self._respond(key, make_response(request, 403, "Account Has No User"), now)
            return
        handler(key, request, source, account, now)

    def _publish(self, key: TxKey, request: Request, source: Address, now: float) -> None:
        presence = self.presence
        assert presence is not None  # PUBLISH is only allowed with presence wired in
        # Event, body type, Expires and SIP-If-Match first, then digest (RFC
        # 3903 section 6 lets the ESC authenticate at any point before step 3).
        error = presence.check_publish(request)
        if error is not None:
            self._respond(key, error, now)
            return
        account = self._authenticate(key, request, source, now)
        if account is None:
            return
        presence.publish(key, request, account, now, source)

    def _watcher(self, account: str) -> Watcher | None:
        """The user a phone account is (presence watcher and publisher)."""
        identity = self.account_identity(account)
        if identity is None:
            return None
        party, username = identity
        return None if username is None else Watcher(username, party.number)

    def _extension_owner(self, number: str) -> str | None:
        """The user whose extension `number` is (not a DID: presence is per extension)."""
        user = self.b2bua.engine.directory.user_by_number(number)
        return user.username if user is not None and user.extension == number else None

    def _identity_mailbox(self, account: str) -> Mailbox | None:
        """The mailbox of the user a phone calls as (the one logged in on it)."""
        identity = self.account_identity(account)
        if identity is None:
            return None
        party, username = identity
        return None if username is None else Mailbox(username, party.number)

    def _authenticate(
        self, key: TxKey, request: Request, source: Address, now: float
    ) -> str | None:
        """The account a request is authenticated as, or None after challenging it."""
        header = request.headers.get("Authorization")
        if header is None:
            self._challenge(key, request, now)
            return None
        result = self.digest.verify(
            method=request.method,
            header_value=header,
            lookup=self.ha1_lookup,
            now=now,
            body=request.body,
        )
        if result.outcome is AuthOutcome.OK and result.username is not None:
            self.guard.success(source.host, result.username, now)
            return result.username
        if result.outcome is AuthOutcome.STALE:
            self._challenge(key, request, now, stale=True)
            return None
        if result.outcome is not AuthOutcome.NO_CREDENTIALS:
            # The same answer whether the account exists or not: a fresh challenge.
            # The request that reaches a limit is still answered like the others;
            # only the next ones meet silence (see `receive`), so the server
            # transaction just created ends normally.
            self.counters.auth_failures += 1
            self._record_failure(request, source, result.username, now)
        self._challenge(key, request, now)
        return None

    def _record_failure(
        self, request: Request, source: Address, account: str | None, now: float
    ) -> None:
        shown = _loggable_name(account)
        if self.trunk_at(source) is not None:
            # A provider's address is never blocked: a spoofed UDP packet could
            # otherwise cut off every inbound call.  It is still logged.
            security_log.warning(
                "digest authentication failed: source=%s:%s method=%s account=%s "
                "(a trunk's address, not counted)",
                source.host,
                source.port,
                request.method,
                shown,
            )
            return
        verdict = self.guard.failure(source.host, account, now)
        limits = self.guard.limits
        security_log.info(
            "digest authentication failed: source=%s:%s method=%s account=%s "
            "source_failures=%d/%d account_failures=%d/%d in %gs",
            source.host,
            source.port,
            request.method,
            shown,
            verdict.source_failures,
            limits.source_limit,
            verdict.account_failures,
            limits.account_limit,
            limits.window,
        )
        if verdict.alarm_started:
            security_log.warning(
                "account %s under attack: %d failed authentications in %gs; addresses "
                "failing on it are blocked at once for %gs (its proven phones are not)",
                shown,
                verdict.account_failures,
                limits.window,
                limits.block_time,
            )
        if verdict.blocked:
            security_log.warning(
                "blocked source=%s for %gs: reason=%s account=%s source_failures=%d "
                "account_failures=%d",
                source.host,
                limits.block_time,
                verdict.reason,
                shown,
                verdict.source_failures,
                verdict.account_failures,
            )

    def _challenge(self, key: TxKey, request: Request, now: float, *, stale: bool = False) -> None:
        headers = [("WWW-Authenticate", value) for value in self.digest.challenge(now, stale=stale)]
        self._respond(key, make_response(request, 401, headers=headers), now)

    def _respond(self, key: TxKey, response: Response, now: float) -> None:
        response.headers.add("Server", self.server_name)
        try:
            self.transactions.send_response(key, response, now)
        except LocalProtocolError as exc:
            log.warning("could not send %s: %s", response.status, exc)
            return
        self.counters.responses_sent[response.status] = (
            self.counters.responses_sent.get(response.status, 0) + 1
        )

    # ---- unparseable requests ---------------------------------------------------

    def _answer_unparseable(self, exc: MessageParseError, source: Address) -> None:
        partial = exc.partial
        if partial is None or partial.method == "ACK":
            self.counters.dropped += 1
            return
        response = error_response_from_raw(partial, exc.status, exc.reason)
        if response is None:
            self.counters.dropped += 1
            return
        try:
            vias = response.vias
            partial.vias = [stamp_via(vias[0], source), *vias[1:]]
            destination = response_address(partial, source)
        except ParseError:
            self.counters.dropped += 1
            return
        response.vias = partial.vias
        response.headers.add("Server", self.server_name)
        log.info("bad request from %s:%s: %s", source.host, source.port, exc.reason)
        self.transactions.send_stateless(response, destination)
        self.counters.responses_sent[exc.status] = (
            self.counters.responses_sent.get(exc.status, 0) + 1
        )


def _loggable_name(name: str | None) -> str:
    """An attacker-chosen account name made safe for one log line."""
    if name is None:
        return "-"
    # repr() escapes line breaks and control characters (no forged log lines)
    # and quotes the name, so an empty or odd one stays visible.
    text = repr(name[:_LOGGED_NAME_MAX])
    return text + "..." if len(name) > _LOGGED_NAME_MAX else text


def stamp_via(via: Via, source: Address) -> Via:
    """RFC 3261 section 18.2.1 and RFC 3581 section 4."""
    stamped = via
    if via.host.strip("[]").lower() != source.host.lower():
        stamped = stamped.with_param("received", source.host)
    present, value = via.rport
    if present and value is None:
        stamped = stamped.with_param("rport", str(source.port))
        if stamped.received is None:
            stamped = stamped.with_param("received", source.host)
    return stamped


def error_response_from_raw(request: Request, status: int, reason: str) -> Response | None:
    """Build an error answer copying the identifying headers verbatim.

    Used when parsing failed somewhere: only the Via must be sound, since that is
    where the answer goes.  Everything else is copied as received.
    """
    via_values = request.headers.get_all("Via")
    if not via_values:
        return None
    headers = Headers([("Via", v) for v in via_values])
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            if name == "To" and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={new_tag()}"
            headers.add(name, value)
    response = Response(status, _sanitize_reason(status, reason), headers)
    try:
        response.vias  # noqa: B018 - the Via must parse, or nobody can be answered
    except ParseError:
        return None
    return response


def _sanitize_reason(status: int, detail: str) -> str:
    # The phrase says what was wrong, without echoing control characters or an
    # attacker's long input back onto the wire.
    if status == 505:
        return "Version Not Supported"
    text = "".join(c if c.isprintable() else "?" for c in detail)
    return f"Bad Request ({text})"[:120]
