"""Calls between real softphones (baresip 1.0) through teleoffice.

Each phone is a headless baresip driven over ctrl_tcp.  Audio is proven, not
assumed: every phone sends a tone of its own from a WAV file and records what it
hears (the `sndfile` module), and the recordings are measured (energy, Goertzel
power at each tone).  Every test starts its own server, checks that no call, leg,
dialog or media port is left afterwards, and leaves the server to the module's
`drainer`, which checks that its transactions run out too.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from teleoffice.bench.processes import wait_until
from tests.e2e.calls_kit import (
    CallLab,
    LoggedCall,
    Phone,
    assert_only_tone,
    event_reason,
    heard_tones,
    status_in,
    wait_for_log,
)
from tests.e2e.harness import Server, write_tone

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
BOB = ("202", "secret202")
ALICE_TONE = 600.0
BOB_TONE = 1000.0
TONES = (ALICE_TONE, BOB_TONE)


def registered(
    lab: CallLab, server: Server, account: tuple[str, str], *, answermode: str = "auto"
) -> Phone:
    phone = lab.phone()
    phone.register(*account, server.sip_port, answermode=answermode)
    return phone


def only_call(server: Server) -> LoggedCall:
    rows = wait_for_log(server, 1)
    assert len(rows) == 1, rows
    return rows[0]


def test_two_phones_hear_each_other(lab: CallLab, tmp_path: Path) -> None:
    server = lab.server()
    alice = lab.phone(audio_source=write_tone(tmp_path / "600.wav", ALICE_TONE, 10), record=True)
    bob = lab.phone(audio_source=write_tone(tmp_path / "1000.wav", BOB_TONE, 10), record=True)
    alice.register(*ALICE, server.sip_port)
    bob.register(*BOB, server.sip_port)

    alice.dial("202", server.sip_port)
    for phone in (alice, bob):
        assert phone.wait_for("CALL_ESTABLISHED", 10) is not None, phone.call_events()
    assert server.health()["media_sessions"] == 1, server.health()
    time.sleep(3.5)  # talk
    alice.command("hangup")
    for phone in (alice, bob):
        assert phone.wait_for("CALL_CLOSED", 5) is not None, phone.call_events()

    assert_only_tone(heard_tones(bob, TONES), ALICE_TONE, TONES)
    assert_only_tone(heard_tones(alice, TONES), BOB_TONE, TONES)
    lab.assert_idle(server)
    call = only_call(server)
    assert (call.caller_number, call.callee_number, call.outcome) == ("201", "202", "answered")


def test_call_forks_to_both_phones_and_the_first_answer_wins(lab: CallLab) -> None:
    server = lab.server()
    alice = registered(lab, server, ALICE)
    desk = registered(lab, server, BOB, answermode="manual")
    mobile = registered(lab, server, BOB, answermode="manual")
    assert wait_until(lambda: server.health()["registrations"] == 3, 5), server.health()

    alice.dial("202", server.sip_port)
    for phone in (desk, mobile):
        assert phone.wait_for("CALL_INCOMING", 10) is not None, phone.call_events()
    assert alice.wait_for("CALL_RINGING", 5) is not None, alice.call_events()

    desk.command("accept")
    assert desk.wait_for("CALL_ESTABLISHED", 5) is not None, desk.call_events()
    assert alice.wait_for("CALL_ESTABLISHED", 5) is not None, alice.call_events()
    # The other phone stops ringing and never joins the call.
    assert mobile.wait_for("CALL_CLOSED", 5) is not None, mobile.call_events()
    assert "CALL_ESTABLISHED" not in mobile.call_events(), mobile.call_events()
    time.sleep(1)
    assert "CALL_CLOSED" not in alice.call_events(), alice.call_events()
    health = server.health()
    assert (health["calls"], health["media_sessions"]) == (1, 1), health

    alice.command("hangup")
    assert desk.wait_for("CALL_CLOSED", 5) is not None, desk.call_events()
    lab.assert_idle(server)
    assert only_call(server).outcome == "answered"


def test_callee_hangs_up(lab: CallLab) -> None:
    server = lab.server()
    alice = registered(lab, server, ALICE)
    bob = registered(lab, server, BOB)

    alice.dial("202", server.sip_port)
    for phone in (alice, bob):
        assert phone.wait_for("CALL_ESTABLISHED", 10) is not None, phone.call_events()
    time.sleep(1)
    bob.command("hangup")
    assert bob.wait_for("CALL_CLOSED", 5) is not None, bob.call_events()
    assert alice.wait_for("CALL_CLOSED", 5) is not None, alice.call_events()

    lab.assert_idle(server)
    call = only_call(server)
    assert (call.caller_number, call.callee_number, call.outcome) == ("201", "202", "answered")


def test_caller_cancels_while_it_rings(lab: CallLab) -> None:
    server = lab.server()
    alice = registered(lab, server, ALICE)
    bob = registered(lab, server, BOB, answermode="manual")

    alice.dial("202", server.sip_port)
    assert bob.wait_for("CALL_INCOMING", 10) is not None, bob.call_events()
    assert alice.wait_for("CALL_RINGING", 5) is not None, alice.call_events()
    alice.command("hangup")
    assert alice.wait_for("CALL_CLOSED", 5) is not None, alice.call_events()
    assert bob.wait_for("CALL_CLOSED", 5) is not None, bob.call_events()
    assert "CALL_ESTABLISHED" not in bob.call_events(), bob.call_events()

    lab.assert_idle(server)
    call = only_call(server)
    assert (call.callee_number, call.outcome) == ("202", "cancelled (487)")


def test_unknown_number_is_not_found(lab: CallLab) -> None:
    server = lab.server()
    alice = registered(lab, server, ALICE)

    alice.dial("299", server.sip_port)
    closed = alice.wait_for("CALL_CLOSED", 10)
    assert closed is not None, alice.call_events()
    assert status_in(event_reason(closed)) == 404, closed
    assert "CALL_ESTABLISHED" not in alice.call_events(), alice.call_events()

    lab.assert_idle(server)
    call = only_call(server)
    assert (call.caller_number, call.callee_number, call.outcome) == (
        "201",
        "299",
        "not-found (404)",
    )
