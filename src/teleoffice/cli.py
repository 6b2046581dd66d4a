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
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from teleoffice import __version__
from teleoffice.config import ConfigError, Settings, load_or_create_secret, load_settings
from teleoffice.demo import seed
from teleoffice.store import db
from teleoffice.store.repos import (
    AccountRepo,
    RegistrationRepo,
    Sessions,
    StoreError,
    UserRecord,
    UserRepo,
    validate_extension,
)

PROG = "teleoffice"
DATA_ENV = "TELEOFFICE_DATA"
EXIT_OK = 0
EXIT_ERROR = 2


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
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise CliError(f"nothing to change for {args.name}; see `{PROG} user set --help`")
    user = ctx.user_repo().update(args.name, **changes)
    described = [_describe_change(key, value) for key, value in changes.items()]
    print(f"updated user {user.username}: " + ", ".join(described))
    return EXIT_OK


_CHANGE_LABELS = {
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
    ctx.close()  # the server opens its own engine
    return serve(settings, demo=args.demo)


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
    change.set_defaults(handler=cmd_user_set)

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

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the PBX: SIP (UDP and TCP) and the web portal",
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
        help="address of the web portal and REST API (default: 127.0.0.1:8080)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="fill an empty database with demo users and print how to log in",
    )
    serve.set_defaults(handler=cmd_serve)
    return parser


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
