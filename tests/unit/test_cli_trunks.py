"""`teleoffice trunk`, `did` and `calls`, run in-process against temporary data directories."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from teleoffice.store import (
    CallDirection,
    CallLogRepo,
    CallOutcome,
    CallRecord,
    EndedBy,
    Sessions,
    TrunkRepo,
    make_engine,
    session_factory,
)
from tests.unit.cli_kit import Result, Run, isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def initialised(run: Run) -> Run:
    assert run("init").code == 0
    return run


@contextmanager
def store(data: Path) -> Iterator[Sessions]:
    engine = make_engine(f"sqlite:///{(data / 'teleoffice.db').as_posix()}")
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def ok(result: Result) -> str:
    assert result.code == 0, result.err
    return result.out


# --- help -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["trunk", "--help"],
        ["trunk", "add", "--help"],
        ["trunk", "set", "--help"],
        ["trunk", "list", "--help"],
        ["trunk", "del", "--help"],
        ["did", "--help"],
        ["did", "add", "--help"],
        ["did", "list", "--help"],
        ["did", "del", "--help"],
        ["calls", "--help"],
    ],
)
def test_help(run: Run, argv: list[str]) -> None:
    result = run(*argv, data_dir=None)
    assert result.code == 0
    assert "usage: teleoffice" in result.out


def test_trunk_help_explains_the_password_decision(run: Run) -> None:
    out = " ".join(run("trunk", "add", "--help", data_dir=None).out.split())
    assert "never in clear" in out
    assert "realm must be the one the provider challenges with" in out
    assert "default: the host name" in out
    switches = " ".join(run("trunk", "set", "--help", data_dir=None).out.split())
    for switch in ("--pai", "--no-pai", "--register", "--no-register", "--no-prefix",
                   "--no-outside-number", "--no-credentials", "--register-expires",
                   "--transport", "--outside-number", "--realm"):  # fmt: skip
        assert switch in switches


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trunk", "add", "p"], "--host"),
        (["trunk", "add", "p", "--host", "h", "--port", "0"], "between 1 and 65535"),
        (["trunk", "add", "p", "--host", "h", "--port", "x"], "not a whole number"),
        (["trunk", "add", "p", "--host", "h", "--prefix", "12345"], "1 to 4 digits"),
        (["trunk", "add", "p", "--host", "h", "--transport", "tls"], "invalid choice"),
        (["trunk", "add", "p", "--host", "h", "--register-expires", "5"], "between 60"),
        (["trunk", "add", "p", "--host", "h", "--outside-number", "x"], "outside number"),
        (["trunk", "set", "p", "--prefix", "9", "--no-prefix"], "not allowed with"),
        (["did", "add", "12-3", "--user", "alice"], "digits"),
        (["did", "add", "123"], "--user"),
        (["calls", "--limit", "0"], "between 1 and"),
    ],
)
def test_usage_errors(run: Run, argv: list[str], message: str) -> None:
    result = run(*argv)
    assert result.code == 2
    assert message in result.err


# --- trunks ---------------------------------------------------------------------------


def test_trunk_add_list_del(initialised: Run, data: Path) -> None:
    out = ok(
        initialised(
            "trunk", "add", "provider1", "--host", "sip.example.net", "--prefix", "9",
            "--username", "acct-42", "--password", "-", "--outside-number", "+4930100",
            "--pai", "--register", "--register-expires", "600",
            stdin="provider-secret\n",
        )
    )  # fmt: skip
    assert "created trunk provider1" in out
    assert "udp sip.example.net:5060" in out
    assert "dial 9+number" in out
    assert "realm 'sip.example.net'" in out
    assert "+4930100, also as P-Asserted-Identity" in out
    assert "every 600s" in out
    assert "provider-secret" not in out
    with store(data) as sessions:
        credentials = TrunkRepo(sessions).credentials("provider1")
    assert credentials is not None
    assert (
        credentials.ha1_md5 == hashlib.md5(b"acct-42:sip.example.net:provider-secret").hexdigest()
    )
    assert b"provider-secret" not in (data / "teleoffice.db").read_bytes()

    out = ok(initialised("trunk", "add", "inbound", "--host", "[2001:db8::1]", "--port", "5080",
                         "--transport", "TCP"))  # fmt: skip
    assert "tcp [2001:db8::1]:5080" in out
    assert "inbound calls only" in out
    assert "credentials: none" in out

    listing = ok(initialised("trunk", "list")).splitlines()
    assert listing[0].split() == [
        "TRUNK", "ADDRESS", "PREFIX", "CREDENTIALS", "OUTSIDE-NUMBER", "PAI", "REGISTER",
    ]  # fmt: skip
    assert listing[1].split() == [
        "inbound", "tcp", "[2001:db8::1]:5080", "-", "-", "-", "no", "no",
    ]  # fmt: skip
    assert listing[2].split() == [
        "provider1", "udp", "sip.example.net:5060", "9", "acct-42@sip.example.net",
        "+4930100", "yes", "every", "600s",
    ]  # fmt: skip

    assert "deleted trunk inbound" in ok(initialised("trunk", "del", "inbound"))
    result = initialised("trunk", "del", "inbound")
    assert result.code == 2
    assert "no trunk 'inbound'" in result.err
    ok(initialised("trunk", "del", "provider1"))
    assert "no trunks yet" in ok(initialised("trunk", "list"))


def test_trunk_add_conflicts_and_bad_values(initialised: Run) -> None:
    ok(initialised("trunk", "add", "one", "--host", "sip.example.net", "--prefix", "9"))
    for argv, message in [
        (("two", "--host", "two.example", "--prefix", "9"), "already belongs to trunk 'one'"),
        (("two", "--host", "two.example", "--prefix", "91"), "overlaps prefix 9"),
        (("two", "--host", "SIP.EXAMPLE.NET"), "already uses sip.example.net:5060"),
        (("one", "--host", "x.example"), "trunk 'one' already exists"),
        (("two", "--host", "x.example", "--password", "p"), "needs the username"),
        (("two", "--host", "x.example", "--register"), "registering needs a username"),
        (("two", "--host", "bad host"), "neither a host name"),
    ]:
        result = initialised("trunk", "add", *argv)
        assert result.code == 2, argv
        assert message in result.err, (argv, result.err)
    assert len(ok(initialised("trunk", "list")).splitlines()) == 2


def test_trunk_set(initialised: Run, data: Path) -> None:
    ok(initialised("trunk", "add", "p", "--host", "sip.example.net", "--prefix", "9",
                   "--username", "u", "--password", "one", "--realm", "R1",
                   "--outside-number", "4930100"))  # fmt: skip
    out = ok(initialised("trunk", "set", "p", "--port", "5080", "--no-prefix", "--pai"))
    assert "sip.example.net:5080" in out
    assert "inbound calls only" in out
    assert "also as P-Asserted-Identity" in out
    assert "4930100" in out  # untouched
    result = initialised("trunk", "set", "p", "--realm", "R2")
    assert result.code == 2
    assert "needs the password again" in result.err
    out = ok(initialised("trunk", "set", "p", "--realm", "R2", "--password", "-", stdin="two\n"))
    assert "realm 'R2'" in out
    with store(data) as sessions:
        credentials = TrunkRepo(sessions).credentials("p")
    assert credentials is not None
    assert credentials.ha1_md5 == hashlib.md5(b"u:R2:two").hexdigest()
    out = ok(initialised("trunk", "set", "p", "--no-credentials", "--no-outside-number"))
    assert "credentials: none" in out
    assert "the caller's extension" in out
    result = initialised("trunk", "set", "p", "--no-credentials", "--username", "x")
    assert result.code == 2
    assert "cannot be combined" in result.err
    result = initialised("trunk", "set", "p")
    assert result.code == 2
    assert "nothing to change" in result.err
    result = initialised("trunk", "set", "nobody", "--pai")
    assert result.code == 2
    assert "no trunk 'nobody'" in result.err


def test_trunk_password_from_empty_stdin(initialised: Run) -> None:
    result = initialised(
        "trunk", "add", "p", "--host", "h.example", "--username", "u", "--password", "-", stdin=""
    )
    assert result.code == 2
    assert "expected the trunk password on standard input" in result.err


# --- DIDs -----------------------------------------------------------------------------


def test_did_commands(initialised: Run) -> None:
    ok(initialised("user", "add", "alice", "--extension", "201", "--sip-password", "s"))
    assert "no DIDs yet" in ok(initialised("did", "list"))
    assert "to 4930123456 now reach user alice" in ok(
        initialised("did", "add", "4930123456", "--user", "alice")
    )
    ok(initialised("did", "add", "+4930999", "--user", "alice"))
    assert [line.split() for line in ok(initialised("did", "list")).splitlines()] == [
        ["NUMBER", "USER"],
        ["+4930999", "alice"],
        ["4930123456", "alice"],
    ]
    for argv, message in [
        (("4930123456", "--user", "alice"), "already belongs to user 'alice'"),
        (("201", "--user", "alice"), "extension of user 'alice'"),
        (("4930555", "--user", "bob"), "no user 'bob'"),
    ]:
        result = initialised("did", "add", *argv)
        assert result.code == 2
        assert message in result.err
    assert "deleted DID +4930999" in ok(initialised("did", "del", "+4930999"))
    result = initialised("did", "del", "+4930999")
    assert result.code == 2
    assert "no DID +4930999" in result.err
    ok(initialised("user", "del", "alice"))
    assert "no DIDs yet" in ok(initialised("did", "list"))


# --- call log -------------------------------------------------------------------------

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_calls_table(initialised: Run, data: Path) -> None:
    assert "no calls logged" in ok(initialised("calls"))
    with store(data) as sessions:
        log = CallLogRepo(sessions)
        log.start(
            CallRecord("a", CallDirection.INBOUND, "+4930555", "4930123", T0,
                       caller_name="Carol", callee_name="Alice", callee_user="alice",
                       trunk="provider1")
        )  # fmt: skip
        log.update("a", answered_at=T0 + timedelta(seconds=4))
        log.finish(
            "a", outcome=CallOutcome.ANSWERED, ended_at=T0 + timedelta(seconds=3729),
            status=200, ended_by=EndedBy.CALLER,
        )  # fmt: skip
        log.start(
            CallRecord("b", CallDirection.INTERNAL, "201", "202", T0 + timedelta(hours=1),
                       caller_name="Alice", caller_user="alice", callee_user="bob")
        )  # fmt: skip
        log.finish(
            "b", outcome=CallOutcome.BUSY, ended_at=T0 + timedelta(hours=1, seconds=2), status=486
        )
        log.start(
            CallRecord("c", CallDirection.OUTBOUND, "202", "90301234", T0 + timedelta(hours=2),
                       caller_user="bob")
        )  # fmt: skip
        log.update("c", answered_at=T0 + timedelta(hours=2, seconds=5))
        log.finish("c", outcome=CallOutcome.ANSWERED, ended_at=T0 + timedelta(hours=2, seconds=70))
        log.start(CallRecord("d", CallDirection.INTERNAL, "203", "201", T0 + timedelta(hours=3)))

    lines = ok(initialised("calls")).splitlines()
    assert lines[0].split() == ["TIME", "DIRECTION", "FROM", "TO", "OUTCOME", "DURATION"]
    assert lines[1].split() == [
        *local(T0 + timedelta(hours=3)).split(), "internal", "203", "201", "in", "progress", "-",
    ]  # fmt: skip
    assert lines[2].split() == [
        *local(T0 + timedelta(hours=2)).split(), "outbound", "202", "90301234", "answered", "1:05",
    ]  # fmt: skip
    assert lines[3].split() == [
        *local(T0 + timedelta(hours=1)).split(), "internal", "201", "(Alice)", "202",
        "busy", "(486)", "-",
    ]  # fmt: skip
    assert lines[4].split() == [
        *local(T0).split(), "inbound", "+4930555", "(Carol)", "4930123", "(Alice)",
        "answered", "1:02:05",
    ]  # fmt: skip

    assert len(ok(initialised("calls", "--limit", "2")).splitlines()) == 3
    alice = ok(initialised("calls", "--user", "alice")).splitlines()
    assert [line.split()[2] for line in alice[1:]] == ["internal", "inbound"]
    assert "no calls logged for carol" in ok(initialised("calls", "--user", "carol"))


def test_calls_before_init_says_what_to_do(run: Run) -> None:
    result = run("calls")
    assert result.code == 2
    assert "teleoffice init" in result.err
