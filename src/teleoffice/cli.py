"""The `teleoffice` command line (DESIGN.md section 3).

Each command is a small function taking the parsed arguments and a `_Context`
that builds the settings and opens the database on first use. Expected failures
(bad configuration, a taken extension, an unknown user, a missing database) are
`CliError`, `ConfigError` or `StoreError`; `main` turns them into one line on
stderr and exit status 2, keeping tracebacks for real bugs.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from teleoffice import __version__
from teleoffice.calls.restrictions import Allowed, check
from teleoffice.config import ConfigError, Settings, load_or_create_secret, load_settings
from teleoffice.demo import seed
from teleoffice.store import db
from teleoffice.store.locations import LocationKind, LocationRepo, StoredLocation
from teleoffice.store.repos import (
    DEFAULT_REGISTER_EXPIRES,
    DEFAULT_TRUNK_PORT,
    FORWARD_OFF,
    MAX_CALL_LOG_LIMIT,
    MAX_REGISTER_EXPIRES,
    MIN_REGISTER_EXPIRES,
    TRUNK_TRANSPORTS,
    AccountRepo,
    CallLogRepo,
    CallOutcome,
    CallRecord,
    DidRepo,
    RegistrationRepo,
    RestrictionRecord,
    RestrictionRepo,
    Sessions,
    StoreError,
    TrunkRecord,
    TrunkRepo,
    UserRecord,
    UserRepo,
    validate_extension,
    validate_phone_number,
    validate_prefix,
)
from teleoffice.store.telecommuter import (
    SavedNumberRecord,
    TelecommuterRepo,
    telecommuter_patterns,
    validate_login_code,
)
from teleoffice.store.voicemail import VoicemailStore, validate_pin

PROG = "teleoffice"
DATA_ENV = "TELEOFFICE_DATA"
EXIT_OK = 0
EXIT_ERROR = 2
EXIT_BARRED = 1  # `restriction check`: the number is barred


class CliError(Exception):
    """A user mistake the command line reports without a traceback."""


Handler = Callable[[argparse.Namespace, "_Context"], int]


class _Context:
    """Settings and database access, created lazily so `--help` and argument
    errors never touch the disk."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self._overrides = overrides
        self._engine: Engine | None = None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(**self._overrides)

    def sessions(self, *, migrate: bool = False) -> Sessions:
        """Sessions on the configured database. With `migrate` the schema is brought
        up to date first; otherwise an old or missing schema is an error that tells
        the administrator to run `teleoffice init`."""
        url = self.settings.db_url
        if migrate:
            db.upgrade(url)
        else:
            db.require_current(url)
        if self._engine is None:
            self._engine = db.make_engine(url)
        return db.session_factory(self._engine)

    def user_repo(self) -> UserRepo:
        return UserRepo(self.sessions(), realm=self.settings.realm)

    def trunk_repo(self) -> TrunkRepo:
        return TrunkRepo(self.sessions())

    def did_repo(self) -> DidRepo:
        return DidRepo(self.sessions())

    def restriction_repo(self) -> RestrictionRepo:
        return RestrictionRepo(self.sessions())

    def call_log(self) -> CallLogRepo:
        return CallLogRepo(self.sessions())

    def telecommuter_repo(self) -> TelecommuterRepo:
        return TelecommuterRepo(self.sessions())

    def location_repo(self) -> LocationRepo:
        return LocationRepo(self.sessions())

    def voicemail_store(self) -> VoicemailStore:
        return VoicemailStore(self.sessions(), self.voicemail_dir())

    def voicemail_dir(self) -> Path:
        # The setting may be absent or unset; the mailboxes then live in the
        # data directory. The CLI only reads and writes their rows, never audio.
        configured = getattr(self.settings, "voicemail_dir", None)
        return Path(configured) if configured else self.settings.data_dir / "voicemail"

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# --- argument types ---------------------------------------------------------------


