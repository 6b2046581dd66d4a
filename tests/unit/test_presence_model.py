"""The pure presence model (rule T9): notes, the chosen state, publications with
their entity-tags and expiry, several devices, the call overlay, and the
changes every input reports."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.calls.presence import (
    MAX_NOTE_LENGTH,
    Changes,
    Chosen,
    PresenceBook,
    PresenceError,
    PresenceState,
    PresenceView,
    Publication,
    UnknownETag,
    parse_state,
    tidy_note,
    validate_note,
)

AVAILABLE = PresenceState.AVAILABLE
AWAY = PresenceState.AWAY
BUSY = PresenceState.BUSY
DND = PresenceState.DND
OFFLINE = PresenceState.OFFLINE

T0 = 1000.0


def etags() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"e{next(counter)}"


def book(chosen: Mapping[str, Chosen] | None = None, **options: int) -> PresenceBook:
    return PresenceBook(chosen, now=T0, new_etag=etags(), **options)


def seen(b: PresenceBook, user: str = "alice") -> tuple[PresenceState, str | None, bool]:
    view = b.view(user)
    return view.state, view.note, view.on_the_phone


# ---- states and notes -------------------------------------------------------------------


def test_states_are_spelt_exactly() -> None:
    assert [s.value for s in PresenceState] == ["available", "away", "busy", "dnd", "offline"]
    assert parse_state("dnd") is DND
    assert parse_state(AWAY) is AWAY
    for bad in ("Away", "", "on-the-phone", "do-not-disturb", " away"):
        with pytest.raises(PresenceError, match="must be one of"):
            parse_state(bad)


@pytest.mark.parametrize(
    "note",
    [
        "Ушёл на обед, вернусь в 14:00",  # Cyrillic
        "会議中です。午後に折り返します",  # CJK
        "🌴 on vacation 👨‍👩‍👧 back Monday",  # emoji, a ZWJ family
        "🏴󠁧󠁢󠁳󠁣󠁴󠁿 match day",  # a flag made of tag characters
        "في اجتماع \u200fحتى 3",  # Arabic with a right-to-left mark
        "café́ naïve",  # combining marks
        "ж" * MAX_NOTE_LENGTH,
        "🎉" * MAX_NOTE_LENGTH,  # 200 characters, 800 bytes of UTF-8
    ],
)
def test_notes_in_any_language_are_accepted_unchanged(note: str) -> None:
    assert validate_note(note) == note


def test_notes_lose_surrounding_spaces_and_empty_notes_are_none() -> None:
    assert validate_note("  back at 3  ") == "back at 3"
    assert validate_note("\u3000全角\u3000") == "全角"
    assert validate_note("") is None
    assert validate_note("   ") is None
    assert validate_note(None) is None
    # Length counts after stripping: 200 characters with spaces around fit.
    assert validate_note(" " + "a" * MAX_NOTE_LENGTH + " ") == "a" * MAX_NOTE_LENGTH


def test_a_note_over_the_limit_is_refused() -> None:
    with pytest.raises(PresenceError, match="at most 200"):
        validate_note("a" * (MAX_NOTE_LENGTH + 1))
    with pytest.raises(PresenceError, match="at most 200"):
        validate_note("🎉" * (MAX_NOTE_LENGTH + 1))


@pytest.mark.parametrize(
    "bad",
    [
        "\x00",
        "\t",
        "\n",
        "\r",
        "\x1b[31m",  # a terminal escape
        "\x7f",
        "\x85",  # C1 next line
        "\x9b",  # C1 control sequence introducer
        "\u2028",  # line separator
        "\u2029",  # paragraph separator
        "\u202e",  # right-to-left override
        "\u202a",
        "\u2066",  # left-to-right isolate
        "\u2069",
        "\ud800",  # a lone surrogate
        "\ufffe",
        "\uffff",
        "\ufdd0",
        "\U0001fffe",
    ],
)
def test_hostile_characters_are_refused_anywhere_in_a_note(bad: str) -> None:
    for note in (f"in a{bad}meeting", f"{bad}meeting", f"meeting{bad}"):
        with pytest.raises(PresenceError, match="control characters"):
            validate_note(note)


def test_a_note_must_be_text() -> None:
    with pytest.raises(PresenceError, match="text"):
        validate_note(42)  # type: ignore[arg-type]


def test_device_notes_are_tidied_instead_of_refused() -> None:
    assert tidy_note("\n    In a\n    meeting\t\t\n  ") == "In a meeting"
    assert tidy_note("evil\u202e txet\x00 \x1b[0m") == "evil txet [0m"
    assert tidy_note("Ушёл\u2028домой") == "Ушёл домой"
    assert tidy_note(None) is None
    assert tidy_note("\x00\x01 \n") is None
    long = tidy_note("слово " * 100)
    assert long is not None
    assert len(long) <= MAX_NOTE_LENGTH
    assert validate_note(long) == long


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_whatever_a_device_sends_tidies_into_a_valid_note(text: str) -> None:
    tidy = tidy_note(text)
    assert validate_note(tidy) == tidy


def test_a_choice_checks_its_state_and_note() -> None:
    assert Chosen("away", " lunch ", 5.0) == Chosen(AWAY, "lunch", 5.0)  # type: ignore[arg-type]
    with pytest.raises(PresenceError):
        Chosen("gone")  # type: ignore[arg-type]
    with pytest.raises(PresenceError):
        Chosen(AWAY, "a\nb")


# ---- the default and restored choices ------------------------------------------------------


def test_a_user_nothing_is_known_about_is_offline_and_chose_nothing() -> None:
    b = book()
    assert b.view("alice") == PresenceView(OFFLINE, None, False, AVAILABLE, T0)
    assert b.chosen("alice") is None
    assert b.publications("alice") == ()
    assert b.next_deadline() is None
    assert not b.expire(T0 + 10_000)


def test_stored_choices_show_from_the_time_they_were_made() -> None:
    b = book(
        {
            "alice": Chosen(AWAY, "back Monday", 500.0),
            "bob": Chosen(AVAILABLE, "in the office", 600.0),
            "carol": Chosen(DND, None, 700.0),
        }
    )
    assert b.view("alice") == PresenceView(AWAY, "back Monday", False, AWAY, 500.0)
    # Available needs a connected client; after a restart there is none yet.
    assert b.view("bob") == PresenceView(OFFLINE, "in the office", False, AVAILABLE, T0)
    assert b.view("carol").state is DND
    assert b.chosen("alice") == Chosen(AWAY, "back Monday", 500.0)


def test_only_choices_can_be_restored() -> None:
    with pytest.raises(PresenceError, match="alice"):
        book({"alice": "away"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="max_publications"):
        book(max_publications=0)


# ---- choosing ----------------------------------------------------------------------------


def test_an_explicit_choice_shows_whether_or_not_a_client_is_connected() -> None:
    b = book()
    changes = b.set_chosen("alice", "away", "lunch", T0 + 1)
    assert changes.users == {"alice"}
    assert changes.chosen == {"alice": Chosen(AWAY, "lunch", T0 + 1)}
    assert changes.dnd == {}
    assert b.view("alice") == PresenceView(AWAY, "lunch", False, AWAY, T0 + 1)
    assert b.chosen("alice") == Chosen(AWAY, "lunch", T0 + 1)
    assert b.view("bob").state is OFFLINE  # nobody else moved


def test_available_needs_a_connected_client() -> None:
    b = book()
    changes = b.set_chosen("alice", AVAILABLE, None, T0 + 1)
    # Chosen (to be stored), though what people see has not changed.
    assert changes.users == frozenset()
    assert changes.chosen == {"alice": Chosen(AVAILABLE, None, T0 + 1)}
    assert b.view("alice").state is OFFLINE
    assert b.set_online("alice", 2, T0 + 2).users == {"alice"}
    assert b.view("alice") == PresenceView(AVAILABLE, None, False, AVAILABLE, T0 + 2)
    assert not b.set_online("alice", 1, T0 + 3)  # still connected: nothing to tell
    assert b.set_online("alice", 0, T0 + 4).users == {"alice"}
    assert b.view("alice") == PresenceView(OFFLINE, None, False, AVAILABLE, T0 + 4)


def test_a_user_who_never_chose_is_available_while_connected() -> None:
    b = book()
    changes = b.set_online("alice", 1, T0 + 1)
    assert changes.users == {"alice"}
    assert changes.chosen == {}
    assert seen(b) == (AVAILABLE, None, False)
    assert b.chosen("alice") is None


def test_appearing_offline_is_a_choice_that_shows_while_connected() -> None:
    b = book()
    b.set_online("alice", 1, T0)
    b.set_chosen("alice", OFFLINE, "heads down", T0 + 1)
    assert b.view("alice") == PresenceView(OFFLINE, "heads down", False, OFFLINE, T0 + 1)


def test_choosing_the_same_again_changes_nothing() -> None:
    b = book()
    b.set_chosen("alice", AWAY, "lunch", T0 + 1)
    changes = b.set_chosen("alice", AWAY, " lunch ", T0 + 5)
    assert not changes
    assert changes == Changes()
    assert b.chosen("alice") == Chosen(AWAY, "lunch", T0 + 1)
    assert b.view("alice").since == T0 + 1


def test_a_new_note_is_a_change_but_not_a_new_state() -> None:
    b = book()
    b.set_chosen("alice", AWAY, "lunch", T0 + 1)
    changes = b.set_chosen("alice", AWAY, "coffee", T0 + 5)
    assert changes.users == {"alice"}
    assert changes.chosen == {"alice": Chosen(AWAY, "coffee", T0 + 5)}
    assert b.view("alice") == PresenceView(AWAY, "coffee", False, AWAY, T0 + 1)


def test_do_not_disturb_in_and_out_is_reported_for_routing() -> None:
    b = book()
    assert b.set_chosen("alice", DND, None, T0 + 1).dnd == {"alice": True}
    assert b.set_chosen("alice", DND, "focus", T0 + 2).dnd == {}  # still DND
    assert b.set_chosen("alice", AWAY, None, T0 + 3).dnd == {"alice": False}
    assert b.set_chosen("alice", BUSY, None, T0 + 4).dnd == {}


def test_a_refused_choice_changes_nothing() -> None:
    b = book()
    b.set_chosen("alice", AWAY, "lunch", T0)
    with pytest.raises(PresenceError):
        b.set_chosen("alice", "gone", None, T0 + 1)
    with pytest.raises(PresenceError):
        b.set_chosen("alice", BUSY, "x" * 201, T0 + 1)
    with pytest.raises(PresenceError):
        b.set_chosen("alice", BUSY, "evil\u202e", T0 + 1)
    assert b.chosen("alice") == Chosen(AWAY, "lunch", T0)


# ---- calls -------------------------------------------------------------------------------


def test_a_call_shows_busy_over_the_choice_and_the_choice_comes_back() -> None:
    b = book()
    b.set_chosen("alice", AWAY, "lunch", T0)
    changes = b.set_calls("alice", 1, T0 + 10)
    assert changes.users == {"alice"}
    assert changes.chosen == {}  # the choice is not overwritten
    assert b.view("alice") == PresenceView(BUSY, "lunch", True, AWAY, T0 + 10)
    assert not b.set_calls("alice", 2, T0 + 11)  # a second call: nothing new to show
    assert not b.set_calls("alice", 1, T0 + 12)
    assert b.set_calls("alice", 0, T0 + 20).users == {"alice"}
    assert b.view("alice") == PresenceView(AWAY, "lunch", False, AWAY, T0 + 20)
    assert b.chosen("alice") == Chosen(AWAY, "lunch", T0)


def test_do_not_disturb_stays_during_a_call() -> None:
    b = book()
    b.set_chosen("alice", DND, None, T0)
    changes = b.set_calls("alice", 1, T0 + 1)
    assert changes.users == {"alice"}  # on the phone now
    assert changes.dnd == {}
    assert b.view("alice") == PresenceView(DND, None, True, DND, T0 + 1)


@pytest.mark.parametrize("chosen", [None, AVAILABLE, BUSY, OFFLINE])
def test_a_call_makes_anybody_busy_even_with_no_client_connected(
    chosen: PresenceState | None,
) -> None:
    # A telecommuter on the line with the browser closed (T8) is on the phone.
    b = book()
    if chosen is not None:
        b.set_chosen("alice", chosen, None, T0)
    b.set_calls("alice", 1, T0 + 1)
    assert seen(b) == (BUSY, None, True)
    b.set_calls("alice", 0, T0 + 2)
    assert b.view("alice").state is (chosen if chosen not in (None, AVAILABLE) else OFFLINE)


def test_choosing_during_a_call_changes_what_shows_underneath() -> None:
    b = book()
    b.set_calls("alice", 1, T0)
    changes = b.set_chosen("alice", AWAY, "back soon", T0 + 1)
    assert changes.users == {"alice"}
    assert b.view("alice") == PresenceView(BUSY, "back soon", True, AWAY, T0)
    b.set_calls("alice", 0, T0 + 2)
    assert b.view("alice") == PresenceView(AWAY, "back soon", False, AWAY, T0 + 2)


@pytest.mark.parametrize("bad", [-1, True, 1.5, "1"])
def test_counts_must_be_whole_numbers(bad: object) -> None:
    b = book()
    with pytest.raises(PresenceError):
        b.set_calls("alice", bad, T0)  # type: ignore[arg-type]
    with pytest.raises(PresenceError):
        b.set_online("alice", bad, T0)  # type: ignore[arg-type]
    assert b.view("alice").state is OFFLINE


# ---- publications --------------------------------------------------------------------------


def test_a_device_coming_up_makes_the_user_available_without_choosing() -> None:
    b = book()
    etag, changes = b.publish("alice", None, "available", None, 3600, T0)
    assert etag == "e1"
    assert changes.users == {"alice"}
    assert changes.chosen == {}
    assert b.view("alice") == PresenceView(AVAILABLE, None, False, AVAILABLE, T0)
    assert b.publications("alice") == (Publication("e1", AVAILABLE, None, False, T0 + 3600, T0),)
    assert b.next_deadline() == T0 + 3600


def test_a_device_coming_up_does_not_undo_the_users_choice() -> None:
    b = book({"alice": Chosen(AWAY, "on vacation", 500.0)})
    _, changes = b.publish("alice", None, AVAILABLE, None, 3600, T0)
    assert not changes
    assert b.view("alice") == PresenceView(AWAY, "on vacation", False, AWAY, 500.0)


def test_what_a_user_says_on_a_phone_becomes_their_choice() -> None:
    b = book()
    b.set_online("alice", 1, T0)  # a portal tab is open
    etag, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0)
    etag, changes = b.publish("alice", etag, AWAY, "lunch", 3600, T0 + 5)
    assert changes.users == {"alice"}
    assert changes.chosen == {"alice": Chosen(AWAY, "lunch", T0 + 5)}
    assert b.view("alice") == PresenceView(AWAY, "lunch", False, AWAY, T0 + 5)
    # ...and back to available from the phone is a choice too.
    _, changes = b.publish("alice", etag, AVAILABLE, None, 3600, T0 + 9)
    assert changes.chosen == {"alice": Chosen(AVAILABLE, None, T0 + 9)}
    assert b.view("alice").state is AVAILABLE


def test_a_new_publication_that_says_more_than_available_is_a_choice() -> None:
    b = book()
    _, changes = b.publish("alice", None, DND, "focus time", 3600, T0)
    assert changes.chosen == {"alice": Chosen(DND, "focus time", T0)}
    assert changes.dnd == {"alice": True}
    _, changes = b.publish("bob", None, AVAILABLE, "in the office", 3600, T0)
    assert changes.chosen == {"bob": Chosen(AVAILABLE, "in the office", T0)}


def test_a_portal_choice_is_not_undone_by_a_phone_repeating_itself() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AWAY, "lunch", 3600, T0)
    b.set_chosen("alice", AVAILABLE, None, T0 + 10)
    # Some phones refresh with the whole body: the same content again.
    etag, changes = b.publish("alice", etag, AWAY, "lunch", 3600, T0 + 20)
    assert changes.chosen == {}
    assert b.view("alice").state is AVAILABLE
    assert b.view("alice").chosen is AVAILABLE
    # A different statement from the phone is a new choice: latest change wins.
    _, changes = b.publish("alice", etag, BUSY, "lunch", 3600, T0 + 30)
    assert changes.chosen == {"alice": Chosen(BUSY, "lunch", T0 + 30)}


def test_the_latest_change_from_any_device_wins() -> None:
    b = book()
    desk, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0)
    mobile, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0 + 1)
    desk, _ = b.publish("alice", desk, AWAY, None, 3600, T0 + 2)
    assert b.view("alice").state is AWAY
    mobile, changes = b.publish("alice", mobile, BUSY, "driving", 3600, T0 + 3)
    assert changes.users == {"alice"}
    assert b.view("alice") == PresenceView(BUSY, "driving", False, BUSY, T0 + 3)
    changes = b.set_chosen("alice", AVAILABLE, None, T0 + 4)  # the portal
    assert b.view("alice").state is AVAILABLE
    # The desk phone's refresh (no body) does not bring its "away" back.
    desk, changes = b.refresh("alice", desk, 3600, T0 + 5)
    assert not changes
    assert b.view("alice").state is AVAILABLE


def test_a_closed_device_is_not_a_choice_to_look_offline() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AWAY, "lunch", 3600, T0)
    etag, changes = b.publish("alice", etag, OFFLINE, None, 3600, T0 + 1)
    assert changes.chosen == {}
    assert b.view("alice").state is AWAY  # the choice is a message; it stands
    b.set_chosen("alice", AVAILABLE, None, T0 + 2)
    # Nothing else reachable: available shows as offline.
    assert b.view("alice") == PresenceView(OFFLINE, None, False, AVAILABLE, T0 + 2)


def test_a_publication_keeps_the_latest_address_of_its_device() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0, device="192.0.2.7:5062")
    assert [p.device for p in b.publications("alice")] == ["192.0.2.7:5062"]
    # A refresh from elsewhere (the phone's NAT binding moved): the newest address.
    etag, _ = b.refresh("alice", etag, 3600, T0 + 1, device="192.0.2.7:6000")
    assert [p.device for p in b.publications("alice")] == ["192.0.2.7:6000"]
    # Not said: what was known stays.
    b.publish("alice", etag, AWAY, None, 3600, T0 + 2)
    assert [p.device for p in b.publications("alice")] == ["192.0.2.7:6000"]


def test_the_most_present_device_counts() -> None:
    b = book()
    desk, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0)
    mobile, _ = b.publish("alice", None, OFFLINE, None, 3600, T0 + 1)
    assert b.view("alice").state is AVAILABLE  # the desk phone is still up
    desk, changes = b.publish("alice", desk, OFFLINE, None, 3600, T0 + 2)
    assert changes.users == {"alice"}
    assert b.view("alice").state is OFFLINE
    mobile, changes = b.publish("alice", mobile, AVAILABLE, None, 3600, T0 + 3)
    assert changes.users == {"alice"}
    assert changes.chosen == {}  # back up: it never said anything else
    assert b.view("alice").state is AVAILABLE


def test_a_device_on_the_phone_shows_busy_without_becoming_the_choice() -> None:
    b = book()
    b.set_chosen("alice", AWAY, "lunch", T0)
    etag, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0 + 1)
    # A call the PBX does not see (a mobile's own line): the device says so.
    etag, changes = b.publish("alice", etag, BUSY, None, 3600, T0 + 2, on_the_phone=True)
    assert changes.users == {"alice"}
    assert changes.chosen == {}
    assert b.view("alice") == PresenceView(BUSY, "lunch", True, AWAY, T0 + 2)
    # Back to the same plain "open" as before the call: not a new statement.
    etag, changes = b.publish("alice", etag, AVAILABLE, None, 3600, T0 + 3)
    assert changes.chosen == {}
    assert b.view("alice") == PresenceView(AWAY, "lunch", False, AWAY, T0 + 3)


def test_removing_or_losing_a_publication_never_changes_the_choice() -> None:
    b = book()
    etag, _ = b.publish("alice", None, DND, None, 60, T0)
    changes = b.remove("alice", etag, T0 + 1)
    assert changes == Changes()  # DND is a choice: it stays after the phone left
    assert b.view("alice").state is DND
    assert b.publications("alice") == ()
    with pytest.raises(UnknownETag):
        b.remove("alice", etag, T0 + 2)


def test_removing_the_last_device_takes_the_user_offline() -> None:
    b = book()
    desk, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0)
    mobile, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0)
    assert not b.remove("alice", desk, T0 + 1)
    assert b.view("alice").state is AVAILABLE
    assert b.remove("alice", mobile, T0 + 2).users == {"alice"}
    assert b.view("alice") == PresenceView(OFFLINE, None, False, AVAILABLE, T0 + 2)


# ---- entity-tags and expiry ------------------------------------------------------------------


def test_every_successful_publish_gets_a_new_entity_tag() -> None:
    b = book()
    first, _ = b.publish("alice", None, AVAILABLE, None, 60, T0)
    second, _ = b.refresh("alice", first, 60, T0 + 1)
    third, _ = b.publish("alice", second, AWAY, None, 60, T0 + 2)
    assert len({first, second, third}) == 3
    for stale in (first, second):
        with pytest.raises(UnknownETag):
            b.refresh("alice", stale, 60, T0 + 3)
    assert [p.etag for p in b.publications("alice")] == [third]


def test_a_refresh_keeps_the_content_and_moves_the_deadline() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AWAY, "lunch", 60, T0)
    etag, changes = b.refresh("alice", etag, 120, T0 + 50)
    assert not changes
    assert b.publications("alice") == (Publication(etag, AWAY, "lunch", False, T0 + 170, T0),)
    assert b.next_deadline() == T0 + 170
    # The first deadline has passed: nothing happens at it.
    assert not b.expire(T0 + 60)
    assert b.publications("alice") != ()


def test_publications_expire_at_their_deadline() -> None:
    b = book()
    b.set_chosen("alice", AVAILABLE, None, T0)
    etag, _ = b.publish("alice", None, AVAILABLE, None, 60, T0)
    b.publish("bob", None, AVAILABLE, None, 90, T0)
    assert b.next_deadline() == T0 + 60
    assert not b.expire(T0 + 59.9)
    changes = b.expire(T0 + 60)
    assert changes.users == {"alice"}
    assert changes.chosen == {}
    assert b.view("alice") == PresenceView(OFFLINE, None, False, AVAILABLE, T0 + 60)
    assert b.view("bob").state is AVAILABLE
    assert b.next_deadline() == T0 + 90
    with pytest.raises(UnknownETag):
        b.refresh("alice", etag, 60, T0 + 61)
    assert b.expire(T0 + 1000).users == {"bob"}
    assert b.next_deadline() is None


def test_a_publication_past_its_deadline_is_gone_before_expire_runs() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AVAILABLE, None, 60, T0)
    with pytest.raises(UnknownETag):
        b.refresh("alice", etag, 60, T0 + 60)
    # The refused refresh did not swallow the expiry: it is still reported.
    assert b.view("alice").state is AVAILABLE
    assert b.expire(T0 + 60).users == {"alice"}


def test_any_input_applies_the_expiries_that_are_due() -> None:
    b = book()
    b.publish("alice", None, AVAILABLE, None, 60, T0)
    changes = b.set_online("bob", 1, T0 + 61)
    assert changes.users == {"alice", "bob"}
    assert b.view("alice").state is OFFLINE


def test_entity_tags_belong_to_their_user() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AVAILABLE, None, 60, T0)
    with pytest.raises(UnknownETag):
        b.publish("bob", etag, AWAY, None, 60, T0 + 1)
    with pytest.raises(UnknownETag):
        b.remove("bob", etag, T0 + 1)
    with pytest.raises(UnknownETag):
        b.refresh("alice", "never-issued", 60, T0 + 1)
    assert b.publications("alice")[0].etag == etag
    assert b.publications("bob") == ()


@pytest.mark.parametrize("expires", [0, -5, math.nan, math.inf])
def test_a_publication_must_last_a_while(expires: float) -> None:
    b = book()
    with pytest.raises(PresenceError, match="seconds"):
        b.publish("alice", None, AVAILABLE, None, expires, T0)
    assert b.publications("alice") == ()


def test_malformed_publications_are_refused_and_change_nothing() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AWAY, "lunch", 60, T0)
    with pytest.raises(PresenceError, match="needs a state"):
        b.publish("alice", None, None, None, 60, T0)
    with pytest.raises(PresenceError, match="no content"):
        b.publish("alice", etag, None, "a note", 60, T0)
    with pytest.raises(PresenceError, match="no content"):
        b.publish("alice", etag, None, None, 60, T0, on_the_phone=True)
    with pytest.raises(PresenceError, match="must be one of"):
        b.publish("alice", etag, "open", None, 60, T0)
    with pytest.raises(PresenceError, match="control"):
        b.publish("alice", etag, AWAY, "a\nb", 60, T0)
    assert b.publications("alice") == (Publication(etag, AWAY, "lunch", False, T0 + 60, T0),)
    assert b.chosen("alice") == Chosen(AWAY, "lunch", T0)


def test_a_device_that_keeps_starting_over_pushes_out_its_oldest_publications() -> None:
    b = book(max_publications=3)
    tags = [b.publish("alice", None, AVAILABLE, None, 3600, T0 + n)[0] for n in range(3)]
    b.refresh("alice", tags[0], 3600, T0 + 10)  # now the freshest
    newest, _ = b.publish("alice", None, AVAILABLE, None, 3600, T0 + 11)
    remaining = {p.etag for p in b.publications("alice")}
    assert len(remaining) == 3
    assert tags[1] not in remaining  # the one refreshed longest ago
    assert newest in remaining
    with pytest.raises(UnknownETag):
        b.refresh("alice", tags[1], 60, T0 + 12)
    # Its old deadline does not disturb anything later.
    assert b.next_deadline() == T0 + 2 + 3600
    assert b.expire(T0 + 10_000).users == {"alice"}
    assert b.publications("alice") == ()


def test_entity_tags_never_repeat_even_if_their_source_does() -> None:
    repeats = iter(["same", "same", "", "other"])
    b = PresenceBook(now=T0, new_etag=lambda: next(repeats))
    assert b.publish("alice", None, AVAILABLE, None, 60, T0)[0] == "same"
    assert b.publish("alice", None, AVAILABLE, None, 60, T0)[0] == "other"
    stuck = PresenceBook(now=T0, new_etag=lambda: "stuck")
    stuck.publish("alice", None, AVAILABLE, None, 60, T0)
    with pytest.raises(RuntimeError, match="repeating"):
        stuck.publish("bob", None, AVAILABLE, None, 60, T0)


def test_default_entity_tags_are_random_and_distinct() -> None:
    b = PresenceBook(now=T0)
    tags = {b.publish("alice", None, AVAILABLE, None, 60, T0)[0] for _ in range(10)}
    assert len(tags) == 10
    assert all(len(tag) >= 16 for tag in tags)


def test_many_refreshes_keep_deadlines_right() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AVAILABLE, None, 60, T0)
    other, _ = b.publish("bob", None, AVAILABLE, None, 10_000, T0)
    for n in range(1, 2001):
        etag, _ = b.refresh("alice", etag, 60, T0 + n)
    assert b.next_deadline() == T0 + 2000 + 60
    assert not b.expire(T0 + 2059)
    assert b.expire(T0 + 2060).users == {"alice"}
    assert b.next_deadline() == T0 + 10_000
    assert [p.etag for p in b.publications("bob")] == [other]


# ---- since, forgetting, the changes object ----------------------------------------------------


def test_since_moves_with_the_state_and_the_phone() -> None:
    b = book()
    b.set_chosen("alice", DND, None, T0 + 1)
    assert b.view("alice").since == T0 + 1
    b.set_chosen("alice", DND, "focus", T0 + 2)
    assert b.view("alice").since == T0 + 1
    b.set_calls("alice", 1, T0 + 3)  # still dnd, now on the phone
    assert b.view("alice").since == T0 + 3


def test_a_forgotten_user_is_gone_with_their_publications() -> None:
    b = book()
    etag, _ = b.publish("alice", None, AWAY, None, 60, T0)
    b.set_calls("alice", 1, T0)
    b.forget("alice")
    b.forget("nobody")
    assert b.view("alice") == PresenceView(OFFLINE, None, False, AVAILABLE, T0)
    assert b.chosen("alice") is None
    with pytest.raises(UnknownETag):
        b.refresh("alice", etag, 60, T0 + 1)
    assert b.next_deadline() is None
    assert not b.expire(T0 + 100)


def test_changes_read_like_the_set_of_users_whose_view_changed() -> None:
    changes = Changes(frozenset({"bob", "alice"}))
    assert list(changes) == ["alice", "bob"]
    assert "alice" in changes
    assert "carol" not in changes
    assert changes
    assert not Changes()
    assert Changes(chosen={"alice": Chosen(AWAY)})  # something to store


# ---- every input, at random, against the rules --------------------------------------------------

USERS = ("alice", "bob")


@dataclass
class Oracle:
    """What the tests know of each user: calls and clients, as fed in."""

    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USERS, 0))
    sources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USERS, 0))
    etags: dict[str, list[str]] = field(default_factory=lambda: {u: [] for u in USERS})

    def expected(self, b: PresenceBook, user: str) -> tuple[PresenceState, str | None, bool]:
        choice = b.chosen(user)
        chosen = AVAILABLE if choice is None else choice.state
        note = None if choice is None else choice.note
        publications = b.publications(user)
        if self.calls[user] or any(p.on_the_phone for p in publications):
            return (DND if chosen is DND else BUSY), note, True
        reachable = self.sources[user] or any(p.state is not OFFLINE for p in publications)
        if chosen is AVAILABLE and not reachable:
            return OFFLINE, note, False
        return chosen, note, False


states = st.sampled_from(list(PresenceState))
notes = st.sampled_from([None, "lunch", "会議中", "🌴"])
operations = st.one_of(
    st.tuples(st.just("choose"), st.sampled_from(USERS), states, notes),
    st.tuples(st.just("calls"), st.sampled_from(USERS), st.integers(0, 2)),
    st.tuples(st.just("online"), st.sampled_from(USERS), st.integers(0, 2)),
    st.tuples(st.just("publish"), st.sampled_from(USERS), states, notes, st.booleans()),
    st.tuples(st.just("modify"), st.sampled_from(USERS), st.integers(0, 3), states, notes),
    st.tuples(st.just("refresh"), st.sampled_from(USERS), st.integers(0, 3)),
    st.tuples(st.just("remove"), st.sampled_from(USERS), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.integers(1, 120)),
)


def _apply(b: PresenceBook, oracle: Oracle, op: tuple[object, ...], now: float) -> Changes:
    kind, *args = op
    if kind == "choose":
        user, state, note = args
        assert isinstance(user, str)
        assert isinstance(state, PresenceState)
        assert note is None or isinstance(note, str)
        return b.set_chosen(user, state, note, now)
    if kind == "calls":
        user, count = args
        assert isinstance(user, str)
        assert isinstance(count, int)
        oracle.calls[user] = count
        return b.set_calls(user, count, now)
    if kind == "online":
        user, count = args
        assert isinstance(user, str)
        assert isinstance(count, int)
        oracle.sources[user] = count
        return b.set_online(user, count, now)
    if kind == "publish":
        user, state, note, phone = args
        assert isinstance(user, str)
        assert isinstance(state, PresenceState)
        assert note is None or isinstance(note, str)
        assert isinstance(phone, bool)
        etag, changes = b.publish(user, None, state, note, 100, now, on_the_phone=phone)
        oracle.etags[user].append(etag)
        return changes
    if kind == "wait":
        return b.expire(now)
    user, index, *content = args
    assert isinstance(user, str)
    assert isinstance(index, int)
    current = [p.etag for p in b.publications(user) if p.expires_at > now]
    if not current:
        return b.expire(now)  # nothing to modify: time passes all the same
    etag = current[index % len(current)]
    if kind == "remove":
        return b.remove(user, etag, now)
    if kind == "refresh":
        return b.refresh(user, etag, 100, now)[1]
    state, note = content
    assert isinstance(state, PresenceState)
    assert note is None or isinstance(note, str)
    return b.publish(user, etag, state, note, 100, now)[1]


@given(st.lists(operations, max_size=40))
@settings(max_examples=300, deadline=None)
def test_every_input_keeps_the_rules_and_reports_exactly_what_changed(
    ops: list[tuple[object, ...]],
) -> None:
    b = book()
    oracle = Oracle()
    now = T0
    for op in ops:
        now += op[1] if op[0] == "wait" else 1  # type: ignore[operator]
        before = {user: b.view(user) for user in USERS}
        chosen_before = {user: b.chosen(user) for user in USERS}
        changes = _apply(b, oracle, op, now)
        for user in USERS:
            view = b.view(user)
            assert (view.state, view.note, view.on_the_phone) == oracle.expected(b, user)
            assert (user in changes) == (not view.same_as(before[user]))
            if (view.state, view.on_the_phone) != (before[user].state, before[user].on_the_phone):
                assert view.since == now
            else:
                assert view.since == before[user].since
            # A choice changes only by choosing (or a device's new statement),
            # and every change of it is handed over to be stored.
            if b.chosen(user) != chosen_before[user]:
                assert op[0] in ("choose", "publish", "modify")
                assert changes.chosen[user] == b.chosen(user)
            else:
                assert user not in changes.chosen
            old_dnd = (chosen_before[user] or Chosen(AVAILABLE)).state is DND
            new_dnd = (b.chosen(user) or Chosen(AVAILABLE)).state is DND
            assert changes.dnd.get(user, old_dnd) is new_dnd
            if old_dnd == new_dnd:
                assert user not in changes.dnd
        deadlines = [p.expires_at for u in USERS for p in b.publications(u)]
        assert b.next_deadline() == (min(deadlines) if deadlines else None)
        assert all(deadline > now for deadline in deadlines)
