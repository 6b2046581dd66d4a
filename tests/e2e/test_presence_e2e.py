"""Presence (issue 6, DESIGN.md T9) with real peers: sipp watchers and publishers,
baresip phones, portal sessions over REST and WebSocket.

Alice (201) is the one watched; bob (202) watches her from sipp, authenticated
with his SIP account, and calls her from a baresip.  Every test runs a server of
its own.  What the tests compare against is what came over the wire: the PIDF
and dialog-info bodies of the NOTIFYs in sipp's message trace (read with
ElementTree here, not with the server's parsers), the WebSocket events and the
REST answers.

The watcher scenario (scenarios/pres_watch.xml) answers NOTIFYs until none has
come for 4 s, then unsubscribes; the tests therefore drive each change soon
after the previous one and read the whole story once sipp has ended.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from teleoffice.bench.processes import LOOPBACK, wait_until
from tests.e2e.calls_kit import CallLab, Phone, SippProcess, statuses
from tests.e2e.harness import Server, SipMessage, parse_message
from tests.e2e.portal_kit import Portal, Portals

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
BOB = ("202", "secret202")
PASSWORDS = {"alice": "alice-portal-pw", "bob": "bob-portal-pw", "carol": "carol-portal-pw"}
SETUP = [
    ["user", "set", "alice", "--password", PASSWORDS["alice"]],
    ["user", "set", "bob", "--password", PASSWORDS["bob"]],
    ["user", "add", "carol", "--extension", "203", "--sip-password", "secret203"],
    ["user", "set", "carol", "--password", PASSWORDS["carol"]],
]

PIDF = "application/pidf+xml"
DIALOG_INFO = "application/dialog-info+xml"
NS_PIDF = "urn:ietf:params:xml:ns:pidf"
NS_DIALOG = "urn:ietf:params:xml:ns:dialog-info"
QUIET = 4.0  # seconds without a NOTIFY after which pres_watch.xml unsubscribes


# --- what sipp received, with when ---------------------------------------------------

_STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Received:
    at: float  # epoch seconds (sipp's local-time stamp)
    message: SipMessage


def received_notifies(run: SippProcess) -> list[Received]:
    """Every NOTIFY sipp has received so far (the trace is read while sipp runs)."""
    if not run.trace_file.exists():
        return []
    parts = _STAMP.split(run.trace_file.read_text(errors="replace"))
    found: list[Received] = []
    for stamp, chunk in zip(parts[1::2], parts[2::2], strict=False):
        title, _, rest = chunk.lstrip("\r\n").partition("\n")
        text = rest.lstrip("\r\n").replace("\r\n", "\n").rstrip("\n")
        if "message received" not in title or not text.startswith("NOTIFY "):
            continue
        # A message being written may be cut short: skip what does not parse.
        with contextlib.suppress(Exception):
            message = parse_message(text.replace("\n", "\r\n").encode() + b"\r\n\r\n")
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
            found.append(Received(at, message))
    return found


def wait_notify(
    run: SippProcess, where: Callable[[SipMessage], bool], timeout: float, *, count: int = 1
) -> list[Received]:
    """The NOTIFYs matching `where` once there are `count` of them."""
    matching: list[Received] = []

    def enough() -> bool:
        nonlocal matching
        matching = [r for r in received_notifies(run) if where(r.message)]
        return len(matching) >= count

    if not wait_until(enough, timeout, interval=0.05):
        bodies = "\n---\n".join(r.message.text() for r in received_notifies(run)[-3:])
        raise AssertionError(
            f"{run.log_name}: {len(matching)} of {count} NOTIFYs within {timeout} s\n{bodies}"
        )
    return matching


def watcher(
    lab: CallLab, server: Server, event: str, *, calls: int = 1, timeout: float = 40.0
) -> SippProcess:
    """Bob's sipp subscribing to alice (201) for `event`, started."""
    accept = PIDF if event == "presence" else DIALOG_INFO
    rate = {"rate": 100.0, "limit": calls} if calls > 1 else {}
    # Many subscriptions share sipp's one socket: a fan-out sends them all their
    # NOTIFYs at once, more than the kernel's default 208 KB receive buffer holds
    # (a dropped one only comes with the retransmission 500 ms later). A 1 MB
    # buffer (capped by net.core.rmem_max) keeps the measurement about teleoffice.
    extra = ("-buff_size", str(1 << 20)) if calls > 1 else ()
    run = lab.sipp(
        "pres_watch",
        server,
        service=ALICE[0],
        auth=BOB,
        keys={"watcher": BOB[0], "event": event, "accept": accept},
        calls=calls,
        timeout=timeout,
        extra=extra,
        **rate,
    )
    return run.start()