def _extension(text: str) -> str:
    try:
        return validate_extension(text)
    except StoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _store_checked(validate: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse type that runs one of the store's validators, so a bad value
    is a usage error with the store's own explanation."""

    def check(text: str) -> str:
        try:
            return validate(text)
        except StoreError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def _bounded_int(what: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be between {low} and {high}")
        return value

    return parse


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def parse_hostport(text: str) -> tuple[str | None, int | None]:
    """Parse HOST:PORT, [IPv6]:PORT, :PORT, PORT or HOST; missing parts are None."""
    text = text.strip()
    host: str | None
    port_text: str | None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: missing ']' after IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise argparse.ArgumentTypeError(f"{text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
    elif text.isdigit():
        host, port_text = None, text
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        # No colon: a host name or IPv4 address. Several colons: a bare IPv6
        # address, which cannot carry a port without brackets.
        host, port_text = text, None
    if host == "":
        host = None
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r}: port must be a number from 0 to 65535")
        port = int(port_text)
    if host is None and port is None:
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host, port


def _read_secret(value: str | None, what: str) -> str | None:
    """`-` means: read the secret from a line of standard input, so it does not
    appear in the process list or the shell history."""
    if value != "-":
        return value
    line = sys.stdin.readline()
    if not line:
        raise CliError(f"expected the {what} on standard input")
    return line.rstrip("\r\n")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    ]


# --- commands ---------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, ctx: _Context) -> int:
    settings = ctx.settings
    revision = db.upgrade(settings.db_url)
    load_or_create_secret(settings)
    print(f"database ready at {db.describe_url(settings.db_url)} (schema revision {revision})")
    print(f"data directory: {settings.data_dir.resolve()}")
    if settings.secret_key is None:
        print(f"nonce key: {settings.secret_file.resolve()}")
    if settings.config is not None:
        print(f"configuration read from {settings.config}")
    return EXIT_OK


def cmd_user_add(args: argparse.Namespace, ctx: _Context) -> int:
    password = _read_secret(args.password, "portal password")
    sip_password = _read_secret(args.sip_password, "SIP password")
    generated = sip_password is None
    if sip_password is None:
        # 16 URL-safe characters: about 96 bits, typeable on a phone's web page.
        sip_password = secrets.token_urlsafe(12)
    user = ctx.user_repo().add_user(
        args.name,
        extension=args.extension,
        sip_password=sip_password,
        display_name=args.display_name,
        password=password,
        is_admin=args.admin,
    )
    role = " (administrator)" if user.is_admin else ""
    print(f"created user {user.username} ({user.display_name}), extension {user.extension}{role}")
    account = f"phone account {user.extension} (realm {ctx.settings.realm!r})"
    if generated:
        print(f"{account}: SIP password {sip_password}")
        print("  this password is shown only once; note it for the phone's configuration")
    else:
        print(f"{account}: SIP password as given")
    if not user.has_password:
        print(f"no portal password: set one with `{PROG} user set {user.username} --password -`")
    return EXIT_OK


def cmd_user_set(args: argparse.Namespace, ctx: _Context) -> int:
    changes: dict[str, Any] = {
        "display_name": args.display_name,
        "is_admin": args.admin,
        "telecommuter_allowed": args.telecommuter,
        "call_waiting": args.call_waiting,
        "voicemail_enabled": args.voicemail,
        "no_answer_timeout": args.no_answer_time,
        "password": _read_secret(args.password, "portal password"),
        "sip_password": _read_secret(args.sip_password, "SIP password"),
        "dnd": args.dnd,
        # FORWARD_OFF (empty) switches a forward off; None leaves it alone.
        "forward_always": _forward_change(args.forward_always, args.no_forward_always),
        "forward_busy": _forward_change(args.forward_busy, args.no_forward_busy),
        "forward_no_answer": _forward_change(args.forward_no_answer, args.no_forward_no_answer),
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    # Validated before anything is written, so a bad code or pattern changes nothing.
    login_code = _login_code_change(args)
    patterns = _telecommuter_patterns_change(args)
    voicemail_pin = _voicemail_pin_change(args)
    if (
        not changes
        and args.restriction is None
        and login_code is None
        and patterns is None
        and voicemail_pin is None
        and args.unsolicited_mwi is None
    ):
        raise CliError(f"nothing to change for {args.name}; see `{PROG} user set --help`")
    described = []
    if args.restriction is not None:
        # First, so a misspelt profile leaves the other settings unchanged too.
        ctx.restriction_repo().assign(args.name, args.restriction)
        described.append(f"restriction profile: {args.restriction}")
    if changes:
        ctx.user_repo().update(args.name, **changes)
    described += [_describe_change(key, value) for key, value in changes.items()]
    if patterns is not None:
        ctx.telecommuter_repo().set_patterns(args.name, patterns)
        described.append(f"telecommuter patterns: {_describe_patterns(patterns)}")
    if login_code == LOGIN_CODE_OFF:
        ctx.telecommuter_repo().clear_login_code(args.name)
        described.append("login code: removed")
    elif login_code is not None:
        ctx.telecommuter_repo().set_login_code(args.name, login_code)
        described.append("login code: set")
    described += _apply_voicemail_changes(ctx, args.name, voicemail_pin, args.unsolicited_mwi)
    print(f"updated user {args.name}: " + ", ".join(described))
    return EXIT_OK


# `_login_code_change` result meaning "remove the code" (a real code is 4+ digits).
LOGIN_CODE_OFF = ""


def _login_code_change(args: argparse.Namespace) -> str | None:
    if args.no_login_code:
        return LOGIN_CODE_OFF
    code = _read_secret(args.login_code, "login code")
    return None if code is None else validate_login_code(code)


# `_voicemail_pin_change` result meaning "remove the PIN" (a real PIN is 4+ digits).
VOICEMAIL_PIN_OFF = ""


def _voicemail_pin_change(args: argparse.Namespace) -> str | None:
    if args.no_voicemail_pin:
        return VOICEMAIL_PIN_OFF
    pin = _read_secret(args.voicemail_pin, "voicemail PIN")
    return None if pin is None else validate_pin(pin)


def _apply_voicemail_changes(
    ctx: _Context, name: str, pin: str | None, unsolicited_mwi: bool | None
) -> list[str]:
    if pin is None and unsolicited_mwi is None:
        return []  # no store opened for the other options
    store = ctx.voicemail_store()
    described = []
    if pin == VOICEMAIL_PIN_OFF:
        store.clear_pin(name)
        described.append("voicemail PIN: removed")
    elif pin is not None:
        store.set_pin(name, pin)
        described.append("voicemail PIN: set")
    if unsolicited_mwi is not None:
        store.set_unsolicited_mwi(name, unsolicited_mwi)
        described.append(f"unsolicited message waiting: {_yes(unsolicited_mwi)}")
    return described


def _telecommuter_patterns_change(args: argparse.Namespace) -> tuple[str, ...] | None:
    if args.no_telecommuter_patterns:
        return ()
    if args.telecommuter_pattern is None:
        return None
    return telecommuter_patterns(args.telecommuter_pattern)


def _describe_patterns(patterns: Sequence[str]) -> str:
    return ", ".join(patterns) if patterns else "any number the user may dial"


def _forward_change(number: str | None, off: bool) -> str | None:
    # An empty number is the store's "off": it must come from --no-forward-*,
    # never from a shell variable that happened to be empty.
    if number == FORWARD_OFF:
        raise CliError("a forwarding number must not be empty; use --no-forward-... to switch off")
    return FORWARD_OFF if off else number


_CHANGE_LABELS = {
    "dnd": "do not disturb",
    "forward_always": "forward always",
    "forward_busy": "forward on busy",
    "forward_no_answer": "forward on no answer",
    "display_name": "display name",
    "is_admin": "administrator",
    "telecommuter_allowed": "telecommuter allowed",
    "call_waiting": "call waiting",
    "voicemail_enabled": "voicemail",
    "no_answer_timeout": "no-answer time",
}


def _describe_change(key: str, value: object) -> str:
    if key == "password":
        return "portal password changed"
    if key == "sip_password":
        return "SIP password changed"
    if isinstance(value, bool):
        shown = _yes(value)
    elif key == "no_answer_timeout":
        shown = f"{value}s"
    elif key.startswith("forward_"):
        shown = str(value) if value else "off"
    else:
        shown = repr(value)
    return f"{_CHANGE_LABELS[key]}: {shown}"


def _user_row(user: UserRecord) -> list[str]:
    return [
        user.username,
        user.extension,
        user.display_name,
        _yes(user.is_admin),
        _yes(user.telecommuter_allowed),
        _yes(user.call_waiting),
        _yes(user.voicemail_enabled),
        f"{user.no_answer_timeout}s",
        _yes(user.has_password),
    ]


def cmd_user_list(args: argparse.Namespace, ctx: _Context) -> int:
    users = ctx.user_repo().list_users()
    if not users:
        print(f"no users yet; add one with `{PROG} user add NAME --extension N`")
        return EXIT_OK
    headers = (
        "USER", "EXT", "NAME", "ADMIN", "TELECOMMUTER", "CALL-WAITING", "VOICEMAIL",
        "NO-ANSWER", "PORTAL-LOGIN",
    )  # fmt: skip
    for line in _table(headers, [_user_row(user) for user in users]):
        print(line)
    return EXIT_OK


def cmd_user_show(args: argparse.Namespace, ctx: _Context) -> int:
    user = ctx.user_repo().get(args.name)
    profile = ctx.restriction_repo().profile_name_for(user.username)
    telecommuter = ctx.telecommuter_repo().get(user.username)
    saved = ctx.telecommuter_repo().saved_numbers(user.username)
    mailbox = ctx.voicemail_store()
    box = mailbox.box(user.username)
    new, old = mailbox.counts(user.username)
    settings = [
        ("user", user.username),
        ("extension", user.extension),
        ("display name", user.display_name),
        ("administrator", _yes(user.is_admin)),
        ("portal login", _yes(user.has_password)),
        ("telecommuter allowed", _yes(user.telecommuter_allowed)),
        ("call waiting", _yes(user.call_waiting)),
        ("voicemail", _yes(user.voicemail_enabled)),
        ("voicemail PIN", "set" if box.has_pin else "not set"),
        ("voicemail greeting", "recorded" if box.has_greeting else "system"),
        ("voicemail messages", f"{new} new, {old} old"),
        ("unsolicited message waiting", _yes(box.unsolicited_mwi)),
        ("no-answer time", f"{user.no_answer_timeout}s"),
        ("do not disturb", _yes(user.dnd)),
        ("forward always", user.forward_always or "off"),
        ("forward on busy", user.forward_busy or "off"),
        ("forward on no answer", user.forward_no_answer or "off"),
        ("restriction profile", profile),
        ("telecommuter patterns", _describe_patterns(telecommuter.patterns)),
        ("login code", "set" if telecommuter.has_login_code else "not set"),
        ("location", _describe_location(user, ctx.location_repo().load_all())),
        ("saved numbers", _describe_saved(saved)),
    ]
    width = max(len(label) for label, _ in settings)
    for label, value in settings:
        print(f"{label + ':':<{width + 1}} {value}")
    return EXIT_OK


def _local_time(when: datetime) -> str:
    # Local time: this is for the administrator at the terminal.
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _describe_location(user: UserRecord, locations: Mapping[str, StoredLocation]) -> str:
    location = locations.get(user.username)
    if location is None:
        # The default; it is only empty when somebody has logged in on the base
        # phone (rule T7), which the administrator should see.
        occupant = next(
            (
                name
                for name, other in locations.items()
                if other.kind is LocationKind.PHONE and other.account == user.extension
            ),
            None,
        )
        if occupant is not None:
            return f"base phone (default), but {occupant} is logged in on it: logged out"
        return "base phone (default)"
    since = f"since {_local_time(location.since)}"
    if location.kind is LocationKind.PHONE:
        whose = " (their base phone)" if location.account == user.extension else ""
        return f"logged in on phone {location.account}{whose} ({since})"
    if location.kind is LocationKind.TELECOMMUTER:
        return f"telecommuter at {location.number} ({since})"
    return f"logged out ({since})"


def _describe_saved(saved: Sequence[SavedNumberRecord]) -> str:
    if not saved:
        return "none"
    return ", ".join(f"{s.number} ({s.label})" if s.label else s.number for s in saved)


def cmd_user_del(args: argparse.Namespace, ctx: _Context) -> int:
    repo = ctx.user_repo()
    user = repo.get(args.name)
    repo.delete(args.name)
    print(f"deleted user {user.username} (extension {user.extension}) and its base phone account")
    return EXIT_OK


def cmd_registrations(args: argparse.Namespace, ctx: _Context) -> int:
    sessions = ctx.sessions()
    now = time.time()
    bindings = [b for b in RegistrationRepo(sessions).load_all() if b.expires_at > now]
    if not bindings:
        print("no phones registered")
        return EXIT_OK
    owners = {a.username: a.owner for a in AccountRepo(sessions).list_accounts()}
    rows = [
        [
            b.account,
            owners.get(b.account) or "-",
            f"{int(b.expires_at - now)}s",
            f"{b.transport} {b.source_host}:{b.source_port}",
            b.contact,
            b.user_agent or "",
        ]
        for b in bindings
    ]
    headers = ("ACCOUNT", "USER", "EXPIRES-IN", "FROM", "CONTACT", "USER-AGENT")
    for line in _table(headers, rows):
        print(line)
    return EXIT_OK


# --- trunks, DIDs and the call log --------------------------------------------------

# The password decision, repeated wherever the administrator meets it.
_HASHED_REALM_NOTE = (
    "stored only as digest hashes for the realm, never in clear; "
    "the realm must be the one the provider challenges with (a challenge in another "
    "realm is refused and logged)"
)


def _describe_trunk(trunk: TrunkRecord) -> list[str]:
    lines = [f"  address: {trunk.transport} {_hostport(trunk.host, trunk.port)}"]
    if trunk.prefix is None:
        lines.append("  prefix: none (inbound calls only)")
    else:
        lines.append(f"  prefix: {trunk.prefix} (dial {trunk.prefix}+number to call out)")
    if trunk.has_credentials:
        lines.append(f"  credentials: user {trunk.username!r}, realm {trunk.realm!r}")
        lines.append(
            "    (the password is kept as hashes for this realm only: "
            "a challenge in another realm is refused)"
        )
    elif trunk.username is not None:
        lines.append(f"  username: {trunk.username!r} (no password)")
    else:
        lines.append("  credentials: none (the provider must accept us by address)")
    presented = trunk.outside_number or "the caller's extension"
    pai = ", also as P-Asserted-Identity" if trunk.use_pai else ""
    lines.append(f"  caller number on calls out: {presented}{pai}")
    if trunk.register:
        lines.append(f"  registers with the provider every {trunk.register_expires}s")
    return lines


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def cmd_trunk_add(args: argparse.Namespace, ctx: _Context) -> int:
    password = _read_secret(args.password, "trunk password")
    trunk = ctx.trunk_repo().add(
        args.name,
        host=args.host,
        port=args.port,
        transport=args.transport,
        prefix=args.prefix,
        username=args.username,
        password=password,
        realm=args.realm,
        outside_number=args.outside_number,
        use_pai=args.pai,
        register=args.register,
        register_expires=args.register_expires,
    )
    print(f"created trunk {trunk.name}")
    for line in _describe_trunk(trunk):
        print(line)
    return EXIT_OK


def cmd_trunk_set(args: argparse.Namespace, ctx: _Context) -> int:
    if args.no_credentials and any(
        value is not None for value in (args.username, args.password, args.realm)
    ):
        raise CliError("--no-credentials cannot be combined with --username, --password, --realm")
    changes: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "transport": args.transport,
        "prefix": args.prefix,
        "username": args.username,
        "password": _read_secret(args.password, "trunk password"),
        "realm": args.realm,
        "outside_number": args.outside_number,
        "use_pai": args.pai,
        "register": args.register,
        "register_expires": args.register_expires,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    # None means "remove" for these three; the repository keeps them otherwise.
    if args.no_prefix:
        changes["prefix"] = None
    if args.no_outside_number:
        changes["outside_number"] = None
    if args.no_credentials:
        changes["username"] = None
    if not changes:
        raise CliError(f"nothing to change for {args.name}; see `{PROG} trunk set --help`")
    trunk = ctx.trunk_repo().update(args.name, **changes)
    print(f"updated trunk {trunk.name}")
    for line in _describe_trunk(trunk):
        print(line)
    return EXIT_OK


def cmd_trunk_list(args: argparse.Namespace, ctx: _Context) -> int:
    trunks = ctx.trunk_repo().list()
    if not trunks:
        print(f"no trunks yet; add one with `{PROG} trunk add NAME --host H`")
        return EXIT_OK
    rows = [
        [
            t.name,
            f"{t.transport} {_hostport(t.host, t.port)}",
            t.prefix or "-",
            f"{t.username}@{t.realm}" if t.has_credentials else (t.username or "-"),
            t.outside_number or "-",
            _yes(t.use_pai),
            f"every {t.register_expires}s" if t.register else "no",
        ]
        for t in trunks
    ]
    headers = ("TRUNK", "ADDRESS", "PREFIX", "CREDENTIALS", "OUTSIDE-NUMBER", "PAI", "REGISTER")
    for line in _table(headers, rows):
        print(line)
    return EXIT_OK


def cmd_trunk_del(args: argparse.Namespace, ctx: _Context) -> int:
    ctx.trunk_repo().delete(args.name)
    print(f"deleted trunk {args.name}")
    return EXIT_OK


def cmd_did_add(args: argparse.Namespace, ctx: _Context) -> int:
    did = ctx.did_repo().add(args.number, user=args.user)
    print(f"calls from a trunk to {did.number} now reach user {did.user}")
    return EXIT_OK


def cmd_did_list(args: argparse.Namespace, ctx: _Context) -> int:
    dids = ctx.did_repo().list()
    if not dids:
        print(f"no DIDs yet; add one with `{PROG} did add NUMBER --user NAME`")
        return EXIT_OK
    for line in _table(("NUMBER", "USER"), [[d.number, d.user] for d in dids]):
        print(line)
    return EXIT_OK


def cmd_did_del(args: argparse.Namespace, ctx: _Context) -> int:
    ctx.did_repo().delete(args.number)
    print(f"deleted DID {args.number}")
    return EXIT_OK


def _describe_restriction(profile: RestrictionRecord) -> list[str]:
    def listed(items: Sequence[str], empty: str) -> str:
        return " ".join(items) if items else empty

    return [
        f"  description: {profile.description or '-'}",
        f"  allowed: {listed(profile.allowed, 'anything not barred')}",
        f"  barred: {listed(profile.barred, 'nothing')}",
        f"  emergency numbers (always allowed from a phone): {listed(profile.emergency, 'none')}",
        f"  assigned to: {listed(profile.users, 'nobody')}"
        + ("  (and every user without a profile)" if profile.name == "default" else ""),
    ]


def cmd_restriction_add(args: argparse.Namespace, ctx: _Context) -> int:
    options: dict[str, Any] = {}
    if args.emergency is not None:
        options["emergency"] = args.emergency
    profile = ctx.restriction_repo().add(
        args.name,
        allowed=args.allow or (),
        barred=args.bar or (),
        description=args.description or "",
        **options,
    )
    print(f"created restriction profile {profile.name}")
    for line in _describe_restriction(profile):
        print(line)
    return EXIT_OK


def cmd_restriction_set(args: argparse.Namespace, ctx: _Context) -> int:
    if args.no_allow and args.allow:
        raise CliError("--no-allow cannot be combined with --allow")
    if args.no_bar and args.bar:
        raise CliError("--no-bar cannot be combined with --bar")
    changes: dict[str, Any] = {
        "allowed": [] if args.no_allow else args.allow,
        "barred": [] if args.no_bar else args.bar,
        "emergency": [] if args.no_emergency else args.emergency,
        "description": args.description,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.add_allow:
        changes["add_allowed"] = args.add_allow
    if args.add_bar:
        changes["add_barred"] = args.add_bar
    if not changes:
        raise CliError(f"nothing to change for {args.name}; see `{PROG} restriction set --help`")
    profile = ctx.restriction_repo().update(args.name, **changes)
    print(f"updated restriction profile {profile.name}")
    for line in _describe_restriction(profile):
        print(line)
    return EXIT_OK


def cmd_restriction_list(args: argparse.Namespace, ctx: _Context) -> int:
    profiles = ctx.restriction_repo().list()
    rows = [
        [
            p.name,
            str(len(p.allowed)) if p.allowed else "any",
            str(len(p.barred)),
            ",".join(p.emergency) or "-",
            (str(len(p.users)) + ("+" if p.name == "default" else "")),
            p.description,
        ]
        for p in profiles
    ]
    headers = ("PROFILE", "ALLOWED", "BARRED", "EMERGENCY", "USERS", "DESCRIPTION")
    for line in _table(headers, rows):
        print(line)
    return EXIT_OK


def cmd_restriction_show(args: argparse.Namespace, ctx: _Context) -> int:
    profile = ctx.restriction_repo().get(args.name)
    print(f"restriction profile {profile.name}")
    for line in _describe_restriction(profile):
        print(line)
    return EXIT_OK


def cmd_restriction_del(args: argparse.Namespace, ctx: _Context) -> int:
    ctx.restriction_repo().delete(args.name)
    print(f"deleted restriction profile {args.name}")
    return EXIT_OK


def cmd_restriction_check(args: argparse.Namespace, ctx: _Context) -> int:
    repo = ctx.restriction_repo()
    if args.user:
        name = repo.profile_name_for(args.name)
        profile = repo.get(name).profile()
        whose = f"user {args.name} (profile {name})"
    else:
        profile = repo.get(args.name).profile()
        whose = f"profile {profile.name}"
    verdict = check(
        profile, args.number, from_phone=not args.not_from_phone, internal=args.internal
    )
    kind = "internal call to" if args.internal else "outside number"
    if isinstance(verdict, Allowed):
        print(f"allowed: {kind} {args.number} for {whose}: {verdict.reason}")
        return EXIT_OK
    print(f"barred: {kind} {args.number} for {whose}: {verdict.reason}")
    # A distinct status, so scripts can test numbers without parsing the text.
    return EXIT_BARRED


def _party(number: str, name: str | None) -> str:
    return f"{number} ({name})" if name and name != number else number


def _format_duration(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def _call_row(call: CallRecord) -> list[str]:
    if call.outcome is None:
        outcome = "in progress"
    elif call.outcome is not CallOutcome.ANSWERED and call.status is not None:
        outcome = f"{call.outcome} ({call.status})"
    else:
        outcome = str(call.outcome)
    duration = call.duration
    return [
        # Local time: this is for the administrator at the terminal.
        call.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        str(call.direction),
        _party(call.caller_number, call.caller_name),
        _party(call.callee_number, call.callee_name),
        outcome,
        "-" if duration is None else _format_duration(duration),
    ]


def cmd_calls(args: argparse.Namespace, ctx: _Context) -> int:
    # The user is not looked up: the log keeps the calls of deleted users too.
    calls = ctx.call_log().recent(limit=args.limit, user=args.user)
    if not calls:
        print("no calls logged" + (f" for {args.user}" if args.user else ""))
        return EXIT_OK
    headers = ("TIME", "DIRECTION", "FROM", "TO", "OUTCOME", "DURATION")
    for line in _table(headers, [_call_row(call) for call in calls]):
        print(line)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, ctx: _Context) -> int:
    # Imported here: the server pulls in FastAPI, uvicorn and the SIP stack, which
    # the administrative commands do not need.
    from teleoffice.app import serve  # noqa: PLC0415

    settings = ctx.settings
    sessions = ctx.sessions(migrate=True)
    if args.demo:
        lines = seed(sessions, settings)
        if not lines:
            print("--demo: the database already has users; nothing was seeded")
        for line in lines:
            print(line)
        settings = _demo_tls(settings)
    ctx.close()  # the server opens its own engine
    return serve(settings, demo=args.demo)


def _demo_tls(settings: Settings) -> Settings:
    """With no certificate configured, `--demo` runs SIP over TLS with a
    self-signed one kept in <data>/tls (made once, renewed before it expires).
    The portal stays on plain HTTP unless http_tls says otherwise: a browser
    would only warn about a certificate nobody installed."""
    from teleoffice.transport.tls import certificate_hosts, ensure_self_signed  # noqa: PLC0415

    if settings.tls_cert_file is not None:
        return settings
    hosts = certificate_hosts(settings.domain, settings.sip_host)
    cert, key = ensure_self_signed(settings.data_dir / "tls", hosts)
    print(
        f"SIP over TLS on port {settings.sip_tls_port} with a self-signed certificate "
        f"for {', '.join(hosts)}: {cert} (give it to phones as their CA file)"
    )
    return settings.model_copy(
        update={
            "tls_cert_file": cert,
            "tls_key_file": key,
            "http_tls": bool(settings.http_tls),
        }
    )


# --- parser -----------------------------------------------------------------------


def _global_options(*, top_level: bool) -> argparse.ArgumentParser:
    """--data and --config, accepted before or after the command name.

    Below the top level the defaults are SUPPRESS, so a subcommand that was not
    given the option does not overwrite what the top level parsed.
    """
    parser = argparse.ArgumentParser(add_help=False)
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=default,
        help=f"data directory holding the database and keys (default: ${DATA_ENV}, else ./data)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="TOML configuration file (default: $TELEOFFICE_CONFIG, else DIR/teleoffice.toml "
        "if it exists); environment variables TELEOFFICE_* override it",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = _global_options(top_level=False)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="teleoffice: a SIP PBX with a web portal and telecommuter mode.",
        parents=[_global_options(top_level=True)],
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="what to do"
    )

    init = commands.add_parser(
        "init",
        parents=[common],
        help="create or upgrade the database (safe to repeat)",
        description="Create the data directory, database and nonce key, or bring an existing "
        "database up to the current schema. Running it again changes nothing.",
    )
    init.set_defaults(handler=cmd_init)

    user = commands.add_parser(
        "user",
        parents=[common],
        help="add, change, list and delete users",
        description="Manage the users of the directory.",
    )
    user_commands = user.add_subparsers(
        dest="user_command", metavar="ACTION", required=True, help="what to do with users"
    )

    add = user_commands.add_parser(
        "add",
        parents=[common],
        help="add a user with an extension and a base phone account",
        description="Create a user with directory number N and a base phone account whose "
        "SIP user name is N.",
    )
    add.add_argument("name", metavar="NAME", help="login name of the user (letters, digits, ._-)")
    add.add_argument(
        "--extension",
        metavar="N",
        required=True,
        type=_extension,
        help="directory number of the user, 2 to 8 digits; also the phone's SIP user name",
    )
    add.add_argument("--display-name", metavar="TEXT", help="name shown to callers (default: NAME)")
    add.add_argument(
        "--password",
        metavar="P",
        help="portal login password ('-' reads it from standard input); "
        "without it the user cannot log in to the portal",
    )
    add.add_argument(
        "--sip-password",
        metavar="S",
        help="SIP password of the base phone ('-' reads it from standard input); "
        "without it a random one is generated and printed once",
    )
    add.add_argument(
        "--admin", action="store_true", help="make the user an administrator of the portal"
    )
    add.set_defaults(handler=cmd_user_add)

    change = user_commands.add_parser(
        "set",
        parents=[common],
        help="change a user's settings",
        description="Change settings of an existing user; options not given stay as they are.",
    )
    change.add_argument("name", metavar="NAME", help="login name of the user to change")
    change.add_argument(
        "--telecommuter",
        action=argparse.BooleanOptionalAction,
        help="allow (or forbid) telecommuter mode for the user",
    )
    change.add_argument(
        "--call-waiting",
        action=argparse.BooleanOptionalAction,
        help="offer a second incoming call while the user is on a call",
    )
    change.add_argument(
        "--voicemail",
        action=argparse.BooleanOptionalAction,
        help="give the user a voicemail box for unanswered and busy calls",
    )
    change.add_argument(
        "--admin",
        action=argparse.BooleanOptionalAction,
        help="grant (or revoke) administrator rights in the portal",
    )
    change.add_argument("--display-name", metavar="TEXT", help="new name shown to callers")
    change.add_argument(
        "--password", metavar="P", help="new portal password ('-' reads standard input)"
    )
    change.add_argument(
        "--sip-password",
        metavar="S",
        help="new SIP password of the base phone ('-' reads standard input)",
    )
    change.add_argument(
        "--no-answer-time",
        metavar="SECONDS",
        type=_seconds,
        help="seconds a call rings before no-answer handling (forward or voicemail)",
    )
    change.add_argument(
        "--restriction",
        metavar="PROFILE",
        help="the dialling restriction profile that applies to the user's calls "
        "(see `teleoffice restriction list`); users without one get 'default'",
    )
    change.add_argument(
        "--dnd",
        action=argparse.BooleanOptionalAction,
        help="do not disturb: calls get busy treatment (forward on busy, else busy) "
        "without ringing",
    )
    forwards = (
        ("always", "every call, without ringing the user's phones"),
        ("busy", "calls the user's phones refuse as busy, or that arrive in do not disturb"),
        ("no-answer", "calls not answered within the no-answer time, or with no phone online"),
    )
    for kind, when in forwards:
        group = change.add_mutually_exclusive_group()
        group.add_argument(
            f"--forward-{kind}",
            metavar="N",
            help=f"forward to number N: {when}; N is dialled as the user would dial it "
            "(extension, DID, or trunk prefix and number) and the user's restrictions apply",
        )
        group.add_argument(
            f"--no-forward-{kind}",
            action="store_true",
            help=f"switch --forward-{kind} off",
        )
    code = change.add_mutually_exclusive_group()
    code.add_argument(
        "--login-code",
        metavar="CODE",
        help="hot-desk login code, 4 to 12 digits: typed on any phone's keypad to log in "
        "there as this user ('-' reads it from standard input); stored hashed, never shown",
    )
    code.add_argument(
        "--no-login-code",
        action="store_true",
        help="remove the login code: the user can no longer log in on a phone by code",
    )
    pin = change.add_mutually_exclusive_group()
    pin.add_argument(
        "--voicemail-pin",
        metavar="PIN",
        help="PIN for reaching the mailbox from a phone, 4 to 12 digits ('-' reads it from "
        "standard input); stored hashed, never shown",
    )
    pin.add_argument(
        "--no-voicemail-pin",
        action="store_true",
        help="remove the voicemail PIN",
    )
    change.add_argument(
        "--unsolicited-mwi",
        action=argparse.BooleanOptionalAction,
        help="send the message-waiting lamp state (RFC 3842) to the user's phones without "
        "their subscribing, for phones configured that way",
    )
    numbers = change.add_mutually_exclusive_group()
    numbers.add_argument(
        "--telecommuter-pattern",
        metavar="P",
        action="append",
        help="a pattern of numbers the user may work from in telecommuter mode "
        "(e.g. 0[1-9]X. or +4930.); repeat for more; replaces the current list. The "
        "pattern language of `restriction add`, without =LABEL. The user's dialling "
        "restrictions apply as well",
    )
    numbers.add_argument(
        "--no-telecommuter-patterns",
        action="store_true",
        help="empty the pattern list: any number the user may dial can be a telecommuter number",
    )
    change.set_defaults(handler=cmd_user_set)

    show = user_commands.add_parser(
        "show",
        parents=[common],
        help="show all settings of a user",
        description="Show every setting of one user: forwarding and do not disturb, "
        "telecommuter permission and patterns, whether a login code is set (never the "
        "code), their mailbox (PIN set or not, greeting, message counts), where calls to "
        "the user ring now, and their saved numbers.",
    )
    show.add_argument("name", metavar="NAME", help="login name of the user to show")
    show.set_defaults(handler=cmd_user_show)

    listing = user_commands.add_parser(
        "list", parents=[common], help="list all users", description="List all users."
    )
    listing.set_defaults(handler=cmd_user_list)

    remove = user_commands.add_parser(
        "del",
        parents=[common],
        help="delete a user and their base phone account",
        description="Delete a user, their base phone account and its registrations.",
    )
    remove.add_argument("name", metavar="NAME", help="login name of the user to delete")
    remove.set_defaults(handler=cmd_user_del)

    registrations = commands.add_parser(
        "registrations",
        parents=[common],
        help="list the phones currently registered",
        description="List the current registrations (bindings) stored by the registrar.",
    )
    registrations.set_defaults(handler=cmd_registrations)

    _add_trunk_commands(commands, common)
    _add_did_commands(commands, common)
    _add_restriction_commands(commands, common)

    calls = commands.add_parser(
        "calls",
        parents=[common],
        help="show the call log",
        description="Show the latest calls, newest first: when, which way, who called whom, "
        "how it ended and how long the conversation lasted.",
    )
    calls.add_argument(
        "--limit",
        metavar="N",
        type=_bounded_int("--limit", 1, MAX_CALL_LOG_LIMIT),
        default=50,
        help="how many calls to show (default: 50)",
    )
    calls.add_argument(
        "--user",
        metavar="NAME",
        help="only calls made or received by this user (also works for deleted users)",
    )
    calls.set_defaults(handler=cmd_calls)

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the PBX: SIP (UDP and TCP), media, and HTTP (/healthz, /metrics)",
        description="Run everything in one process. The database is created or upgraded first.",
    )
    serve.add_argument(
        "--sip",
        metavar="HOST:PORT",
        type=parse_hostport,
        help="address for SIP over UDP and TCP (default: 127.0.0.1:5060)",
    )
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=parse_hostport,
        help=(
            "HTTP address: /healthz and /metrics today, the web portal and REST API "
            "later (default: 127.0.0.1:8080)"
        ),
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="fill an empty database with demo users and print how to log in",
    )
    serve.set_defaults(handler=cmd_serve)
    return parser


def _trunk_options(parser: argparse.ArgumentParser, *, adding: bool) -> None:
    """The options `trunk add` and `trunk set` share; on `set` every option is
    optional and an absent one leaves the setting as it is."""
    parser.add_argument(
        "--host",
        metavar="H",
        required=adding,
        help="the provider's SIP host name or IP address; requests from it are taken "
        "as coming from this trunk",
    )
    parser.add_argument(
        "--port",
        metavar="P",
        type=_bounded_int("--port", 1, 65535),
        default=DEFAULT_TRUNK_PORT if adding else None,
        help=f"the provider's SIP port (default: {DEFAULT_TRUNK_PORT})"
        if adding
        else "the provider's SIP port",
    )
    parser.add_argument(
        "--transport",
        choices=TRUNK_TRANSPORTS,
        type=str.lower,
        default="udp" if adding else None,
        help="how to reach the provider (default: udp)" if adding else "how to reach the provider",
    )
    prefix = parser.add_mutually_exclusive_group() if not adding else parser
    prefix.add_argument(
        "--prefix",
        metavar="DIGITS",
        type=_store_checked(validate_prefix),
        help="1 to 4 digits: a number dialled as DIGITS+number leaves through this trunk "
        "as the number; without a prefix the trunk only receives calls",
    )
    if not adding:
        prefix.add_argument(
            "--no-prefix",
            action="store_true",
            help="remove the prefix: the trunk then only receives calls",
        )
    parser.add_argument(
        "--username",
        metavar="U",
        help="the account name the provider knows us by (for digest authentication and "
        "registration)",
    )
    parser.add_argument(
        "--password",
        metavar="P",
        help="the provider's password ('-' reads it from standard input); it is "
        + _HASHED_REALM_NOTE,
    )
    parser.add_argument(
        "--realm",
        metavar="R",
        help="the digest realm the provider challenges with (default: the host name, or on "
        "`set` the current realm); needs --password, since the stored hashes depend on it",
    )
    number = parser.add_mutually_exclusive_group() if not adding else parser
    number.add_argument(
        "--outside-number",
        metavar="N",
        type=_store_checked(lambda text: validate_phone_number(text, "outside number")),
        help="the caller number presented on calls out of this trunk (default: the "
        "caller's extension)",
    )
    if not adding:
        number.add_argument(
            "--no-outside-number",
            action="store_true",
            help="present the caller's extension again",
        )
        parser.add_argument(
            "--no-credentials",
            action="store_true",
            help="forget the username, realm and password hashes (for a provider that "
            "accepts us by address)",
        )
    parser.add_argument(
        "--pai",
        action=argparse.BooleanOptionalAction,
        default=False if adding else None,
        help="send the caller's identity in a P-Asserted-Identity header (RFC 3325) on "
        "calls out" + (" (default: no)" if adding else ""),
    )
    parser.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=False if adding else None,
        help="register with the provider, for providers that send calls to a registered "
        "contact only (needs --username)" + (" (default: no)" if adding else ""),
    )
    parser.add_argument(
        "--register-expires",
        metavar="SECONDS",
        type=_bounded_int("--register-expires", MIN_REGISTER_EXPIRES, MAX_REGISTER_EXPIRES),
        default=DEFAULT_REGISTER_EXPIRES if adding else None,
        help=f"registration time asked for, {MIN_REGISTER_EXPIRES} to {MAX_REGISTER_EXPIRES} "
        f"seconds; it is refreshed before it runs out (default: {DEFAULT_REGISTER_EXPIRES})"
        if adding
        else "registration time asked for; it is refreshed before it runs out",
    )


