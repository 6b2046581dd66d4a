"""The SIP service with its password-guessing guard: bytes in, bytes out, fake clock."""

from __future__ import annotations

import logging
import re

import pytest

from teleoffice.server.b2bua import TrunkPeer
from teleoffice.server.guard import AuthGuard, GuardLimits
from teleoffice.server.sip_service import SipService
from teleoffice.sip.digest import build_authorization
from teleoffice.sip.transaction import Address
from tests.unit.sipkit import PHONE, exchange, make_service, register, register_bytes

NOW = 1_000_000.0
ATTACKER = Address("UDP", "127.0.0.2", 5070)
PASSWORD = "7391"


def service(**limits: float) -> SipService:
    base = {"source_limit": 3, "account_limit": 10, "window": 60.0, "block_time": 900.0}
    base.update(limits)
    return make_service({"201": PASSWORD, "202": "8402"}, guard=AuthGuard(GuardLimits(**base)))  # type: ignore[arg-type]


def wrong_register(
    svc: SipService, now: float, source: Address, user: str = "201", guess: str = "0000"
) -> tuple[list[int], str]:
    """One guess as svcrack makes it: get a challenge, answer it; the statuses seen
    and the Authorization value sent."""
    first = exchange(svc, register_bytes(user), now, source)
    if not first:
        return [], ""
    auth = build_authorization(
        challenge=first[0].headers.get_all("WWW-Authenticate")[0],
        method="REGISTER",
        uri="sip:127.0.0.1",
        username=user,
        password=guess,
    )
    second = exchange(svc, register_bytes(user, authorization=auth), now, source)
    return [r.status for r in first + second], auth


