"""Portal bearer tokens in the store: only hashes are kept, expiry, revocation,
and hostile tokens that must never raise."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from teleoffice.store import InvalidInput, NotFound, Sessions, TokenRepo, UserRepo
from teleoffice.store.tokens import MAX_TOKEN_TTL

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = 3600.0


@pytest.fixture
def users(sessions: Sessions) -> UserRepo:
    repo = UserRepo(sessions, realm="teleoffice")
    repo.add_user("alice", extension="201", sip_password="s")
    repo.add_user("bob", extension="202", sip_password="s")
    return repo


@pytest.fixture
def tokens(sessions: Sessions, users: UserRepo) -> TokenRepo:
    return TokenRepo(sessions)


def stored(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as connection:
        return [
            (r[0], r[1])
            for r in connection.execute(text("SELECT token_hash, user_id FROM api_tokens"))
        ]


def test_issue_stores_only_the_sha256(tokens: TokenRepo, engine: Engine) -> None:
    token = tokens.issue("alice", ttl=HOUR, now=T0)
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    [(digest, _)] = stored(engine)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in digest
    assert tokens.issue("alice", ttl=HOUR, now=T0) != token  # fresh each time


def test_resolve_until_expiry(tokens: TokenRepo) -> None:
    token = tokens.issue("alice", ttl=HOUR, now=T0)
    assert tokens.resolve(token, T0) == "alice"
    assert tokens.resolve(token, T0 + timedelta(seconds=HOUR - 1)) == "alice"
    assert tokens.resolve(token, T0 + timedelta(seconds=HOUR)) is None  # expired at the instant
    assert tokens.resolve(token, T0 + timedelta(days=30)) is None


def test_resolve_compares_instants_across_time_zones(tokens: TokenRepo) -> None:
    token = tokens.issue("bob", ttl=60, now=T0)
    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))
    assert tokens.resolve(token, berlin + timedelta(seconds=59)) == "bob"
    assert tokens.resolve(token, berlin + timedelta(seconds=60)) is None


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "x",
        "A" * 43,  # the right shape, never issued
        "A" * 10_000_000,
        "é" * 43,
        "\x00" * 43,
        "Bearer " + "A" * 43,
        "A" * 42 + "=",
        "' OR 1=1 --" + "A" * 32,
        "\ud800" * 43,  # a lone surrogate: cannot even be encoded
        "A" * 43 + "\n",
    ],
)
def test_hostile_tokens_resolve_to_nobody_and_never_raise(tokens: TokenRepo, hostile: str) -> None:
    tokens.issue("alice", ttl=HOUR, now=T0)
    assert tokens.resolve(hostile, T0) is None
    assert tokens.revoke(hostile) is False


def test_a_token_one_character_off_is_nobody(tokens: TokenRepo) -> None:
    token = tokens.issue("alice", ttl=HOUR, now=T0)
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert tokens.resolve(changed, T0) is None
    assert tokens.resolve(token[:-1], T0) is None


def test_revoke_ends_one_session(tokens: TokenRepo) -> None:
    first = tokens.issue("alice", ttl=HOUR, now=T0)
    second = tokens.issue("alice", ttl=HOUR, now=T0)
    assert tokens.revoke(first) is True
    assert tokens.revoke(first) is False
    assert tokens.resolve(first, T0) is None
    assert tokens.resolve(second, T0) == "alice"


def test_revoke_all_ends_every_session_of_one_user(tokens: TokenRepo) -> None:
    mine = [tokens.issue("alice", ttl=HOUR, now=T0) for _ in range(3)]
    theirs = tokens.issue("bob", ttl=HOUR, now=T0)
    assert tokens.revoke_all("alice") == 3
    assert tokens.revoke_all("alice") == 0
    assert all(tokens.resolve(token, T0) is None for token in mine)
    assert tokens.resolve(theirs, T0) == "bob"
    with pytest.raises(NotFound, match="mallory"):
        tokens.revoke_all("mallory")


def test_purge_expired_removes_only_expired_tokens(tokens: TokenRepo, engine: Engine) -> None:
    short = tokens.issue("alice", ttl=60, now=T0)
    long = tokens.issue("bob", ttl=HOUR, now=T0)
    assert tokens.purge_expired(T0) == 0
    assert tokens.purge_expired(T0 + timedelta(seconds=60)) == 1
    assert len(stored(engine)) == 1
    assert tokens.resolve(short, T0) is None  # gone, even at a time it was valid
    assert tokens.resolve(long, T0) == "bob"


def test_issue_for_an_unknown_user_stores_nothing(tokens: TokenRepo, engine: Engine) -> None:
    with pytest.raises(NotFound, match="mallory"):
        tokens.issue("mallory", ttl=HOUR, now=T0)
    assert stored(engine) == []


@pytest.mark.parametrize(
    "ttl", [0, -1, float("nan"), float("inf"), float("-inf"), MAX_TOKEN_TTL + 1, 1e300]
)
def test_bad_lifetimes_are_refused(tokens: TokenRepo, engine: Engine, ttl: float) -> None:
    with pytest.raises(InvalidInput, match="lifetime"):
        tokens.issue("alice", ttl=ttl, now=T0)
    assert stored(engine) == []


def test_times_must_be_aware(tokens: TokenRepo, engine: Engine) -> None:
    naive = datetime(2026, 3, 1, 9, 0)
    token = tokens.issue("alice", ttl=HOUR, now=T0)
    with pytest.raises(InvalidInput, match="timezone"):
        tokens.issue("alice", ttl=HOUR, now=naive)
    with pytest.raises(InvalidInput, match="timezone"):
        tokens.resolve(token, naive)
    with pytest.raises(InvalidInput, match="timezone"):
        tokens.purge_expired(naive)
    assert len(stored(engine)) == 1


def test_tokens_go_with_their_user(tokens: TokenRepo, users: UserRepo, engine: Engine) -> None:
    token = tokens.issue("alice", ttl=HOUR, now=T0)
    users.delete("alice")
    assert stored(engine) == []
    users.add_user("alice", extension="201", sip_password="s")
    assert tokens.resolve(token, T0) is None