def _add_trunk_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    trunk = commands.add_parser(
        "trunk",
        parents=[common],
        help="add, change, list and delete SIP trunks to providers",
        description="Manage SIP trunks: the providers that carry calls to and from outside "
        "numbers. Calls from a trunk reach the user whose extension or DID was called.",
    )
    actions = trunk.add_subparsers(
        dest="trunk_command", metavar="ACTION", required=True, help="what to do with trunks"
    )
    add = actions.add_parser(
        "add",
        parents=[common],
        help="add a trunk",
        description="Add a SIP trunk. Without --prefix it only receives calls. The password "
        "is " + _HASHED_REALM_NOTE + ".",
    )
    add.add_argument("name", metavar="NAME", help="a name for the trunk (letters, digits, ._-)")
    _trunk_options(add, adding=True)
    add.set_defaults(handler=cmd_trunk_add)

    change = actions.add_parser(
        "set",
        parents=[common],
        help="change a trunk",
        description="Change settings of a trunk; options not given stay as they are. A new "
        "username or realm needs the password again, since the stored hashes cover both.",
    )
    change.add_argument("name", metavar="NAME", help="name of the trunk to change")
    _trunk_options(change, adding=False)
    change.set_defaults(handler=cmd_trunk_set)

    listing = actions.add_parser(
        "list", parents=[common], help="list all trunks", description="List all trunks."
    )
    listing.set_defaults(handler=cmd_trunk_list)

    remove = actions.add_parser(
        "del", parents=[common], help="delete a trunk", description="Delete a trunk."
    )
    remove.add_argument("name", metavar="NAME", help="name of the trunk to delete")
    remove.set_defaults(handler=cmd_trunk_del)


