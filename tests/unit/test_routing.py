"""Routing of dialled numbers: to a user (extension or DID), out of a trunk, or 404."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from teleoffice.calls.routing import (
    ToTrunk,
    ToUser,
    TrunkView,
    Unroutable,
    UserView,
    normalize,
    route,
)

ALICE = UserView("alice", "201", "Alice Liddell")
BOB = UserView("bob", "901", "Bob Builder", no_answer_timeout=30)  # starts like trunk prefix 9

PSTN = TrunkView("pstn", "9", "+4930123400")
INTL = TrunkView("intl", "900", None)  # a more specific prefix overlapping "9"
BACKUP = TrunkView("backup", "8")
INBOUND_ONLY = TrunkView("inbound-only", None)


@dataclass
class FakeDirectory:
    """Users by extension and DID, and trunks in the order the store lists them."""

    users: dict[str, UserView] = field(default_factory=dict)
    trunk_list: list[TrunkView] = field(default_factory=list)
    looked_up: list[str] = field(default_factory=list)

    def user_by_number(self, number: str) -> UserView | None:
        self.looked_up.append(number)
        return self.users.get(number)

    def trunks(self) -> list[TrunkView]:
        return list(self.trunk_list)


def directory(*trunks: TrunkView) -> FakeDirectory:
    return FakeDirectory(
        users={"201": ALICE, "+4930123456": ALICE, "901": BOB},
        trunk_list=list(trunks) if trunks else [PSTN, BACKUP, INBOUND_ONLY],
    )


# ---- normalize --------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "expected"),
    [
        ("201", "201"),
        ("+4930123456", "+4930123456"),
        ("+49 30 123-456", "+4930123456"),
        ("0 30-12 34", "0301234"),
        ("*21#", "*21#"),
        ("#", "#"),
        ("1" * 32, "1" * 32),
    ],
)
def test_normalize_keeps_dialable_numbers_as_digits(dialled: str, expected: str) -> None:
    assert normalize(dialled) == expected


@pytest.mark.parametrize(
    "dialled",
    ["", " ", "-", "+", "alice", "sip:201@pbx.example.com", "20a1", "1+2", "++1", "1" * 33, "2.01"],
)
def test_normalize_refuses_what_is_not_a_number(dialled: str) -> None:
    assert normalize(dialled) is None


# ---- to users ---------------------------------------------------------------


def test_extension_reaches_its_user() -> None:
    assert route("201", from_trunk=False, directory=directory()) == ToUser(ALICE)


def test_did_reaches_its_user() -> None:
    assert route("+4930123456", from_trunk=False, directory=directory()) == ToUser(ALICE)


def test_directory_is_asked_for_the_normalized_number() -> None:
    d = directory()
    assert route("+49 30 123-456", from_trunk=False, directory=d) == ToUser(ALICE)
    assert d.looked_up == ["+4930123456"]


def test_user_number_wins_over_a_trunk_prefix() -> None:
    # 901 is an extension although it starts with the trunk prefix 9.
    assert route("901", from_trunk=False, directory=directory()) == ToUser(BOB)


@pytest.mark.parametrize("dialled", ["201", "+4930123456", "901"])
def test_calls_from_a_trunk_reach_users(dialled: str) -> None:
    assert isinstance(route(dialled, from_trunk=True, directory=directory()), ToUser)


# ---- to trunks --------------------------------------------------------------


def test_trunk_prefix_is_stripped() -> None:
    found = route("90301234567", from_trunk=False, directory=directory())
    assert found == ToTrunk(PSTN, "0301234567")


def test_trunk_prefix_is_stripped_after_normalizing() -> None:
    found = route("9 030 123-4567", from_trunk=False, directory=directory())
    assert found == ToTrunk(PSTN, "0301234567")


def test_number_picks_the_trunk_whose_prefix_it_has() -> None:
    assert route("8555", from_trunk=False, directory=directory()) == ToTrunk(BACKUP, "555")


def test_prefix_alone_is_not_a_number_to_send() -> None:
    found = route("9", from_trunk=False, directory=directory())
    assert found == Unroutable(404, "No such number")


def test_trunk_without_prefix_is_never_dialled_out_of() -> None:
    d = directory(INBOUND_ONLY)
    assert isinstance(route("5551234", from_trunk=False, directory=d), Unroutable)


@pytest.mark.parametrize(
    "trunks", [(PSTN, INTL), (INTL, PSTN)], ids=["general-first", "specific-first"]
)
def test_longest_matching_prefix_wins_whatever_the_order(trunks: tuple[TrunkView, ...]) -> None:
    # "900..." is for the international trunk, whether the store lists it
    # before or after the general "9" trunk; "9..." otherwise goes to pstn.
    d = directory(*trunks)
    assert route("9004420712345", from_trunk=False, directory=d) == ToTrunk(INTL, "4420712345")
    assert route("90301234", from_trunk=False, directory=d) == ToTrunk(PSTN, "0301234")


@pytest.mark.parametrize("dialled", ["90301234567", "8555", "900441234"])
def test_calls_from_a_trunk_never_reach_a_trunk(dialled: str) -> None:
    d = directory(PSTN, INTL, BACKUP)
    assert isinstance(route(dialled, from_trunk=False, directory=d), ToTrunk)
    assert route(dialled, from_trunk=True, directory=d) == Unroutable(404, "No such number")


# ---- nowhere ----------------------------------------------------------------


@pytest.mark.parametrize("from_trunk", [False, True])
@pytest.mark.parametrize("dialled", ["alice", "sip:201@pbx.example.com", "", "1" * 33])
def test_non_numbers_are_404(dialled: str, from_trunk: bool) -> None:
    d = directory()
    assert route(dialled, from_trunk=from_trunk, directory=d) == Unroutable(404, "Not a number")
    assert d.looked_up == []


@pytest.mark.parametrize("from_trunk", [False, True])
@pytest.mark.parametrize("dialled", ["202", "555", "+15551234"])
def test_unknown_numbers_are_404(dialled: str, from_trunk: bool) -> None:
    found = route(dialled, from_trunk=from_trunk, directory=directory())
    assert found == Unroutable(404, "No such number")


def test_no_trunks_means_only_users_are_reachable() -> None:
    d = FakeDirectory(users={"201": ALICE})
    assert route("201", from_trunk=False, directory=d) == ToUser(ALICE)
    assert route("90301234", from_trunk=False, directory=d) == Unroutable(404, "No such number")
