"""Call waiting on a telecommuter's home line (DESIGN.md T6) with real phones.

Alice (201) works from her home line 0611 (trunk "home", prefix 8), a baresip
`HomePhone` that answers by itself and records what it hears.  Bob (202) calls
her first and carol (203) second, each from a baresip sending a tone of their
own, so the recording tells who alice heard and when: bob at 1000 Hz, carol at
800 Hz, the call-waiting tone at 425 Hz (two 0.2 s bursts 0.2 s apart, every
5 s).  The portal is driven through REST and watched on /api/events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.calls_kit import (
    CallLab,
    Phone,
    event_reason,
    received,
    status_in,
    statuses,
)
from tests.e2e.harness import Server, parse_message, write_tone
from tests.e2e.portal_kit import (
    Event,
    EventStream,
    HomePhone,
    Portal,
    Portals,
    Site,
    Slice,
    describe,
    heard_for,
    home_phone,
    make_site,
    read_recording,
    spans,
    timeline,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE_PW = "alice-portal-pw"
HOME_NUMBER = "0611"
HOME = "8" + HOME_NUMBER
CALLER = "5557777"  # an outside caller, from the provider's trunk
DEST = "5551234"  # alice's forward-on-busy, at the provider
CW_TONE = 425.0
HOME_TONE = 600.0
CAROL_TONE = 800.0
BOB_TONE = 1000.0
TONES = (CW_TONE, HOME_TONE, CAROL_TONE, BOB_TONE)
WAIT = 2.0  # seconds a call waits before alice takes or rejects it

SEED = (
    ("user", "set", "alice", "--password", ALICE_PW, "--telecommuter"),
    ("user", "add", "carol", "--extension", "203", "--sip-password", "secret203"),
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, seeded_data: Path) -> Site:
    return make_site(tmp_path_factory.mktemp("cw-seed"), seeded_data, SEED)


@dataclass
class Office:
    """Everybody of one test: the server, alice's portal, her home line, two callers."""

    server: Server
    alice: Portal
    stream: EventStream
    home: HomePhone
    bob: Phone
    carol: Phone


def office(lab: CallLab, site: Site, portals: Portals, tmp_path: Path) -> Office:
    def tone(freq: float) -> Path:
        return write_tone(tmp_path / f"{freq:g}.wav", freq, 30.0, amplitude=8000)

    home = home_phone(
        lab, HOME_NUMBER, audio_source=tone(HOME_TONE), record=True, sip_port=site.home_port
    )
    server = lab.server()
    bob = lab.phone(audio_source=tone(BOB_TONE))
    bob.register("202", "secret202", server.sip_port)
    carol = lab.phone(audio_source=tone(CAROL_TONE), record=True)
    carol.register("203", "secret203", server.sip_port)
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()
    mark = stream.mark()
    assert alice.start_telecommuter(HOME)["active"] is True
    changed = stream.wait_for("telecommuter.changed", 5, after=mark)
    assert changed is not None, stream.types(mark)
    return Office(server, alice, stream, home, bob, carol)


def bob_is_on_the_line(o: Office, mark: int) -> Event:
    """Bob calls 201 and the home phone answers; the call as the portal shows it."""
    o.bob.dial("201", o.server.sip_port)
    assert o.home.wait_for("CALL_ESTABLISHED", 10) is not None, o.home.call_events()
    assert o.bob.wait_for("CALL_ESTABLISHED", 5) is not None, o.bob.call_events()
    answered = o.stream.wait_for("call.answered", 5, after=mark)
    assert answered is not None, o.stream.types(mark)
    call: Event = answered["call"]
    assert call["from"]["number"] == "202", call
    return call


def carol_waits(o: Office, mark: int) -> Event:
    """Carol calls 201 while bob is on the line: she hears ringing, alice's portal
    shows her call waiting."""
    o.carol.dial("201", o.server.sip_port)
    waiting = o.stream.wait_for("call.waiting", 5, after=mark)
    assert waiting is not None, o.stream.types(mark)
    call: Event = waiting["call"]
    assert (call["from"]["number"], call["to"]["number"], call["state"]) == (
        "203",
        "201",
        "waiting",
    ), call
    assert o.carol.wait_for("CALL_RINGING", 5) is not None, o.carol.call_events()
    return call


