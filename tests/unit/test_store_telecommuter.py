"""Telecommuter settings in the store: allowed patterns, the permission flag,
hot-desk login codes and saved numbers (rules T1, T2, T10)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, text

from teleoffice.calls.restrictions import parse_pattern
from teleoffice.store import (
    Conflict,
    InvalidInput,
    NotFound,
    SavedNumberRecord,
    Sessions,
    TelecommuterRecord,
    TelecommuterRepo,
    UserRepo,
)
from teleoffice.store.telecommuter import (
    MAX_SAVED_NUMBERS,
    MAX_TELECOMMUTER_PATTERNS,
    telecommuter_patterns,
    validate_login_code,
)


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    # argon2id all the same, with parameters that keep the suite fast.
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


@pytest.fixture
def users(sessions: Sessions) -> UserRepo:
    repo = UserRepo(sessions, realm="teleoffice", hasher=cheap_hasher())
    repo.add_user("alice", extension="201", sip_password="s")
    repo.add_user("bob", extension="202", sip_password="s")
    return repo


@pytest.fixture
def repo(sessions: Sessions, users: UserRepo) -> TelecommuterRepo:
    return TelecommuterRepo(sessions, cheap_hasher())


def login_code_hashes(engine: Engine) -> list[str | None]:
    with engine.connect() as connection:
        return [
            r[0] for r in connection.execute(text("SELECT login_code_hash FROM user_telecommuter"))
        ]


# --- settings -------------------------------------------------------------------------


def test_defaults_without_a_row(repo: TelecommuterRepo) -> None:
    assert repo.get("alice") == TelecommuterRecord("alice", False, (), False)
    assert repo.snapshot() == {}


def test_unknown_users_are_not_found(repo: TelecommuterRepo) -> None:
    for call in (
        lambda: repo.get("mallory"),
        lambda: repo.set_patterns("mallory", ["0."]),
        lambda: repo.set_allowed("mallory", True),
        lambda: repo.set_login_code("mallory", "1234"),
        lambda: repo.clear_login_code("mallory"),
        lambda: repo.saved_numbers("mallory"),
        lambda: repo.add_saved_number("mallory", "0301234"),
        lambda: repo.delete_saved_number("mallory", "0301234"),
    ):
        with pytest.raises(NotFound, match="mallory"):
            call()


def test_set_allowed_writes_the_users_flag(repo: TelecommuterRepo, users: UserRepo) -> None:
    assert repo.set_allowed("alice", True).allowed is True
    assert users.get("alice").telecommuter_allowed is True
    assert repo.get("alice").allowed is True
    assert users.get("bob").telecommuter_allowed is False
    assert repo.set_allowed("alice", False) == TelecommuterRecord("alice", False, (), False)
    assert users.get("alice").telecommuter_allowed is False


def test_patterns_are_stored_canonical_and_replaced_whole(repo: TelecommuterRepo) -> None:
    record = repo.set_patterns("alice", ["_0[1-9]XX.", " 0171! ", "0171!", "+49.", "internal"])
    assert record.patterns == ("0[1-9]XX.", "0171!", "+49.", "internal")
    assert repo.get("alice").patterns == record.patterns
    # Every stored pattern is one the PBX can parse and match.
    assert all(parse_pattern(p).text == p for p in record.patterns)
    assert repo.snapshot() == {"alice": record.patterns}

    assert repo.set_patterns("alice", ["030."]).patterns == ("030.",)
    assert repo.set_patterns("bob", ("0XXX",)).patterns == ("0XXX",)
    assert repo.snapshot() == {"alice": ("030.",), "bob": ("0XXX",)}

    assert repo.set_patterns("alice", []).patterns == ()  # any number the user may dial
    assert repo.snapshot() == {"bob": ("0XXX",)}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "0.1",  # '.' only at the end
        "0[]",
        "0[9-1]",
        "0[1-",
        "abc",
        "0.=home",  # labels mean nothing here
        "1" * 40,
        "0\n1",
        "０３０.",  # full-width digits
        "\x00",
    ],
)
def test_bad_patterns_change_nothing(repo: TelecommuterRepo, bad: str) -> None:
    repo.set_patterns("alice", ["030."])
    with pytest.raises(InvalidInput, match="telecommuter pattern"):
        repo.set_patterns("alice", ["0171.", bad])
    assert repo.get("alice").patterns == ("030.",)


def test_too_many_patterns_are_refused() -> None:
    many = [f"0{n:04}." for n in range(MAX_TELECOMMUTER_PATTERNS + 1)]
    assert len(telecommuter_patterns(many[:-1])) == MAX_TELECOMMUTER_PATTERNS
    with pytest.raises(InvalidInput, match="at most"):
        telecommuter_patterns(many)


# --- login codes ------------------------------------------------------------------------


def test_login_code_is_hashed_and_verified_by_extension(
    repo: TelecommuterRepo, engine: Engine
) -> None:
    repo.set_login_code("alice", "4711")
    assert repo.get("alice").has_login_code is True
    assert repo.get("bob").has_login_code is False
    [stored] = login_code_hashes(engine)
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "4711" not in stored
    assert repo.verify_login_code("201", "4711") == "alice"
    assert repo.verify_login_code("201", "4712") is None
    assert repo.verify_login_code("202", "4711") is None  # bob has no code
    assert repo.verify_login_code("299", "4711") is None  # nobody there


def test_setting_a_code_keeps_the_patterns_and_vice_versa(repo: TelecommuterRepo) -> None:
    repo.set_patterns("alice", ["030."])
    repo.set_login_code("alice", "123456789012")
    repo.set_patterns("alice", ["040."])
    assert repo.get("alice") == TelecommuterRecord("alice", False, ("040.",), True)
    assert repo.verify_login_code("201", "123456789012") == "alice"


def test_a_new_code_replaces_the_old_and_clearing_removes_it(repo: TelecommuterRepo) -> None:
    repo.set_login_code("alice", "1111")
    repo.set_login_code("alice", "2222")
    assert repo.verify_login_code("201", "1111") is None
    assert repo.verify_login_code("201", "2222") == "alice"
    repo.clear_login_code("alice")
    assert repo.get("alice").has_login_code is False
    assert repo.verify_login_code("201", "2222") is None
    repo.clear_login_code("bob")  # nothing to clear: fine


@pytest.mark.parametrize(
    "bad", ["", "123", "1234567890123", "12a4", " 1234", "1234\n", "١٢٣٤", "+1234", "12.34"]
)
def test_bad_login_codes_change_nothing(repo: TelecommuterRepo, bad: str) -> None:
    repo.set_login_code("alice", "4711")
    with pytest.raises(InvalidInput, match="4 to 12 digits"):
        repo.set_login_code("alice", bad)
    with pytest.raises(InvalidInput):
        validate_login_code(bad)
    assert repo.verify_login_code("201", "4711") == "alice"
    assert repo.verify_login_code("201", bad) is None


@pytest.mark.parametrize(
    ("extension", "code"),
    [("", "4711"), ("2" * 10_000, "4711"), ("201", "4" * 100_000), ("2𝟎1", "4711"), ("201'", "1")],
)
def test_hostile_verification_input_is_just_wrong(
    repo: TelecommuterRepo, extension: str, code: str
) -> None:
    repo.set_login_code("alice", "4711")
    assert repo.verify_login_code(extension, code) is None


def test_unknown_extensions_and_missing_codes_cost_a_hash(
    repo: TelecommuterRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.set_login_code("alice", "4711")
    verified: list[str] = []
    original = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(str(password))
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    assert repo.verify_login_code("299", "1234") is None  # no such extension
    assert repo.verify_login_code("202", "1234") is None  # bob has no code
    assert repo.verify_login_code("201", "1234") is None  # wrong code
    assert verified == ["1234", "1234", "1234"]


def test_a_code_hashed_with_weaker_parameters_is_upgraded(
    sessions: Sessions, users: UserRepo, engine: Engine
) -> None:
    TelecommuterRepo(sessions, cheap_hasher(time_cost=1)).set_login_code("alice", "4711")
    [weak] = login_code_hashes(engine)
    stronger = TelecommuterRepo(sessions, cheap_hasher(time_cost=2))
    assert stronger.verify_login_code("201", "4711") == "alice"
    [upgraded] = login_code_hashes(engine)
    assert upgraded != weak
    assert "t=2" in str(upgraded)
    assert stronger.verify_login_code("201", "4711") == "alice"


# --- saved numbers ----------------------------------------------------------------------


def test_saved_numbers_are_kept_in_order_and_relabelled(repo: TelecommuterRepo) -> None:
    assert repo.saved_numbers("alice") == []
    assert repo.add_saved_number("alice", "0301234", "home") == SavedNumberRecord("0301234", "home")
    repo.add_saved_number("alice", "+491711234")
    repo.add_saved_number("bob", "0301234", "bob's")
    assert repo.add_saved_number("alice", "0301234", "  Home office ") == SavedNumberRecord(
        "0301234", "Home office"
    )
    assert repo.saved_numbers("alice") == [
        SavedNumberRecord("0301234", "Home office"),
        SavedNumberRecord("+491711234", ""),
    ]
    repo.delete_saved_number("alice", "0301234")
    assert repo.saved_numbers("alice") == [SavedNumberRecord("+491711234", "")]
    assert repo.saved_numbers("bob") == [SavedNumberRecord("0301234", "bob's")]
    with pytest.raises(NotFound, match="0301234"):
        repo.delete_saved_number("alice", "0301234")


@pytest.mark.parametrize(
    ("number", "label"),
    [
        ("", "x"),
        ("030 1234", "x"),
        ("030-1234", "x"),
        ("++49", "x"),
        ("1" * 33, "x"),
        ("٠٣٠", "x"),  # Arabic-Indic digits
        ("0301234", "x" * 65),
        ("0301234", "line\nbreak"),
        ("0301234", "tab\there"),
        ("0301234", "bidi\u202eoverride"),
    ],
)
def test_bad_saved_numbers_change_nothing(repo: TelecommuterRepo, number: str, label: str) -> None:
    repo.add_saved_number("alice", "0301234", "home")
    with pytest.raises(InvalidInput):
        repo.add_saved_number("alice", number, label)
    assert repo.saved_numbers("alice") == [SavedNumberRecord("0301234", "home")]


def test_a_label_may_be_long_and_not_ascii(repo: TelecommuterRepo) -> None:
    label = "Büro Zürich 🏠" + "x" * (64 - 13)
    assert len(label) == 64
    assert repo.add_saved_number("alice", "0301234", label).label == label
    assert repo.saved_numbers("alice")[0].label == label


def test_at_most_twenty_saved_numbers(repo: TelecommuterRepo) -> None:
    assert MAX_SAVED_NUMBERS == 20
    for n in range(MAX_SAVED_NUMBERS):
        repo.add_saved_number("alice", f"03000{n:02}")
    with pytest.raises(Conflict, match="20 saved numbers"):
        repo.add_saved_number("alice", "0399999")
    assert len(repo.saved_numbers("alice")) == MAX_SAVED_NUMBERS
    assert "0399999" not in {s.number for s in repo.saved_numbers("alice")}
    # Relabelling one already saved is still fine, and so is another user.
    repo.add_saved_number("alice", "0300000", "first")
    assert repo.saved_numbers("alice")[0] == SavedNumberRecord("0300000", "first")
    repo.add_saved_number("bob", "0399999")
    # Deleting one makes room again.
    repo.delete_saved_number("alice", "0300005")
    repo.add_saved_number("alice", "0399999")
    assert len(repo.saved_numbers("alice")) == MAX_SAVED_NUMBERS


def test_settings_and_numbers_go_with_the_user(
    repo: TelecommuterRepo, users: UserRepo, engine: Engine
) -> None:
    repo.set_patterns("alice", ["030."])
    repo.set_login_code("alice", "4711")
    repo.add_saved_number("alice", "0301234")
    users.delete("alice")
    with engine.connect() as connection:
        for table in ("user_telecommuter", "saved_numbers"):
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    assert repo.snapshot() == {}
    # A new user with the old extension does not inherit the code.
    users.add_user("alice2", extension="201", sip_password="s")
    assert repo.verify_login_code("201", "4711") is None
