"""Toll fraud through real SIP (issue 9): nothing unauthenticated reaches a trunk,
calls from a trunk are not relayed to a trunk, and one user's outside calls at once
are limited (`max_outside_calls_per_user`), from a phone and from the portal."""

from __future__ import annotations

import time

import pytest

from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from tests.e2e.calls_kit import CallLab, received, statuses, wait_for_log
from tests.e2e.portal_kit import Listener, Portals, sipp_received_at

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
ALICE_PW = "alice-toll-pw"
OUTSIDE = "90301234567"  # an ordinary national number behind the "pstn" trunk (prefix 9)


def trunk(name: str, port: int, prefix: str) -> tuple[str, ...]:
    return ("trunk", "add", name, "--host", LOOPBACK, "--port", str(port), "--prefix", prefix)


def test_nothing_unauthenticated_and_no_trunk_call_reaches_a_trunk(lab: CallLab) -> None:
    pstn_port, carrier_port = free_port(), free_port()
    server = lab.server(setup=[trunk("pstn", pstn_port, "9"), trunk("carrier", carrier_port, "8")])
    pstn = Listener(pstn_port)
    try:
        # Without the password: challenged, and challenged again with a guess.
        guesser = lab.sipp(
            "toll_uac_bad_auth", server, auth=("201", "0000"), keys={"callee": OUTSIDE}
        )
        result = guesser.start().wait()
        assert result.returncode == 0, result.describe()
        assert statuses(result) == [401, 401], result.describe()
        # A provider's call in, to numbers behind either trunk: not relayed.
        for number in (OUTSIDE, "80301234567"):
            relay = lab.sipp(
                "tc_trunk_uac_refused",
                server,
                port=carrier_port,
                service=number,
                keys={"caller": "4917012345678"},
            )
            refused = relay.start().wait()
            assert refused.returncode == 0, refused.describe()
            assert statuses(refused)[-1] == 404, refused.describe()
            assert not received(refused, "INVITE"), refused.describe()  # not sent back to it
        assert pstn.nothing_within(1.0)
    finally:
        pstn.close()
    outcomes = [row.outcome for row in wait_for_log(server, 2)]
    assert sorted(outcomes) == ["not-found (404)", "not-found (404)"], outcomes
    lab.assert_idle(server)


def test_outside_calls_at_once_are_limited_per_user(lab: CallLab, portals: Portals) -> None:
    pstn_port = free_port()
    server = lab.server(
        env={"TELEOFFICE_MAX_OUTSIDE_CALLS_PER_USER": "1"},
        setup=[trunk("pstn", pstn_port, "9"), ("user", "set", "alice", "--password", ALICE_PW)],
    )
    alice = portals.login(server, "alice", ALICE_PW)
    provider = lab.sipp("call_uas_answer", server, port=pstn_port, timeout=30).start()
    time.sleep(0.3)  # let it open its socket
    first = lab.sipp(
        "call_uac", server, auth=ALICE, keys={"callee": OUTSIDE}, duration_ms=4000, timeout=30
    ).start()
    assert wait_until(lambda: server.health()["calls"] == 1, 10, interval=0.1)
    assert wait_until(lambda: bool(sipp_received_at(provider.trace_file, "ACK")), 10)

    # While it lasts, Alice's phone and portal cannot place another one...
    second = (
        lab.sipp("toll_uac_refused", server, auth=ALICE, keys={"callee": "90301234568"})
        .start()
        .wait()
    )
    assert second.returncode == 0, second.describe()
    final = second.last_response
    assert (final.status, final.reason) == (403, "Too Many Outside Calls"), final.text()
    error = alice.refused("POST", "/api/calls", {"to": "90301234569"}, status=403)
    assert error["code"] == "too_many_outside_calls", error
    # ...though calls inside are fine (her phone rings first: it is not registered).
    assert alice.refused("POST", "/api/calls", {"to": "202"}, status=409)["code"] == "unreachable"

    assert first.wait().successful == 1
    answered = provider.wait(10)
    assert answered.successful == 1, answered.describe()
    invites = {
        m.header("call-id")
        for t in answered.trace
        if (m := t.message).start_line.startswith("INVITE")
    }
    assert len(invites) == 1, invites  # the refused calls never reached the provider

    # Once it has ended, she may call out again.
    provider = lab.sipp("call_uas_answer", server, port=pstn_port, timeout=20).start()
    time.sleep(0.3)
    again = (
        lab.sipp(
            "call_uac", server, auth=ALICE, keys={"callee": OUTSIDE}, duration_ms=300, timeout=20
        )
        .start()
        .wait()
    )
    assert again.successful == 1, again.describe()
    assert provider.wait(10).successful == 1
    outcomes = sorted(row.outcome for row in wait_for_log(server, 3))
    assert outcomes == ["answered", "answered", "barred (403)"], outcomes
    lab.assert_idle(server)
