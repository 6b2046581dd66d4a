"""`kill -9` of the server at bad moments (issue 9: crash safety).

The server is killed with SIGKILL by its PID (no shutdown code runs) while calls
are up under load, in the middle of a burst of settings changes, and while a
telecommuter session starts and its first call rings; then it is started again
on the same data.  After each restart:

- SQLite's `PRAGMA integrity_check` says ok (and no foreign key dangles);
- configuration is as the last acknowledged write left it (or the write that
  was in flight, whole: never half of one), as are registrations, locations
  (hot desking), telecommuter sessions and portal sessions;
- every call the crash cut is in the call log as ended by the restart
  (outcome `ended-by-restart`, ended_by `restart`), nothing is left open, and
  calls that had ended are untouched;
- the PBX works: calls go through again.

(Voicemail recording under kill -9 is tests/e2e/test_voicemail_crash_e2e.py.)
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from tests.e2e.calls_kit import CallLab, SippProcess, call_log
from tests.e2e.harness import Server
from tests.e2e.portal_kit import Portal, Portals, sipp_received_at

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE_PW = "alice-crash-pw"
BOB_PW = "bob-crash-pw"
HOME_NUMBER = "80611"  # alice's home line, as dialled from her desk (trunk "home", prefix 8)


# --- the crash and what it left -----------------------------------------------------------


def kill_9(server: Server) -> None:
    """SIGKILL the server by its PID: no shutdown code runs, nothing is flushed."""
    proc = server.proc
    assert proc is not None, "the server was never started"
    assert proc.poll() is None, f"the server died before the kill:\n{server.log_tail()}"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    server.proc = None  # started again with server.start()


def query(server: Server, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows straight from the database file (the server may be running: WAL readers
    do not disturb it)."""
    db = sqlite3.connect(server.data_dir / "teleoffice.db", timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def assert_intact(server: Server) -> None:
    assert query(server, "PRAGMA integrity_check") == [("ok",)]
    assert query(server, "PRAGMA foreign_key_check") == []


def open_calls(server: Server) -> set[str]:
    return {row[0] for row in query(server, "SELECT call_id FROM call_log WHERE ended_at IS NULL")}


def ended_calls(server: Server) -> dict[str, tuple[Any, ...]]:
    rows = query(
        server,
        "SELECT call_id, outcome, ended_by, ended_at, answered_at, status FROM call_log "
        "WHERE ended_at IS NOT NULL",
    )
    return {row[0]: row[1:] for row in rows}


def assert_closed_by_restart(server: Server, cut: set[str]) -> None:
    """Every call in `cut` is now ended by the restart; no call is open."""
    assert open_calls(server) == set()
    marks = "?" * len(cut)
    rows = query(
        server,
        f"SELECT call_id, outcome, ended_by FROM call_log WHERE call_id IN ({','.join(marks)})",
        *sorted(cut),
    )
    assert sorted(rows) == [(c, "ended-by-restart", "restart") for c in sorted(cut)], rows


# --- 1: under call load --------------------------------------------------------------------

LOAD_CALLS = 200  # more than are placed before the kill: sipp is still calling then
LOAD_RATE = 10  # new calls per second
LOAD_LIMIT = 15  # calls up at once
TALK_MS = 4000


def bindings_of(server: Server, port: int) -> list[str]:
    pattern = re.compile(rf"sip:202@{re.escape(LOOPBACK)}:{port}(?![0-9])")
    return [line for line in server.registrations() if pattern.search(line)]


def test_kill_9_under_call_load(lab: CallLab) -> None:
    server = lab.server(rtp_ports=8 * LOAD_LIMIT)
    alice, bob = lab.alice_calls_bob(
        server,
        calls=LOAD_CALLS,
        rate=LOAD_RATE,
        limit=LOAD_LIMIT,
        talk_ms=TALK_MS,
        timeout=40,
        trace_msg=False,
    )
    bob_port = bob.port
    alice.start()

    def loaded() -> bool:
        # Calls up, some of them already in the call log (written every 0.2 s),
        # and some ended: the crash finds every kind of row.
        return (
            server.health()["calls"] >= 5
            and len(open_calls(server)) >= 5
            and bool(ended_calls(server))
        )

    assert wait_until(loaded, 20, interval=0.2), (server.health(), open_calls(server))
    kill_9(server)
    alice.stop()
    bob.stop()

    assert_intact(server)
    cut = open_calls(server)  # the calls the crash cut, as far as the log knew them
    ended = ended_calls(server)
    assert cut, "no call was open at the crash"
    assert len(bindings_of(server, bob_port)) == 1, server.registrations()

    server.start()
    assert_intact(server)
    assert_closed_by_restart(server, cut)
    # Calls that had ended before the crash are history: unchanged.
    after = ended_calls(server)
    assert {c: after[c] for c in ended} == ended
    shown = [row.outcome for row in call_log(server, limit=500)]
    assert shown.count("ended-by-restart") == len(cut), shown
    # Bob's phone is still registered, and reachable: a call goes through.
    assert server.health()["registrations"] == 1
    assert len(bindings_of(server, bob_port)) == 1, server.registrations()
    bob = lab.sipp("call_uas_answer", server, port=bob_port, service="202", timeout=20).start()
    time.sleep(0.3)
    result = (
        lab.sipp(
            "call_uac",
            server,
            auth=("201", "secret201"),
            keys={"callee": "202"},
            duration_ms=500,
            timeout=20,
        )
        .start()
        .wait()
    )
    assert result.successful == 1, result.describe()
    assert bob.wait(10).successful == 1
    lab.assert_idle(server)


# --- 2: while saving settings ------------------------------------------------------------------


@dataclass
class Writer:
    """Sends one change after another until told to stop or the server dies;
    knows the last change acknowledged and the one in flight (at most one)."""

    portal: Portal
    method: str
    path: str
    body_of: Callable[[int], dict[str, Any]]
    acked: int = -1
    in_flight: int | None = None
    error: str | None = None

    def run(self, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            self.in_flight = n
            try:
                reply = self.portal.request(self.method, self.path, self.body_of(n))
            except httpx.HTTPError:
                return  # the server died with this request in flight
            if reply.status_code != 200:
                self.error = f"{self.path}: {reply.status_code} {reply.text}"
                return
            self.acked, self.in_flight = n, None
            n += 1

    def possible(self) -> list[dict[str, Any]]:
        """What the store may hold after the crash: the last acknowledged change,
        or the one in flight, each whole."""
        candidates = [n for n in (self.acked, self.in_flight) if n is not None and n >= 0]
        return [self.body_of(n) for n in candidates]


def alice_settings(n: int) -> dict[str, Any]:
    return {"no_answer_timeout": 5 + n % 90, "dnd": n % 2 == 0, "call_waiting": n % 3 != 0}


def bob_by_admin(n: int) -> dict[str, Any]:
    return {"display_name": f"Bob {n}", "no_answer_timeout": 100 + n % 90}


def picked(view: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    return {key: view[key] for key in like}


def test_kill_9_while_saving_settings(lab: CallLab, portals: Portals) -> None:
    server = lab.server(
        setup=[
            ("user", "set", "alice", "--password", ALICE_PW),
            ("user", "set", "bob", "--password", BOB_PW, "--admin"),
        ]
    )
    alice = portals.login(server, "alice", ALICE_PW)
    bob = portals.login(server, "bob", BOB_PW)
    # Bob hot-desks on Alice's phone: she is logged out of it (T10).
    bob.call("PUT", "/api/me/location", {"phone": "201"})
    locations = {
        "alice": alice.call("GET", "/api/me/location"),
        "bob": bob.call("GET", "/api/me/location"),
    }
    assert (locations["alice"]["kind"], locations["bob"]["phone"]) == ("logged-out", "201")

    writers = [
        Writer(alice, "PATCH", "/api/me/settings", alice_settings),
        Writer(bob, "PATCH", "/api/admin/users/bob", bob_by_admin),
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in writers]
    for thread in threads:
        thread.start()
    try:
        assert wait_until(lambda: all(w.acked >= 3 for w in writers), 10, interval=0.02), [
            (w.acked, w.error) for w in writers
        ]
        seed = random.randrange(1_000_000)
        pause = random.Random(seed).uniform(0.0, 0.8)
        print(f"killing {pause:.3f} s into the burst (seed {seed})")
        time.sleep(pause)
        kill_9(server)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert [w.error for w in writers] == [None, None]
    print("acknowledged:", [(w.acked, w.in_flight) for w in writers])

    assert_intact(server)
    server.start()
    assert_intact(server)
    # The sessions survived too: the same tokens work.
    mine = alice.call("GET", "/api/me")
    assert picked(mine, alice_settings(0)) in writers[0].possible(), (mine, writers[0])
    bobs = bob.call("GET", "/api/admin/users/bob")
    assert picked(bobs, bob_by_admin(0)) in writers[1].possible(), (bobs, writers[1])
    assert alice.call("GET", "/api/me/location") == locations["alice"]
    assert bob.call("GET", "/api/me/location") == locations["bob"]
    assert alice.telecommuter()["active"] is False
    # Writes go on after the restart.
    assert alice.settings(no_answer_timeout=42)["no_answer_timeout"] == 42
    lab.assert_idle(server)


# --- 3: while a telecommuter session starts ----------------------------------------------------


def telecommuter_site(lab: CallLab) -> tuple[Server, int]:
    home_port = free_port()
    server = lab.server(
        setup=[
            ("user", "set", "alice", "--password", ALICE_PW, "--telecommuter"),
            ("trunk", "add", "home", "--host", LOOPBACK, "--port", str(home_port), "--prefix", "8"),
        ]
    )
    return server, home_port


def home_line(lab: CallLab, server: Server, home_port: int) -> SippProcess:
    """Alice's home line behind the trunk: it rings until cancelled."""
    line = lab.sipp("call_uas_ring", server, port=home_port, timeout=30).start()
    time.sleep(0.3)  # let it open its socket
    return line


def rang(line: SippProcess) -> bool:
    return bool(sipp_received_at(line.trace_file, "INVITE"))


def test_kill_9_while_a_telecommuter_session_starts(lab: CallLab, portals: Portals) -> None:
    server, home_port = telecommuter_site(lab)
    line = home_line(lab, server, home_port)
    alice = portals.login(server, "alice", ALICE_PW)

    started = alice.start_telecommuter(HOME_NUMBER)
    assert (started["active"], started["number"]) == (True, HOME_NUMBER)
    call_id = alice.place_call("202")  # the callback rings her home line first (T4)
    assert wait_until(lambda: rang(line), 10, interval=0.1), line.log_tail()
    assert wait_until(lambda: call_id in open_calls(server), 5, interval=0.1), open_calls(server)
    kill_9(server)
    line.stop()

    assert_intact(server)
    server.start()
    assert_intact(server)
    mode = alice.telecommuter()
    assert (mode["active"], mode["number"]) == (True, HOME_NUMBER), mode
    assert alice.call("GET", "/api/me/location")["kind"] == "telecommuter"
    assert alice.calls() == []
    assert_closed_by_restart(server, {call_id})
    [logged] = [c for c in alice.call_log() if c["id"] == call_id]
    assert (logged["outcome"], logged["to"]["number"]) == ("ended-by-restart", "202"), logged

    # Calls follow her home as before: a new call rings the home line, and is
    # cancelled when she hangs it up in the portal.
    line = home_line(lab, server, home_port)
    call_id = alice.place_call("202")
    assert wait_until(lambda: rang(line), 10, interval=0.1), line.log_tail()
    alice.hang_up(call_id)
    assert line.wait(15).successful == 1, line.log_tail()
    lab.assert_idle(server)


def test_kill_9_at_a_random_moment_of_a_telecommuter_start(lab: CallLab, portals: Portals) -> None:
    server, home_port = telecommuter_site(lab)
    line = home_line(lab, server, home_port)
    alice = portals.login(server, "alice", ALICE_PW)
    steps: dict[str, Any] = {}

    def start_and_call() -> None:
        try:
            steps["telecommuter"] = alice.start_telecommuter(HOME_NUMBER)
            steps["call"] = alice.place_call("202")
        except (httpx.HTTPError, AssertionError) as exc:
            steps["stopped"] = repr(exc)

    seed = random.randrange(1_000_000)
    pause = random.Random(seed).uniform(0.0, 0.6)
    print(f"killing {pause:.3f} s after the start (seed {seed})")
    thread = threading.Thread(target=start_and_call, daemon=True)
    thread.start()
    time.sleep(pause)
    kill_9(server)
    thread.join(timeout=10)
    line.stop()
    print("acknowledged:", sorted(set(steps) - {"stopped"}))

    assert_intact(server)
    cut = open_calls(server)
    server.start()
    assert_intact(server)
    mode = alice.telecommuter()
    if "telecommuter" in steps:  # acknowledged: it must have lasted
        assert mode["active"] is True, (mode, steps)
    if mode["active"]:  # whole, never half
        assert mode["number"] == HOME_NUMBER, mode
        assert alice.call("GET", "/api/me/location")["kind"] == "telecommuter"
    else:
        assert alice.call("GET", "/api/me/location")["phone"] == "201"
    assert cut <= ({steps["call"]} if "call" in steps else set()), (cut, steps)
    assert_closed_by_restart(server, cut)
    assert alice.calls() == []
    lab.assert_idle(server)
