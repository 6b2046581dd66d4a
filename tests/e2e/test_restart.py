"""Bindings outlive a restart (SIGTERM flushes them) and expire, running or not."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from teleoffice.bench.processes import LOOPBACK, wait_until
from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server, Sipp, contact_bindings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ACCOUNT = ("201", "secret201")
SHORT_LIVED = {"TELEOFFICE_MIN_EXPIRES": "1"}


def register(sipp: Sipp, expires: int) -> int:
    """Register sipp's contact for `expires` seconds; the time the server granted."""
    result = sipp.run("register", auth=ACCOUNT, keys={"expires": str(expires)})
    assert result.returncode == 0, result.describe()
    assert [r.status for r in result.responses] == [401, 200], result.describe()
    pattern = re.compile(rf"sip:201@{re.escape(LOOPBACK)}:{sipp.port}(?![0-9])")
    granted = [e for u, e in contact_bindings(result.last_response).items() if pattern.match(u)]
    assert len(granted) == 1, result.last_response.text()
    assert granted[0] is not None, result.last_response.text()
    return granted[0]


def listed(server: Server, sipp: Sipp) -> list[str]:
    pattern = re.compile(rf"sip:201@{re.escape(LOOPBACK)}:{sipp.port}(?![0-9])")
    return [line for line in server.registrations() if pattern.search(line)]


def stop_cleanly(server: Server) -> None:
    code = server.stop()
    assert code == 0, f"SIGTERM should end the server with status 0, got {code}"


def test_binding_survives_a_restart(server: Server, sipp: Sipp) -> None:
    assert register(sipp, 3600) > 3500
    assert wait_until(lambda: server.health()["registrations"] == 1, 3), server.health()

    stop_cleanly(server)
    # Straight from the database, with the server down.
    assert len(listed(server, sipp)) == 1, server.registrations()

    server.start()
    assert server.health()["registrations"] == 1
    assert len(listed(server, sipp)) == 1, server.registrations()


def test_short_binding_expires_while_running(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(env=SHORT_LIVED)
    sipp = Sipp(server.sip_port, tmp_path / "sipp")
    granted = register(sipp, 2)
    assert granted <= 2
    assert wait_until(lambda: server.health()["registrations"] == 1, 1), server.health()

    assert wait_until(lambda: server.health()["registrations"] == 0, granted + 3), server.health()
    assert listed(server, sipp) == []
    # The expiry was written back too: nothing returns after a restart.
    stop_cleanly(server)
    server.start()
    assert server.health()["registrations"] == 0
    assert server.registrations() == []


def test_short_binding_expires_across_a_restart(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(env=SHORT_LIVED)
    lasting = Sipp(server.sip_port, tmp_path / "sipp-lasting")
    brief = Sipp(server.sip_port, tmp_path / "sipp-brief")
    register(lasting, 3600)
    registered_at = time.monotonic()
    granted = register(brief, 3)
    assert granted <= 3
    assert wait_until(lambda: server.health()["registrations"] == 2, 2), server.health()

    stop_cleanly(server)
    assert time.monotonic() - registered_at < granted, "too slow to stop before the expiry"
    time.sleep(max(0.0, registered_at + granted + 1 - time.monotonic()))
    server.start()

    assert server.health()["registrations"] == 1
    assert len(listed(server, lasting)) == 1, server.registrations()
    assert listed(server, brief) == [], server.registrations()
