"""Small helpers for driving the sans-IO SIP service in unit tests."""

from __future__ import annotations

import itertools

from teleoffice.calls.registrar import Registrar, RegistrarLimits
from teleoffice.server.sip_service import SipService
from teleoffice.sip.digest import Algorithm, DigestServer, build_authorization, compute_ha1
from teleoffice.sip.message import Response, parse_message
from teleoffice.sip.transaction import Address

REALM = "teleoffice"
PHONE = Address("UDP", "127.0.0.1", 5062)
_counter = itertools.count(1)


class FakeAccounts:
    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords

    def ha1(self, account: str, algorithm: Algorithm) -> str | None:
        password = self.passwords.get(account)
        return None if password is None else compute_ha1(account, REALM, password, algorithm.base)

    def exists(self, extension: str) -> bool:
        return extension in self.passwords


def make_service(
    passwords: dict[str, str] | None = None, limits: RegistrarLimits | None = None
) -> SipService:
    accounts = FakeAccounts(passwords if passwords is not None else {"201": "secret201"})
    return SipService(
        registrar=Registrar(limits or RegistrarLimits()),
        digest=DigestServer(REALM, b"k" * 32, nonce_ttl=300.0),
        ha1_lookup=accounts.ha1,
        user_exists=accounts.exists,
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
    **kwargs: object,
) -> Response:
    """REGISTER, answer the challenge, return the final response."""
    first = exchange(service, register_bytes(user, **kwargs), now)  # type: ignore[arg-type]
    assert [r.status for r in first] == [401]
    challenge = first[0].headers.get_all("WWW-Authenticate")[0]
    auth = build_authorization(
        challenge=challenge,
        method="REGISTER",
        uri="sip:127.0.0.1",
        username=user,
        password=password,
    )
    final = exchange(service, register_bytes(user, authorization=auth, **kwargs), now)  # type: ignore[arg-type]
    assert len(final) == 1
    return final[0]
