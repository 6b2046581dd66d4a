"""Forwarding and do not disturb with real phones (baresip)."""

from __future__ import annotations

import pytest

from tests.e2e.calls_kit import CallLab, event_reason, status_in, wait_for_log

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
BOB = ("202", "secret202")
CAROL = ("203", "secret203")
ADD_CAROL = ["user", "add", "carol", "--extension", "203", "--sip-password", "secret203"]


def test_forward_always_reaches_the_target_and_never_rings_the_user(lab: CallLab) -> None:
    server = lab.server(setup=[ADD_CAROL, ["user", "set", "bob", "--forward-always", "203"]])
    alice, bob, carol = lab.phone(), lab.phone(), lab.phone()
    alice.register(*ALICE, server.sip_port)
    bob.register(*BOB, server.sip_port, answermode="manual")
    carol.register(*CAROL, server.sip_port)

    alice.dial("202", server.sip_port)
    assert alice.wait_for("CALL_ESTABLISHED", 10) is not None, alice.call_events()
    assert carol.wait_for("CALL_ESTABLISHED", 10) is not None, carol.call_events()
    assert "CALL_INCOMING" not in bob.call_events(), bob.call_events()
    alice.command("hangup")
    assert carol.wait_for("CALL_CLOSED", 10) is not None, carol.call_events()

    lab.assert_idle(server)
    [call] = wait_for_log(server, 1)
    assert call.outcome.startswith("answered"), call
    assert call.callee_number == "202", call


def test_do_not_disturb_gives_the_caller_busy(lab: CallLab) -> None:
    server = lab.server(setup=[["user", "set", "bob", "--dnd"]])
    alice, bob = lab.phone(), lab.phone()
    alice.register(*ALICE, server.sip_port)
    bob.register(*BOB, server.sip_port, answermode="manual")

    alice.dial("202", server.sip_port)
    closed = alice.wait_for("CALL_CLOSED", 10)
    assert closed is not None, alice.call_events()
    assert status_in(event_reason(closed)) == 486, closed
    assert "CALL_INCOMING" not in bob.call_events(), bob.call_events()
    lab.assert_idle(server)
