"""User locations in the store: validation of records, atomic group moves, and
the one-user-per-phone rule (migration 0005 on a real SQLite file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, text

from teleoffice.store import (
    Conflict,
    InvalidInput,
    LocationKind,
    LocationRepo,
    NotFound,
    Sessions,
    StoredLocation,
    UserRepo,
)
from teleoffice.store.locations import LocationRepo as LocationRepoClass

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def users(sessions: Sessions) -> UserRepo:
    repo = UserRepo(
        sessions,
        realm="teleoffice",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    for name, extension in (("alice", "201"), ("bob", "202"), ("carol", "203")):
        repo.add_user(name, extension=extension, sip_password="s")
    return repo


@pytest.fixture
def repo(sessions: Sessions, users: UserRepo) -> LocationRepo:
    return LocationRepo(sessions)


def phone(account: str, since: datetime = T0) -> StoredLocation:
    return StoredLocation(LocationKind.PHONE, account, None, since)


def remote(number: str, since: datetime = T0) -> StoredLocation:
    return StoredLocation(LocationKind.TELECOMMUTER, None, number, since)


def logged_out(since: datetime = T0) -> StoredLocation:
    return StoredLocation(LocationKind.LOGGED_OUT, None, None, since)


# --- records ------------------------------------------------------------------------


def test_a_valid_kind_given_as_text_becomes_the_enum() -> None:
    location = StoredLocation("logged-out", None, None, T0)  # type: ignore[arg-type]
    assert location.kind is LocationKind.LOGGED_OUT
    assert [k.value for k in LocationKind] == ["phone", "telecommuter", "logged-out"]


@pytest.mark.parametrize(
    ("kind", "account", "number"),
    [
        ("desk", "201", None),  # no such kind
        ("PHONE", "201", None),  # kinds are spelt exactly
        ("", None, None),
        (LocationKind.PHONE, None, None),  # a phone needs an account
        (LocationKind.PHONE, "201", "0301234"),  # and no number
        (LocationKind.PHONE, "", None),
        (LocationKind.PHONE, "20 1", None),
        (LocationKind.PHONE, "x" * 65, None),
        (LocationKind.TELECOMMUTER, None, None),  # needs a number
        (LocationKind.TELECOMMUTER, "201", "0301234"),  # and no account
        (LocationKind.TELECOMMUTER, None, "030-1234"),
        (LocationKind.TELECOMMUTER, None, "1" * 33),
        (LocationKind.TELECOMMUTER, None, ""),
        (LocationKind.LOGGED_OUT, "201", None),  # neither
        (LocationKind.LOGGED_OUT, None, "0301234"),
    ],
)
def test_inconsistent_locations_are_refused(
    kind: LocationKind, account: str | None, number: str | None
) -> None:
    with pytest.raises(InvalidInput):
        StoredLocation(kind, account, number, T0)


def test_a_location_needs_an_aware_time() -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        StoredLocation(LocationKind.LOGGED_OUT, None, None, datetime(2026, 3, 1, 9, 30))


# --- reading and writing --------------------------------------------------------------


def test_nobody_has_a_row_at_first(repo: LocationRepo) -> None:
    assert repo.load_all() == {}
    assert repo.location_of("alice") is None


def test_apply_stores_each_kind_and_reads_it_back(repo: LocationRepo) -> None:
    later = datetime(2026, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    repo.apply({"alice": phone("202"), "bob": remote("+4930123456", later), "carol": logged_out()})
    stored = repo.load_all()
    assert stored == {
        "alice": phone("202"),
        "bob": remote("+4930123456", later),
        "carol": logged_out(),
    }
    # Times come back in UTC, the same instant.
    assert stored["bob"].since.tzinfo is UTC
    assert stored["bob"].since == later
    assert repo.location_of("bob") == remote("+4930123456", later)


def test_none_puts_a_user_back_at_the_default(repo: LocationRepo) -> None:
    repo.apply({"alice": remote("0301234"), "bob": logged_out()})
    repo.apply({"alice": None, "carol": None})  # carol had no row: nothing to do
    assert repo.load_all() == {"bob": logged_out()}
    assert repo.location_of("alice") is None


def test_an_empty_change_does_nothing(repo: LocationRepo) -> None:
    repo.apply({"alice": logged_out()})
    repo.apply({})
    assert repo.load_all() == {"alice": logged_out()}


def test_hot_desk_login_moves_the_newcomer_and_logs_out_the_occupant(repo: LocationRepo) -> None:
    repo.apply({"alice": phone("202"), "bob": logged_out()})
    # Carol logs in on the phone alice is on: one call, both moves.
    repo.apply({"carol": phone("202", T0 + timedelta(minutes=5)), "alice": logged_out()})
    assert repo.load_all() == {
        "carol": phone("202", T0 + timedelta(minutes=5)),
        "alice": logged_out(),
        "bob": logged_out(),
    }


def test_two_users_can_swap_phones_in_one_apply(repo: LocationRepo) -> None:
    repo.apply({"alice": phone("201"), "bob": phone("202")})
    repo.apply({"alice": phone("202"), "bob": phone("201")})
    assert repo.load_all() == {"alice": phone("202"), "bob": phone("201")}


def test_a_user_may_stay_on_the_same_phone(repo: LocationRepo) -> None:
    repo.apply({"alice": phone("202")})
    repo.apply({"alice": phone("202", T0 + timedelta(hours=1))})
    assert repo.location_of("alice") == phone("202", T0 + timedelta(hours=1))


def test_a_user_is_removed_with_their_location(repo: LocationRepo, users: UserRepo) -> None:
    repo.apply({"alice": remote("0301234"), "bob": logged_out()})
    users.delete("alice")
    assert repo.load_all() == {"bob": logged_out()}


# --- refusals change nothing ------------------------------------------------------------


BEFORE = {"alice": phone("201"), "bob": remote("0301234")}


@pytest.fixture
def placed(repo: LocationRepo) -> LocationRepo:
    repo.apply(BEFORE)
    return repo


def test_two_users_on_one_phone_in_one_apply_is_a_conflict(placed: LocationRepo) -> None:
    with pytest.raises(Conflict, match="203"):
        placed.apply({"bob": phone("203"), "carol": phone("203")})
    assert placed.load_all() == BEFORE


def test_moving_onto_an_occupied_phone_needs_the_occupant_moved_too(
    placed: LocationRepo,
) -> None:
    with pytest.raises(Conflict, match="alice"):
        placed.apply({"carol": phone("201"), "bob": logged_out()})
    assert placed.load_all() == BEFORE


def test_an_unknown_user_fails_the_whole_change(placed: LocationRepo) -> None:
    with pytest.raises(NotFound, match="mallory"):
        placed.apply({"bob": logged_out(), "mallory": logged_out()})
    assert placed.load_all() == BEFORE
    with pytest.raises(NotFound):
        placed.location_of("mallory")


def test_an_unknown_phone_account_fails_the_whole_change(placed: LocationRepo) -> None:
    with pytest.raises(NotFound, match="299"):
        placed.apply({"alice": None, "carol": phone("299")})
    assert placed.load_all() == BEFORE


def test_something_that_is_not_a_location_is_refused(placed: LocationRepo) -> None:
    with pytest.raises(InvalidInput):
        placed.apply({"alice": None, "bob": "logged-out"})  # type: ignore[dict-item]
    assert placed.load_all() == BEFORE


def test_the_unique_constraint_still_guards_a_race(
    placed: LocationRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process logging somebody in between our check and our write is
    # caught by the database and reported as a conflict, not a database error.
    monkeypatch.setattr(LocationRepoClass, "_check_accounts", staticmethod(lambda *a: None))
    with pytest.raises(Conflict):
        placed.apply({"carol": phone("201")})
    assert placed.load_all() == BEFORE


def test_rows_that_make_no_sense_are_skipped_when_loading(
    placed: LocationRepo, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO user_locations (user_id, kind, account, number, since) "
                "SELECT id, 'on-the-moon', NULL, NULL, '2026-01-01 00:00:00' "
                "FROM users WHERE username = 'carol'"
            )
        )
    assert placed.load_all() == BEFORE
    assert placed.location_of("carol") is None
    # And it can be overwritten like any row.
    placed.apply({"carol": logged_out()})
    assert placed.location_of("carol") == logged_out()
