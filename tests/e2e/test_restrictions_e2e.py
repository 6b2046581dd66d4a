"""Dialling restrictions through real SIP: a barred number places no call at all."""

from __future__ import annotations

import socket

import pytest

from teleoffice.bench.processes import LOOPBACK, free_port
from tests.e2e.calls_kit import CallLab, event_reason, status_in, wait_for_log

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")


def test_international_number_is_barred_by_the_default_profile(lab: CallLab) -> None:
    trunk_port = free_port()
    server = lab.server(
        setup=[
            ["trunk", "add", "prov", "--host", LOOPBACK, "--port", str(trunk_port), "--prefix", "9"]
        ]
    )
    # Stand where the provider would be, to see that not one packet arrives.
    provider = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    provider.bind((LOOPBACK, trunk_port))
    provider.settimeout(2.0)
    try:
        alice = lab.phone()
        alice.register(*ALICE, server.sip_port)
        alice.dial("900441234567", server.sip_port)
        closed = alice.wait_for("CALL_CLOSED", 10)
        assert closed is not None, alice.call_events()
        assert status_in(event_reason(closed)) == 403, closed
        assert "CALL_ESTABLISHED" not in alice.call_events()
        with pytest.raises(TimeoutError):
            provider.recvfrom(65535)
    finally:
        provider.close()

    lab.assert_idle(server)
    [call] = wait_for_log(server, 1)
    assert call.outcome.startswith("barred"), call
    # An administrator can ask why.
    explained = server.cli("restriction", "check", "default", "00441234567", check=False)
    assert "barred" in explained.stdout.lower(), explained.stdout
