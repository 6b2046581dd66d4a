"""The running server's voicemail caches follow changes made in the portal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.app_kit import World, open_world, seed_database


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(seed_database(tmp_path / "seeded"), tmp_path / "world")


def test_unsolicited_message_waiting_switched_in_the_portal_applies_at_once(
    world: World,
) -> None:
    calls = world.app.voicemail
    assert not calls.unsolicited("alice")
    answer = world.request(
        "admin", "PATCH", "/api/admin/users/alice/voicemail", {"unsolicited_mwi": True}
    )
    assert answer.status_code == 200, answer.text
    # What the portal's change announces (changed_from_thread hops to the loop;
    # the test client's loop stands in for the server's).
    portal = world.client.portal
    assert portal is not None
    portal.call(calls.changed, "alice")
    assert calls.unsolicited("alice")
    world.request("admin", "PATCH", "/api/admin/users/alice/voicemail", {"unsolicited_mwi": False})
    portal.call(calls.changed, "alice")
    assert not calls.unsolicited("alice")
