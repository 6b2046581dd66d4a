"""Telecommuter mode (DESIGN.md T1-T8) through the portal API and real SIP peers.

Alice (201) works from her home line 0611, reached through the trunk "home"
(prefix 8, so she starts the mode with "80611"); the provider's trunk "pstn"
(prefix 9) brings outside callers in and takes her calls out.  The home line is
sipp where the test reads what the INVITE carried, and a baresip (`HomePhone`)
where somebody must hear something: it records what it hears, and the
recording is measured.  The portal is used as a browser would: REST with a
bearer token and the /api/events WebSocket.

Each test has one server of its own, copied from a module seed that already
holds the users' portal passwords and permissions and the two trunks, whose
ports the module's tests share one after the other (see `Site`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from teleoffice.bench.processes import LOOPBACK
from tests.e2e.calls_kit import CallLab, received, statuses
from tests.e2e.harness import SipMessage, parse_message, write_tone
from tests.e2e.portal_kit import (
    WINDOW,
    Event,
    EventStream,
    Listener,
    Portal,
    Portals,
    Site,
    describe,
    heard_for,
    home_phone,
    make_site,
    read_recording,
    sipp_received_at,
    spans,
    timeline,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE_PW = "alice-portal-pw"
BOB_PW = "bob-portal-pw"
BOB_LOGIN_CODE = "4711"
HOME_NUMBER = "0611"  # the home line, as the home trunk sends it
HOME = "8" + HOME_NUMBER  # as dialled from the desk: what alice types in the portal
DID = "5550201"  # alice's outside number at the provider
CALLER = "5557777"  # an outside caller
DEST = "5551234"  # an outside number alice calls
RINGBACK = 425.0
HOME_TONE = 600.0  # what the home phone sends

# Set once per module (with the trunks, see `Site`): alice may telecommute, bob
# is an administrator with a hot-desk login code.
SEED = (
    ("user", "set", "alice", "--password", ALICE_PW, "--telecommuter"),
    ("user", "set", "bob", "--password", BOB_PW, "--admin", "--login-code", BOB_LOGIN_CODE),
    ("did", "add", DID, "--user", "alice"),
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, seeded_data: Path) -> Site:
    return make_site(tmp_path_factory.mktemp("tc-seed"), seeded_data, SEED)


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    opened: list[Listener] = []
    try:
        yield opened
    finally:
        for listener in opened:
            listener.close()


def listen(opened: list[Listener], port: int) -> Listener:
    listener = Listener(port)
    opened.append(listener)
    return listener


def only_invite(result_trace: list[str]) -> SipMessage:
    assert len(result_trace) >= 1, "no INVITE arrived"
    invites = {parse_message(t.encode()).header("call-id") for t in result_trace}
    assert len(invites) == 1, result_trace
    return parse_message(result_trace[0].encode())


def call_events(stream: EventStream, call_id: str) -> list[tuple[str, Event]]:
    return [(k, c) for k, c in stream.calls_seen() if c["id"] == call_id]


def started(portal: Portal, stream: EventStream) -> None:
    """Alice starts telecommuter mode on the home line; the portal says so."""
    mark = stream.mark()
    view = portal.start_telecommuter(HOME)
    assert view["active"] is True, view
    assert view["number"] == HOME, view
    assert view["location"]["kind"] == "telecommuter", view
    changed = stream.wait_for(
        "telecommuter.changed", 5, after=mark, where=lambda m: m.get("active") is True
    )
    assert changed is not None, stream.types(mark)


# --- T3, T5: calls follow alice home --------------------------------------------------------


def test_incoming_call_follows_alice_home(site_lab: CallLab, site: Site, portals: Portals) -> None:
    home_port, pstn_port = site.home_port, site.pstn_port
    server = site_lab.server()
    desk = site_lab.phone()
    desk.register("201", "secret201", server.sip_port, answermode="manual")
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()
    assert stream.hello["state"]["location"]["kind"] == "phone", stream.hello

    started(alice, stream)
    # T3: she is logged out of her desk phone.
    location = alice.call("GET", "/api/me/location")
    assert (location["kind"], location["phone"], location["number"]) == (
        "telecommuter",
        None,
        HOME,
    ), location

    home = site_lab.sipp("tc_home_answer", server, port=home_port).start()
    mark = stream.mark()
    caller = site_lab.sipp(
        "call_trunk_uac",
        server,
        port=pstn_port,
        service=DID,
        keys={"caller": CALLER},
        duration_ms=2000,
    ).start()
    outcome = caller.wait()
    assert outcome.returncode == 0, outcome.describe()
    assert statuses(outcome)[-1] == 200, outcome.describe()
    at_home = home.wait(10)
    assert at_home.returncode == 0, at_home.describe()

    # T5: the home line is asked for by its own number, sees the original caller,
    # and learns that the call was for 201 (RFC 5806 follow-me).
    invite = only_invite(received(at_home, "INVITE "))
    assert invite.start_line == f"INVITE sip:{HOME_NUMBER}@{LOOPBACK}:{home_port} SIP/2.0", (
        invite.text()
    )
    assert f"sip:{CALLER}@" in (invite.header("from") or ""), invite.text()
    diversions = invite.header_all("diversion")
    assert len(diversions) == 1, invite.text()
    assert "<sip:201@" in diversions[0], invite.text()
    assert "reason=follow-me" in diversions[0], invite.text()
    # T3: the desk phone never rang.
    assert "CALL_INCOMING" not in desk.call_events(), desk.call_events()

    # The portal showed the call live, with who called whom.
    ended = stream.wait_for("call.ended", 5, after=mark)
    assert ended is not None, stream.types(mark)
    call_id = ended["call"]["id"]
    kinds = [k for k, _ in call_events(stream, call_id)]
    for kind in ("call.ringing", "call.answered", "call.ended"):
        assert kind in kinds, kinds
    assert kinds.index("call.ringing") < kinds.index("call.answered") < kinds.index("call.ended")
    for _, call in call_events(stream, call_id):
        assert call["from"]["number"] == CALLER, call
        assert call["to"]["number"] == "201", call
        assert call["direction"] == "incoming", call
        assert call["dialled"] == DID, call
    assert ended["call"]["outcome"] == "answered", ended

    # ... and keeps it in her call log (under the number the caller dialled).
    entries = [e for e in alice.call_log() if e["id"] == call_id]
    assert len(entries) == 1, alice.call_log()
    entry = entries[0]
    assert (entry["from"]["number"], entry["to"]["number"], entry["outcome"]) == (
        CALLER,
        DID,
        "answered",
    ), entry
    assert entry["side"] == "callee", entry
    site_lab.assert_idle(server)


# --- T4: calls placed from the portal --------------------------------------------------------


def tone_source(tmp_path: Path, freq: float, seconds: float = 30.0) -> Path:
    return write_tone(tmp_path / f"{freq:g}.wav", freq, seconds, amplitude=8000)


def test_callback_rings_home_first_then_the_destination(
    site_lab: CallLab, site: Site, portals: Portals, tmp_path: Path
) -> None:
    home = home_phone(
        site_lab,
        HOME_NUMBER,
        answermode="manual",
        audio_source=tone_source(tmp_path, HOME_TONE),
        record=True,
        sip_port=site.home_port,
    )
    pstn_port = site.pstn_port
    server = site_lab.server()
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()
    started(alice, stream)
    # The destination rings 3 s, answers, and echoes the audio it gets.
    dest = site_lab.sipp(
        "tc_dest_ring_answer", server, port=pstn_port, service=DEST, extra=["-rtp_echo"]
    ).start()

    mark = stream.mark()
    call_id = alice.place_call("9" + DEST)
    incoming = home.wait_for("CALL_INCOMING", 10)
    assert incoming is not None, home.call_events()
    # The home phone shows whom it is about to be connected to.
    assert f"sip:{DEST}@" in str(incoming.get("peeruri")), incoming
    # Nothing goes to the provider before alice answers.
    time.sleep(0.5)
    assert stream.of_type("call.ringing", "call.answered", after=mark) == [], stream.types(mark)
    accepted_at = time.time()
    home.command("accept")
    assert home.wait_for("CALL_ESTABLISHED", 5) is not None, home.call_events()
    ringing = stream.wait_call("call.ringing", call_id, 5, after=mark)
    assert ringing is not None, stream.types(mark)
    answered = stream.wait_call("call.answered", call_id, 8, after=mark)
    assert answered is not None, stream.types(mark)
    assert answered["call"]["to"]["number"] == DEST, answered
    assert answered["call"]["direction"] == "outgoing", answered
    time.sleep(2.0)  # talk: the destination sends back what it hears
    assert "CALL_CLOSED" not in home.call_events(), home.call_events()

    alice.hang_up(call_id)
    assert home.wait_for("CALL_CLOSED", 5) is not None, home.call_events()
    result = dest.wait(10)
    assert result.returncode == 0, result.describe()
    ended = stream.wait_call("call.ended", call_id, 5, after=mark)
    assert ended is not None, stream.types(mark)
    assert ended["call"]["outcome"] == "answered", ended

    # The destination was called with alice's identity, as from her desk.
    invite = only_invite(received(result, "INVITE "))
    [invited_at] = sipp_received_at(dest.trace_file, "INVITE ")
    assert invited_at > accepted_at, (
        f"the destination was called {accepted_at - invited_at:.2f} s before alice answered"
    )
    assert invite.start_line == f"INVITE sip:{DEST}@{LOOPBACK}:{pstn_port} SIP/2.0", invite.text()
    assert "sip:201@" in (invite.header("from") or ""), invite.text()
    assert "Alice" in (invite.header("from") or ""), invite.text()

    # What alice heard: ringback (425 Hz, 1 s on) while the destination rang, then
    # her own voice back from the destination's echo.
    heard = timeline(read_recording(home), (RINGBACK, HOME_TONE))
    ringback = spans(heard, RINGBACK, at_least=0.2)
    echo = spans(heard, HOME_TONE, at_least=0.2)
    assert ringback, describe(heard)
    assert echo, describe(heard)
    assert 0.7 <= ringback[0].seconds <= 1.3, describe(heard)
    assert heard_for(heard, HOME_TONE) >= 1.5, describe(heard)
    assert ringback[0].end <= echo[0].start + WINDOW, describe(heard)
    # Ringback stopped when the destination answered (it would come back after 4 s).
    assert all(r.end <= echo[0].start + WINDOW for r in ringback), describe(heard)
    site_lab.assert_idle(server)


def test_nothing_is_dialled_onward_when_barred_or_unanswered(
    site_lab: CallLab, site: Site, portals: Portals, listeners: list[Listener]
) -> None:
    home = home_phone(site_lab, HOME_NUMBER, answermode="manual", sip_port=site.home_port)
    pstn_port = site.pstn_port
    server = site_lab.server()
    provider = listen(listeners, pstn_port)
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()
    started(alice, stream)

    # Barred: refused before anything is sent, the home line included.
    mark = stream.mark()
    error = alice.refused("POST", "/api/calls", {"to": "9004930123456"}, status=403)
    assert error["code"] == "barred", error
    assert "international" in error["message"], error
    assert provider.nothing_within(1.0)
    assert home.call_events() == [], home.call_events()
    assert list(stream.calls_seen(mark)) == [], stream.types(mark)
    assert alice.calls() == []

    # Not answered at home: the callback gives up, nothing goes further.
    assert alice.settings(no_answer_timeout=2)["no_answer_timeout"] == 2
    call_id = alice.place_call("9" + DEST)
    assert home.wait_for("CALL_INCOMING", 10) is not None, home.call_events()
    ended = stream.wait_call("call.ended", call_id, 8, after=mark)
    assert ended is not None, stream.types(mark)
    assert ended["call"]["outcome"] == "no-answer", ended
    closed = home.wait_for("CALL_CLOSED", 5)
    assert closed is not None, home.call_events()
    assert "CALL_ESTABLISHED" not in home.call_events(), home.call_events()
    assert provider.nothing_within(0.5)
    assert "call.answered" not in stream.types(mark), stream.types(mark)
    site_lab.assert_idle(server)


def test_busy_destination_plays_busy_to_the_home_phone(
    site_lab: CallLab, site: Site, portals: Portals, tmp_path: Path
) -> None:
    home = home_phone(
        site_lab,
        HOME_NUMBER,
        audio_source=tone_source(tmp_path, HOME_TONE),
        record=True,
        sip_port=site.home_port,
    )
    pstn_port = site.pstn_port
    server = site_lab.server()
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()
    started(alice, stream)
    dest = site_lab.sipp("call_uas_busy", server, port=pstn_port, service=DEST).start()

    mark = stream.mark()
    call_id = alice.place_call("9" + DEST)
    assert home.wait_for("CALL_ESTABLISHED", 10) is not None, home.call_events()
    ended = stream.wait_call("call.ended", call_id, 8, after=mark)
    assert ended is not None, stream.types(mark)
    # The portal says why.
    assert (ended["call"]["outcome"], ended["call"]["status"]) == ("busy", 486), ended
    result = dest.wait(10)
    assert result.returncode == 0, result.describe()
    # Alice hears busy tone on her home phone for a while; she hangs it up.
    time.sleep(2.6)
    assert "CALL_CLOSED" not in home.call_events(), home.call_events()
    alice.hang_up(call_id)
    assert home.wait_for("CALL_CLOSED", 5) is not None, home.call_events()

    heard = timeline(read_recording(home), (RINGBACK, HOME_TONE))
    bursts = spans(heard, RINGBACK, at_least=0.2)
    assert len(bursts) >= 2, describe(heard)
    # 0.5 s on, 0.5 s off (the edges of a 50 ms slice may fall either way).
    for burst in bursts[:-1]:
        assert 0.35 <= burst.seconds <= 0.65, describe(heard)
    gaps = [b.start - a.end for a, b in itertools.pairwise(bursts)]
    assert all(0.35 <= gap <= 0.65 for gap in gaps), describe(heard)
    # The destination never answered: nothing of alice's own line came back.
    assert heard_for(heard, HOME_TONE) < 0.2, describe(heard)
    site_lab.assert_idle(server)


def test_click_to_dial_at_the_desk_rings_the_desk_phone_first(
    site_lab: CallLab, portals: Portals
) -> None:
    server = site_lab.server()
    desk = site_lab.phone()
    desk.register("201", "secret201", server.sip_port, answermode="manual")
    bob = site_lab.phone()
    bob.register("202", "secret202", server.sip_port)
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()

    mark = stream.mark()
    call_id = alice.place_call("202")
    incoming = desk.wait_for("CALL_INCOMING", 10)
    assert incoming is not None, desk.call_events()
    assert "sip:202@" in str(incoming.get("peeruri")), incoming
    time.sleep(0.5)
    assert bob.call_events() == [], bob.call_events()

    desk.command("accept")
    assert desk.wait_for("CALL_ESTABLISHED", 5) is not None, desk.call_events()
    established = bob.wait_for("CALL_ESTABLISHED", 10)
    assert established is not None, bob.call_events()
    assert "sip:201@" in str(established.get("peeruri")), established
    answered = stream.wait_call("call.answered", call_id, 5, after=mark)
    assert answered is not None, stream.types(mark)

    alice.hang_up(call_id)
    for phone in (desk, bob):
        assert phone.wait_for("CALL_CLOSED", 5) is not None, phone.call_events()
    assert stream.wait_call("call.ended", call_id, 5, after=mark) is not None
    site_lab.assert_idle(server)


# --- T7, T8: ending the mode, losing the portal -----------------------------------------------


def test_a_call_at_home_outlives_the_portal_connection_and_the_mode(
    site_lab: CallLab, site: Site, portals: Portals, listeners: list[Listener]
) -> None:
    home_port, pstn_port = site.home_port, site.pstn_port
    server = site_lab.server()
    desk = site_lab.phone()
    desk.register("201", "secret201", server.sip_port, answermode="manual")
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()
    started(alice, stream)

    # A call in progress on the home line ...
    home = site_lab.sipp("tc_home_answer", server, port=home_port).start()
    caller = site_lab.sipp(
        "call_trunk_uac",
        server,
        port=pstn_port,
        service="201",
        keys={"caller": CALLER},
        duration_ms=3000,
    ).start()
    answered = stream.wait_for("call.answered", 10)
    assert answered is not None, stream.types()
    call_id = answered["call"]["id"]

    # ... goes on when the portal loses its connection (T8) ...
    stream.close()
    time.sleep(0.3)
    assert server.health()["calls"] == 1, server.health()
    # ... and a reconnecting portal shows it, and where alice is, at once.
    stream = alice.events()
    state = stream.hello["state"]
    assert (state["location"]["kind"], state["location"]["number"]) == ("telecommuter", HOME), state
    assert [(c["id"], c["state"]) for c in state["calls"]] == [(call_id, "connected")], state
    assert state["calls"][0]["from"]["number"] == CALLER, state

    # It is not cut when the mode ends either (T7): alice is back at her desk,
    # which is free.
    mark = stream.mark()
    view = alice.end_telecommuter()
    assert view["active"] is False, view
    assert (view["location"]["kind"], view["location"]["phone"]) == ("phone", "201"), view
    changed = stream.wait_for(
        "telecommuter.changed", 5, after=mark, where=lambda m: m.get("active") is False
    )
    assert changed is not None, stream.types(mark)
    assert alice.refused("DELETE", "/api/me/telecommuter", status=409)["code"] == "not_active"
    assert [c["id"] for c in alice.calls()] == [call_id], alice.calls()

    outcome = caller.wait()
    # The caller talked for its full 3 s and hung up itself: a 200 to its own BYE.
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.successful == 1, outcome.describe()
    at_home = home.wait(10)
    assert at_home.returncode == 0, at_home.describe()
    assert "CALL_INCOMING" not in desk.call_events(), desk.call_events()
    ended = stream.wait_call("call.ended", call_id, 5, after=mark)
    assert ended is not None, stream.types(mark)
    assert ended["call"]["outcome"] == "answered", ended

    # The next call rings the desk phone again; nothing goes home.
    home_line = listen(listeners, home_port)
    caller = site_lab.sipp(
        "call_trunk_uac",
        server,
        port=pstn_port,
        service="201",
        keys={"caller": CALLER},
        duration_ms=1000,
    ).start()
    incoming = desk.wait_for("CALL_INCOMING", 10)
    assert incoming is not None, desk.call_events()
    assert f"sip:{CALLER}@" in str(incoming.get("peeruri")), incoming
    desk.command("accept")
    outcome = caller.wait()
    assert outcome.returncode == 0, outcome.describe()
    assert desk.wait_for("CALL_CLOSED", 5) is not None, desk.call_events()
    assert home_line.nothing_within(0.2)
    site_lab.assert_idle(server)


def test_ending_the_mode_with_the_desk_taken_logs_alice_out(
    site_lab: CallLab, site: Site, portals: Portals
) -> None:
    pstn_port = site.pstn_port
    server = site_lab.server()
    desk = site_lab.phone()
    desk.register("201", "secret201", server.sip_port, answermode="manual")
    alice = portals.login(server, "alice", ALICE_PW)
    bob = portals.login(server, "bob", BOB_PW)
    stream = alice.events()
    started(alice, stream)

    # Bob sits down at alice's desk and logs in with his code (T10).
    desk.dial(f"*11202*{BOB_LOGIN_CODE}", server.sip_port)
    confirmed = desk.wait_for("CALL_ESTABLISHED", 5)
    assert confirmed is not None, desk.call_events()
    assert desk.wait_for("CALL_CLOSED", 5) is not None, desk.call_events()
    location = bob.call("GET", "/api/me/location")
    assert (location["kind"], location["phone"]) == ("phone", "201"), location

    # T7: alice cannot go back to her desk, so she is logged out.
    mark = stream.mark()
    view = alice.end_telecommuter()
    assert view["active"] is False, view
    assert view["location"]["kind"] == "logged-out", view
    moved = stream.wait_for("location.changed", 5, after=mark)
    assert moved is not None, stream.types(mark)
    assert moved["location"]["kind"] == "logged-out", moved

    # Her callers hear busy; the desk phone, bob's now, does not ring for her.
    desk_mark = desk.mark()
    caller = site_lab.sipp(
        "tc_trunk_uac_refused",
        server,
        port=pstn_port,
        service="201",
        keys={"caller": CALLER},
    ).start()
    outcome = caller.wait()
    assert outcome.returncode == 0, outcome.describe()
    assert statuses(outcome)[-1] == 486, outcome.describe()
    assert desk.wait_for("CALL_INCOMING", 0.3, after=desk_mark) is None, desk.call_events()
    site_lab.assert_idle(server)


# --- a restart ------------------------------------------------------------------------------------


def test_telecommuter_mode_survives_a_restart(
    site_lab: CallLab, site: Site, portals: Portals
) -> None:
    home_port, pstn_port = site.home_port, site.pstn_port
    server = site_lab.server()
    alice = portals.login(server, "alice", ALICE_PW)
    started(alice, alice.events())
    portals.close()

    assert server.restart() == 0
    home = site_lab.sipp("tc_home_answer", server, port=home_port).start()
    caller = site_lab.sipp(
        "call_trunk_uac",
        server,
        port=pstn_port,
        service="201",
        keys={"caller": CALLER},
        duration_ms=500,
    ).start()
    outcome = caller.wait()
    assert outcome.returncode == 0, outcome.describe()
    at_home = home.wait(10)
    assert at_home.returncode == 0, at_home.describe()
    invite = only_invite(received(at_home, "INVITE "))
    assert invite.start_line.startswith(f"INVITE sip:{HOME_NUMBER}@"), invite.text()
    assert f"sip:{CALLER}@" in (invite.header("from") or ""), invite.text()

    alice = portals.login(server, "alice", ALICE_PW)
    view = alice.telecommuter()
    assert (view["active"], view["number"]) == (True, HOME), view
    site_lab.assert_idle(server)


# --- T1, T2: who may start it, and with which number (last: no SIP, so it runs
# while the module's earlier servers drain) ---------------------------------------


def test_refused_starts_change_nothing(
    site_lab: CallLab, site: Site, portals: Portals, listeners: list[Listener]
) -> None:
    server = site_lab.server()
    home = listen(listeners, site.home_port)
    admin = portals.login(server, "bob", BOB_PW)
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()

    # T1: off until an administrator allows it (bob is not allowed), and the
    # refusal says so.
    error = admin.refused("PUT", "/api/me/telecommuter", {"number": HOME}, status=403)
    assert error["code"] == "not_allowed", error
    assert "administrator" in error["message"], error
    view = admin.telecommuter()
    assert (view["allowed"], view["active"]) == (False, False), view
    # A permission taken away applies from the administrator's answer on.
    revoked = admin.call("PATCH", "/api/admin/users/alice", {"telecommuter_allowed": False})
    assert revoked["telecommuter_allowed"] is False, revoked
    error = alice.refused("PUT", "/api/me/telecommuter", {"number": HOME}, status=403)
    assert error["code"] == "not_allowed", error

    # T2: allowed again, but only for the numbers the administrator lists.
    admin.call(
        "PATCH",
        "/api/admin/users/alice",
        {"telecommuter_allowed": True, "telecommuter_patterns": ["0611"]},
    )
    error = alice.refused("PUT", "/api/me/telecommuter", {"number": "80622"}, status=403)
    assert error["code"] == "number_not_allowed", error
    assert "0611" in error["message"], error
    # Barred by alice's dialling restrictions (default profile: 00. is international).
    error = alice.refused("PUT", "/api/me/telecommuter", {"number": "8004930123456"}, status=403)
    assert error["code"] == "barred", error
    assert "international" in error["message"], error
    # No trunk has the prefix 7: nothing could reach that number.
    error = alice.refused("PUT", "/api/me/telecommuter", {"number": "70611"}, status=422)
    assert error["code"] == "unroutable", error

    # Nothing changed: still off, still at her desk, nothing announced, nothing dialled.
    view = alice.telecommuter()
    assert (view["allowed"], view["active"], view["number"]) == (True, False, None), view
    assert view["location"]["kind"] == "phone", view
    assert view["location"]["phone"] == "201", view
    assert stream.of_type("telecommuter.changed", "location.changed") == [], stream.types()
    assert home.nothing_within(0.5)
    site_lab.assert_idle(server)