def call_waiting_bursts(heard: list[Slice], after: float) -> tuple[float, float]:
    """Two 425 Hz bursts of about 0.2 s, 0.2 s apart, after `after` seconds of the
    recording: (where the first starts, where the second ends)."""
    bursts = [b for b in spans(heard, CW_TONE, at_least=0.1) if b.start >= after - 0.1]
    assert len(bursts) >= 2, describe(heard)
    first, second = bursts[0], bursts[1]
    for burst in (first, second):
        assert 0.1 <= burst.seconds <= 0.3, describe(heard)
    assert 0.1 <= second.start - first.end <= 0.3, describe(heard)
    return first.start, second.end


# --- T6: call waiting on ---------------------------------------------------------------------


def test_waiting_call_is_answered_and_the_first_goes_on_hold(
    site_lab: CallLab, site: Site, portals: Portals, tmp_path: Path
) -> None:
    o = office(site_lab, site, portals, tmp_path)
    mark = o.stream.mark()
    first = bob_is_on_the_line(o, mark)
    time.sleep(1.0)  # alice and bob talk

    waiting = carol_waits(o, mark)
    waiting_since = time.monotonic()
    # One more call while carol waits: the line is full, it is busy at once.
    third = site_lab.sipp(
        "tc_trunk_uac_refused",
        o.server,
        port=site.pstn_port,
        service="201",
        keys={"caller": CALLER},
    ).start()
    outcome = third.wait()
    assert outcome.returncode == 0, outcome.describe()
    assert statuses(outcome)[-1] == 486, outcome.describe()
    assert 180 not in statuses(outcome), outcome.describe()
    # Carol keeps hearing it ring; nothing has answered her.
    time.sleep(max(0.0, waiting_since + WAIT - time.monotonic()))
    assert o.carol.call_events() == ["CALL_RINGING"], o.carol.call_events()

    calls = {c["id"]: c for c in o.alice.control(waiting["id"], "answer")}
    assert calls[waiting["id"]]["state"] == "connected", calls
    assert (calls[first["id"]]["state"], calls[first["id"]]["held"]) == ("connected", True), calls
    assert o.carol.wait_for("CALL_ESTABLISHED", 5) is not None, o.carol.call_events()
    answered = o.stream.wait_call("call.answered", waiting["id"], 5, after=mark)
    assert answered is not None, o.stream.types(mark)
    held = o.stream.wait_for(
        "call.updated",
        5,
        after=mark,
        where=lambda m: m["call"]["id"] == first["id"] and m["call"]["held"] is True,
    )
    assert held is not None, o.stream.types(mark)
    time.sleep(2.0)  # alice and carol talk; bob waits on hold
    assert "CALL_CLOSED" not in o.bob.call_events(), o.bob.call_events()

    o.carol.command("hangup")
    assert o.carol.wait_for("CALL_CLOSED", 5) is not None, o.carol.call_events()
    o.bob.command("hangup")
    for phone in (o.bob, o.home):
        assert phone.wait_for("CALL_CLOSED", 5) is not None, phone.call_events()
    for call_id in (first["id"], waiting["id"]):
        assert o.stream.wait_call("call.ended", call_id, 5, after=mark) is not None

    # What alice heard: bob, the call-waiting bursts, then carol, and no more bob.
    heard = timeline(read_recording(o.home), TONES)
    bob_spans = spans(heard, BOB_TONE, at_least=0.2)
    assert bob_spans, describe(heard)
    _, bursts_end = call_waiting_bursts(heard, after=bob_spans[0].start)
    carol_spans = spans(heard, CAROL_TONE, at_least=0.2)
    assert carol_spans, describe(heard)
    assert carol_spans[0].start >= bursts_end, describe(heard)
    assert heard_for(heard, CAROL_TONE) >= 1.5, describe(heard)
    assert heard_for(heard, BOB_TONE, start=carol_spans[0].start) < 0.2, describe(heard)
    # ... and carol heard alice.
    carol_heard = timeline(read_recording(o.carol), TONES)
    assert heard_for(carol_heard, HOME_TONE) >= 1.5, describe(carol_heard)
    site_lab.assert_idle(o.server)


