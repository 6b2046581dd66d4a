"""Small helpers for driving the sans-IO SIP service in unit tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from teleoffice.calls.engine import CallEngine, Party, PhoneTarget
from teleoffice.calls.registrar import Registrar, RegistrarLimits
from teleoffice.calls.routing import TrunkView, UserView
from teleoffice.media.tones import Tone
from teleoffice.server.b2bua import B2bua, Side, TrunkPeer
from teleoffice.server.guard import AuthGuard
from teleoffice.server.sip_service import SipService
from teleoffice.sip.digest import Algorithm, DigestServer, build_authorization, compute_ha1
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.transaction import Address, TransactionLayer

REALM = "teleoffice"
PHONE = Address("UDP", "127.0.0.1", 5062)
_counter = itertools.count(1)


class FakeAccounts:
    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords
        # Per extension: forwarding and DND settings a test wants (UserView fields).
        self.settings: dict[str, dict[str, object]] = {}

    def ha1(self, account: str, algorithm: Algorithm) -> str | None:
        password = self.passwords.get(account)
        return None if password is None else compute_ha1(account, REALM, password, algorithm.base)

    # The call engine's DirectoryView: every account is a user of that extension.
    def user_by_number(self, number: str) -> UserView | None:
        if number not in self.passwords:
            return None
        view = UserView(f"user{number}", number, f"User {number}", no_answer_timeout=15)
        return replace(view, **self.settings.get(number, {}))  # type: ignore[arg-type]

    def trunks(self) -> list[TrunkView]:
        return [TrunkView("prov", "9", outside_number="5550100")]

    def identity(self, account: str) -> tuple[Party, str] | None:
        user = self.user_by_number(account)
        return None if user is None else (Party(user.extension, user.display_name), user.username)


class FakeMedia:
    """Stands in for a media session in the sans-IO tests: ports only."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.remote: dict[str, tuple[str | None, int | None]] = {}
        # What each side hears instead of the relay: (tone name, payload type).
        self.playing: dict[str, tuple[str, int]] = {}
        # Sides joined elsewhere (a telecommuter line) or to nothing (hold).
        self.joined: dict[str, tuple[FakeMedia, str] | None] = {}

    def local_port(self, side: Side) -> int:
        return self.base if side == "a" else self.base + 2

    def set_remote(self, side: Side, host: str | None, port: int | None) -> None:
        self.remote[side] = (host, port)

    def play_tone(self, side: Side, tone: Tone, payload_type: int) -> None:
        self.playing[side] = (tone.name, payload_type)

    def stop_play(self, side: Side) -> None:
        self.playing.pop(side, None)

    def join(self, side: Side, other: FakeMedia, other_side: Side) -> None:
        self.joined[side] = (other, other_side)

    def detach(self, side: Side) -> None:
        self.joined[side] = None


def make_service(
    passwords: dict[str, str] | None = None,
    limits: RegistrarLimits | None = None,
    trunks: dict[str, TrunkPeer] | None = None,
    guard: AuthGuard | None = None,
    settings: dict[str, dict[str, object]] | None = None,
    service_options: Mapping[str, Any] | None = None,
) -> SipService:
    """A service with fake accounts (`passwords`); `service_options` are more
    keyword arguments for SipService (message waiting providers, say)."""
    accounts = FakeAccounts(passwords if passwords is not None else {"201": "secret201"})
    accounts.settings = settings or {}
    registrar = Registrar(limits or RegistrarLimits())
    trunk_peers = trunks or {}

    def contacts(extension: str, now: float) -> list[PhoneTarget]:
        return [
            PhoneTarget(b.account, b.uri, b.transport, b.source_host, b.source_port)
            for b in registrar.lookup(extension, now)
        ]

    def trunk_at(address: Address) -> str | None:
        for peer in trunk_peers.values():
            if (peer.host, peer.port) == (address.host, address.port):
                return peer.name
        return None

    transactions = TransactionLayer()
    b2bua = B2bua(
        engine=CallEngine(accounts, contacts),
        transactions=transactions,
        local=Address("UDP", "127.0.0.1", 5060),
        domain="127.0.0.1",
        media_host="127.0.0.1",
        trunks=trunk_peers.get,
    )
    return SipService(
        registrar=registrar,
        digest=DigestServer(REALM, b"k" * 32, nonce_ttl=300.0),
        ha1_lookup=accounts.ha1,
        account_identity=accounts.identity,
        trunk_at=trunk_at,
        b2bua=b2bua,
        transactions=transactions,
        guard=guard,
        **(service_options or {}),
    )


def exchange(
    service: SipService, data: bytes, now: float, source: Address = PHONE
) -> list[Response]:
    service.receive(data, source, now)
    answers = []
    for raw, destination in service.outgoing():
        assert destination.host == source.host
        msg = parse_message(raw)
        assert isinstance(msg, Response)
        answers.append(msg)
    return answers


def split_sent(
    sent: list[tuple[bytes, Address]],
) -> tuple[list[Response], list[Request]]:
    """What went out, parsed: the responses, then the requests, each in order."""
    responses: list[Response] = []
    requests: list[Request] = []
    for raw, _ in sent:
        message = parse_message(raw)
        if isinstance(message, Response):
            responses.append(message)
        else:
            requests.append(message)
    return responses, requests


def flush(service: SipService) -> tuple[list[Response], list[Request]]:
    """Everything the service sent since the last call."""
    return split_sent(service.outgoing())


def send(
    service: SipService, data: bytes, now: float, source: Address = PHONE
) -> tuple[list[Response], list[Request]]:
    """`data` from `source`, and everything the service sent because of it."""
    service.receive(data, source, now)
    return flush(service)


def register_bytes(
    user: str = "201",
    *,
    contact: str | None = "<sip:201@127.0.0.1:5062>",
    expires: int | None = None,
    call_id: str = "reg-1",
    cseq: int | None = None,
    authorization: str | None = None,
    extra: str = "",
) -> bytes:
    branch = f"z9hG4bK{next(_counter)}"
    lines = [
        "REGISTER sip:127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@127.0.0.1>;tag=f{branch}",
        f"To: <sip:{user}@127.0.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq if cseq is not None else next(_counter)} REGISTER",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def register(
    service: SipService,
    now: float,
    *,
    user: str = "201",
    password: str = "secret201",
    source: Address = PHONE,
    **kwargs: object,
) -> Response:
    """REGISTER, answer the challenge, return the final response."""
    first = exchange(service, register_bytes(user, **kwargs), now, source)  # type: ignore[arg-type]
    assert [r.status for r in first] == [401]
    challenge = first[0].headers.get_all("WWW-Authenticate")[0]
    auth = build_authorization(
        challenge=challenge,
        method="REGISTER",
        uri="sip:127.0.0.1",
        username=user,
        password=password,
    )
    final = exchange(
        service,
        register_bytes(user, authorization=auth, **kwargs),  # type: ignore[arg-type]
        now,
        source,
    )
    assert len(final) == 1
    return final[0]
