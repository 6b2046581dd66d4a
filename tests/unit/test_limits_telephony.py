"""Call limits of calls placed from the portal (POST /api/calls): calls accepted a
moment ago, whose media is still being opened, count before the engine sees them."""

from __future__ import annotations

import pytest

from teleoffice.calls.engine import CallLimits
from teleoffice.server.telephony import TelephonyError
from tests.unit.test_telephony_service import Office, media_ready, office  # noqa: F401

OUTSIDE = "90301234567"


def refusal(office: Office, username: str, to: str) -> TelephonyError:  # noqa: F811
    with pytest.raises(TelephonyError) as info:
        office.telephony.place_call(username, to)
    return info.value


def test_a_burst_of_outside_calls_cannot_pass_the_limit(office: Office) -> None:  # noqa: F811
    office.engine.limits = CallLimits(max_outside_calls_per_user=1)
    first = office.telephony.place_call("alice", OUTSIDE)
    # Its media is not open yet: the engine has not seen it, the limit has.
    assert first not in office.engine.calls
    error = refusal(office, "alice", "90301234568")
    assert (error.status, error.code) == (403, "too_many_outside_calls")
    assert "1 outside calls up" in error.message
    assert len(office.b2bua.calls) == 1  # nothing was placed
    # Calls inside, and other users' calls out, are not affected.
    inside = office.telephony.place_call("alice", "202")
    office.telephony.place_call("bob", OUTSIDE)
    media_ready(office, first)
    media_ready(office, inside)
    assert first in office.engine.calls
    assert refusal(office, "alice", "90301234568").code == "too_many_outside_calls"
    office.telephony.hang_up("alice", first)
    assert office.engine.outside_calls_of("alice") == 0
    office.telephony.place_call("alice", "90301234568")


def test_calls_per_user_and_in_total_count_pending_calls(office: Office) -> None:  # noqa: F811
    office.engine.limits = CallLimits(max_calls=3, max_calls_per_user=2)
    office.telephony.place_call("alice", "202")
    office.telephony.place_call("alice", "203")
    error = refusal(office, "alice", "202")
    assert (error.status, error.code) == (403, "too_many_calls")
    office.telephony.place_call("bob", "201")
    error = refusal(office, "carol", "201")
    assert (error.status, error.code) == (503, "too_many_calls")