def options_from(source: Address, user: str = "201") -> bytes:
    return (
        f"OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt-guard\r\n"
        f"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\n"
        "Call-ID: opt-guard\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def invite_bytes(user: str = "202") -> bytes:
    return (
        f"INVITE sip:{user}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinv-guard\r\n"
        f"From: <sip:201@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\n"
        "Call-ID: inv-guard\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        "Contact: <sip:201@127.0.0.2:5070>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_guessing_address_is_silenced_and_the_real_phone_keeps_working() -> None:
    svc = service()
    for i in range(3):
        statuses, _ = wrong_register(svc, NOW + i, ATTACKER, guess=f"{1000 + i}")
        # The request that reaches the limit is still answered like any other.
        assert statuses == [401, 401]
    assert svc.guard.blocked(ATTACKER.host, NOW + 3)
    # Now every request from there meets silence, whatever the method...
    assert exchange(svc, register_bytes("201"), NOW + 4, ATTACKER) == []
    assert exchange(svc, options_from(ATTACKER), NOW + 4, ATTACKER) == []
    assert exchange(svc, invite_bytes(), NOW + 4, ATTACKER) == []
    # ...even the right password, so a late lucky guess cannot be confirmed.
    assert wrong_register(svc, NOW + 5, ATTACKER, guess=PASSWORD) == ([], "")
    assert svc.counters.blocked_dropped == 4
    assert svc.counters.auth_failures == 3
    # The same account from the phone's own address registers normally.
    assert register(svc, NOW + 6, password=PASSWORD, source=PHONE).status == 200
    assert svc.registrar.count() == 1
    # After the block the address is answered again (with a challenge).
    [answer] = exchange(svc, register_bytes("201"), NOW + 2 + 900, ATTACKER)
    assert answer.status == 401


def test_unknown_accounts_count_like_known_ones() -> None:
    svc = service()
    for user in ("999", "998", "997"):
        wrong_register(svc, NOW, ATTACKER, user=user)
    assert svc.guard.blocked(ATTACKER.host, NOW)


def test_malformed_credentials_count_as_failures() -> None:
    svc = service()
    for _ in range(3):
        [answer] = exchange(
            svc,
            register_bytes("201", authorization='Digest username="201", nonce="x"'),
            NOW,
            ATTACKER,
        )
        assert answer.status == 401
    assert svc.guard.blocked(ATTACKER.host, NOW)


def test_stale_nonce_and_missing_credentials_are_not_failures() -> None:
    svc = service()
    for _ in range(5):
        exchange(svc, register_bytes("201"), NOW, PHONE)
    [challenge] = exchange(svc, register_bytes("201"), NOW, PHONE)
    auth = build_authorization(
        challenge=challenge.headers.get_all("WWW-Authenticate")[0],
        method="REGISTER",
        uri="sip:127.0.0.1",
        username="201",
        password=PASSWORD,
    )
    [stale] = exchange(svc, register_bytes("201", authorization=auth), NOW + 301, PHONE)
    assert stale.status == 401
    assert svc.guard.counters.failures == 0
    assert not svc.guard.blocked(PHONE.host, NOW + 301)


def test_distributed_attack_on_an_account_spares_its_phone() -> None:
    svc = service(source_limit=100, account_limit=4)
    assert register(svc, NOW, password=PASSWORD, source=PHONE).status == 200
    attackers = [Address("UDP", f"127.0.1.{i}", 5070) for i in range(4)]
    for i, address in enumerate(attackers):
        wrong_register(svc, NOW + i, address)
    assert svc.guard.under_attack("201", NOW + 4)
    # The address that raised the alarm is blocked; a new attacker is blocked after
    # its first failure.
    assert svc.guard.blocked(attackers[-1].host, NOW + 4)
    newcomer = Address("UDP", "127.0.1.99", 5070)
    wrong_register(svc, NOW + 5, newcomer)
    assert svc.guard.blocked(newcomer.host, NOW + 5)
    # The phone re-registers: the account is not locked.
    assert register(svc, NOW + 6, password=PASSWORD, source=PHONE).status == 200
    # Even a phone at a new address with the right password gets in.
    elsewhere = Address("UDP", "127.0.2.1", 5062)
    assert register(svc, NOW + 7, password=PASSWORD, source=elsewhere).status == 200


def test_a_trunk_address_is_never_blocked() -> None:
    trunk = TrunkPeer("prov", "127.0.0.9", 5060)
    svc = make_service(
        {"201": PASSWORD},
        trunks={"prov": trunk},
        guard=AuthGuard(GuardLimits(source_limit=1)),
    )
    at_trunk = Address("UDP", "127.0.0.9", 5060)
    for _ in range(3):
        statuses, _ = wrong_register(svc, NOW, at_trunk)
        assert statuses == [401, 401]
    assert not svc.guard.blocked(at_trunk.host, NOW)


def test_responses_from_a_blocked_address_are_not_dropped() -> None:
    svc = service(source_limit=1)
    wrong_register(svc, NOW, ATTACKER)
    assert svc.guard.blocked(ATTACKER.host, NOW)
    stray = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnobody\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    assert exchange(svc, stray, NOW, ATTACKER) == []
    assert svc.counters.blocked_dropped == 0


def test_security_log_names_source_account_and_counts_but_no_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = service()
    caplog.set_level(logging.INFO, logger="teleoffice.security")
    sent: list[str] = []
    for i in range(3):
        _, auth = wrong_register(svc, NOW + i, ATTACKER, guess=f"{4000 + i}")
        sent.append(auth)
    records = [r for r in caplog.records if r.name == "teleoffice.security"]
    text = "\n".join(r.getMessage() for r in records)
    assert "source=127.0.0.2:5070" in text
    assert "account='201'" in text
    assert "source_failures=3/3" in text
    blocks = [r for r in records if r.levelno == logging.WARNING and "blocked" in r.getMessage()]
    assert len(blocks) == 1
    assert "reason=source" in blocks[0].getMessage()
    # Nothing of the credentials: not the header, the response, the nonce, the
    # cnonce or the guessed passwords.
    for auth in sent:
        for secret in re.findall(r'(?:response|nonce|cnonce)="([^"]+)"', auth):
            assert secret not in caplog.text
    for guess in ("4000", "4001", "4002", PASSWORD):
        assert guess not in caplog.text
    assert "Digest" not in caplog.text
    assert "Authorization" not in caplog.text


def test_an_odd_account_name_is_quoted_and_cut(caplog: pytest.LogCaptureFixture) -> None:
    svc = service()
    caplog.set_level(logging.INFO, logger="teleoffice.security")
    [challenge] = exchange(svc, register_bytes("201"), NOW, ATTACKER)
    name = "evil\\\"'" + "y" * 200
    nonce = re.findall(r'nonce="([^"]+)"', challenge.headers.get_all("WWW-Authenticate")[0])[0]
    # By hand: a well-behaved client library refuses such a name.
    auth = (
        f'Digest username="{name}", realm="teleoffice", nonce="{nonce}", '
        f'uri="sip:127.0.0.1", response="{"0" * 32}"'
    )
    exchange(svc, register_bytes("201", authorization=auth), NOW, ATTACKER)
    [record] = [r for r in caplog.records if r.name == "teleoffice.security"]
    message = record.getMessage()
    # The name is quoted by repr() (the parser already refuses control characters
    # in header values, repr() would escape them too) and cut short.
    assert "account='evil\"\\'yyy" in message
    assert "y" * 100 not in message
    assert "..." in message


def test_metrics_counters_move() -> None:
    svc = service()
    for i in range(3):
        wrong_register(svc, NOW + i, ATTACKER)
    exchange(svc, options_from(ATTACKER), NOW + 4, ATTACKER)
    guard = svc.guard
    assert guard.counters.failures == 3
    assert guard.counters.blocks == 1
    assert guard.blocked_count(NOW + 4) == 1
    assert svc.counters.blocked_dropped == 1
    # Timers sweep expired state without a timer of their own.
    svc.handle_timers(NOW + 5000)
    assert guard.blocked_count(NOW + 5000) == 0
    assert len(guard._blocked) == 0
