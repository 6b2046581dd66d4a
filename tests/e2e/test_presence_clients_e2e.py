"""Presence (issue 6, DESIGN.md T9) across a user's own clients, with SIP software
nobody on the team wrote: baresip's presence module PUBLISHes open/closed, and
pjsua2 (PJSIP, run as a process of its own by tests/e2e/pjsua_presence.py) is a
second client of the same user that PUBLISHes with RPID and watches the user.

Alice (201) uses baresip on her desk and pjsua2 on her "mobile"; bob (202) looks
at the directory in the portal.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from teleoffice.bench.processes import end_process, free_port, wait_until
from tests.e2e.calls_kit import CallLab, Phone
from tests.e2e.harness import Server
from tests.e2e.portal_kit import Portal, Portals

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
PASSWORDS = {"alice": "alice-portal-pw", "bob": "bob-portal-pw"}
SETUP = [
    ["user", "set", "alice", "--password", PASSWORDS["alice"]],
    ["user", "set", "bob", "--password", PASSWORDS["bob"]],
]
SCRIPT = Path(__file__).with_name("pjsua_presence.py")


class PjsuaClient:
    """pjsua_presence.py in a process of its own; its JSON lines read by a thread."""

    def __init__(self, workdir: Path, server: Server, user: str, password: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "pjsua.log"
        self.lines: list[dict[str, Any]] = []
        self._fresh: queue.Queue[dict[str, Any]] = queue.Queue()
        command = [
            sys.executable,
            str(SCRIPT),
            "--server-port", str(server.sip_port),
            "--port", str(free_port()),
            "--user", user,
            "--password", password,
            "--watch", user,
            "--seconds", "90",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(workdir / "pjsua.stderr").open("wb"),
            env={"PJSUA_LOG": str(self.log_path), "PATH": "/usr/bin:/bin"},
            cwd=workdir,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                self.lines.append(line)

    def mark(self) -> int:
        return len(self.lines)

    def wait_for(
        self, where: Callable[[dict[str, Any]], bool], timeout: float, *, after: int = 0
    ) -> dict[str, Any]:
        found: dict[str, Any] | None = None

        def seen() -> bool:
            nonlocal found
            found = next((line for line in self.lines[after:] if where(line)), None)
            return found is not None

        if not wait_until(seen, timeout, interval=0.05):
            tail = (
                self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            )
            raise AssertionError(
                f"pjsua2: nothing matching within {timeout} s: {self.lines[after:]}\n{tail}"
            )
        assert found is not None
        return found

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.send(command="quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5.0)
        end_process(self.proc, 2.0)


@pytest.fixture
def pjsua(lab: CallLab) -> Iterator[Callable[[Server], PjsuaClient]]:
    started: list[PjsuaClient] = []

    def start(server: Server) -> PjsuaClient:
        client = PjsuaClient(lab.root / f"pjsua-{len(started)}", server, *ALICE)
        started.append(client)
        return client

    try:
        yield start
    finally:
        for client in started:
            client.stop()


def entry_of(portal: Portal, username: str) -> dict[str, Any]:
    for entry in portal.call("GET", "/api/presence"):
        if entry["username"] == username:
            return dict(entry)
    raise AssertionError(f"{username} missing from GET /api/presence")


def wait_state(portal: Portal, username: str, state: str, timeout: float) -> dict[str, Any]:
    entry: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal entry
        entry = entry_of(portal, username)
        return bool(entry["state"] == state)

    assert wait_until(reached, timeout, interval=0.05), f"{username} never {state}: {entry}"
    return entry


def desk_phone(lab: CallLab, server: Server) -> Phone:
    """Alice's baresip with the presence module, publishing every 60 s.

    The account is in baresip's `accounts` file rather than added by `uanew`: the
    presence module only publishes for user agents that exist when it starts. It
    PUBLISHes "open" once registered."""
    line = Phone.account_line(*ALICE, server.sip_port, params=";pubint=60")
    return lab.phone(presence=True, accounts=[line])


def presence_command(phone: Phone, command: str) -> None:
    reply = phone.command(command)
    assert reply.get("ok"), reply


def test_baresip_publishes_open_and_closed_and_the_portal_shows_it(
    lab: CallLab, portals: Portals
) -> None:
    server = lab.server(setup=SETUP)
    bob = portals.login(server, "bob", PASSWORDS["bob"])
    bob_stream = bob.events()
    # Nothing of alice's is connected: she shows offline.
    assert entry_of(bob, "alice")["state"] == "offline"

    # Her desk phone registers and PUBLISHes "open".
    mark = bob_stream.mark()
    phone = desk_phone(lab, server)
    wait_state(bob, "alice", "available", 10.0)

    def alice_became(state: str) -> None:
        event = bob_stream.wait_for(
            "presence.changed",
            2.0,
            after=mark,
            where=lambda m: (
                m["presence"]["username"] == "alice" and m["presence"]["state"] == state
            ),
        )
        assert event is not None, bob_stream.messages()[mark:]

    alice_became("available")

    # "closed": the phone is registered still, but it speaks for itself through
    # its publication, so alice shows offline.
    mark = bob_stream.mark()
    presence_command(phone, "presence_offline")
    wait_state(bob, "alice", "offline", 2.0)
    alice_became("offline")

    mark = bob_stream.mark()
    presence_command(phone, "presence_online")
    wait_state(bob, "alice", "available", 2.0)
    alice_became("available")

    # A choice in the portal is a message to colleagues: it shows over "open",
    # and baresip's next refresh of the same content does not undo it.
    alice = portals.login(server, "alice", PASSWORDS["alice"])
    alice.call("PUT", "/api/me/presence", {"state": "away", "note": "Lunch"})
    away = entry_of(bob, "alice")
    assert (away["state"], away["note"]) == ("away", "Lunch"), away
    lab.assert_idle(server)


def test_a_second_client_of_the_same_user_sees_the_first_ones_change(
    lab: CallLab, portals: Portals, pjsua: Callable[[Server], PjsuaClient]
) -> None:
    """Alice's laptop softphone and her mobile, both pjsua2, both watching her."""
    server = lab.server(setup=SETUP)
    bob = portals.login(server, "bob", PASSWORDS["bob"])
    laptop, mobile = pjsua(server), pjsua(server)
    for client in (laptop, mobile):
        client.wait_for(lambda m: m.get("event") == "registered" and m.get("code") == 200, 15.0)
        # Subscribed to herself: the first NOTIFY shows her online.
        client.wait_for(lambda m: m.get("event") == "buddy" and m.get("status") == "online", 15.0)

    def buddy(note: str, activity: str) -> Callable[[dict[str, Any]], bool]:
        return lambda m: (
            m.get("event") == "buddy" and m.get("note") == note and m.get("activity") == activity
        )

    # A change on the laptop (PUBLISH with RPID away and a note, RFC 4480)
    # reaches the mobile, the directory, and the laptop's own subscription.
    note = "Im Zug bis 10 Uhr – 会議"
    mark = mobile.mark()
    started = time.monotonic()
    laptop.send(command="publish", status="online", activity="away", note=note)
    seen = mobile.wait_for(buddy(note, "away"), 5.0, after=mark)
    print(f"laptop PUBLISH -> mobile NOTIFY: {(time.monotonic() - started) * 1000:.0f} ms")
    assert seen["status"] == "online", seen
    away = wait_state(bob, "alice", "away", 2.0)
    assert away["note"] == note, away
    laptop.wait_for(buddy(note, "away"), 5.0)

    # And back from the mobile: busy with another note, seen on the laptop.
    mark = laptop.mark()
    mobile.send(command="publish", status="online", activity="busy", note="Kundentermin")
    laptop.wait_for(buddy("Kundentermin", "busy"), 5.0, after=mark)
    busy = wait_state(bob, "alice", "busy", 2.0)
    assert busy["note"] == "Kundentermin", busy

    # A portal choice reaches both SIP clients as well.
    alice = portals.login(server, "alice", PASSWORDS["alice"])
    marks = (laptop.mark(), mobile.mark())
    alice.call("PUT", "/api/me/presence", {"state": "available", "note": "Zurück"})
    for client, after in zip((laptop, mobile), marks, strict=True):
        back = client.wait_for(buddy("Zurück", ""), 5.0, after=after)
        assert back["status"] == "online", back
    for client in (laptop, mobile):
        client.stop()
    lab.assert_idle(server)


def test_the_chosen_state_survives_a_restart(
    lab: CallLab, portals: Portals, pjsua: Callable[[Server], PjsuaClient]
) -> None:
    server = lab.server(setup=SETUP)
    alice = portals.login(server, "alice", PASSWORDS["alice"])
    note = "Urlaub bis 3.12. – Vertretung: Bob"
    alice.call("PUT", "/api/me/presence", {"state": "away", "note": note})
    assert server.restart() == 0
    # A new session after the restart, and a SIP client subscribing afresh.
    bob = portals.login(server, "bob", PASSWORDS["bob"])
    entry = entry_of(bob, "alice")
    assert (entry["state"], entry["note"]) == ("away", note), entry
    mobile = pjsua(server)
    seen = mobile.wait_for(lambda m: m.get("event") == "buddy" and m.get("note") == note, 15.0)
    assert (seen["status"], seen["activity"]) == ("online", "away"), seen
    mobile.stop()
    lab.assert_idle(server)
