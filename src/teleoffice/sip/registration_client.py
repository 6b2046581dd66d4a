"""Registering with a SIP provider (RFC 3261 section 10.2), sans-IO.

teleoffice registers its trunks with providers that deliver calls only to a
registered contact. This module decides what to send and when; the caller owns
the clock and the transaction layer.

Theory of operation
-------------------
The client is a small state machine:

    UNREGISTERED --start--> REGISTERING --2xx--> REGISTERED --refresh fails--> FAILED
                                 |                   ^                            |
                                 +-- failure ------> FAILED --backoff timer-------+

Each REGISTER goes out through the caller's client transaction to `registrar`;
the caller feeds back the final (or provisional) response with `on_response`,
or reports a transaction timeout with `on_timeout`. Every entry point takes
`now`, and `next_timer()` says when `on_timer(now)` wants to run: a refresh at
80 % of the time the registrar granted, or a retry after a failure (30 s,
doubling up to 10 min).

All requests share one Call-ID, and each one gets the next CSeq number, as
section 10.2.4 asks of refreshes and section 22.2 of a retry with credentials;
a registrar uses that order to drop stale REGISTERs. A response that does not
answer the request outstanding right now (an older CSeq, another Call-ID) is
ignored.

Authentication. A 401 or 407 is answered once with credentials computed from
the stored HA1 (`build_authorization_from_ha1`): the password itself is never
held. A further challenge means the credentials were refused, unless it says
`stale=true` or brings a new nonce, which earns one more try; the same nonce
again without `stale=true` is a plain refusal, and the client goes to FAILED
rather than hammering the provider (many lock an account after a few bad
attempts). A challenge in a realm without a stored HA1 is refused with a log
line naming the realm: the trunk's realm was configured wrong. Credentials are
not reused for later requests; each REGISTER is challenged afresh, which costs
a round trip per refresh and keeps nonce counting trivially right.

Failures are logged and kept in `last_error`, so the server can show why a
trunk is not registered.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from teleoffice.sip.builders import Random, make_request, new_branch, new_tag
from teleoffice.sip.digest import (
    Algorithm,
    DigestError,
    build_authorization_from_ha1,
    choose_challenge,
    parse_auth_params,
)
from teleoffice.sip.errors import LocalProtocolError, ParseError
from teleoffice.sip.headers import NameAddr, Via, is_decimal, parse_uint
from teleoffice.sip.message import Request, Response
from teleoffice.sip.transaction import Address
from teleoffice.sip.uri import SipUri

__all__ = [
    "FIRST_BACKOFF",
    "MAX_BACKOFF",
    "REFRESH_FRACTION",
    "RegistrationClient",
    "RegistrationState",
]

log = logging.getLogger(__name__)

# Refresh when this share of the granted time has passed: early enough to ride
# out a lost request (UDP retransmits for 32 s) and a challenge round trip.
REFRESH_FRACTION = 0.8
FIRST_BACKOFF = 30.0
MAX_BACKOFF = 600.0
# A Retry-After beyond this is more likely a misconfiguration than a plan; an
# hour keeps a trunk from staying down unnoticed.
MAX_RETRY_AFTER = 3600.0
# Authenticated REGISTERs per attempt: the first answer, and one more for a
# challenge that brings a new nonce or says stale=true.
MAX_AUTH_ATTEMPTS = 2
MAX_EXPIRES = 2**32 - 1  # the range of delta-seconds in Expires (RFC 3261 section 20.19)


class RegistrationState(enum.Enum):
    UNREGISTERED = "unregistered"  # not started, or stopped
    REGISTERING = "registering"  # a REGISTER is on its way, no binding yet
    REGISTERED = "registered"  # bound until `registered_until` (refreshes keep this state)
    FAILED = "failed"  # refused or unanswered; retrying after a backoff


@dataclass(frozen=True, slots=True)
class _Pending:
    """The REGISTER outstanding, and what the attempt it belongs to has used up."""

    cseq: int
    sent_at: float
    expires: int  # asked for; 0 to remove the binding
    unregister: bool
    nonce: str | None  # the nonce its credentials answer; None if it had none
    auth_attempts: int


class RegistrationClient:
    """Keeps one contact registered for `aor` at `registrar` (see the module doc).

    `contact` is the address the provider should send calls to; an `expires`
    parameter on it is dropped, since the Expires header says the time.
    `ha1_for(realm, family)` gives the stored HA1 for a challenge (None for an
    unknown realm); without `username` and `ha1_for` a challenge is a failure.
    `rand` feeds branches and tags (tests pass a fixed one).
    """

    def __init__(
        self,
        *,
        aor: SipUri,
        registrar: Address,
        contact: NameAddr,
        via_host: str,
        via_port: int,
        transport: str,
        expires: int,
        username: str | None,
        ha1_for: Callable[[str, Algorithm], str | None] | None,
        call_id: str,
        rand: Random = os.urandom,
    ) -> None:
        if not 0 < expires <= MAX_EXPIRES:
            raise ValueError(f"expires must be between 1 and {MAX_EXPIRES}, not {expires}")
        self.aor = aor
        self.registrar = registrar
        self.call_id = call_id
        self._contact = contact.without_param("expires")
        self._via_host = via_host
        self._via_port = via_port
        self._transport = transport.upper()
        self._expires = expires
        self._username = username
        self._ha1_for = ha1_for
        self._rand = rand
        # Section 10.2: the Request-URI names the registrar's domain, without
        # the user part.
        self._request_uri = SipUri(host=aor.host, port=aor.port, scheme=aor.scheme)
        self._from_tag = new_tag(rand)
        self._cseq = 0
        self._state = RegistrationState.UNREGISTERED
        self._pending: _Pending | None = None
        self._registered_until: float | None = None
        self._timer: float | None = None
        self._failures = 0
        self.last_error: str | None = None

    # -- what the caller reads

    @property
    def state(self) -> RegistrationState:
        return self._state

    @property
    def registered_until(self) -> float | None:
        """When the binding the registrar granted runs out; None unless REGISTERED.

        Counted from when the successful REGISTER was sent, so it never
        overstates the registrar's own clock.
        """
        return self._registered_until

    @property
    def expires(self) -> int:
        """The registration time asked for (raised by a 423's Min-Expires)."""
        return self._expires

    def next_timer(self) -> float | None:
        """When `on_timer` should run next; None while a request is outstanding
        (the transaction layer reports its end) or when nothing is scheduled."""
        return None if self._pending is not None else self._timer

    # -- what the caller drives

    def start(self, now: float) -> Request:
        """Begin registering; returns the REGISTER to send to `registrar`."""
        if self._state in (RegistrationState.REGISTERING, RegistrationState.REGISTERED):
            raise LocalProtocolError(f"registration of {self.aor} is already running")
        self._failures = 0
        self._timer = None
        self._state = RegistrationState.REGISTERING
        return self._send(now, expires=self._expires, unregister=False)

    def stop(self, now: float) -> Request | None:
        """Stop registering. Returns a REGISTER with Expires: 0 removing our
        binding when there may be one, else None.

        Only our own contact is removed, not `*`: other devices registered for
        the same account keep theirs. The answer to it still goes through
        `on_response` (it may be challenged) but changes no state.
        """
        maybe_bound = self._state in (RegistrationState.REGISTERING, RegistrationState.REGISTERED)
        self._state = RegistrationState.UNREGISTERED
        self._registered_until = None
        self._timer = None
        self._pending = None
        if not maybe_bound:
            return None
        return self._send(now, expires=0, unregister=True)

    def on_timer(self, now: float) -> Request | None:
        """The REGISTER to send when a refresh or retry is due, else None."""
        if self._pending is not None or self._timer is None or now < self._timer:
            return None
        self._timer = None
        if self._state is RegistrationState.FAILED:
            self._state = RegistrationState.REGISTERING
        # A refresh keeps REGISTERED: the binding holds until it runs out.
        return self._send(now, expires=self._expires, unregister=False)

    def on_timeout(self, now: float) -> None:
        """The transaction of the outstanding REGISTER timed out."""
        if self._pending is not None:
            self._fail(now, f"no answer from the registrar at {_where(self.registrar)}")

    def on_response(self, response: Response, now: float) -> Request | None:
        """Handle a response; returns the next REGISTER when one is needed at once
        (an answer to a challenge, or a retry with a longer time after 423)."""
        pending = self._pending
        if pending is None or not self._answers(response, pending):
            return None
        status = response.status
        if status < 200:
            return None
        if 200 <= status < 300:
            self._on_success(response, pending, now)
            return None
        if status in (401, 407):
            return self._on_challenge(response, pending, now)
        if status == 423 and not pending.unregister:
            return self._on_interval_too_brief(response, pending, now)
        self._fail(
            now,
            f"the registrar answered {status} {response.reason}",
            retry_after=_retry_after(response),
        )
        return None

    # -- internals

    def _send(
        self,
        now: float,
        *,
        expires: int,
        unregister: bool,
        authorization: tuple[str, str] | None = None,
        nonce: str | None = None,
        auth_attempts: int = 0,
    ) -> Request:
        self._cseq += 1
        headers = [("Expires", str(expires))]
        if authorization is not None:
            headers.append(authorization)
        request = make_request(
            "REGISTER",
            self._request_uri,
            from_=NameAddr(self.aor, params=(("tag", self._from_tag),)),
            to=NameAddr(self.aor),
            call_id=self.call_id,
            cseq=self._cseq,
            via=Via(
                transport=self._transport,
                host=self._via_host,
                port=self._via_port,
                # rport (RFC 3581): the provider answers to where the request
                # really came from, which matters behind NAT.
                params=(("branch", new_branch(self._rand)), ("rport", None)),
            ),
            contact=self._contact,
            headers=headers,
        )
        self._pending = _Pending(
            cseq=self._cseq,
            sent_at=now,
            expires=expires,
            unregister=unregister,
            nonce=nonce,
            auth_attempts=auth_attempts,
        )
        return request

    def _answers(self, response: Response, pending: _Pending) -> bool:
        try:
            cseq = response.cseq
            return (
                response.call_id == self.call_id
                and cseq.seq == pending.cseq
                and cseq.method.upper() == "REGISTER"
            )
        except ParseError:
            return False

    def _on_success(self, response: Response, pending: _Pending, now: float) -> None:
        self._pending = None
        if pending.unregister:
            self.last_error = None
            log.info("%s: unregistered", self.aor)
            return
        granted = self._granted(response, pending.expires)
        if granted <= 0:
            self._fail(now, "the registrar accepted the REGISTER but granted no time")
            return
        self._state = RegistrationState.REGISTERED
        self._failures = 0
        self.last_error = None
        self._registered_until = pending.sent_at + granted
        self._timer = pending.sent_at + REFRESH_FRACTION * granted
        log.info("%s: registered at %s for %ss", self.aor, _where(self.registrar), granted)

    def _granted(self, response: Response, asked: int) -> int:
        """The time granted to our contact (RFC 3261 section 10.2.4): its expires
        parameter in the 2xx, else the Expires header, else what we asked for."""
        try:
            contacts = response.contacts
        except ParseError:
            contacts = []
        mine = [c for c in contacts if _same_uri(c.uri, self._contact.uri)]
        if not mine and len(contacts) == 1:
            # A registrar behind a NAT fixer may list our contact rewritten to
            # the address it saw; a lone binding of a trunk's account is ours.
            mine = contacts
        for contact in mine:
            value = contact.param("expires")
            if value is not None and is_decimal(value):
                return int(value)
        try:
            header = response.expires
        except ParseError:
            header = None
        return asked if header is None else header

    def _on_challenge(self, response: Response, pending: _Pending, now: float) -> Request | None:
        proxy = response.status == 407
        challenge_header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        credentials_header = "Proxy-Authorization" if proxy else "Authorization"
        if self._username is None or self._ha1_for is None:
            self._fail(now, "the registrar asks for credentials and the trunk has none")
            return None
        try:
            challenge = choose_challenge(response.headers.get_all(challenge_header))
            params = parse_auth_params(challenge)[1]
        except DigestError as exc:
            self._fail(now, f"cannot answer the registrar's challenge: {exc}")
            return None
        nonce = params["nonce"]  # choose_challenge only keeps challenges with one
        stale = params.get("stale", "").lower() == "true"
        if pending.nonce is not None and (
            (nonce == pending.nonce and not stale) or pending.auth_attempts >= MAX_AUTH_ATTEMPTS
        ):
            self._fail(
                now,
                f"the registrar refused the credentials of {self._username!r} "
                f"(realm {params.get('realm', '?')!r}): wrong username or password?",
            )
            return None
        try:
            value = build_authorization_from_ha1(
                challenge=challenge,
                method="REGISTER",
                uri=str(self._request_uri),
                username=self._username,
                ha1_for=self._ha1_for,
                random_bytes=self._rand,
            )
        except (DigestError, ValueError) as exc:
            # The usual cause: the realm stored with the password is not the one
            # the provider uses. The message names the realm it asked for.
            self._fail(now, f"cannot answer the registrar's challenge: {exc}")
            return None
        return self._send(
            now,
            expires=pending.expires,
            unregister=pending.unregister,
            authorization=(credentials_header, value),
            nonce=nonce,
            auth_attempts=pending.auth_attempts + 1,
        )

    def _on_interval_too_brief(
        self, response: Response, pending: _Pending, now: float
    ) -> Request | None:
        # RFC 3261 section 10.2.8: retry with at least the registrar's minimum.
        raw = response.headers.get("Min-Expires")
        try:
            minimum = None if raw is None else parse_uint(raw, "Min-Expires", MAX_EXPIRES)
        except ParseError:
            minimum = None
        if minimum is None or minimum <= pending.expires:
            self._fail(now, "the registrar answered 423 without a usable Min-Expires")
            return None
        log.info("%s: the registrar wants at least %ss; asking for that", self.aor, minimum)
        self._expires = minimum
        return self._send(now, expires=minimum, unregister=False)

    def _fail(self, now: float, reason: str, *, retry_after: float | None = None) -> None:
        pending = self._pending
        self._pending = None
        self.last_error = reason
        if pending is not None and pending.unregister:
            # Stopping anyway: the binding runs out on its own.
            log.warning("%s: un-registering failed: %s", self.aor, reason)
            return
        self._state = RegistrationState.FAILED
        self._registered_until = None
        self._failures += 1
        delay = min(FIRST_BACKOFF * 2 ** (self._failures - 1), MAX_BACKOFF)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        self._timer = now + delay
        log.warning("%s: registration failed: %s; retrying in %.0fs", self.aor, reason, delay)


def _same_uri(a: object, b: object) -> bool:
    if isinstance(a, SipUri):
        return a.equivalent(b)
    return str(a) == str(b)


def _retry_after(response: Response) -> float | None:
    # Retry-After = delta-seconds [comment] *(;param) (RFC 3261 section 20.33).
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    digits = raw.strip().split(";")[0].split("(")[0].strip()
    return float(digits) if is_decimal(digits) else None


def _where(address: Address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{address.transport.lower()} {host}:{address.port}"