def test_rejected_waiting_call_gets_busy_and_the_first_call_goes_on(
    site_lab: CallLab, site: Site, portals: Portals, tmp_path: Path
) -> None:
    o = office(site_lab, site, portals, tmp_path)
    mark = o.stream.mark()
    first = bob_is_on_the_line(o, mark)
    time.sleep(0.5)
    waiting = carol_waits(o, mark)
    time.sleep(WAIT)

    calls = o.alice.control(waiting["id"], "reject")
    assert [c["id"] for c in calls] == [first["id"]], calls
    closed = o.carol.wait_for("CALL_CLOSED", 5)
    assert closed is not None, o.carol.call_events()
    assert status_in(event_reason(closed)) == 486, closed
    assert "CALL_ESTABLISHED" not in o.carol.call_events(), o.carol.call_events()
    ended = o.stream.wait_call("call.ended", waiting["id"], 5, after=mark)
    assert ended is not None, o.stream.types(mark)
    assert (ended["call"]["outcome"], ended["call"]["status"]) == ("busy", 486), ended

    time.sleep(1.5)  # alice and bob go on talking
    assert "CALL_CLOSED" not in o.bob.call_events(), o.bob.call_events()
    o.bob.command("hangup")
    assert o.home.wait_for("CALL_CLOSED", 5) is not None, o.home.call_events()
    site_lab.assert_idle(o.server)

    heard = timeline(read_recording(o.home), TONES)
    bursts_start, bursts_end = call_waiting_bursts(heard, after=0.0)
    # After the reject, bob is heard again (the last 1.5 s of the call).
    assert heard_for(heard, BOB_TONE, start=bursts_end) >= 1.0, describe(heard)
    # While carol waited (WAIT seconds from the first burst on), alice still heard
    # bob between the bursts: the tone is "in the call" (T6), not instead of it.
    waited = (bursts_end + 0.2, bursts_start + WAIT - 0.5)
    assert heard_for(heard, BOB_TONE, *waited) >= 0.5 * (waited[1] - waited[0]), (
        f"bob not heard from {waited[0]:.2f} s to {waited[1]:.2f} s of the recording, "
        f"while carol waited: {describe(heard)}"
    )


# --- T6: call waiting off ---------------------------------------------------------------------


def test_without_call_waiting_a_second_call_is_busy_or_forwarded(
    site_lab: CallLab, site: Site, portals: Portals, tmp_path: Path
) -> None:
    o = office(site_lab, site, portals, tmp_path)
    assert o.alice.settings(call_waiting=False)["call_waiting"] is False
    mark = o.stream.mark()
    first = bob_is_on_the_line(o, mark)

    # Busy at once: no ringing, no waiting call in the portal.
    dialled_at = time.monotonic()
    o.carol.dial("201", o.server.sip_port)
    closed = o.carol.wait_for("CALL_CLOSED", 5)
    assert closed is not None, o.carol.call_events()
    assert time.monotonic() - dialled_at < 2.0, o.carol.call_events()
    assert status_in(event_reason(closed)) == 486, closed
    assert "CALL_RINGING" not in o.carol.call_events(), o.carol.call_events()
    assert o.stream.of_type("call.waiting", after=mark) == [], o.stream.types(mark)

    # With forward-on-busy, the second call goes there instead.
    assert o.alice.settings(forward_busy="9" + DEST)["forward_busy"] == "9" + DEST
    provider = site_lab.sipp("call_uas_answer", o.server, port=site.pstn_port, service=DEST).start()
    carol_mark = o.carol.mark()
    o.carol.dial("201", o.server.sip_port)
    assert o.carol.wait_for("CALL_ESTABLISHED", 10, after=carol_mark) is not None, (
        o.carol.call_events()
    )
    o.carol.command("hangup")
    result = provider.wait(10)
    assert result.returncode == 0, result.describe()
    invite = parse_message(received(result, "INVITE ")[0].encode())
    assert invite.start_line.startswith(f"INVITE sip:{DEST}@"), invite.text()
    diversions = invite.header_all("diversion")
    assert any("<sip:201@" in d and "reason=user-busy" in d for d in diversions), invite.text()

    # Bob's call was never disturbed.
    assert "CALL_CLOSED" not in o.bob.call_events(), o.bob.call_events()
    o.bob.command("hangup")
    assert o.home.wait_for("CALL_CLOSED", 5) is not None, o.home.call_events()
    assert o.stream.wait_call("call.ended", first["id"], 5, after=mark) is not None
    site_lab.assert_idle(o.server)
