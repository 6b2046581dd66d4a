"""Calls through teleoffice with sipp playing the provider behind a trunk and phones
whose answers a test must control (busy, ringing forever, hold by re-INVITE).

Every test starts its own server, checks afterwards that no call, leg, dialog or
media port is left, and leaves the server to the module's `drainer`, which checks
that its transactions run out too (seconds with the lab's linger cap; up to 32 s
when a peer went quiet; paid once per module).
"""

from __future__ import annotations

import hashlib
import time

import pytest

from teleoffice.bench.processes import LOOPBACK, free_port
from tests.e2e.calls_kit import (
    CallLab,
    LoggedCall,
    received,
    statuses,
    wait_for_log,
)
from tests.e2e.harness import Server, parse_challenge, parse_message

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
BOB = ("202", "secret202")
OUTSIDE_NUMBER = "5550100"  # the company number presented on calls out
DIALLED = "95551234"  # prefix 9, then the provider's number
PROVIDER_NUMBER = "5551234"
DIRECTIONS = ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")  # RFC 3264 section 5.1


def trunk_add(port: int, *extra: str) -> list[str]:
    return [
        "trunk", "add", "prov",
        "--host", LOOPBACK,
        "--port", str(port),
        "--prefix", "9",
        "--outside-number", OUTSIDE_NUMBER,
        "--pai",
        *extra,
    ]  # fmt: skip


def audio_port(sdp: bytes) -> int:
    for line in sdp.decode(errors="replace").splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise AssertionError(f"no m=audio line in {sdp!r}")


def rtp_range(server: Server) -> range:
    low, high = (int(server.env[f"TELEOFFICE_RTP_PORT_{end}"]) for end in ("MIN", "MAX"))
    return range(low, high + 1)


def only_call(rows: list[LoggedCall]) -> LoggedCall:
    assert len(rows) == 1, rows
    return rows[0]


# --- (a), (b): out through the trunk ---------------------------------------------------


def test_phone_calls_out_through_the_trunk(lab: CallLab) -> None:
    trunk_port = free_port()
    server = lab.server(setup=[trunk_add(trunk_port)])
    provider = lab.sipp("call_provider", server, port=trunk_port, duration_ms=2000).start()
    alice = lab.phone()
    alice.register(*ALICE, server.sip_port)

    alice.dial(DIALLED, server.sip_port)
    assert alice.wait_for("CALL_ESTABLISHED", 10) is not None, alice.call_events()
    closed = alice.wait_for("CALL_CLOSED", 10)
    assert closed is not None, alice.call_events()
    result = provider.wait(10)
    assert result.returncode == 0, result.describe()
    assert result.successful == 1, result.describe()

    (raw,) = received(result, "INVITE ")
    invite = parse_message(raw.encode())
    # Request-URI: the provider's number without the prefix, at the trunk's address.
    assert invite.start_line == f"INVITE sip:{PROVIDER_NUMBER}@{LOOPBACK}:{trunk_port} SIP/2.0"
    assert f"sip:{PROVIDER_NUMBER}@" in (invite.header("to") or ""), raw
    assert f"sip:{OUTSIDE_NUMBER}@" in (invite.header("from") or ""), raw
    assert f"sip:{OUTSIDE_NUMBER}@" in (invite.header("p-asserted-identity") or ""), raw
    # The provider is sent teleoffice's media address, never the phone's.
    assert audio_port(invite.body) in rtp_range(server), invite.text()

    lab.assert_idle(server)
    call = only_call(wait_for_log(server, 1))
    assert (call.direction, call.caller_number, call.outcome) == ("outbound", "201", "answered")


def test_trunk_challenge_is_answered_with_digest(lab: CallLab) -> None:
    trunk_port = free_port()
    credentials = ("--username", "acct", "--password", "secret", "--realm", "provider.test")
    server = lab.server(setup=[trunk_add(trunk_port, *credentials)])
    provider = lab.sipp("call_provider_auth", server, port=trunk_port, duration_ms=2000).start()
    alice = lab.phone()
    alice.register(*ALICE, server.sip_port)

    alice.dial(DIALLED, server.sip_port)
    assert alice.wait_for("CALL_ESTABLISHED", 10) is not None, alice.call_events()
    assert alice.wait_for("CALL_CLOSED", 10) is not None, alice.call_events()
    result = provider.wait(10)
    assert result.returncode == 0, result.describe()

    first, second = (parse_message(t.encode()) for t in received(result, "INVITE "))
    assert first.header("proxy-authorization") is None, first.text()
    assert first.header("call-id") == second.header("call-id"), result.describe()
    cseq = [int((m.header("cseq") or "0").split()[0]) for m in (first, second)]
    assert cseq[1] > cseq[0], cseq
    # The ACK of the 407 belongs to the first INVITE's transaction (same branch).
    (ack,) = received(result, "ACK sip:" + PROVIDER_NUMBER)
    assert parse_message(ack.encode()).header("via") == first.header("via"), ack

    value = second.header("proxy-authorization")
    assert value is not None, second.text()
    answer = parse_challenge(value)
    uri = second.start_line.split()[1]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    # No qop was offered, so the response is fully determined (RFC 2617 section 3.2.2.1).
    ha1 = md5("acct:provider.test:secret")
    expected = md5(f"{ha1}:e2e0fixed0nonce0407:{md5(f'INVITE:{uri}')}")
    assert answer.get("username") == "acct", value
    assert answer.get("realm") == "provider.test", value
    assert answer.get("uri") == uri, value
    assert answer.get("response") == expected, value

    lab.assert_idle(server)
    call = only_call(wait_for_log(server, 1))
    assert (call.direction, call.outcome) == ("outbound", "answered")


