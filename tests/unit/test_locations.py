"""Who is where: the pure LocationBook (rules T3, T7, T10)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from teleoffice.calls.locations import LOGGED_OUT, Location, LocationBook, LocationKind

# Three users with a base phone named by their extension, one (dora) without
# any phone, and a spare phone in a meeting room that belongs to nobody's user.
BASE = {"alice": "201", "bob": "202", "carol": "203", "dora": None}
OWNER = {"201": "alice", "202": "bob", "203": "carol", "room1": None}

T0 = 1000.0


def book(stored: Mapping[str, Location] | None = None) -> LocationBook:
    return LocationBook(stored or {}, base_account=BASE.get, owner=OWNER.get)


def phone(account: str, since: float = T0) -> Location:
    return Location(LocationKind.PHONE, account=account, since=since)


def telecommuter(number: str, since: float = T0) -> Location:
    return Location(LocationKind.TELECOMMUTER, number=number, since=since)


def logged_out(since: float = T0) -> Location:
    return Location(LocationKind.LOGGED_OUT, since=since)


# ---- the default ---------------------------------------------------------------------


def test_without_a_stored_location_a_user_is_on_their_base_phone() -> None:
    b = book()
    assert b.of("alice") == Location(LocationKind.PHONE, account="201")
    assert b.of("bob") == Location(LocationKind.PHONE, account="202")
    assert b.occupant("201") == "alice"
    assert b.stored() == {}
    assert b.telecommuters() == {}


def test_a_user_without_a_base_phone_is_logged_out_by_default() -> None:
    assert book().of("dora") == LOGGED_OUT
    assert book().of("nobody-at-all") == LOGGED_OUT


def test_a_phone_nobody_owns_has_no_occupant_until_somebody_logs_in() -> None:
    b = book()
    assert b.occupant("room1") is None
    assert b.occupant("unknown-phone") is None
    changes = b.log_in("dora", "room1", T0)
    assert changes == {"dora": phone("room1")}
    assert b.occupant("room1") == "dora"
    assert b.of("dora") == phone("room1")


# ---- hot desking (T10) ---------------------------------------------------------------


def test_hot_desk_login_logs_out_the_owner_and_frees_the_users_own_phone() -> None:
    b = book()
    changes = b.log_in("alice", "202", T0 + 5)
    assert changes == {"bob": logged_out(T0 + 5), "alice": phone("202", T0 + 5)}
    assert b.occupant("202") == "alice"
    assert b.of("alice") == phone("202", T0 + 5)
    assert b.of("bob").kind is LocationKind.LOGGED_OUT
    # Alice's own phone rings for nobody now (it does not fall back to anyone).
    assert b.occupant("201") is None
    assert b.stored() == {"alice": phone("202", T0 + 5), "bob": logged_out(T0 + 5)}


def test_hot_desk_login_logs_out_a_previous_hot_desker_and_frees_their_phone() -> None:
    b = book()
    b.log_in("alice", "room1", T0)
    changes = b.log_in("bob", "room1", T0 + 10)
    assert changes == {"alice": logged_out(T0 + 10), "bob": phone("room1", T0 + 10)}
    assert b.occupant("room1") == "bob"
    assert b.of("alice") == logged_out(T0 + 10)
    assert b.occupant("202") is None  # Bob left his own desk
    assert b.occupant("201") is None  # Alice is logged out, not home again


def test_moving_from_one_hot_desk_to_another_frees_the_first() -> None:
    b = book()
    b.log_in("dora", "room1", T0)
    changes = b.log_in("dora", "203", T0 + 1)
    assert changes == {"carol": logged_out(T0 + 1), "dora": phone("203", T0 + 1)}
    assert b.occupant("room1") is None
    assert b.occupant("203") == "dora"


def test_logging_in_again_where_one_already_is_changes_nothing() -> None:
    b = book()
    assert b.log_in("alice", "201", T0) == {}
    b.log_in("alice", "room1", T0)
    assert b.log_in("alice", "room1", T0 + 1) == {}
    assert b.of("alice") == phone("room1", T0)


def test_logging_in_on_ones_own_base_phone_returns_to_the_default() -> None:
    b = book()
    b.log_in("alice", "room1", T0)
    changes = b.log_in("alice", "201", T0 + 3)
    # None: the stored row goes, the user is at the default again.
    assert changes == {"alice": None}
    assert b.stored() == {}
    assert b.of("alice") == Location(LocationKind.PHONE, account="201")
    assert b.occupant("201") == "alice"
    assert b.occupant("room1") is None


def test_reclaiming_ones_base_phone_logs_out_the_hot_desker_there() -> None:
    b = book()
    b.log_in("bob", "201", T0)
    changes = b.log_in("alice", "201", T0 + 7)
    assert changes == {"bob": logged_out(T0 + 7), "alice": None}
    assert b.occupant("201") == "alice"
    assert b.of("alice") == Location(LocationKind.PHONE, account="201")
    assert b.of("bob") == logged_out(T0 + 7)


def test_logging_in_on_a_phone_whose_owner_telecommutes_logs_nobody_out() -> None:
    b = book({"bob": telecommuter("90301234567")})
    changes = b.log_in("alice", "202", T0)
    assert changes == {"alice": phone("202")}
    assert b.of("bob") == telecommuter("90301234567")


# ---- log out ---------------------------------------------------------------------------


def test_log_out_from_the_base_phone_stores_logged_out_and_frees_the_phone() -> None:
    b = book()
    assert b.log_out("alice", T0 + 2) == {"alice": logged_out(T0 + 2)}
    assert b.of("alice") == logged_out(T0 + 2)
    assert b.occupant("201") is None


def test_log_out_from_a_hot_desk_frees_it() -> None:
    b = book()
    b.log_in("dora", "room1", T0)
    assert b.log_out("dora", T0 + 1) == {"dora": logged_out(T0 + 1)}
    assert b.occupant("room1") is None


def test_log_out_when_already_logged_out_changes_nothing() -> None:
    b = book()
    b.log_out("alice", T0)
    assert b.log_out("alice", T0 + 1) == {}
    assert b.log_out("dora", T0 + 1) == {}  # logged out by default, nothing to store
    assert b.of("alice") == logged_out(T0)


def test_log_out_of_a_telecommuter_ends_the_mode() -> None:
    b = book({"alice": telecommuter("90301234567")})
    assert b.log_out("alice", T0 + 1) == {"alice": logged_out(T0 + 1)}
    assert b.telecommuters() == {}


# ---- telecommuter mode (T3, T7) ---------------------------------------------------------


def test_starting_telecommuter_mode_takes_the_user_off_their_phone() -> None:
    b = book()
    changes = b.start_telecommuter("alice", "90301234567", T0)
    assert changes == {"alice": telecommuter("90301234567")}
    assert b.of("alice") == telecommuter("90301234567")
    assert b.occupant("201") is None  # T3: the phone no longer rings for her
    assert b.telecommuters() == {"alice": telecommuter("90301234567")}


def test_starting_telecommuter_mode_from_a_hot_desk_frees_that_desk() -> None:
    b = book()
    b.log_in("alice", "202", T0)
    b.start_telecommuter("alice", "90301234567", T0 + 1)
    assert b.occupant("202") is None
    # Bob was logged out by the hot-desk login and stays so.
    assert b.of("bob") == logged_out(T0)


def test_changing_the_telecommuter_number_replaces_it() -> None:
    b = book()
    b.start_telecommuter("alice", "90301234567", T0)
    changes = b.start_telecommuter("alice", "90407654321", T0 + 9)
    assert changes == {"alice": telecommuter("90407654321", T0 + 9)}
    assert b.telecommuters() == {"alice": telecommuter("90407654321", T0 + 9)}


def test_ending_telecommuter_mode_returns_to_a_free_base_phone() -> None:
    b = book()
    b.start_telecommuter("alice", "90301234567", T0)
    assert b.end_telecommuter("alice", T0 + 60) == {"alice": None}
    assert b.of("alice") == Location(LocationKind.PHONE, account="201")
    assert b.occupant("201") == "alice"
    assert b.stored() == {}


def test_ending_telecommuter_mode_with_the_base_phone_taken_logs_out() -> None:
    b = book()
    b.start_telecommuter("alice", "90301234567", T0)
    b.log_in("bob", "201", T0 + 1)
    changes = b.end_telecommuter("alice", T0 + 60)
    assert changes == {"alice": logged_out(T0 + 60)}
    assert b.of("alice") == logged_out(T0 + 60)
    assert b.occupant("201") == "bob"  # the hot-desker keeps the phone


def test_ending_telecommuter_mode_without_a_base_phone_logs_out() -> None:
    b = book()
    b.start_telecommuter("dora", "90301234567", T0)
    assert b.end_telecommuter("dora", T0 + 1) == {"dora": logged_out(T0 + 1)}


def test_ending_telecommuter_mode_when_it_is_not_on_changes_nothing() -> None:
    b = book()
    assert b.end_telecommuter("alice", T0) == {}
    b.log_in("alice", "room1", T0)
    assert b.end_telecommuter("alice", T0 + 1) == {}
    assert b.of("alice") == phone("room1")


# ---- occupant() ---------------------------------------------------------------------------


def test_occupant_is_the_owner_while_at_home() -> None:
    assert book().occupant("202") == "bob"


def test_occupant_is_nobody_once_the_owner_moved_or_logged_out() -> None:
    assert book({"bob": telecommuter("90301234567")}).occupant("202") is None
    assert book({"bob": logged_out()}).occupant("202") is None
    assert book({"bob": phone("room1")}).occupant("202") is None


def test_occupant_is_the_hot_desker_not_the_owner() -> None:
    b = book({"alice": phone("202"), "bob": logged_out()})
    assert b.occupant("202") == "alice"
    assert b.occupant("201") is None


def test_occupant_of_an_account_that_is_not_the_owners_base_phone_is_nobody() -> None:
    # carol owns 203 (her base phone); a second account she owns is not where she is.
    owners = {**OWNER, "203-soft": "carol"}
    b = LocationBook({}, base_account=BASE.get, owner=owners.get)
    assert b.occupant("203-soft") is None
    assert b.occupant("203") == "carol"


def test_stored_locations_are_read_back_at_start_up() -> None:
    b = book(
        {
            "alice": telecommuter("90301234567"),
            "bob": phone("201"),
            "carol": logged_out(),
        }
    )
    assert b.occupant("201") == "bob"
    assert b.occupant("202") is None
    assert b.occupant("203") is None
    assert b.telecommuters() == {"alice": telecommuter("90301234567")}


def test_stored_is_a_copy() -> None:
    b = book()
    b.start_telecommuter("alice", "90301234567", T0)
    copy = b.stored()
    copy.clear()
    assert b.of("alice").kind is LocationKind.TELECOMMUTER


def test_forget_removes_a_deleted_user_and_frees_their_phone() -> None:
    b = book()
    b.log_in("alice", "room1", T0)
    b.forget("alice")
    assert b.occupant("room1") is None
    assert b.stored().get("alice") is None


# ---- Location validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "account", "number"),
    [
        (LocationKind.PHONE, None, None),
        (LocationKind.PHONE, "", None),
        (LocationKind.PHONE, "201", "90301234567"),
        (LocationKind.TELECOMMUTER, None, None),
        (LocationKind.TELECOMMUTER, None, ""),
        (LocationKind.TELECOMMUTER, "201", "90301234567"),
        (LocationKind.LOGGED_OUT, "201", None),
        (LocationKind.LOGGED_OUT, None, "90301234567"),
    ],
)
def test_inconsistent_locations_are_refused(
    kind: LocationKind, account: str | None, number: str | None
) -> None:
    with pytest.raises(ValueError, match="location"):
        Location(kind, account=account, number=number)


def test_consistent_locations_are_accepted() -> None:
    assert phone("201").account == "201"
    assert telecommuter("90301234567").number == "90301234567"
    assert Location(LocationKind.LOGGED_OUT) == LOGGED_OUT
    assert LOGGED_OUT.account is None
    assert LOGGED_OUT.number is None
