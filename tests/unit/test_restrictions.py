"""Dialling restrictions (rule T11): the pattern language, the rules of
evaluation, and the call engine refusing barred calls before dialling anything."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teleoffice.calls.engine import (
    CallEngine,
    Caller,
    CallUpdated,
    Dial,
    Party,
    PhoneTarget,
    Reject,
    TrunkTarget,
)
from teleoffice.calls.restrictions import (
    BUILTIN_PROFILES,
    DEFAULT_PROFILE,
    Allowed,
    Barred,
    PatternError,
    RestrictionProfile,
    check,
    parse_pattern,
    parse_rule,
)
from teleoffice.calls.routing import RestrictingDirectory, TrunkView, UserView

NUMBERS = st.text(alphabet="0123456789", min_size=1, max_size=32)
DIALLED_TEXT = st.text(alphabet="0123456789*#+", max_size=40)


# ---- the pattern language --------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "number", "expected"),
    [
        ("201", "201", True),
        ("201", "2011", False),
        ("_2XX", "299", True),
        ("2XX", "29", False),
        ("Z", "0", False),
        ("Z", "1", True),
        ("N", "1", False),
        ("nxx", "200", True),
        ("[1-5]0", "30", True),
        ("[13]0", "20", False),
        ("[0-27-9]", "8", True),
        ("00.", "00", False),
        ("00.", "001", True),
        ("00!", "00", True),
        ("+.", "+4930", True),
        ("+.", "4930", False),
        ("*9X", "*91", True),
        ("!", "", True),
        (".", "", False),
    ],
)
def test_patterns_match_as_documented(pattern: str, number: str, expected: bool) -> None:
    assert parse_pattern(pattern).matches(number) is expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "empty"),
        ("_", "empty"),
        ("0.1", "may only come last"),
        ("0!.", "may only come last"),
        ("0[12", "closing"),
        ("0[]", "empty class"),
        ("0[9-1]", "bad range"),
        ("0[a]", "digits and ranges"),
        ("0+1", "'+' may only come first"),
        ("0Y", "not allowed"),
        ("1" * 33, "longer than"),
    ],
)
def test_bad_patterns_are_explained(pattern: str, problem: str) -> None:
    with pytest.raises(PatternError, match=re.escape(problem)):
        parse_pattern(pattern)


def test_labels() -> None:
    rule = parse_rule("_00.= international ")
    assert (rule.pattern.text, rule.label, str(rule)) == (
        "00.",
        "international",
        "00.=international",
    )
    with pytest.raises(PatternError, match="label"):
        parse_rule("00.=bad\r\nheader")
    with pytest.raises(PatternError, match="label"):
        parse_rule("00.=")


@given(NUMBERS)
def test_a_literal_number_matches_itself_and_is_exact(number: str) -> None:
    pattern = parse_pattern(number)
    assert pattern.is_exact
    assert pattern.matches(number)
    assert not pattern.matches(number + "0")


@given(pattern=DIALLED_TEXT, number=DIALLED_TEXT)
def test_patterns_never_raise_on_digit_strings(pattern: str, number: str) -> None:
    try:
        parsed = parse_pattern(pattern)
    except PatternError:
        return
    assert isinstance(parsed.matches(number), bool)
    assert isinstance(parsed.matches(number, internal=True), bool)


def test_specificity_order() -> None:
    def key(text: str) -> tuple[int, int, int, int]:
        return parse_pattern(text).specificity

    assert key("0041.") > key("00.")  # longer literal start
    assert key("0N1") > key("0X1")  # narrower wildcard
    assert key("0XXX") > key("0XX.") > key("0XX!")  # fixed length over an open end
    assert key("2XX") > key("internal")


# ---- evaluation -------------------------------------------------------------------

SWISS = RestrictionProfile.build(
    "swiss", allowed=(), barred=("00.=international", "0041123"), description=""
)


def test_default_profile_bars_international_and_premium() -> None:
    assert check(DEFAULT_PROFILE, "00441234567", from_phone=True) == Barred(
        "Barred by restriction profile default: international"
    )
    assert check(DEFAULT_PROFILE, "+4930123", from_phone=True) == Barred(
        "Barred by restriction profile default: international"
    )
    for premium in ("0900123456", "0901234", "19005551234"):
        verdict = check(DEFAULT_PROFILE, premium, from_phone=True)
        assert verdict == Barred("Barred by restriction profile default: premium"), premium
    for fine in ("0201234567", "5551234", "201"):
        assert isinstance(check(DEFAULT_PROFILE, fine, from_phone=True), Allowed), fine
    assert isinstance(check(DEFAULT_PROFILE, "202", from_phone=True, internal=True), Allowed)


def test_emergency_numbers_are_always_allowed_from_a_phone() -> None:
    nothing = RestrictionProfile.build("nothing", barred=("!",), emergency=("112", "110"))
    assert check(nothing, "112", from_phone=True) == Allowed("emergency number")
    assert check(nothing, "110", from_phone=True) == Allowed("emergency number")
    assert isinstance(check(nothing, "112", from_phone=False), Barred)
    assert isinstance(check(nothing, "113", from_phone=True), Barred)


def test_a_more_specific_allowed_pattern_beats_a_bar() -> None:
    profile = RestrictionProfile.build(
        "p", allowed=("0041.", "00.", "0900123"), barred=("00.=international", "09XX.")
    )
    assert isinstance(check(profile, "0041441234", from_phone=True), Allowed)
    # The same specificity: the bar wins.
    assert check(profile, "0033123", from_phone=True) == Barred(
        "Barred by restriction profile p: international"
    )
    assert isinstance(check(profile, "0900123", from_phone=True), Allowed)
    assert check(profile, "0900124", from_phone=True) == Barred(
        "Barred by restriction profile p: matches 09XX."
    )


def test_with_allowed_patterns_only_those_are_allowed() -> None:
    profile = RestrictionProfile.build("local", allowed=("030.",))
    assert isinstance(check(profile, "0301234", from_phone=True), Allowed)
    assert check(profile, "0401234", from_phone=True) == Barred(
        "Barred by restriction profile local: not an allowed number"
    )


def test_internal_only() -> None:
    profile = next(p for p in BUILTIN_PROFILES if p.name == "internal-only")
    assert isinstance(check(profile, "202", from_phone=True, internal=True), Allowed)
    # A seven-digit outside number looks like an extension; 'internal' knows better.
    assert isinstance(check(profile, "5551234", from_phone=True), Barred)
    assert isinstance(check(profile, "112", from_phone=True), Allowed)
    # A barred extension range still bars: 'internal' is the least specific pattern.
    lobby = RestrictionProfile.build("lobby", allowed=("internal",), barred=("29X=management",))
    assert check(lobby, "291", from_phone=True, internal=True) == Barred(
        "Barred by restriction profile lobby: management"
    )


def test_unrestricted_allows_everything() -> None:
    profile = next(p for p in BUILTIN_PROFILES if p.name == "unrestricted")
    for number in ("00441234", "+1900", "0900123"):
        assert isinstance(check(profile, number, from_phone=False), Allowed)


def test_profile_build_refuses_bad_parts() -> None:
    with pytest.raises(PatternError, match="emergency"):
        RestrictionProfile.build("p", emergency=("1",))
    with pytest.raises(PatternError, match="profile name"):
        RestrictionProfile.build("bad name")
    with pytest.raises(PatternError, match="description"):
        RestrictionProfile.build("p", description="a\nb")


# ---- the call engine ---------------------------------------------------------------

ALICE = UserView("alice", "201", "Alice")
BOB = UserView("bob", "202", "Bob")
BOB_DESK = PhoneTarget("202", "sip:202@192.0.2.20:5060", "UDP", "192.0.2.20", 5060)
PSTN = TrunkView("pstn", "9", "5550100")
FROM_ALICE = Caller(Party("201", "Alice"), user="alice")
T0 = 1000.0


class Directory:
    def __init__(self, profiles: dict[str, RestrictionProfile]) -> None:
        self.profiles = profiles

    def user_by_number(self, number: str) -> UserView | None:
        return {"201": ALICE, "202": BOB}.get(number)

    def trunks(self) -> list[TrunkView]:
        return [PSTN]

    def restriction_for(self, username: str) -> RestrictionProfile:
        return self.profiles.get(username, DEFAULT_PROFILE)


def engine(profiles: dict[str, RestrictionProfile] | None = None) -> CallEngine:
    directory = Directory(profiles or {})
    assert isinstance(directory, RestrictingDirectory)
    return CallEngine(directory, lambda extension, now: [BOB_DESK] if extension == "202" else [])


def test_a_barred_call_sends_no_dial_and_is_refused_with_403() -> None:
    e = engine()
    commands = e.new_call(call_id="c", caller=FROM_ALICE, dialled="9 00441234567", now=T0)
    assert [c for c in commands if isinstance(c, Dial)] == []
    (reject,) = [c for c in commands if isinstance(c, Reject)]
    assert (reject.status, reject.reason) == (
        403,
        "Barred by restriction profile default: international",
    )
    record = [c for c in commands if isinstance(c, CallUpdated)][-1].record
    assert (record.outcome, record.status, record.ended_by) == ("barred", 403, "system")
    assert (record.route, record.callee.number, record.direction.value) == (
        "trunk pstn",
        "00441234567",
        "outbound",
    )
    assert e.active_count() == 0


def test_an_allowed_outside_call_dials_the_trunk() -> None:
    commands = engine().new_call(call_id="c", caller=FROM_ALICE, dialled="90201234567", now=T0)
    (dial,) = [c for c in commands if isinstance(c, Dial)]
    assert dial.target == TrunkTarget("pstn", "0201234567")


def test_emergency_through_the_trunk_from_an_internal_only_phone() -> None:
    internal_only = next(p for p in BUILTIN_PROFILES if p.name == "internal-only")
    e = engine({"alice": internal_only})
    commands = e.new_call(call_id="c", caller=FROM_ALICE, dialled="9112", now=T0)
    assert [c.target for c in commands if isinstance(c, Dial)] == [TrunkTarget("pstn", "112")]
    commands = e.new_call(call_id="d", caller=FROM_ALICE, dialled="95551234", now=T0)
    assert [c.status for c in commands if isinstance(c, Reject)] == [403]
    # Calls inside still work.
    commands = e.new_call(call_id="e", caller=FROM_ALICE, dialled="202", now=T0)
    assert [c.target for c in commands if isinstance(c, Dial)] == [BOB_DESK]


def test_internal_calls_are_checked_too() -> None:
    no_bob = RestrictionProfile.build("no-bob", barred=("202=not bob",))
    commands = engine({"alice": no_bob}).new_call(
        call_id="c", caller=FROM_ALICE, dialled="202", now=T0
    )
    assert [c for c in commands if isinstance(c, Dial)] == []
    (reject,) = [c for c in commands if isinstance(c, Reject)]
    assert reject.reason == "Barred by restriction profile no-bob: not bob"
    record = [c for c in commands if isinstance(c, CallUpdated)][-1].record
    assert (record.callee_user, record.outcome) == ("bob", "barred")


def test_calls_from_trunks_are_not_restricted() -> None:
    nothing = RestrictionProfile.build("nothing", barred=("!",))
    e = engine({"alice": nothing, "bob": nothing})
    caller = Caller(Party("+4917012345678"), trunk="pstn")
    commands = e.new_call(call_id="c", caller=caller, dialled="202", now=T0)
    assert [c.target for c in commands if isinstance(c, Dial)] == [BOB_DESK]


def test_emergency_exception_needs_a_phone() -> None:
    nothing = RestrictionProfile.build("nothing", barred=("!",))
    e = engine({"alice": nothing})
    portal = Caller(Party("201", "Alice"), user="alice", from_phone=False)
    commands = e.new_call(call_id="c", caller=portal, dialled="9112", now=T0)
    assert [c.status for c in commands if isinstance(c, Reject)] == [403]
    assert isinstance(e.may_dial("alice", "112", internal=False), Allowed)


def test_a_directory_without_profiles_gets_the_default_not_nothing() -> None:
    class Plain:
        def user_by_number(self, number: str) -> UserView | None:
            return None

        def trunks(self) -> list[TrunkView]:
            return [PSTN]

    e = CallEngine(Plain(), lambda extension, now: [])
    commands = e.new_call(call_id="c", caller=FROM_ALICE, dialled="900441234", now=T0)
    assert [c.status for c in commands if isinstance(c, Reject)] == [403]
