"""A thousand calls through teleoffice, then nothing left behind.

sipp plays both phones: 202 is a UAS registered once (scenarios/register.xml from
its port) that answers every call; 201 is a UAC that answers the server's 401
with digest credentials, talks for about a second and hangs up.  Every call must
succeed, and afterwards the server must hold no call, leg, dialog, media session
or RTP port, and its transactions must run out (RFC 3261 timers, 32 s at most).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.calls_kit import DRAIN_SECONDS, CallLab, Drainer, counters, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CALLS = 1000
RATE = 50  # new calls per second
CONCURRENT = 60  # sipp's -l cap: about RATE x (call length + set-up)
TALK_MS = 1000


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path, seeded_data: Path) -> Iterator[CallLab]:
    # The test waits for the transactions itself: the server is stopped right after.
    lab = CallLab(tmp_path, seeded_data, Drainer(), request.node.name)
    try:
        yield lab
    finally:
        lab.close()
        for server in lab.servers:
            server.stop()


def test_a_thousand_calls_leave_nothing_behind(lab: CallLab) -> None:
    # Room for every concurrent call (two RTP ports plus their RTCP neighbours each).
    server = lab.server(rtp_ports=8 * CONCURRENT)
    alice, bob = lab.alice_calls_bob(
        server,
        calls=CALLS,
        rate=RATE,
        limit=CONCURRENT,
        talk_ms=TALK_MS,
        timeout=80,
        trace_msg=False,
    )
    started = time.monotonic()
    result = alice.start().wait()
    took = time.monotonic() - started
    bob_result = bob.wait(15)

    assert result.stats, f"no statistics from sipp\n{result.describe()}"
    assert result.failed == 0, result.describe()
    assert result.successful == CALLS, result.describe()
    assert result.returncode == 0, result.describe()
    assert bob_result.failed == 0, bob_result.describe()
    assert bob_result.successful == CALLS, bob_result.describe()

    lab.assert_idle(server)
    drained = wait_idle(server, DRAIN_SECONDS, transactions=True)
    assert drained, f"transactions left {DRAIN_SECONDS:.0f} s after the load: {counters(server)}"
    print(f"{CALLS} calls in {took:.1f} s, {CALLS / took:.1f} calls/s")
