"""Registration with a real softphone: baresip 1.0, driven headless over ctrl_tcp."""

from __future__ import annotations

import re
import time

import pytest

from teleoffice.bench.processes import LOOPBACK, wait_until
from tests.e2e.conftest import BaresipFactory
from tests.e2e.harness import Server

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

OUTCOMES = ("REGISTER_OK", "REGISTER_FAIL")


def phone_bindings(server: Server, sip_port: int) -> list[str]:
    """Lines of `teleoffice registrations` whose contact is this baresip's address."""
    pattern = re.compile(rf"@{re.escape(LOOPBACK)}:{sip_port}(?![0-9])")
    return [line for line in server.registrations() if pattern.search(line)]


def test_baresip_registers_and_unregisters(server: Server, baresip_factory: BaresipFactory) -> None:
    phone = baresip_factory()
    aor = phone.add_account("201", "secret201", server.sip_port)

    outcome = phone.wait_event(OUTCOMES, timeout=10, aor=aor)
    assert outcome is not None, f"no registration outcome within 10 s: {phone.events()}"
    assert outcome["type"] == "REGISTER_OK", outcome
    assert wait_until(lambda: server.health()["registrations"] == 1, 3), server.health()
    assert wait_until(lambda: len(phone_bindings(server, phone.sip_port)) == 1, 5), (
        server.registrations()
    )
    (line,) = phone_bindings(server, phone.sip_port)
    assert line.split()[0] == "201", line

    reply = phone.delete_account(aor)
    assert reply.get("ok"), reply
    assert phone.wait_event("UNREGISTERING", timeout=5, aor=aor) is not None, phone.events()
    assert wait_until(lambda: server.health()["registrations"] == 0, 5), server.health()
    assert wait_until(lambda: server.registrations() == [], 5), server.registrations()


def test_baresip_with_a_wrong_password_is_refused(
    server: Server, baresip_factory: BaresipFactory
) -> None:
    phone = baresip_factory()
    aor = phone.add_account("201", "not-the-password", server.sip_port)

    outcome = phone.wait_event(OUTCOMES, timeout=10, aor=aor)
    assert outcome is not None, f"no registration outcome within 10 s: {phone.events()}"
    assert outcome["type"] == "REGISTER_FAIL", outcome
    # baresip's reason is the server's final answer: a fresh challenge it cannot meet.
    assert "401" in str(outcome.get("param", "")), outcome
    time.sleep(0.5)  # the server's database writes are batched every 0.2 s
    assert server.health()["registrations"] == 0
    assert server.registrations() == []
