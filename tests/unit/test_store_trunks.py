"""Trunks, DIDs and the call log in the store, and migration 0002 on real SQLite files."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import Engine, inspect, text

from teleoffice.sip.digest import Algorithm, build_authorization_from_ha1, parse_auth_params
from teleoffice.store import (
    KEEP,
    CallDirection,
    CallLogRepo,
    CallOutcome,
    CallRecord,
    Conflict,
    DidRepo,
    EndedBy,
    InvalidInput,
    NotFound,
    Sessions,
    TrunkRepo,
    UserRepo,
    current_revision,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from teleoffice.store.db import alembic_config

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def trunks(sessions: Sessions) -> TrunkRepo:
    return TrunkRepo(sessions)


@pytest.fixture
def users(sessions: Sessions) -> UserRepo:
    return UserRepo(
        sessions,
        realm="teleoffice",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )


@pytest.fixture
def dids(sessions: Sessions) -> DidRepo:
    return DidRepo(sessions)


@pytest.fixture
def calls(sessions: Sessions) -> CallLogRepo:
    return CallLogRepo(sessions)


def rows(engine: Engine, table: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]


def md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


# --- migration 0002 -------------------------------------------------------------------


def test_upgrade_from_0001_keeps_existing_data(url: str) -> None:
    """A site on the first schema, with users, phones and bindings, upgrades in place."""
    engine = make_engine(url)
    try:
        upgrade(url)  # creates the file with the right mode; then back to 0001
        command.downgrade(alembic_config(engine), "0001")
        assert current_revision(url) == "0001"
        with engine.begin() as connection:
            # Plain SQL: the repositories speak the current schema only.
            connection.execute(
                text(
                    "INSERT INTO users (id, username, display_name, extension, is_admin, "
                    "telecommuter_allowed, call_waiting, voicemail_enabled, no_answer_timeout, "
                    "created_at) VALUES (7, 'alice', 'Alice', '201', false, true, true, false, 20, "
                    "'2025-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO phone_accounts (username, user_id, ha1_md5, ha1_sha256, "
                    "created_at) VALUES ('201', 7, :md5, :sha, '2025-01-01 00:00:00')"
                ),
                {"md5": "a" * 32, "sha": "b" * 64},
            )
            connection.execute(
                text(
                    "INSERT INTO registrations (account, contact, uri, expires_at, call_id, "
                    "cseq, transport, source_host, source_port) VALUES ('201', "
                    "'<sip:201@192.0.2.1>', 'sip:201@192.0.2.1', 99.0, 'c', 1, 'udp', "
                    "'192.0.2.1', 5060)"
                )
            )
        before = {t: rows(engine, t) for t in ("users", "phone_accounts", "registrations")}
    finally:
        engine.dispose()

    assert upgrade(url) == head_revision()

    engine = make_engine(url)
    try:
        # Later revisions add columns at the end of `users`; the old ones keep
        # their values.
        after = {t: rows(engine, t) for t in before}
        assert {
            t: [row[: len(old[0])] for row in found]
            for (t, found), old in zip(after.items(), before.values(), strict=True)
        } == before
        sessions = session_factory(engine)
        alice = UserRepo(sessions, realm="teleoffice").get("alice")
        assert (alice.id, alice.telecommuter_allowed, alice.no_answer_timeout) == (7, True, 20)
        # The new tables work alongside the old rows, defaults included.
        DidRepo(sessions).add("4930123456", user="alice")
        assert DidRepo(sessions).user_for("4930123456") == alice
        trunk = TrunkRepo(sessions).add("provider", host="sip.example.net")
        assert (trunk.transport, trunk.register, trunk.register_expires) == ("udp", False, 3600)
        # And back: 0002 drops only what it created.
        command.downgrade(alembic_config(engine), "0001")
        with engine.connect() as connection:
            names = set(inspect(connection).get_table_names())
        assert not names & {"trunks", "dids", "call_log"}
        assert {t: rows(engine, t) for t in before} == before
    finally:
        engine.dispose()
    assert upgrade(url) == head_revision()


def test_server_defaults_fill_rows_written_without_them(engine: Engine) -> None:
    # What the migration declares as server defaults, for rows inserted by hand.
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO trunks (name, host, port, created_at) "
                "VALUES ('raw', 'h.example', 5060, '2025-01-01 00:00:00')"
            )
        )
    [row] = rows(engine, "trunks")
    columns = dict(
        zip(
            ("transport", "use_pai", "register", "register_expires"),
            (row[4], row[11], row[12], row[13]),
            strict=True,
        )
    )
    assert columns == {"transport": "udp", "use_pai": 0, "register": 0, "register_expires": 3600}


# --- trunks -----------------------------------------------------------------------------


def test_add_trunk_with_defaults(trunks: TrunkRepo) -> None:
    trunk = trunks.add("provider1", host="SIP.Example.NET.", prefix="9")
    assert trunk.name == "provider1"
    assert trunk.host == "sip.example.net"  # canonical spelling
    assert (trunk.port, trunk.transport, trunk.prefix) == (5060, "udp", "9")
    assert (trunk.username, trunk.realm, trunk.has_credentials) == (None, None, False)
    assert (trunk.outside_number, trunk.use_pai, trunk.register) == (None, False, False)
    assert trunk.register_expires == 3600
    assert trunk.created_at.tzinfo is not None
    assert trunks.get("provider1") == trunk
    assert trunks.credentials("provider1") is None


def test_trunk_password_is_stored_as_ha1_for_the_host_realm(
    trunks: TrunkRepo, engine: Engine
) -> None:
    trunk = trunks.add(
        "provider1",
        host="sip.example.net",
        port=5080,
        transport="TCP",
        username="acct-42",
        password="provider-secret",
        outside_number="+4930123456",
        use_pai=True,
        register=True,
        register_expires=600,
    )
    assert (trunk.transport, trunk.realm, trunk.has_credentials) == (
        "tcp", "sip.example.net", True,
    )  # fmt: skip
    assert "provider-secret" not in repr(rows(engine, "trunks"))
    # The record never carries the hashes; credentials() does, and hides them in repr.
    assert md5("acct-42:sip.example.net:provider-secret") not in repr(trunk)
    credentials = trunks.credentials(trunk)
    assert credentials is not None
    assert credentials.username == "acct-42"
    assert credentials.ha1_md5 == md5("acct-42:sip.example.net:provider-secret")
    assert (
        credentials.ha1_sha256
        == hashlib.sha256(b"acct-42:sip.example.net:provider-secret").hexdigest()
    )
    assert credentials.ha1_md5 not in repr(credentials)
    assert credentials.ha1_for("sip.example.net", Algorithm.MD5_SESS) == credentials.ha1_md5
    assert credentials.ha1_for("sip.example.net", Algorithm.SHA256) == credentials.ha1_sha256
    assert credentials.ha1_for("other.example", Algorithm.MD5) is None


def test_trunk_credentials_answer_a_challenge(trunks: TrunkRepo) -> None:
    # RFC 2617 section 3.5's example, with the password kept only as HA1s.
    trunks.add(
        "p",
        host="h.example",
        username="Mufasa",
        password="Circle Of Life",
        realm="testrealm@host.com",
    )
    credentials = trunks.credentials("p")
    assert credentials is not None
    header = build_authorization_from_ha1(
        challenge='Digest realm="testrealm@host.com", qop="auth", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"',
        method="GET",
        uri="/dir/index.html",
        username=credentials.username,
        ha1_for=credentials.ha1_for,
        cnonce="0a4f113b",
    )
    assert parse_auth_params(header)[1]["response"] == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "trunk name"),
        ({"host": ""}, "host must not be empty"),
        ({"host": "   "}, "host must not be empty"),
        ({"host": "bad_host!"}, "neither a host name"),
        ({"host": "[192.0.2.1]"}, "only IPv6"),
        ({"port": 0}, "between 1 and 65535"),
        ({"port": 65536}, "between 1 and 65535"),
        ({"transport": "tls"}, "transport"),
        ({"prefix": ""}, "1 to 4 digits"),
        ({"prefix": "12345"}, "1 to 4 digits"),
        ({"prefix": "9a"}, "1 to 4 digits"),
        ({"outside_number": "030-123"}, "outside number"),
        ({"register_expires": 10}, "registration time"),
        ({"password": "pw"}, "needs the username"),
        ({"username": "u", "password": ""}, "password must not be empty"),
        ({"realm": "r"}, "realm only matters"),
        ({"username": "u\r\nVia: x", "password": "p"}, "control characters"),
        ({"username": "u", "password": "p", "realm": ""}, "realm must not be empty"),
        ({"register": True}, "registering needs a username"),
    ],
)
def test_invalid_trunks_are_refused(
    trunks: TrunkRepo, engine: Engine, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"name": "p", "host": "sip.example.net"}
    args.update(kwargs)
    name = args.pop("name")
    assert isinstance(name, str)
    with pytest.raises(InvalidInput, match=message):
        trunks.add(name, **args)  # type: ignore[arg-type]
    assert rows(engine, "trunks") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "one", "host": "other.example"}, "trunk 'one' already exists"),
        ({"host": "SIP.example.net", "port": 5060}, "already uses sip.example.net:5060"),
        ({"prefix": "9"}, "prefix 9 already belongs to trunk 'one'"),
        ({"prefix": "90"}, "overlaps prefix 9"),
    ],
)
def test_trunk_clashes_are_conflicts(
    trunks: TrunkRepo, engine: Engine, kwargs: dict[str, object], message: str
) -> None:
    trunks.add("one", host="sip.example.net", prefix="9")
    args: dict[str, object] = {"name": "two", "host": "two.example"}
    args.update(kwargs)
    name = args.pop("name")
    assert isinstance(name, str)
    before = rows(engine, "trunks")
    with pytest.raises(Conflict, match=message):
        trunks.add(name, **args)  # type: ignore[arg-type]
    assert rows(engine, "trunks") == before


def test_trunks_at_one_host_on_different_ports_and_inbound_only(trunks: TrunkRepo) -> None:
    trunks.add("a", host="sip.example.net", port=5060)
    trunks.add("b", host="sip.example.net", port=5080)
    trunks.add("c", host="c.example")  # no prefix: inbound only
    trunks.add("d", host="d.example")  # NULL prefixes never clash
    assert [t.name for t in trunks.list()] == ["a", "b", "c", "d"]


def test_find_trunks(trunks: TrunkRepo) -> None:
    v6 = trunks.add("v6", host="[2001:DB8::0:1]", port=5062, prefix="8")
    named = trunks.add("named", host="sip.example.net", prefix="9")
    assert v6.host == "2001:db8::1"
    assert trunks.find_by_address("2001:db8:0::1", 5062) == v6
    assert trunks.find_by_address("[2001:db8::1]", 5062) == v6
    assert trunks.find_by_address("Sip.Example.Net", 5060) == named
    assert trunks.find_by_address("sip.example.net", 5061) is None
    assert trunks.find_by_address("not a host", 5060) is None
    assert trunks.find_by_prefix("9") == named
    assert trunks.find_by_prefix("90") is None
    assert trunks.find("nothing") is None
    with pytest.raises(NotFound, match="no trunk 'nothing'"):
        trunks.get("nothing")
    with pytest.raises(NotFound):
        trunks.credentials("nothing")


def test_update_trunk_fields(trunks: TrunkRepo) -> None:
    trunks.add("p", host="sip.example.net", prefix="9", outside_number="4930100")
    updated = trunks.update(
        "p", port=5080, transport="tcp", use_pai=True, register_expires=900, host="h2.example"
    )
    assert (updated.host, updated.port, updated.transport) == ("h2.example", 5080, "tcp")
    assert (updated.use_pai, updated.register_expires) == (True, 900)
    assert (updated.prefix, updated.outside_number) == ("9", "4930100")  # KEEP by default
    updated = trunks.update("p", prefix=None, outside_number=None)
    assert (updated.prefix, updated.outside_number) == (None, None)
    updated = trunks.update("p", prefix="0", outside_number=KEEP)
    assert updated.prefix == "0"
    assert trunks.get("p") == updated


def test_update_trunk_credentials(trunks: TrunkRepo) -> None:
    trunks.add("p", host="sip.example.net", username="u", password="one", realm="R1")
    first = trunks.credentials("p")
    assert first is not None
    assert first.ha1_md5 == md5("u:R1:one")
    # A new password keeps the current realm unless another is given.
    trunks.update("p", password="two")
    second = trunks.credentials("p")
    assert second is not None
    assert (second.realm, second.ha1_md5) == ("R1", md5("u:R1:two"))
    trunks.update("p", password="three", realm="R2", username="v")
    third = trunks.credentials("p")
    assert third is not None
    assert (third.username, third.realm, third.ha1_md5) == ("v", "R2", md5("v:R2:three"))
    # Removing the username removes the credentials.
    updated = trunks.update("p", username=None)
    assert (updated.username, updated.realm, updated.has_credentials) == (None, None, False)
    assert trunks.credentials("p") is None
    # A username alone (no password yet) is allowed, and can then register.
    updated = trunks.update("p", username="w", register=True)
    assert (updated.username, updated.has_credentials, updated.register) == ("w", False, True)
    trunks.update("p", username="x")  # no hashes to invalidate yet
    assert trunks.get("p").username == "x"


@pytest.mark.parametrize(
    ("kwargs", "message", "error"),
    [
        ({"username": "other"}, "needs the password again", InvalidInput),
        ({"realm": "R2"}, "needs the password again", InvalidInput),
        ({"username": None, "password": "x"}, "needs a username", InvalidInput),
        ({"register": True, "username": None}, "registering needs a username", InvalidInput),
        ({"prefix": "12"}, "overlaps prefix 1", Conflict),
        ({"host": "other.example", "port": 5061}, "already uses", Conflict),
        ({"port": 0}, "between 1 and 65535", InvalidInput),
    ],
)
def test_update_trunk_errors_change_nothing(
    trunks: TrunkRepo,
    engine: Engine,
    kwargs: dict[str, object],
    message: str,
    error: type[Exception],
) -> None:
    trunks.add("p", host="sip.example.net", username="u", password="one", realm="R1", prefix="9")
    trunks.add("q", host="other.example", port=5061, prefix="1")
    before = rows(engine, "trunks")
    with pytest.raises(error, match=message):
        trunks.update("p", **kwargs)  # type: ignore[arg-type]
    assert rows(engine, "trunks") == before
    with pytest.raises(NotFound):
        trunks.update("nobody", port=5060)


def test_update_keeps_its_own_prefix_and_address(trunks: TrunkRepo) -> None:
    trunks.add("p", host="sip.example.net", prefix="9")
    assert trunks.update("p", prefix="9", host="sip.example.net", port=5060).prefix == "9"


def test_delete_trunk(trunks: TrunkRepo) -> None:
    trunks.add("p", host="sip.example.net")
    trunks.delete("p")
    assert trunks.list() == []
    with pytest.raises(NotFound):
        trunks.delete("p")


# --- DIDs -----------------------------------------------------------------------------


def test_dids_map_numbers_to_users(users: UserRepo, dids: DidRepo) -> None:
    alice = users.add_user("alice", extension="201", sip_password="s")
    bob = users.add_user("bob", extension="202", sip_password="s")
    record = dids.add("+4930123456", user="alice")
    assert (record.number, record.user) == ("+4930123456", "alice")
    assert record.created_at.tzinfo is not None
    dids.add("4930999", user="bob")
    assert [(d.number, d.user) for d in dids.list()] == [
        ("+4930123456", "alice"),
        ("4930999", "bob"),
    ]
    assert dids.user_for("+4930123456") == alice
    assert dids.user_for("4930999") == bob
    assert dids.user_for("202") == bob  # an extension reaches its user as well
    assert dids.user_for("4930123456") is None  # matched exactly as delivered
    dids.delete("4930999")
    assert dids.user_for("4930999") is None
    with pytest.raises(NotFound, match="no DID 4930999"):
        dids.delete("4930999")


def test_did_errors(users: UserRepo, dids: DidRepo, engine: Engine) -> None:
    users.add_user("alice", extension="201", sip_password="s")
    users.add_user("bob", extension="202", sip_password="s")
    dids.add("4930123456", user="alice")
    dids.add("4930", user="alice")
    before = rows(engine, "dids")
    with pytest.raises(Conflict, match="already belongs to user 'alice'"):
        dids.add("4930123456", user="bob")
    with pytest.raises(Conflict, match="extension of user 'bob'"):
        dids.add("202", user="alice")
    with pytest.raises(NotFound, match="no user 'carol'"):
        dids.add("4930555", user="carol")
    with pytest.raises(InvalidInput, match="DID"):
        dids.add("49 30", user="alice")
    assert rows(engine, "dids") == before
    # ...and the other way round: an extension may not repeat a DID.
    with pytest.raises(Conflict, match="already a DID of user 'alice'"):
        users.add_user("carol", extension="4930", sip_password="s")


def test_dids_go_with_their_user(users: UserRepo, dids: DidRepo) -> None:
    users.add_user("alice", extension="201", sip_password="s")
    users.add_user("bob", extension="202", sip_password="s")
    dids.add("4930123456", user="alice")
    dids.add("4930999", user="bob")
    users.delete("alice")
    assert [d.number for d in dids.list()] == ["4930999"]


# --- call log ---------------------------------------------------------------------------


def call(call_id: str = "c1", **changes: object) -> CallRecord:
    record = CallRecord(
        call_id=call_id,
        direction=CallDirection.INTERNAL,
        caller_number="201",
        callee_number="202",
        started_at=T0,
        caller_name="Alice",
        caller_user="alice",
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def test_a_call_is_logged_as_it_goes(calls: CallLogRepo) -> None:
    started = calls.start(call())
    assert started.outcome is None
    assert not started.finished
    assert started.duration is None
    ringing = calls.update(
        "c1",
        ringing_at=T0 + timedelta(seconds=1),
        callee_name="Bob",
        callee_user="bob",
        route="extension 202",
    )
    assert (ringing.callee_name, ringing.route) == ("Bob", "extension 202")
    calls.update("c1", answered_at=T0 + timedelta(seconds=5))
    ended = calls.finish(
        "c1",
        outcome=CallOutcome.ANSWERED,
        ended_at=T0 + timedelta(seconds=65),
        status=200,
        ended_by=EndedBy.CALLEE,
    )
    assert ended.finished
    assert ended.duration == timedelta(seconds=60)
    assert (ended.outcome, ended.status, ended.ended_by) == (
        CallOutcome.ANSWERED, 200, EndedBy.CALLEE,
    )  # fmt: skip
    assert calls.get("c1") == ended
    assert calls.recent() == [ended]


def test_the_first_end_of_a_call_wins(calls: CallLogRepo) -> None:
    calls.start(call())
    first = calls.finish("c1", outcome=CallOutcome.BUSY, ended_at=T0, status=486)
    again = calls.finish(
        "c1", outcome=CallOutcome.FAILED, ended_at=T0 + timedelta(seconds=9), status=500
    )
    assert again == first == calls.get("c1")
    assert calls.close_unfinished(T0 + timedelta(hours=1)) == 0


def test_recent_is_newest_first_limited_and_per_user(calls: CallLogRepo) -> None:
    calls.start(call("a", started_at=T0))
    calls.start(
        call("b", started_at=T0 + timedelta(minutes=1), caller_user="bob", callee_user="alice")
    )
    calls.start(call("c", started_at=T0 + timedelta(minutes=2), caller_user="bob"))
    calls.start(
        call(
            "d",
            started_at=T0 + timedelta(minutes=3),
            direction=CallDirection.INBOUND,
            caller_user=None,
            callee_user="carol",
            trunk="provider1",
        )
    )
    assert [c.call_id for c in calls.recent()] == ["d", "c", "b", "a"]
    assert [c.call_id for c in calls.recent(limit=2)] == ["d", "c"]
    assert [c.call_id for c in calls.recent(user="alice")] == ["b", "a"]
    assert [c.call_id for c in calls.recent(user="bob")] == ["c", "b"]
    assert [c.call_id for c in calls.recent(user="carol")] == ["d"]
    assert calls.recent(user="nobody") == []
    with pytest.raises(InvalidInput, match="limit"):
        calls.recent(limit=0)


def test_close_unfinished_calls_at_start(calls: CallLogRepo) -> None:
    calls.start(call("open1"))
    calls.start(call("open2", answered_at=T0 + timedelta(seconds=3)))
    calls.start(call("done"))
    done = calls.finish("done", outcome=CallOutcome.NO_ANSWER, ended_at=T0 + timedelta(seconds=15))
    restart = T0 + timedelta(minutes=10)
    assert calls.close_unfinished(restart) == 2
    for call_id in ("open1", "open2"):
        closed = calls.get(call_id)
        assert (closed.outcome, closed.ended_at, closed.ended_by) == (
            CallOutcome.ENDED_BY_RESTART, restart, EndedBy.RESTART,
        )  # fmt: skip
    assert calls.get("open2").duration == timedelta(minutes=10) - timedelta(seconds=3)
    assert calls.get("done") == done
    assert calls.close_unfinished(restart) == 0
    with pytest.raises(InvalidInput, match="timezone"):
        calls.close_unfinished(datetime(2025, 1, 1))


def test_call_log_refuses_bad_input(calls: CallLogRepo, engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        calls.start(call(started_at=datetime(2025, 1, 1)))
    with pytest.raises(InvalidInput, match="sideways"):
        calls.start(call(direction="sideways"))
    with pytest.raises(InvalidInput, match="outcome exactly when"):
        calls.start(call(outcome=CallOutcome.BUSY))
    with pytest.raises(InvalidInput, match="call id"):
        calls.start(call(""))
    assert rows(engine, "call_log") == []
    calls.start(call())
    with pytest.raises(Conflict, match="already logged"):
        calls.start(call())
    with pytest.raises(InvalidInput, match="cannot change call_id"):
        calls.update("c1", call_id="c2")
    with pytest.raises(InvalidInput, match="cannot change colour"):
        calls.update("c1", colour="blue")
    with pytest.raises(InvalidInput, match="SIP status"):
        calls.finish("c1", outcome=CallOutcome.FAILED, ended_at=T0, status=42)
    with pytest.raises(NotFound, match="no call 'zz'"):
        calls.update("zz", route="x")
    with pytest.raises(NotFound):
        calls.finish("zz", outcome=CallOutcome.FAILED, ended_at=T0)
    assert not calls.get("c1").finished


def test_call_log_stores_whatever_peers_send(calls: CallLogRepo) -> None:
    # Names and numbers come from SIP headers: overlong or odd values are stored
    # (shortened, control characters replaced) rather than losing the record.
    stored = calls.start(
        call(caller_name="\x1b[31mEvil" + "x" * 300, caller_number="9" * 100, outcome=None)
    )
    assert stored.caller_name is not None
    assert len(stored.caller_name) == 128
    assert stored.caller_name.startswith("\ufffd[31mEvil")
    assert stored.caller_number == "9" * 64
    assert calls.get("c1") == stored