def finished(run: SippProcess, calls: int = 1) -> list[SipMessage]:
    """Wait for the watcher to unsubscribe and end; its NOTIFYs in order."""
    result = run.wait()
    assert result.returncode == 0, result.describe()
    assert result.successful == calls, result.describe()
    return [
        t.message
        for t in result.trace
        if t.direction == "received" and t.message.start_line.startswith("NOTIFY ")
    ]


# --- the documents, read with ElementTree --------------------------------------------


@dataclass(frozen=True)
class Pidf:
    basics: tuple[str, ...]
    activities: frozenset[str]
    notes: tuple[str, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_pidf(message: SipMessage) -> Pidf:
    assert (message.header("event") or "").startswith("presence"), message.text()
    assert (message.header("content-type") or "").startswith(PIDF), message.text()
    root = ET.fromstring(message.body)
    assert root.tag == f"{{{NS_PIDF}}}presence", message.text()
    basics = tuple((e.text or "").strip() for e in root.iter(f"{{{NS_PIDF}}}basic"))
    activities = frozenset(
        _local(child.tag) if _local(child.tag) != "other" else f"other:{(child.text or '').strip()}"
        for e in root.iter()
        if _local(e.tag) == "activities"
        for child in e
    )
    notes = tuple((e.text or "").strip() for e in root.iter() if _local(e.tag) == "note")
    return Pidf(basics, activities, notes)


def dialog_states(message: SipMessage) -> list[str]:
    """The states of the dialogs a dialog-info NOTIFY shows (empty: idle)."""
    assert (message.header("event") or "").startswith("dialog"), message.text()
    if not message.body.strip():
        return []
    assert (message.header("content-type") or "").startswith(DIALOG_INFO), message.text()
    root = ET.fromstring(message.body)
    assert root.tag == f"{{{NS_DIALOG}}}dialog-info", message.text()
    return [
        (d.findtext(f"{{{NS_DIALOG}}}state") or "").strip()
        for d in root.iter(f"{{{NS_DIALOG}}}dialog")
    ]


def subscription_state(message: SipMessage) -> str:
    return (message.header("subscription-state") or "").replace(" ", "")


# --- the portal --------------------------------------------------------------------------


def directory_entry(portal: Portal, username: str) -> dict[str, Any]:
    for entry in portal.call("GET", "/api/presence"):
        if entry["username"] == username:
            return dict(entry)
    raise AssertionError(f"{username} missing from GET /api/presence")


def wait_entry(
    portal: Portal, username: str, where: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    entry: dict[str, Any] = {}

    def ok() -> bool:
        nonlocal entry
        entry = directory_entry(portal, username)
        return where(entry)

    assert wait_until(ok, timeout, interval=0.1), f"GET /api/presence, {username}: {entry}"
    return entry


def registered(lab: CallLab, server: Server, account: tuple[str, str], answermode: str) -> Phone:
    phone = lab.phone()
    phone.register(*account, server.sip_port, answermode=answermode)
    return phone


# --- 1: a choice in the portal reaches a SIP watcher and the user's other tab ------------


def test_away_with_a_note_reaches_a_sip_watcher_and_another_portal_session(
    lab: CallLab, portals: Portals
) -> None:
    server = lab.server(setup=SETUP)
    tab_one = portals.login(server, "alice", PASSWORDS["alice"])
    tab_two = portals.login(server, "alice", PASSWORDS["alice"])
    stream = tab_two.events()
    watch = watcher(lab, server, "presence")
    wait_notify(watch, lambda m: True, 10)

    note = "Zurück um 15 Uhr – 会議中 ☕"
    mark = stream.mark()
    put_at = time.time()
    view = tab_one.call("PUT", "/api/me/presence", {"state": "away", "note": note})
    assert (view["state"], view["note"], view["chosen"]) == ("away", note, "away"), view

    # The other session of the same user: presence.changed within a second.
    event = stream.wait_for(
        "presence.changed",
        1.0,
        after=mark,
        where=lambda m: m["presence"]["username"] == "alice" and m["presence"]["state"] == "away",
    )
    assert event is not None, stream.messages()[mark:]
    assert event["presence"]["note"] == note, event
    assert event["presence"]["on_the_phone"] is False, event
    assert tab_two.call("GET", "/api/me/presence")["note"] == note

    # The SIP watcher: a NOTIFY with the note and the away activity, within a second.
    (changed,) = wait_notify(watch, lambda m: note in m.body.decode(errors="replace"), 5)
    assert changed.at - put_at < 1.0, f"NOTIFY {changed.at - put_at:.3f} s after the PUT"

    notifies = finished(watch)
    first, *changes, final = notifies
    assert subscription_state(first).startswith("active"), first.text()
    assert subscription_state(final).startswith("terminated"), final.text()
    away = [n for n in changes if note in read_pidf(n).notes]
    assert away, "\n---\n".join(n.text() for n in notifies)
    doc = read_pidf(away[0])
    assert "away" in doc.activities, away[0].text()
    assert "on-the-phone" not in doc.activities, away[0].text()
    assert note not in read_pidf(first).notes, first.text()
    lab.assert_idle(server)


# --- 2: do not disturb PUBLISHed over SIP changes routing at once -----------------------


def test_dnd_published_over_sip_shows_everywhere_and_sends_the_next_call_to_busy(
    lab: CallLab, portals: Portals
) -> None:
    server = lab.server(setup=SETUP)
    alice_phone = registered(lab, server, ALICE, "auto")
    alice = portals.login(server, "alice", PASSWORDS["alice"])
    bob = portals.login(server, "bob", PASSWORDS["bob"])
    assert alice.call("GET", "/api/me")["dnd"] is False

    publish = lab.sipp("pres_publish", server, service=ALICE[0], auth=ALICE).start()
    result = publish.wait()
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [401, 200], result.describe()
    ok = result.responses[-1]
    assert ok.header("sip-etag"), ok.text()
    assert ok.header("expires") == "3600", ok.text()

    entry = directory_entry(bob, "alice")
    assert (entry["state"], entry["note"]) == ("dnd", "In a workshop"), entry
    mine = alice.call("GET", "/api/me/presence")
    assert (mine["state"], mine["chosen"]) == ("dnd", "dnd"), mine
    settings: dict[str, Any] = {}

    def dnd_on() -> bool:
        nonlocal settings
        settings = alice.call("GET", "/api/me")
        return settings["dnd"] is True

    assert wait_until(dnd_on, 1.0, interval=0.05), f"GET /api/me after the PUBLISH: {settings}"

    # The next call: busy, and alice's phone never rings (she has no mailbox).
    mark = alice_phone.mark()
    call = lab.sipp(
        "call_uac_refused", server, service=BOB[0], auth=BOB, keys={"callee": ALICE[0]}
    ).start()
    outcome = call.wait()
    assert outcome.returncode == 0, outcome.describe()
    assert statuses(outcome)[-1] == 486, outcome.describe()
    assert alice_phone.wait_for("CALL_INCOMING", 0.5, after=mark) is None, alice_phone.call_events()
    lab.assert_idle(server)


# --- 3: a call shows as busy to watchers, and on busy lamps ---------------------------------


def test_a_call_makes_the_user_busy_and_busy_lamps_follow_the_dialog(
    lab: CallLab, portals: Portals
) -> None:
    server = lab.server(setup=SETUP)
    alice_phone = registered(lab, server, ALICE, "manual")
    bob_phone = registered(lab, server, BOB, "auto")
    bob = portals.login(server, "bob", PASSWORDS["bob"])
    # Alice's registration makes her reachable (checked every 2 s): available.
    wait_entry(bob, "alice", lambda e: e["state"] == "available", 5)

    lamp = watcher(lab, server, "dialog")
    watch = watcher(lab, server, "presence")
    wait_notify(lamp, lambda m: True, 10)
    wait_notify(watch, lambda m: True, 10)

    bob_phone.dial(ALICE[0], server.sip_port)
    assert alice_phone.wait_for("CALL_INCOMING", 10) is not None, alice_phone.call_events()
    wait_notify(lamp, lambda m: "early" in dialog_states(m), 5)
    alice_phone.command("accept")
    for phone in (alice_phone, bob_phone):
        assert phone.wait_for("CALL_ESTABLISHED", 5) is not None, phone.call_events()
    wait_notify(lamp, lambda m: "confirmed" in dialog_states(m), 5)
    wait_notify(watch, lambda m: "on-the-phone" in read_pidf(m).activities, 5)
    during = directory_entry(bob, "alice")
    assert (during["state"], during["on_the_phone"]) == ("busy", True), during

    bob_phone.command("hangup")
    for phone in (alice_phone, bob_phone):
        assert phone.wait_for("CALL_CLOSED", 5) is not None, phone.call_events()
    after = wait_entry(bob, "alice", lambda e: not e["on_the_phone"], 2)
    assert after["state"] == "available", after

    # Busy lamp: idle, ringing (early), confirmed, then idle again.
    lamps = finished(lamp)
    shown = [dialog_states(n) for n in lamps[:-1]]
    story = "\n".join(f"{subscription_state(n)} {dialog_states(n)}" for n in lamps)
    assert shown[0] == [], story
    early = next(i for i, s in enumerate(shown) if "early" in s)
    confirmed = next(i for i, s in enumerate(shown) if "confirmed" in s)
    assert early < confirmed, story
    assert all("confirmed" not in s for s in shown[:early]), story
    gone = [i for i, s in enumerate(shown) if i > confirmed and set(s) <= {"terminated"}]
    assert gone, f"the dialog never ended on the busy lamp:\n{story}"
    assert all(set(s) <= {"terminated"} for s in shown[gone[0] :]), story

    # Presence: available, busy (on the phone) during the call, available again.
    docs = [read_pidf(n) for n in finished(watch)[:-1]]
    story = "\n".join(f"{d.basics} {sorted(d.activities)}" for d in docs)
    busy = [i for i, d in enumerate(docs) if "on-the-phone" in d.activities]
    assert busy, story
    assert busy[0] > 0, story
    assert "open" in docs[busy[0] - 1].basics, story
    assert "on-the-phone" not in docs[-1].activities, story
    assert "open" in docs[-1].basics, story
    lab.assert_idle(server)


# --- 4: fan-out to 100 SIP subscriptions and 100 WebSocket clients ----------------------------


@dataclass
class WsWatcher:
    """One WebSocket client waiting for alice's presence.changed with `note`."""

    url: str
    note: str
    ready: threading.Event = field(default_factory=threading.Event)
    got_at: float | None = None
    error: str | None = None
    connection: ClientConnection | None = None

    def run(self) -> None:
        try:
            with connect(
                self.url, open_timeout=10, close_timeout=1, proxy=None, compression=None
            ) as ws:
                self.connection = ws
                hello = json.loads(ws.recv(timeout=10))
                if hello.get("type") != "hello":
                    self.error = f"first message {hello}"
                    return
                self.ready.set()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                    if message.get("type") == "ping":
                        ws.send(json.dumps({"type": "pong"}))
                    elif message.get("type") == "presence.changed":
                        presence = message.get("presence", {})
                        if presence.get("username") == "alice" and presence.get("note") == (
                            self.note
                        ):
                            self.got_at = time.time()
                            return
        except (ConnectionClosed, OSError, TimeoutError, ValueError) as exc:
            self.error = repr(exc)
        finally:
            self.ready.set()

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()


def percentiles(delays: Sequence[float]) -> str:
    ms = sorted(d * 1000 for d in delays)
    return f"p50 {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms (n={len(ms)})"


def test_a_change_fans_out_to_100_sip_subscriptions_and_100_websockets(
    lab: CallLab, portals: Portals
) -> None:
    server = lab.server(setup=SETUP)
    alice = portals.login(server, "alice", PASSWORDS["alice"])
    # A few logins (the portal allows 20 a minute per address), each token reused.
    tokens = [portals.login(server, name, PASSWORDS[name]).token for name in ("bob", "carol")] * 2
    note = "Fan-out test · 全員へ"
    clients = [
        WsWatcher(f"ws://{LOOPBACK}:{server.http_port}/api/events?token={tokens[i % 4]}", note)
        for i in range(100)
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    try:
        for thread in threads:
            thread.start()
        for client in clients:
            assert client.ready.wait(15), "a WebSocket client did not connect"
        failed = [c.error for c in clients if c.error]
        assert not failed, failed[:3]

        subscriptions = 100
        watch = watcher(lab, server, "presence", calls=subscriptions, timeout=60)
        firsts = wait_notify(watch, lambda m: True, 20, count=subscriptions)
        assert len({r.message.header("call-id") for r in firsts}) == subscriptions

        put_at = time.time()
        alice.call("PUT", "/api/me/presence", {"state": "away", "note": note})

        def everyone_told() -> bool:
            return all(c.got_at is not None or c.error for c in clients)

        wait_until(everyone_told, 10, interval=0.05)
        ws_missing = [c.error or "no event" for c in clients if c.got_at is None]
        finished(watch, subscriptions)
        changed = [r for r in received_notifies(watch) if note in r.message.body.decode()]
    finally:
        for client in clients:
            client.close()
        for thread in threads:
            thread.join(timeout=3)

    assert not ws_missing, f"{len(ws_missing)} WebSocket clients missed it: {ws_missing[:3]}"
    sip_at: dict[str | None, float] = {}
    for r in changed:  # the first copy of each (a retransmission may follow)
        sip_at.setdefault(r.message.header("call-id"), r.at)
    assert len(sip_at) == subscriptions, f"{len(sip_at)} subscriptions got the change"
    ws_delays = [c.got_at - put_at for c in clients if c.got_at is not None]
    sip_delays = [at - put_at for at in sip_at.values()]
    print(
        "\npresence fan-out after PUT /api/me/presence:"
        f"\n  WebSocket ({len(ws_delays)} clients): {percentiles(ws_delays)}"
        f"\n  SIP NOTIFY ({len(sip_delays)} subscriptions): {percentiles(sip_delays)}"
        f"\n  all 200 watchers: {percentiles(ws_delays + sip_delays)}"
    )
    lab.assert_idle(server)