def _add_did_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    did = commands.add_parser(
        "did",
        parents=[common],
        help="map outside numbers (DIDs) to users",
        description="Manage DIDs: outside numbers that reach a user when a trunk delivers "
        "a call to them. A user's extension number reaches them without a DID.",
    )
    actions = did.add_subparsers(
        dest="did_command", metavar="ACTION", required=True, help="what to do with DIDs"
    )
    add = actions.add_parser(
        "add",
        parents=[common],
        help="map a number to a user",
        description="Map NUMBER to a user. It is matched exactly as the provider sends it.",
    )
    add.add_argument(
        "number",
        metavar="NUMBER",
        type=_store_checked(lambda text: validate_phone_number(text, "DID")),
        help="the number as the provider delivers it (digits, optionally after '+')",
    )
    add.add_argument("--user", metavar="NAME", required=True, help="the user it reaches")
    add.set_defaults(handler=cmd_did_add)

    listing = actions.add_parser(
        "list", parents=[common], help="list all DIDs", description="List all DIDs."
    )
    listing.set_defaults(handler=cmd_did_list)

    remove = actions.add_parser(
        "del", parents=[common], help="delete a DID", description="Delete a DID."
    )
    remove.add_argument("number", metavar="NUMBER", help="the DID to delete")
    remove.set_defaults(handler=cmd_did_del)


