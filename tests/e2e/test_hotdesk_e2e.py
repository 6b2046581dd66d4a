"""Hot desking (rule T10) with real phones: feature codes and the portal.

Three baresip phones: alice's desk phone (account 201), bob's (202) and carol's
(203), who places the calls that show where 201 and 202 ring.  Alice logs in on
bob's phone with her login code (`*11201*4711`), hears the confirmation pips,
and from then on calls to 201 ring bob's phone, bob is logged out, and alice's
own phone has nobody on it: it may call emergency numbers and nothing else.
The portal does the same with `PUT /api/me/location`, and the move outlives a
restart of the server.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest

from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from teleoffice.media.analysis import goertzel_power, rms
from tests.e2e.calls_kit import (
    CallLab,
    Phone,
    analyse_wav,
    event_reason,
    received,
    status_in,
    wait_for_log,
)
from tests.e2e.harness import HarnessError, Server, parse_message

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
BOB = ("202", "secret202")
CAROL = ("203", "secret203")
LOGIN_CODE = "4711"
ALICE_PASSWORD = "alice-portal-1"
PIP_HZ = 1400.0
RING_WAIT = 10.0
# How long a phone that must stay silent is watched after the one that rings
# has rung: the PBX forks to every phone of a user at once.
QUIET_GRACE = 0.7

SETUP = [
    ["user", "add", "carol", "--extension", "203", "--sip-password", "secret203"],
    ["user", "set", "alice", "--login-code", LOGIN_CODE, "--password", ALICE_PASSWORD],
]


def trunk_add(port: int) -> list[str]:
    return ["trunk", "add", "pstn", "--host", LOOPBACK, "--port", str(port), "--prefix", "9"]


# --- small helpers ----------------------------------------------------------------------


def phones(lab: CallLab, server: Server) -> tuple[Phone, Phone, Phone]:
    """alice (201) and carol (203) plain, bob's phone (202) recording what it hears;
    all answer manually, so a ringing phone stays ringing until the caller gives up."""
    alice, bob, carol = lab.phone(), lab.phone(record=True), lab.phone()
    alice.register(*ALICE, server.sip_port, answermode="manual")
    bob.register(*BOB, server.sip_port, answermode="manual")
    carol.register(*CAROL, server.sip_port, answermode="manual")
    assert wait_until(lambda: server.health()["registrations"] == 3, 5), server.health()
    return alice, bob, carol


def closed_status(phone: Phone, after: int) -> int | None:
    closed = phone.wait_for("CALL_CLOSED", RING_WAIT, after=after)
    assert closed is not None, phone.call_events()
    return status_in(event_reason(closed))


def dial_refused(phone: Phone, number: str, server: Server) -> str:
    """Dial `number`; the call must fail without being answered. Its reason."""
    mark = phone.mark()
    phone.dial(number, server.sip_port)
    closed = phone.wait_for("CALL_CLOSED", RING_WAIT, after=mark)
    assert closed is not None, phone.call_events()
    assert phone.wait_for("CALL_ESTABLISHED", 0, after=mark) is None, phone.call_events()
    return event_reason(closed)


def rings_only(caller: Phone, number: str, server: Server, ringing: Phone, *quiet: Phone) -> None:
    """`caller` dials `number`: `ringing` rings (showing the caller), the `quiet`
    phones do not; then the caller gives up and the ringing stops."""
    marks = {id(p): p.mark() for p in (caller, ringing, *quiet)}
    caller.dial(number, server.sip_port)
    incoming = ringing.wait_for("CALL_INCOMING", RING_WAIT, after=marks[id(ringing)])
    assert incoming is not None, f"{number} did not ring: {ringing.call_events()}"
    assert caller.wait_for("CALL_RINGING", 5, after=marks[id(caller)]) is not None
    time.sleep(QUIET_GRACE)
    for phone in quiet:
        late = phone.wait_for("CALL_INCOMING", 0, after=marks[id(phone)])
        assert late is None, f"{number} also rang {phone.log_name}: {late}"
    caller.command("hangup")
    assert ringing.wait_for("CALL_CLOSED", 5, after=marks[id(ringing)]) is not None
    assert caller.wait_for("CALL_CLOSED", 5, after=marks[id(caller)]) is not None


def busy_for(caller: Phone, number: str, server: Server, *quiet: Phone) -> None:
    """`caller` dials `number` and gets 486 at once; none of `quiet` rings."""
    marks = {id(p): p.mark() for p in quiet}
    reason = dial_refused(caller, number, server)
    assert status_in(reason) == 486, reason
    for phone in quiet:
        assert phone.wait_for("CALL_INCOMING", 0, after=marks[id(phone)]) is None, (
            phone.call_events()
        )


def stored_location(server: Server, user: str) -> str:
    """The `location:` line of `teleoffice user show` (read from the database)."""
    for line in server.cli("user", "show", user).stdout.splitlines():
        if line.startswith("location:"):
            return line.partition(":")[2].strip()
    raise HarnessError(f"no location line for {user}")


def pip_bursts(path: Path, freq: float = PIP_HZ) -> list[float]:
    """The lengths (seconds) of the bursts of `freq` in a recording, found in 10 ms
    windows that are loud and mostly that tone."""
    with wave.open(str(path), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())
    step = 80 * 2  # 10 ms of 16-bit samples at 8 kHz
    on = []
    for start in range(0, len(pcm) - step + 1, step):
        window = pcm[start : start + step]
        level = rms(window)
        on.append(level > 500 and goertzel_power(window, freq) > 0.5 * level**2)
    bursts: list[float] = []
    run = 0
    for flag in [*on, False]:
        if flag:
            run += 1
        elif run:
            bursts.append(run / 100)
            run = 0
    return bursts


def heard_pips(phone: Phone) -> None:
    """The newest recording of `phone` holds the confirmation: three ~0.1 s pips."""
    path = phone.recording("dec")
    bursts: list[float] = []

    def complete() -> bool:
        nonlocal bursts
        try:
            bursts = pip_bursts(path)
        except (EOFError, wave.Error):
            return False
        return len(bursts) >= 3

    wait_until(complete, 3, interval=0.2)
    report = analyse_wav(path, (PIP_HZ, 425.0), skip=0)
    assert report.dominant == PIP_HZ, report
    assert report.rms > 500, f"no sound: {report}"
    assert len(bursts) == 3, f"expected three pips, found bursts of {bursts} s in {report}"
    assert all(0.05 <= b <= 0.16 for b in bursts), bursts


def feature_code(phone: Phone, code: str, server: Server) -> None:
    """Dial a feature code that must work: 200, the pips, then the PBX hangs up."""
    mark = phone.mark()
    phone.dial(code, server.sip_port)
    established = phone.wait_for("CALL_ESTABLISHED", RING_WAIT, after=mark)
    assert established is not None, phone.call_events()
    started = time.monotonic()
    closed = phone.wait_for("CALL_CLOSED", 5, after=mark)
    assert closed is not None, phone.call_events()
    # Hung up by the PBX (the phone was never told to), after the pips.
    assert 1.0 <= time.monotonic() - started <= 3.5, closed
    heard_pips(phone)


class Portal:
    """The few REST calls these tests make, with plain httpx."""

    def __init__(self, server: Server) -> None:
        self.client = httpx.Client(
            base_url=f"http://{LOOPBACK}:{server.http_port}", timeout=10.0, trust_env=False
        )
        self.token = ""

    def login(self, username: str, password: str) -> None:
        reply = self.client.post("/api/login", json={"username": username, "password": password})
        self.client.cookies.clear()
        assert reply.status_code == 200, reply.text
        self.token = str(reply.json()["token"])

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            return self.client.request(method, path, json=body, headers=headers)
        finally:
            # Only the bearer token authenticates: drop the browser's session cookie.
            self.client.cookies.clear()

    def close(self) -> None:
        self.client.close()


# --- feature codes from a phone ---------------------------------------------------------


def test_wrong_login_code_is_refused_and_changes_nothing(lab: CallLab) -> None:
    server = lab.server(setup=SETUP)
    alice, bob, carol = phones(lab, server)

    wrong = dial_refused(bob, f"*11201*{int(LOGIN_CODE) + 1}", server)
    # An extension that does not exist gets the same answer: nothing to enumerate.
    unknown = dial_refused(bob, f"*11299*{LOGIN_CODE}", server)
    assert status_in(wrong) == 403, wrong
    assert unknown == wrong, (unknown, wrong)

    assert stored_location(server, "alice") == "base phone (default)"
    assert stored_location(server, "bob") == "base phone (default)"
    rings_only(carol, "201", server, alice, bob)
    rings_only(carol, "202", server, bob, alice)
    lab.assert_idle(server)
    # Feature codes (the login code is a secret) never reach the call log.
    assert all("*" not in row.callee for row in wait_for_log(server, 2)), server.cli("calls")


def test_login_code_moves_alice_to_bobs_phone(lab: CallLab) -> None:
    trunk_port = free_port()
    server = lab.server(setup=[*SETUP, trunk_add(trunk_port)])
    alice, bob, carol = phones(lab, server)

    feature_code(bob, f"*11201*{LOGIN_CODE}", server)
    assert stored_location(server, "alice").startswith("logged in on phone 202"), server.cli(
        "user", "show", "alice"
    ).stdout
    assert stored_location(server, "bob").startswith("logged out")

    # Calls to 201 ring bob's phone, and only that one.
    rings_only(carol, "201", server, bob, alice)
    # Bob was logged out: his callers hear busy and no phone rings.
    busy_for(carol, "202", server, bob, alice)

    # Alice's own phone has nobody on it: no ordinary calls...
    reason = dial_refused(alice, "202", server)
    assert status_in(reason) == 403, reason
    assert "nobody is logged in" in reason.lower(), reason
    # ...but an emergency number still goes out (9 is the trunk's prefix).
    provider = lab.sipp(
        "hd_emergency_provider", server, port=trunk_port, duration_ms=1000, timeout=20
    ).start()
    mark = alice.mark()
    alice.dial("9112", server.sip_port)
    assert alice.wait_for("CALL_ESTABLISHED", RING_WAIT, after=mark) is not None, (
        alice.call_events()
    )
    assert alice.wait_for("CALL_CLOSED", RING_WAIT, after=mark) is not None
    result = provider.wait(15)
    assert result.returncode == 0, result.describe()
    (raw,) = received(result, "INVITE ")
    invite = parse_message(raw.encode())
    assert invite.start_line == f"INVITE sip:112@{LOOPBACK}:{trunk_port} SIP/2.0", raw

    # Calls from bob's phone now present alice.
    mark = carol.mark()
    bob.dial("203", server.sip_port)
    incoming = carol.wait_for("CALL_INCOMING", RING_WAIT, after=mark)
    assert incoming is not None, carol.call_events()
    assert str(incoming.get("peeruri", "")).startswith("sip:201@"), incoming
    assert incoming.get("peerdisplayname") == "Alice", incoming
    bob.command("hangup")
    assert carol.wait_for("CALL_CLOSED", 5, after=mark) is not None

    # *12 logs alice out of bob's phone: now nobody is there, and she is logged out.
    feature_code(bob, "*12", server)
    assert stored_location(server, "alice").startswith("logged out")
    busy_for(carol, "201", server, alice, bob)
    reason = dial_refused(bob, "203", server)
    assert status_in(reason) == 403, reason

    lab.assert_idle(server)


# --- the portal --------------------------------------------------------------------------


def test_portal_login_on_a_phone_survives_a_restart(lab: CallLab) -> None:
    server = lab.server(setup=SETUP)
    alice, bob, carol = phones(lab, server)
    portal = Portal(server)
    try:
        portal.login("alice", ALICE_PASSWORD)
        before = portal.request("GET", "/api/me/location")
        assert before.status_code == 200, before.text
        assert (before.json()["kind"], before.json()["phone"]) == ("phone", "201"), before.json()

        refused = portal.request("PUT", "/api/me/location", {"phone": "299"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "no_such_phone", refused.text

        moved = portal.request("PUT", "/api/me/location", {"phone": "202"})
        assert moved.status_code == 200, moved.text
        assert (moved.json()["kind"], moved.json()["phone"]) == ("phone", "202"), moved.json()
        rings_only(carol, "201", server, bob, alice)

        assert server.stop() == 0
        server.start()
        # The phones' registrations and alice's location both came back.
        assert server.health()["registrations"] == 3, server.health()
        portal.login("alice", ALICE_PASSWORD)
        after = portal.request("GET", "/api/me/location")
        assert after.status_code == 200, after.text
        assert (after.json()["kind"], after.json()["phone"]) == ("phone", "202"), after.json()
        rings_only(carol, "201", server, bob, alice)
        busy_for(carol, "202", server, bob, alice)

        gone = portal.request("DELETE", "/api/me/location")
        assert gone.status_code == 200, gone.text
        assert gone.json()["kind"] == "logged-out", gone.json()
        busy_for(carol, "201", server, alice, bob)
        assert stored_location(server, "alice").startswith("logged out")
    finally:
        portal.close()
    lab.assert_idle(server)
