"""The administrators' live view: phones with their registrations, calls in
progress, telecommuters, trunk registrations; read from a real registrar and
call records, with the users and phone accounts of a real database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from teleoffice.calls.engine import CallRecord, CallState, Direction, Party
from teleoffice.calls.locations import Location, LocationKind
from teleoffice.calls.registrar import Binding, Registrar, RegistrarLimits
from teleoffice.portal.admin_live import LiveSources, attach_live
from teleoffice.store import Sessions
from tests.unit.portal_kit import START, Portal, error_of, open_portal


def binding(account: str, port: int, expires_in: float, agent: str | None = None) -> Binding:
    uri = f"sip:{account}@192.0.2.7:{port}"
    return Binding(
        account=account,
        contact=f"<{uri}>",
        uri=uri,
        expires_at=START + expires_in,
        call_id=f"reg-{account}-{port}",
        cseq=1,
        q=None,
        transport="UDP",
        source_host="192.0.2.7",
        source_port=port,
        user_agent=agent,
    )


@dataclass
class FakePbx:
    """What the composition root would hand over, filled by each test."""

    registrar: Registrar
    calls: list[CallRecord] = field(default_factory=list)
    telecommuters: dict[str, Location] = field(default_factory=dict)
    occupants: dict[str, str] = field(default_factory=dict)
    trunk_states: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions)


@pytest.fixture
def admin(portal: Portal) -> dict[str, str]:
    return portal.as_user("admin")


@pytest.fixture
def pbx(portal: Portal) -> FakePbx:
    registrar = Registrar(
        RegistrarLimits(),
        [
            binding("201", 5062, 300, "baresip v3"),
            binding("201", 5064, 30),
            binding("202", 5066, -5),  # expired: not shown
        ],
    )
    pbx = FakePbx(registrar=registrar, occupants={"201": "alice", "200": "admin"})
    attach_live(
        portal.app,
        LiveSources(
            bindings=registrar.lookup,
            calls=lambda: pbx.calls,
            telecommuters=lambda: pbx.telecommuters,
            occupant=pbx.occupants.get,
            trunk_states=lambda: pbx.trunk_states,
            clock=portal.clock,
        ),
    )
    return pbx


def test_phones_list_every_account_with_its_registrations(
    portal: Portal, admin: dict[str, str], pbx: FakePbx
) -> None:
    response = portal.client.get("/api/admin/phones", headers=admin)
    assert response.status_code == 200, response.text
    phones = {p["account"]: p for p in response.json()}
    assert sorted(phones) == ["200", "201", "202", "203"]
    alice = phones["201"]
    assert (alice["owner"], alice["logged_in"]) == ("alice", "alice")
    assert [r["source"] for r in alice["registrations"]] == ["192.0.2.7:5062", "192.0.2.7:5064"]
    first = alice["registrations"][0]
    assert first["contact"] == "<sip:201@192.0.2.7:5062>"
    assert first["uri"] == "sip:201@192.0.2.7:5062"
    assert first["transport"] == "UDP"
    assert first["user_agent"] == "baresip v3"
    assert first["expires_in"] == 300
    assert first["expires_at"].startswith("2030-")
    assert phones["202"]["registrations"] == []  # its only binding has expired
    assert (phones["202"]["owner"], phones["202"]["logged_in"]) == ("bob", None)
    shown = portal.client.get("/api/admin/phones/201", headers=admin)
    assert shown.json() == alice
    missing = portal.client.get("/api/admin/phones/299", headers=admin)
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"


def test_registrations_count_down_with_the_clock(
    portal: Portal, admin: dict[str, str], pbx: FakePbx
) -> None:
    portal.clock.advance(100)
    phone = portal.client.get("/api/admin/phones/201", headers=admin).json()
    assert [r["expires_in"] for r in phone["registrations"]] == [200]


def test_live_shows_registered_phones_calls_and_telecommuters(
    portal: Portal, admin: dict[str, str], pbx: FakePbx
) -> None:
    pbx.calls = [
        CallRecord(
            call_id="c2",
            direction=Direction.OUTBOUND,
            caller=Party("202", "Bob"),
            callee=Party("0301234", None),
            dialled="90301234",
            route="pstn",
            trunk="pstn",
            caller_user="bob",
            callee_user=None,
            state=CallState.RINGING,
            started_at=START - 5,
        ),
        CallRecord(
            call_id="c1",
            direction=Direction.INTERNAL,
            caller=Party("201", "Alice"),
            callee=Party("203", "Carol"),
            dialled="203",
            route=None,
            trunk=None,
            caller_user="alice",
            callee_user="carol",
            state=CallState.CONNECTED,
            started_at=START - 60,
            answered_at=START - 55,
            held=True,
        ),
    ]
    pbx.telecommuters = {
        "bob": Location(LocationKind.TELECOMMUTER, number="80611", since=START - 3600)
    }
    pbx.trunk_states = {"pstn": "registered", "backup": "failed"}
    response = portal.client.get("/api/admin/live", headers=admin)
    assert response.status_code == 200, response.text
    live = response.json()
    assert live["at"].startswith("2030-")
    assert live["refresh_seconds"] >= 1
    assert [p["account"] for p in live["phones"]] == ["201"]  # only registered phones
    assert [c["id"] for c in live["calls"]] == ["c1", "c2"]  # oldest first
    internal = live["calls"][0]
    assert internal["from"] == {"number": "201", "name": "Alice"}
    assert internal["to"] == {"number": "203", "name": "Carol"}
    assert (internal["kind"], internal["state"], internal["held"]) == (
        "internal",
        "connected",
        True,
    )
    assert (internal["caller_user"], internal["callee_user"]) == ("alice", "carol")
    assert internal["answered_at"] is not None
    outbound = live["calls"][1]
    assert (outbound["kind"], outbound["state"], outbound["trunk"]) == (
        "outbound",
        "ringing",
        "pstn",
    )
    assert outbound["dialled"] == "90301234"
    assert outbound["answered_at"] is None
    assert live["telecommuters"] == [
        {
            "username": "bob",
            "display_name": "bob",
            "extension": "202",
            "number": "80611",
            "since": live["telecommuters"][0]["since"],
            "online": False,
        }
    ]
    assert live["telecommuters"][0]["since"].startswith("2030-")
    assert live["trunks"] == [
        {"name": "backup", "state": "failed"},
        {"name": "pstn", "state": "registered"},
    ]


def test_live_on_a_quiet_system(portal: Portal, admin: dict[str, str], pbx: FakePbx) -> None:
    pbx.registrar = Registrar(RegistrarLimits())
    attach_live(
        portal.app,
        LiveSources(
            bindings=pbx.registrar.lookup,
            calls=list,
            telecommuters=dict,
            occupant=lambda account: None,
            trunk_states=dict,
            clock=portal.clock,
        ),
    )
    live = portal.client.get("/api/admin/live", headers=admin).json()
    assert (live["phones"], live["calls"], live["telecommuters"], live["trunks"]) == (
        [],
        [],
        [],
        [],
    )


def test_without_live_state_the_routes_say_so(portal: Portal, admin: dict[str, str]) -> None:
    for path in ("/api/admin/live", "/api/admin/phones", "/api/admin/phones/201"):
        response = portal.client.get(path, headers=admin)
        assert response.status_code == 503, path
        assert error_of(response)["code"] == "unavailable"
    # Non-administrators learn nothing, not even that.
    response = portal.client.get("/api/admin/live", headers=portal.as_user("alice"))
    assert response.status_code == 403