_PATTERN_HELP = (
    "PATTERN: digits, * # and a leading + match themselves; X any digit, Z 1-9, N 2-9, "
    "[1-5] or [13] one digit of a class; at the end '.' one or more and '!' zero or "
    "more of anything; 'internal' is any call inside the PBX. Add =LABEL to tell barred "
    "callers why (00.=international)."
)
_RESTRICTION_RULES = (
    "Outside numbers are checked as they leave the building (after the trunk prefix), "
    "calls inside as the dialled extension. Emergency numbers are always allowed from a "
    "phone; a barred number is allowed only if a more specific allowed pattern matches "
    "(longer literal start, then more literal digits, then a fixed length, then narrower "
    "wildcards); with allowed patterns, only what matches one of them is allowed."
)


def _restriction_options(parser: argparse.ArgumentParser, *, adding: bool) -> None:
    verb = "allowed" if adding else "replacing the allowed list"
    parser.add_argument(
        "--allow",
        metavar="PATTERN",
        action="append",
        help=f"a pattern of numbers that may be dialled, {verb}; repeat for more "
        "(without any, everything not barred is allowed)",
    )
    parser.add_argument(
        "--bar",
        metavar="PATTERN",
        action="append",
        help="a pattern of numbers that may not be dialled"
        + ("" if adding else ", replacing the barred list")
        + "; repeat for more",
    )
    parser.add_argument(
        "--emergency",
        metavar="NUMBER",
        action="append",
        help="an emergency number, always allowed from a phone; repeat for more"
        + (" (default: 112, 911 and 999)" if adding else ", replacing the list"),
    )
    parser.add_argument("--description", metavar="TEXT", help="what the profile is for")
    if adding:
        return
    parser.add_argument(
        "--add-allow", metavar="PATTERN", action="append", help="append an allowed pattern"
    )
    parser.add_argument(
        "--add-bar", metavar="PATTERN", action="append", help="append a barred pattern"
    )
    parser.add_argument(
        "--no-allow", action="store_true", help="empty the allowed list (allow what is not barred)"
    )
    parser.add_argument("--no-bar", action="store_true", help="empty the barred list")
    parser.add_argument(
        "--no-emergency",
        action="store_true",
        help="empty the emergency list (emergency calls then follow the patterns like any other)",
    )


