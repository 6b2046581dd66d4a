"""The registration client against a fake registrar, with a fake clock.

Messages go through bytes both ways (serialize, parse), so what is tested is
what a provider would see on the wire.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import pytest

from teleoffice.sip.builders import make_response
from teleoffice.sip.digest import Algorithm, AuthOutcome, DigestServer, compute_ha1
from teleoffice.sip.errors import LocalProtocolError
from teleoffice.sip.headers import NameAddr, parse_name_addr
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.registration_client import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    RegistrationClient,
    RegistrationState,
)
from teleoffice.sip.transaction import Address
from teleoffice.sip.uri import SipUri

REALM = "provider.example"
USERNAME = "trunk1"
PASSWORD = "provider-secret"
AOR = SipUri(host="provider.example", user=USERNAME)
REGISTRAR = Address("UDP", "192.0.2.50", 5060)
CONTACT = NameAddr(SipUri(host="198.51.100.7", port=5070, user=USERNAME))
CALL_ID = "reg-call-1@198.51.100.7"
T0 = 1_000.0

HA1For = Callable[[str, Algorithm], str | None]


def stored_ha1(realm: str = REALM, password: str = PASSWORD) -> HA1For:
    """What TrunkCredentials.ha1_for gives: the HA1 for one realm only."""

    def ha1_for(asked: str, family: Algorithm) -> str | None:
        return compute_ha1(USERNAME, realm, password, family) if asked == realm else None

    return ha1_for


def counter_rand() -> Callable[[int], bytes]:
    numbers = itertools.count(1)
    return lambda n: next(numbers).to_bytes(n, "big")


def make_client(
    *,
    expires: int = 3600,
    username: str | None = USERNAME,
    ha1_for: HA1For | None = None,
    contact: NameAddr = CONTACT,
) -> RegistrationClient:
    return RegistrationClient(
        aor=AOR,
        registrar=REGISTRAR,
        contact=contact,
        via_host="198.51.100.7",
        via_port=5070,
        transport="udp",
        expires=expires,
        username=username,
        ha1_for=stored_ha1() if ha1_for is None and username is not None else ha1_for,
        call_id=CALL_ID,
        rand=counter_rand(),
    )


def wire(message: Request | Response) -> Request | Response:
    return parse_message(message.to_bytes())


class FakeRegistrar:
    """A provider's registrar: digest-authenticates with a real DigestServer,
    enforces a minimum time and may grant less than asked."""

    def __init__(
        self,
        *,
        realm: str = REALM,
        password: str = PASSWORD,
        min_expires: int | None = None,
        max_expires: int | None = None,
        proxy: bool = False,
    ) -> None:
        self.digest = DigestServer(realm, b"k" * 32, nonce_ttl=30.0)
        self.realm = realm
        self.password = password
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.proxy = proxy
        self.requests: list[Request] = []
        self.bound_until: float | None = None

    def handle(self, sent: Request, now: float) -> Response:
        request = wire(sent)
        assert isinstance(request, Request)
        self.requests.append(request)
        auth_name = "Proxy-Authorization" if self.proxy else "Authorization"
        credentials = request.headers.get(auth_name)
        if credentials is None:
            return self._challenge(request, now)
        result = self.digest.verify(
            method="REGISTER",
            header_value=credentials,
            lookup=lambda user, family: compute_ha1(user, self.realm, self.password, family),
            now=now,
        )
        if result.outcome is AuthOutcome.STALE:
            return self._challenge(request, now, stale=True)
        if not result.ok:
            return self._challenge(request, now)
        assert result.uri == str(request.uri)
        expires = request.expires
        assert expires is not None
        if expires == 0:
            self.bound_until = None
            return self._answer(make_response(request, 200))
        if self.min_expires is not None and expires < self.min_expires:
            return self._answer(
                make_response(request, 423, headers=[("Min-Expires", str(self.min_expires))])
            )
        granted = min(expires, self.max_expires or expires)
        self.bound_until = now + granted
        [contact] = request.contacts
        return self._answer(
            make_response(request, 200, headers=[("Contact", f"{contact};expires={granted}")])
        )

    def _challenge(self, request: Request, now: float, *, stale: bool = False) -> Response:
        status, header = (407, "Proxy-Authenticate") if self.proxy else (401, "WWW-Authenticate")
        values = self.digest.challenge(now, stale=stale)
        return self._answer(make_response(request, status, headers=[(header, v) for v in values]))

    @staticmethod
    def _answer(response: Response) -> Response:
        parsed = wire(response)
        assert isinstance(parsed, Response)
        return parsed


def state(client: RegistrationClient) -> RegistrationState:
    # A function rather than the property, so mypy does not carry an earlier
    # assertion about the state over to the next one.
    return client.state


def bound(registrar: FakeRegistrar) -> float | None:
    return registrar.bound_until


def exchange(
    client: RegistrationClient, registrar: FakeRegistrar, request: Request | None, now: float
) -> list[Request]:
    """Run requests to the registrar and responses back until the client rests."""
    sent: list[Request] = []
    while request is not None:
        sent.append(request)
        request = client.on_response(registrar.handle(request, now), now)
    return sent


def register(client: RegistrationClient, registrar: FakeRegistrar, now: float = T0) -> None:
    exchange(client, registrar, client.start(now), now)
    assert state(client) is RegistrationState.REGISTERED, client.last_error


# --- the happy path -------------------------------------------------------------------


def test_register_answers_the_challenge() -> None:
    client = make_client()
    registrar = FakeRegistrar()
    assert state(client) is RegistrationState.UNREGISTERED
    first = client.start(T0)
    assert state(client) is RegistrationState.REGISTERING
    assert client.next_timer() is None  # the transaction layer reports what happens
    # Section 10.2: Request-URI is the domain; To and From are the AOR.
    assert str(first.uri) == "sip:provider.example"
    assert first.to.uri == AOR
    assert first.to.tag is None
    assert first.from_.uri == AOR
    assert first.from_.tag is not None
    assert first.contacts == [CONTACT]
    assert first.expires == 3600
    assert first.top_via.transport == "UDP"
    assert first.top_via.rport == (True, None)
    assert first.headers.get("Authorization") is None

    challenge = registrar.handle(first, T0)
    assert challenge.status == 401
    second = client.on_response(challenge, T0 + 0.1)
    assert second is not None
    # The retry keeps the Call-ID, takes the next CSeq and is a new transaction.
    assert second.call_id == first.call_id == CALL_ID
    assert (first.cseq.seq, second.cseq.seq) == (1, 2)
    assert second.top_via.branch != first.top_via.branch
    assert second.from_.tag == first.from_.tag
    authorization = second.headers.get("Authorization")
    assert authorization is not None
    assert 'username="trunk1"' in authorization
    assert f'realm="{REALM}"' in authorization
    assert PASSWORD not in second.to_bytes().decode()

    assert client.on_response(registrar.handle(second, T0 + 0.1), T0 + 0.2) is None
    assert state(client) is RegistrationState.REGISTERED
    assert client.last_error is None
    # Counted from when the accepted REGISTER left, and refreshed at 80 %.
    assert client.registered_until == T0 + 0.1 + 3600
    assert client.next_timer() == pytest.approx(T0 + 0.1 + 2880)


def test_proxy_challenge_gets_proxy_authorization() -> None:
    client = make_client()
    registrar = FakeRegistrar(proxy=True)
    sent = exchange(client, registrar, client.start(T0), T0)
    assert state(client) is RegistrationState.REGISTERED
    assert sent[1].headers.get("Proxy-Authorization") is not None
    assert sent[1].headers.get("Authorization") is None


def test_refresh_at_80_percent_of_the_granted_time() -> None:
    client = make_client(expires=3600)
    registrar = FakeRegistrar(max_expires=600)  # grants less than asked
    register(client, registrar)
    assert client.registered_until == T0 + 600
    due = client.next_timer()
    assert due is not None
    assert due == pytest.approx(T0 + 480)
    assert client.on_timer(due - 1) is None
    refresh = client.on_timer(due)
    assert refresh is not None
    assert client.on_timer(due) is None  # one at a time
    assert client.next_timer() is None
    # The binding still holds while the refresh is on its way.
    assert state(client) is RegistrationState.REGISTERED
    assert refresh.call_id == CALL_ID
    assert refresh.cseq.seq == 3  # REGISTER, REGISTER with credentials, now this
    assert refresh.expires == 3600  # asks again for what it wants
    exchange(client, registrar, refresh, due)
    assert state(client) is RegistrationState.REGISTERED
    assert client.registered_until == pytest.approx(due + 600)
    assert [r.cseq.seq for r in registrar.requests] == [1, 2, 3, 4]
    assert bound(registrar) == pytest.approx(due + 600)


@pytest.mark.parametrize(
    ("headers", "granted"),
    [
        ([("Contact", f"{CONTACT};expires=120"), ("Expires", "300")], 120),
        (
            [
                ("Contact", "<sip:someone-else@192.0.2.9>;expires=50"),
                ("Contact", "<sip:another@192.0.2.10>;expires=60"),
                ("Expires", "300"),
            ],
            300,
        ),
        ([("Contact", "<sip:trunk1@203.0.113.1:40000>;expires=90")], 90),  # rewritten by NAT
        ([("Expires", "300")], 300),
        ([], 3600),  # nothing said: what was asked for
    ],
)
def test_granted_time(headers: list[tuple[str, str]], granted: int) -> None:
    client = make_client()
    request = client.start(T0)
    assert client.on_response(make_response(request, 200, headers=headers), T0) is None
    assert client.registered_until == T0 + granted


def test_a_grant_of_nothing_is_a_failure() -> None:
    client = make_client()
    request = client.start(T0)
    client.on_response(make_response(request, 200, headers=[("Expires", "0")]), T0)
    assert state(client) is RegistrationState.FAILED
    assert client.last_error is not None
    assert "granted no time" in client.last_error


# --- 423 ------------------------------------------------------------------------------


def test_423_retries_with_min_expires() -> None:
    client = make_client(expires=300)
    registrar = FakeRegistrar(min_expires=1800)
    sent = exchange(client, registrar, client.start(T0), T0)
    assert state(client) is RegistrationState.REGISTERED
    assert [r.expires for r in sent] == [300, 300, 1800, 1800]
    assert [r.cseq.seq for r in sent] == [1, 2, 3, 4]
    assert client.expires == 1800
    assert client.registered_until == T0 + 1800
    # Refreshes keep asking for the raised time.
    due = client.next_timer()
    assert due is not None
    refresh = client.on_timer(due)
    assert refresh is not None
    assert refresh.expires == 1800


@pytest.mark.parametrize("min_expires", [None, "abc", "300", "100"])
def test_423_without_a_usable_minimum_fails(min_expires: str | None) -> None:
    client = make_client(expires=300)
    request = client.start(T0)
    headers = [] if min_expires is None else [("Min-Expires", min_expires)]
    assert client.on_response(make_response(request, 423, headers=headers), T0) is None
    assert state(client) is RegistrationState.FAILED
    assert client.last_error is not None
    assert "Min-Expires" in client.last_error


# --- failures and backoff -------------------------------------------------------------


def test_failures_back_off_doubling_to_ten_minutes() -> None:
    client = make_client()
    now = T0
    request = client.start(now)
    delays = []
    for _ in range(7):
        assert client.on_response(make_response(request, 503), now) is None
        assert state(client) is RegistrationState.FAILED
        assert client.registered_until is None
        due = client.next_timer()
        assert due is not None
        delays.append(due - now)
        assert client.on_timer(due - 0.5) is None
        now = due
        retry = client.on_timer(now)
        assert retry is not None
        assert state(client) is RegistrationState.REGISTERING
        request = retry
    assert delays == [30, 60, 120, 240, 480, 600, 600]
    assert (FIRST_BACKOFF, MAX_BACKOFF) == (30, 600)
    # Success resets the backoff.
    client.on_response(make_response(request, 200), now)
    assert state(client) is RegistrationState.REGISTERED
    due = client.next_timer()
    assert due is not None
    refresh = client.on_timer(due)
    assert refresh is not None
    client.on_response(make_response(refresh, 500), due)
    assert state(client) is RegistrationState.FAILED
    assert client.next_timer() == due + 30


def test_retry_after_is_honoured() -> None:
    client = make_client()
    request = client.start(T0)
    client.on_response(make_response(request, 503, headers=[("Retry-After", "120 (busy)")]), T0)
    assert client.next_timer() == T0 + 120
    assert client.last_error == "the registrar answered 503 Service Unavailable"


def test_timeout_fails_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    client = make_client()
    client.start(T0)
    with caplog.at_level(logging.WARNING, logger="teleoffice.sip.registration_client"):
        client.on_timeout(T0 + 32)
    assert state(client) is RegistrationState.FAILED
    assert client.next_timer() == T0 + 32 + 30
    assert client.last_error == "no answer from the registrar at udp 192.0.2.50:5060"
    assert "no answer from the registrar" in caplog.text
    client.on_timeout(T0 + 40)  # nothing outstanding: nothing happens
    assert client.next_timer() == T0 + 32 + 30


def test_refresh_failure_drops_the_registration() -> None:
    client = make_client()
    registrar = FakeRegistrar()
    register(client, registrar)
    due = client.next_timer()
    assert due is not None
    client.on_timer(due)
    client.on_timeout(due + 32)
    assert state(client) is RegistrationState.FAILED
    assert client.registered_until is None
    retry = client.on_timer(due + 32 + 30)
    assert retry is not None
    exchange(client, registrar, retry, due + 62)
    assert state(client) is RegistrationState.REGISTERED


# --- authentication failures ----------------------------------------------------------


def test_wrong_realm_is_refused_with_a_clear_log_line(caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(ha1_for=stored_ha1(realm="sip.provider.example"))
    registrar = FakeRegistrar(realm="provider.example")
    with caplog.at_level(logging.WARNING, logger="teleoffice.sip.registration_client"):
        sent = exchange(client, registrar, client.start(T0), T0)
    assert len(sent) == 1  # nothing sent with credentials it cannot compute
    assert state(client) is RegistrationState.FAILED
    assert client.next_timer() == T0 + 30
    assert client.last_error is not None
    assert "realm 'provider.example'" in client.last_error
    assert "no credentials are stored for that realm" in client.last_error
    assert "realm 'provider.example'" in caplog.text


def test_wrong_password_fails_after_one_more_try() -> None:
    client = make_client(ha1_for=stored_ha1(password="wrong"))
    registrar = FakeRegistrar()  # answers a bad response with a fresh nonce
    sent = exchange(client, registrar, client.start(T0), T0)
    assert [r.headers.get("Authorization") is not None for r in sent] == [False, True, True]
    assert state(client) is RegistrationState.FAILED
    assert client.last_error is not None
    assert "refused the credentials of 'trunk1'" in client.last_error


def challenge_response(request: Request, nonce: str, *, stale: bool = False) -> Response:
    value = f'Digest realm="{REALM}", nonce="{nonce}", qop="auth", algorithm=MD5'
    if stale:
        value += ", stale=true"
    return make_response(request, 401, headers=[("WWW-Authenticate", value)])


def test_the_same_nonce_twice_is_a_refusal() -> None:
    client = make_client()
    first = client.start(T0)
    second = client.on_response(challenge_response(first, "n1"), T0)
    assert second is not None
    assert client.on_response(challenge_response(second, "n1"), T0) is None
    assert state(client) is RegistrationState.FAILED


def test_a_stale_nonce_is_answered_again() -> None:
    client = make_client()
    first = client.start(T0)
    second = client.on_response(challenge_response(first, "n1"), T0)
    assert second is not None
    third = client.on_response(challenge_response(second, "n1", stale=True), T0)
    assert third is not None
    assert 'nonce="n1"' in (third.headers.get("Authorization") or "")
    # ...but not forever.
    assert client.on_response(challenge_response(third, "n2", stale=True), T0) is None
    assert state(client) is RegistrationState.FAILED


def test_a_challenge_without_credentials_fails() -> None:
    client = make_client(username=None)
    first = client.start(T0)
    assert client.on_response(challenge_response(first, "n1"), T0) is None
    assert state(client) is RegistrationState.FAILED
    assert client.last_error == "the registrar asks for credentials and the trunk has none"


def test_an_unusable_challenge_fails() -> None:
    client = make_client()
    first = client.start(T0)
    basic = make_response(first, 401, headers=[("WWW-Authenticate", 'Basic realm="x"')])
    assert client.on_response(basic, T0) is None
    assert state(client) is RegistrationState.FAILED
    assert client.last_error is not None
    assert "no usable Digest challenge" in client.last_error


# --- un-registering -------------------------------------------------------------------


def test_stop_unregisters_our_contact() -> None:
    client = make_client()
    registrar = FakeRegistrar()
    register(client, registrar)
    assert bound(registrar) is not None
    bye = client.stop(T0 + 10)
    assert bye is not None
    assert state(client) is RegistrationState.UNREGISTERED
    assert client.registered_until is None
    assert client.next_timer() is None
    assert bye.expires == 0
    assert bye.contacts == [CONTACT]  # our binding only, never '*'
    assert bye.call_id == CALL_ID
    assert bye.cseq.seq == 3
    sent = exchange(client, registrar, bye, T0 + 10)
    assert len(sent) == 2  # the un-REGISTER is challenged as well
    assert sent[1].expires == 0
    assert bound(registrar) is None
    assert state(client) is RegistrationState.UNREGISTERED
    assert client.next_timer() is None
    assert client.stop(T0 + 20) is None  # nothing left to remove


def test_stop_while_registering_ignores_the_late_answer() -> None:
    client = make_client()
    first = client.start(T0)
    bye = client.stop(T0 + 1)
    assert bye is not None
    assert bye.cseq.seq == 2  # orders after the REGISTER at the registrar
    assert client.on_response(make_response(first, 200), T0 + 2) is None
    assert state(client) is RegistrationState.UNREGISTERED
    assert client.on_response(make_response(bye, 200), T0 + 2) is None
    assert state(client) is RegistrationState.UNREGISTERED


def test_failed_unregister_just_stops() -> None:
    client = make_client()
    request = client.start(T0)
    client.on_response(make_response(request, 200), T0)
    bye = client.stop(T0 + 1)
    assert bye is not None
    client.on_response(make_response(bye, 500), T0 + 1)
    assert state(client) is RegistrationState.UNREGISTERED
    assert client.next_timer() is None
    assert client.last_error == "the registrar answered 500 Server Internal Error"


def test_stop_when_never_started_or_failed_sends_nothing() -> None:
    client = make_client()
    assert client.stop(T0) is None
    request = client.start(T0)
    client.on_response(make_response(request, 403), T0)
    assert client.stop(T0 + 1) is None
    assert client.next_timer() is None
    assert state(client) is RegistrationState.UNREGISTERED


# --- matching and misuse --------------------------------------------------------------


def test_responses_that_do_not_answer_the_outstanding_request_are_ignored() -> None:
    client = make_client()
    request = client.start(T0)
    assert client.on_response(make_response(request, 100), T0) is None
    assert client.on_response(make_response(request, 180), T0) is None
    other_call = make_response(request, 200)
    other_call.headers.set("Call-ID", "someone-else")
    other_call.invalidate()
    assert client.on_response(other_call, T0) is None
    old = make_response(request, 200)
    old.headers.set("CSeq", "0 REGISTER")
    old.invalidate()
    assert client.on_response(old, T0) is None
    broken = make_response(request, 200)
    broken.headers.set("CSeq", "garbage")
    broken.invalidate()
    assert client.on_response(broken, T0) is None
    assert state(client) is RegistrationState.REGISTERING
    client.on_response(make_response(request, 200), T0)
    assert state(client) is RegistrationState.REGISTERED
    assert client.on_response(make_response(request, 200), T0) is None  # a retransmission


def test_misuse_is_refused() -> None:
    client = make_client()
    client.start(T0)
    with pytest.raises(LocalProtocolError, match="already running"):
        client.start(T0)
    for expires in (0, -1, 2**32):
        with pytest.raises(ValueError, match="expires"):
            make_client(expires=expires)


def test_contact_expires_parameter_is_dropped() -> None:
    client = make_client(contact=parse_name_addr("<sip:trunk1@198.51.100.7:5070>;expires=10"))
    request = client.start(T0)
    assert request.headers.get_all("Contact") == ["<sip:trunk1@198.51.100.7:5070>"]
    assert request.expires == 3600


def test_start_again_after_a_failure() -> None:
    client = make_client()
    request = client.start(T0)
    client.on_response(make_response(request, 403), T0)
    assert state(client) is RegistrationState.FAILED
    restart = client.start(T0 + 5)
    assert state(client) is RegistrationState.REGISTERING
    assert restart.cseq.seq == 2
    exchange(client, FakeRegistrar(), restart, T0 + 5)
    assert state(client) is RegistrationState.REGISTERED