# --- (c): in through the trunk -----------------------------------------------------------


def test_trunk_call_reaches_the_extension_and_a_did(lab: CallLab) -> None:
    trunk_port = free_port()
    server = lab.server(
        setup=[
            ["trunk", "add", "prov", "--host", LOOPBACK, "--port", str(trunk_port)],
            ["did", "add", "5550202", "--user", "bob"],
        ]
    )
    bob = lab.phone()
    bob.register(*BOB, server.sip_port)

    for number in ("202", "5550202"):
        mark = bob.mark()
        result = lab.sipp(
            "call_trunk_uac",
            server,
            port=trunk_port,
            service=number,
            keys={"caller": "5557777"},
            duration_ms=2000,
        )
        outcome = result.start().wait()
        assert outcome.returncode == 0, outcome.describe()
        assert statuses(outcome)[-1] == 200, outcome.describe()
        established = bob.wait_for("CALL_ESTABLISHED", 1, after=mark)
        assert established is not None, bob.call_events()
        # Bob sees the provider's caller, not teleoffice.
        assert "5557777" in str(established.get("peeruri")), established
        assert bob.wait_for("CALL_CLOSED", 5, after=mark) is not None, bob.call_events()

    lab.assert_idle(server)
    rows = wait_for_log(server, 2)
    assert sorted((r.direction, r.caller_number, r.callee_number, r.outcome) for r in rows) == [
        ("inbound", "5557777", "202", "answered"),
        ("inbound", "5557777", "5550202", "answered"),
    ], rows


# --- (d), (e): busy and unanswered --------------------------------------------------------


def test_busy_phone_gives_the_caller_486(lab: CallLab) -> None:
    server = lab.server()
    bob_port = free_port()
    lab.register_sipp(server, bob_port, *BOB)
    bob = lab.sipp("call_uas_busy", server, port=bob_port, service="202").start()

    caller = lab.sipp("call_uac_refused", server, auth=ALICE, keys={"callee": "202"})
    result = caller.start().wait()
    assert result.returncode == 0, result.describe()
    assert statuses(result)[-1] == 486, result.describe()
    bob_result = bob.wait(10)
    assert bob_result.returncode == 0, bob_result.describe()

    lab.assert_idle(server)
    call = only_call(wait_for_log(server, 1))
    assert (call.direction, call.callee_number, call.outcome) == ("internal", "202", "busy (486)")


def test_unanswered_call_is_cancelled_and_the_caller_gets_480(lab: CallLab) -> None:
    server = lab.server(setup=[["user", "set", "bob", "--no-answer-time", "3"]])
    bob_port = free_port()
    lab.register_sipp(server, bob_port, *BOB)
    bob = lab.sipp("call_uas_ring", server, port=bob_port, service="202").start()

    caller = lab.sipp("call_uac_refused", server, auth=ALICE, keys={"callee": "202"})
    started = time.monotonic()
    result = caller.start().wait()
    took = time.monotonic() - started
    assert result.returncode == 0, result.describe()
    assert statuses(result)[-1] == 480, result.describe()
    assert 180 in statuses(result), result.describe()  # the caller heard it ring
    assert 2.5 <= took <= 10, f"no-answer time 3 s, the call took {took:.1f} s"

    bob_result = bob.wait(10)
    assert bob_result.returncode == 0, bob_result.describe()
    assert len(received(bob_result, "CANCEL ")) >= 1, bob_result.describe()

    lab.assert_idle(server)
    call = only_call(wait_for_log(server, 1))
    assert (call.callee_number, call.outcome) == ("202", "no-answer (480)")


# --- (f): hold and resume ------------------------------------------------------------------


def test_hold_and_resume_by_reinvite(lab: CallLab) -> None:
    server = lab.server()
    bob = lab.phone()
    bob.register(*BOB, server.sip_port)
    alice_port = free_port()
    lab.register_sipp(server, alice_port, *ALICE)

    caller = lab.sipp("call_uac_hold", server, port=alice_port, auth=ALICE, keys={"callee": "202"})
    result = caller.start().wait()
    assert result.returncode == 0, result.describe()
    assert result.successful == 1, result.describe()
    # The 200s of the INVITE and the two re-INVITEs, by CSeq (a retransmission once).
    by_cseq = {
        m.header("cseq"): m
        for m in result.responses
        if m.status == 200 and (m.header("cseq") or "").endswith("INVITE")
    }
    answers = [by_cseq[key] for key in sorted(by_cseq, key=lambda c: int((c or "0").split()[0]))]
    assert len(answers) == 3, result.describe()
    directions = [
        next((line for line in m.body.decode().splitlines() if line.strip() in DIRECTIONS), None)
        for m in answers
    ]
    assert directions[1] == "a=recvonly", answers[1].text()
    assert directions[2] == "a=sendrecv", answers[2].text()
    # Bob's phone saw one call from start to end: the re-INVITEs did not end it.
    assert bob.wait_for("CALL_CLOSED", 5) is not None, bob.call_events()
    assert bob.call_events().count("CALL_ESTABLISHED") == 1, bob.call_events()

    lab.assert_idle(server)
    call = only_call(wait_for_log(server, 1))
    assert (call.caller_number, call.callee_number, call.outcome) == ("201", "202", "answered")