def _add_restriction_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    restriction = commands.add_parser(
        "restriction",
        parents=[common],
        help="define who may dial what (dialling restriction profiles)",
        description="Manage dialling restriction profiles and test numbers against them. "
        "Users get one with `teleoffice user set NAME --restriction PROFILE`; users without "
        "one get 'default', which bars international and premium numbers. " + _RESTRICTION_RULES,
        epilog=_PATTERN_HELP,
    )
    actions = restriction.add_subparsers(
        dest="restriction_command",
        metavar="ACTION",
        required=True,
        help="what to do with restriction profiles",
    )
    add = actions.add_parser(
        "add",
        parents=[common],
        help="add a profile",
        description="Add a restriction profile. " + _RESTRICTION_RULES,
        epilog=_PATTERN_HELP,
    )
    add.add_argument("name", metavar="NAME", help="a name for the profile (letters, digits, ._-)")
    _restriction_options(add, adding=True)
    add.set_defaults(handler=cmd_restriction_add)

    change = actions.add_parser(
        "set",
        parents=[common],
        help="change a profile",
        description="Change a profile: --allow, --bar and --emergency replace their list, "
        "--add-allow and --add-bar append to it; what is not given stays. Running servers "
        "apply the change within seconds.",
        epilog=_PATTERN_HELP,
    )
    change.add_argument("name", metavar="NAME", help="name of the profile to change")
    _restriction_options(change, adding=False)
    change.set_defaults(handler=cmd_restriction_set)

    listing = actions.add_parser(
        "list",
        parents=[common],
        help="list all profiles",
        description="List the profiles: how many patterns each has and how many users are "
        "assigned to it ('+' on default: and every user without a profile).",
    )
    listing.set_defaults(handler=cmd_restriction_list)

    show = actions.add_parser(
        "show",
        parents=[common],
        help="show a profile",
        description="Show a profile's patterns, emergency numbers and users.",
    )
    show.add_argument("name", metavar="NAME", help="name of the profile")
    show.set_defaults(handler=cmd_restriction_show)

    remove = actions.add_parser(
        "del",
        parents=[common],
        help="delete a profile",
        description="Delete a profile. A profile assigned to users cannot be deleted, nor "
        "can 'default'.",
    )
    remove.add_argument("name", metavar="NAME", help="name of the profile to delete")
    remove.set_defaults(handler=cmd_restriction_del)

    test = actions.add_parser(
        "check",
        parents=[common],
        help="tell whether a profile allows a number, and why",
        description="Check NUMBER against a profile and print 'allowed' or 'barred' with "
        "the reason. Exit status 0 when allowed, 1 when barred. Give the number as it leaves "
        "the building (without the trunk prefix), or an extension with --internal.",
    )
    test.add_argument(
        "name", metavar="NAME", help="the profile (or, with --user, the user) to check for"
    )
    test.add_argument("number", metavar="NUMBER", help="the number to check")
    test.add_argument(
        "--user",
        action="store_true",
        help="NAME is a user: check against the profile that applies to them",
    )
    test.add_argument(
        "--internal",
        action="store_true",
        help="the number is inside the PBX (an extension or DID), as 'internal' patterns see it",
    )
    test.add_argument(
        "--not-from-phone",
        action="store_true",
        help="check as for a call not placed from a phone (click-to-dial): emergency "
        "numbers get no exception",
    )
    test.set_defaults(handler=cmd_restriction_check)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "data_dir": args.data or os.environ.get(DATA_ENV) or None,
        "config": args.config,
    }
    for option, prefix in (("sip", "sip"), ("http", "http")):
        hostport: tuple[str | None, int | None] | None = getattr(args, option, None)
        if hostport is not None:
            overrides[f"{prefix}_host"], overrides[f"{prefix}_port"] = hostport
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status instead of exiting."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    ctx = _Context(_overrides(args))
    handler: Handler = args.handler
    try:
        return handler(args, ctx)
    except (CliError, ConfigError, StoreError) as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:
        # The driver's own message ("database is locked") without SQLAlchemy's
        # statement dump and documentation link.
        return _fail(f"database error: {getattr(exc, 'orig', None) or exc}")
    except OSError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_ERROR
