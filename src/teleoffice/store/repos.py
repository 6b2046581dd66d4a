"""Typed data access for the CLI and the server.

Every public method runs in its own transaction and either completes or changes
nothing. What goes in and out are plain values and frozen records; ORM objects
never leave this module, so callers cannot trigger lazy loads or stray writes.
Input the schema would reject is refused here first with a `StoreError` that
says what is wrong, because a database IntegrityError names a constraint, not
the problem.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from argon2 import PasswordHasher
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from teleoffice.calls.restrictions import (
    DEFAULT_EMERGENCY,
    DEFAULT_PROFILE,
    PatternError,
    RestrictionProfile,
    parse_rule,
    validate_emergency,
    validate_profile_name,
)
from teleoffice.sip.digest import Algorithm, compute_ha1
from teleoffice.store.models import (
    DISPLAY_NAME_LENGTH,
    FORWARD_NUMBER_LENGTH,
    HOST_LENGTH,
    LOGGED_NUMBER_LENGTH,
    NAME_LENGTH,
    NUMBER_LENGTH,
    REALM_LENGTH,
    RESTRICTION_DESCRIPTION_LENGTH,
    TRUNK_USERNAME_LENGTH,
    CallLogEntry,
    Did,
    PhoneAccount,
    Registration,
    RestrictionProfileRow,
    Trunk,
    User,
    UserRestriction,
)
from teleoffice.store.secrets import SecretChecker

Sessions = sessionmaker[Session]


class StoreError(Exception):
    """Base of the errors the store raises on purpose; the message is for people."""


class Conflict(StoreError):
    """The change would clash with existing data (a taken name or number)."""


class NotFound(StoreError):
    """The user or account named does not exist."""


class InvalidInput(StoreError):
    """A value is malformed or out of range."""


# Extensions are dialled from keypads: digits only. Two digits is the shortest
# plan that still leaves room for feature codes; eight covers large sites.
EXTENSION_RE = re.compile(r"[0-9]{2,8}")
# Usernames appear in URLs, SIP URIs and log lines, so they keep to a safe set.
USERNAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_LENGTH - 1}}}")
MIN_NO_ANSWER_TIMEOUT = 1
MAX_NO_ANSWER_TIMEOUT = 600


def validate_extension(extension: str) -> str:
    if not EXTENSION_RE.fullmatch(extension):
        raise InvalidInput(f"extension {extension!r} must be 2 to 8 digits")
    return extension


def validate_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            f"username {username!r} must start with a letter or digit and contain only "
            f"letters, digits, '.', '_' and '-' (at most {NAME_LENGTH} characters)"
        )
    return username


def _validate_display_name(display_name: str) -> str:
    if len(display_name) > DISPLAY_NAME_LENGTH:
        raise InvalidInput(f"display name is longer than {DISPLAY_NAME_LENGTH} characters")
    # It ends up in From headers between quotes; control characters would let it
    # break out of the header line.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in display_name):
        raise InvalidInput("display name must not contain control characters")
    return display_name


def _validate_no_answer_timeout(seconds: int) -> int:
    if not MIN_NO_ANSWER_TIMEOUT <= seconds <= MAX_NO_ANSWER_TIMEOUT:
        raise InvalidInput(
            f"no-answer time must be between {MIN_NO_ANSWER_TIMEOUT} and "
            f"{MAX_NO_ANSWER_TIMEOUT} seconds, not {seconds}"
        )
    return seconds


# What a forward may point at: a number the user could dial (an extension, a
# DID, or a trunk prefix and an outside number), digits with an optional '+'.
FORWARD_NUMBER_RE = re.compile(rf"\+?[0-9]{{1,{FORWARD_NUMBER_LENGTH}}}")
# Passed to `UserRepo.update` to switch a forward off (None leaves it as it is).
FORWARD_OFF = ""


def validate_forward_number(number: str, what: str = "forwarding number") -> str:
    if not FORWARD_NUMBER_RE.fullmatch(number) or len(number) > FORWARD_NUMBER_LENGTH:
        raise InvalidInput(
            f"{what} {number!r} must be digits, optionally after a '+' "
            f"(at most {FORWARD_NUMBER_LENGTH} characters)"
        )
    return number


def _validate_secret(what: str, value: str) -> str:
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    return value


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as the rest of the program sees it (the password hash stays inside)."""

    id: int
    username: str
    display_name: str
    extension: str
    is_admin: bool
    telecommuter_allowed: bool
    call_waiting: bool
    voicemail_enabled: bool
    no_answer_timeout: int
    has_password: bool
    created_at: datetime
    forward_always: str | None = None
    forward_busy: str | None = None
    forward_no_answer: str | None = None
    dnd: bool = False


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """A SIP phone account; `owner` is the username of the user it belongs to."""

    username: str
    owner: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredBinding:
    """One row of `registrations`: a contact registered for an account."""

    account: str
    contact: str  # the Contact value as registered, header parameters included
    uri: str  # the contact URI alone: what identifies the binding
    expires_at: float
    call_id: str
    cseq: int
    q: float | None
    transport: str
    source_host: str
    source_port: int
    instance_id: str | None = None
    user_agent: str | None = None
    path: str | None = None


def _user_record(user: User) -> UserRecord:
    return UserRecord(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        extension=user.extension,
        is_admin=user.is_admin,
        telecommuter_allowed=user.telecommuter_allowed,
        call_waiting=user.call_waiting,
        voicemail_enabled=user.voicemail_enabled,
        no_answer_timeout=user.no_answer_timeout,
        has_password=user.password_hash is not None,
        created_at=user.created_at,
        forward_always=user.forward_always,
        forward_busy=user.forward_busy,
        forward_no_answer=user.forward_no_answer,
        dnd=user.dnd,
    )


def _binding_record(row: Registration) -> StoredBinding:
    return StoredBinding(
        account=row.account,
        contact=row.contact,
        uri=row.uri,
        expires_at=row.expires_at,
        call_id=row.call_id,
        cseq=row.cseq,
        q=row.q,
        transport=row.transport,
        source_host=row.source_host,
        source_port=row.source_port,
        instance_id=row.instance_id,
        user_agent=row.user_agent,
        path=row.path,
    )


def _binding_values(binding: StoredBinding) -> dict[str, Any]:
    return {
        "account": binding.account,
        "contact": binding.contact,
        "uri": binding.uri,
        "expires_at": binding.expires_at,
        "call_id": binding.call_id,
        "cseq": binding.cseq,
        "q": binding.q,
        "transport": binding.transport,
        "source_host": binding.source_host,
        "source_port": binding.source_port,
        "instance_id": binding.instance_id,
        "user_agent": binding.user_agent,
        "path": binding.path,
    }


@contextmanager
def _transaction(sessions: Sessions, conflict_message: str) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error.

    The explicit checks before each write give precise messages; this catches the
    remaining race (another process inserting the same name in between) and still
    reports it as a `Conflict` rather than a database error.
    """
    try:
        with sessions.begin() as session:
            yield session
    except IntegrityError:
        raise Conflict(conflict_message) from None


class UserRepo:
    """Users of the directory, together with their base phone account.

    `realm` is the SIP digest realm the HA1 values are computed for. `hasher`
    hashes portal passwords (argon2id by default; tests pass a cheaper one).
    """

    def __init__(
        self, sessions: Sessions, *, realm: str, hasher: PasswordHasher | None = None
    ) -> None:
        self._sessions = sessions
        self._realm = realm
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._secrets = SecretChecker(self._hasher)

    @property
    def sessions(self) -> Sessions:
        """The sessions this repository works with, for a repository that
        must see the same database (the server's restriction lookups)."""
        return self._sessions

    def _ha1s(self, account: str, sip_password: str) -> tuple[str, str]:
        return (
            compute_ha1(account, self._realm, sip_password, Algorithm.MD5),
            compute_ha1(account, self._realm, sip_password, Algorithm.SHA256),
        )

    def add_user(
        self,
        username: str,
        *,
        extension: str,
        sip_password: str,
        display_name: str | None = None,
        password: str | None = None,
        is_admin: bool = False,
        telecommuter_allowed: bool = False,
        call_waiting: bool = True,
        voicemail_enabled: bool = False,
        no_answer_timeout: int = 15,
    ) -> UserRecord:
        """Create a user and their base phone account (SIP user = `extension`).

        Both rows are written in one transaction. Raises `InvalidInput` for bad
        values and `Conflict` when the username, the extension or the phone
        account name is taken.
        """
        validate_username(username)
        validate_extension(extension)
        _validate_secret("SIP password", sip_password)
        display = _validate_display_name(username if display_name is None else display_name)
        _validate_no_answer_timeout(no_answer_timeout)
        password_hash = (
            None if password is None else self._hasher.hash(_validate_secret("password", password))
        )
        ha1_md5, ha1_sha256 = self._ha1s(extension, sip_password)
        clash = f"user {username!r} or extension {extension} already exists"
        with _transaction(self._sessions, clash) as session:
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(f"user {username!r} already exists")
            taken = session.scalar(select(User.username).where(User.extension == extension))
            if taken is not None:
                raise Conflict(f"extension {extension} already belongs to user {taken!r}")
            # A number reaches one user only: an extension may not repeat a DID.
            did_owner = session.scalar(
                select(User.username)
                .join(Did, Did.user_id == User.id)
                .where(Did.number == extension)
            )
            if did_owner is not None:
                raise Conflict(f"number {extension} is already a DID of user {did_owner!r}")
            if (
                session.scalar(select(PhoneAccount.id).where(PhoneAccount.username == extension))
                is not None
            ):
                raise Conflict(f"a phone account named {extension} already exists")
            user = User(
                username=username,
                display_name=display,
                extension=extension,
                password_hash=password_hash,
                is_admin=is_admin,
                telecommuter_allowed=telecommuter_allowed,
                call_waiting=call_waiting,
                voicemail_enabled=voicemail_enabled,
                no_answer_timeout=no_answer_timeout,
            )
            session.add(user)
            session.flush()  # assigns user.id for the account's foreign key
            session.add(
                PhoneAccount(
                    username=extension,
                    user_id=user.id,
                    ha1_md5=ha1_md5,
                    ha1_sha256=ha1_sha256,
                )
            )
            session.flush()
            return _user_record(user)

    def find(self, username: str) -> UserRecord | None:
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.username == username))
            return None if user is None else _user_record(user)

    def get(self, username: str) -> UserRecord:
        """The user named `username`; `NotFound` if there is none."""
        found = self.find(username)
        if found is None:
            raise NotFound(f"no user {username!r}")
        return found

    def find_by_extension(self, extension: str) -> UserRecord | None:
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.extension == extension))
            return None if user is None else _user_record(user)

    def list_users(self) -> list[UserRecord]:
        """All users, in extension order (the order of a printed directory)."""
        with self._sessions() as session:
            users = session.scalars(select(User).order_by(User.extension, User.username))
            return [_user_record(user) for user in users]

    def count(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(User)) or 0

    def update(
        self,
        username: str,
        *,
        display_name: str | None = None,
        is_admin: bool | None = None,
        telecommuter_allowed: bool | None = None,
        call_waiting: bool | None = None,
        voicemail_enabled: bool | None = None,
        no_answer_timeout: int | None = None,
        password: str | None = None,
        sip_password: str | None = None,
        forward_always: str | None = None,
        forward_busy: str | None = None,
        forward_no_answer: str | None = None,
        dnd: bool | None = None,
    ) -> UserRecord:
        """Change the given fields (None leaves a field as it is).

        A forward is set to a number, or switched off with `FORWARD_OFF`. A
        forward to the user's own extension is refused: it could only loop.

        A new `sip_password` re-keys the base phone account, creating it if the
        user has none. Raises `NotFound`, `InvalidInput` or `Conflict`; on any
        error nothing is changed.
        """
        if display_name is not None:
            _validate_display_name(display_name)
        if no_answer_timeout is not None:
            _validate_no_answer_timeout(no_answer_timeout)
        password_hash = (
            None if password is None else self._hasher.hash(_validate_secret("password", password))
        )
        if sip_password is not None:
            _validate_secret("SIP password", sip_password)
        forwards = {
            "forward_always": forward_always,
            "forward_busy": forward_busy,
            "forward_no_answer": forward_no_answer,
        }
        for key, number in forwards.items():
            if number:
                validate_forward_number(number, key.replace("_", " ") + " number")
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"no user {username!r}")
            for key, number in forwards.items():
                if number is None:
                    continue
                if number == user.extension:
                    raise InvalidInput(
                        f"user {username!r} cannot forward calls to their own extension {number}"
                    )
                setattr(user, key, number or None)
            if dnd is not None:
                user.dnd = dnd
            if display_name is not None:
                user.display_name = display_name
            if is_admin is not None:
                user.is_admin = is_admin
            if telecommuter_allowed is not None:
                user.telecommuter_allowed = telecommuter_allowed
            if call_waiting is not None:
                user.call_waiting = call_waiting
            if voicemail_enabled is not None:
                user.voicemail_enabled = voicemail_enabled
            if no_answer_timeout is not None:
                user.no_answer_timeout = no_answer_timeout
            if password_hash is not None:
                user.password_hash = password_hash
            if sip_password is not None:
                self._rekey_base_account(session, user, sip_password)
            session.flush()
            return _user_record(user)

    def _rekey_base_account(self, session: Session, user: User, sip_password: str) -> None:
        ha1_md5, ha1_sha256 = self._ha1s(user.extension, sip_password)
        account = session.scalar(
            select(PhoneAccount).where(PhoneAccount.username == user.extension)
        )
        if account is None:
            session.add(
                PhoneAccount(
                    username=user.extension,
                    user_id=user.id,
                    ha1_md5=ha1_md5,
                    ha1_sha256=ha1_sha256,
                )
            )
            return
        if account.user_id not in (None, user.id):
            raise Conflict(
                f"phone account {user.extension} belongs to another user; "
                "it cannot be re-keyed from here"
            )
        account.user_id = user.id
        account.ha1_md5 = ha1_md5
        account.ha1_sha256 = ha1_sha256

    def delete(self, username: str) -> None:
        """Remove a user, their base phone account and its registrations.

        Other phone accounts linked to the user stay and become unassigned (the
        foreign key's ON DELETE SET NULL).
        """
        with _transaction(self._sessions, f"cannot delete user {username!r}") as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"no user {username!r}")
            base = session.scalar(
                select(PhoneAccount).where(
                    PhoneAccount.username == user.extension, PhoneAccount.user_id == user.id
                )
            )
            if base is not None:
                session.execute(delete(Registration).where(Registration.account == base.username))
                session.delete(base)
            session.flush()
            session.delete(user)

    def verify_password(self, username: str, password: str) -> UserRecord | None:
        """The user if `password` is their portal password, else None.

        Unknown users and users without a password cost the same argon2 work as a
        wrong password, so response times do not reveal which usernames exist.
        A hash made with weaker parameters than the current ones is upgraded.
        """
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.username == username))
            stored = None if user is None else user.password_hash
        checked = self._secrets.check(stored, password)
        if user is None or not checked.ok:
            return None
        if checked.upgraded is not None:
            with self._sessions.begin() as session:
                session.execute(
                    update(User)
                    .where(User.id == user.id, User.password_hash == stored)
                    .values(password_hash=checked.upgraded)
                )
        return _user_record(user)


class AccountRepo:
    """Read access to SIP phone accounts, for digest authentication."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def get_ha1(self, username: str, algorithm: Algorithm) -> str | None:
        """The stored HA1 of `username` for `algorithm`'s hash family, or None when
        there is no such account (the "-sess" variants use their base HA1)."""
        column = (
            PhoneAccount.ha1_md5 if algorithm.base is Algorithm.MD5 else PhoneAccount.ha1_sha256
        )
        with self._sessions() as session:
            return session.scalar(select(column).where(PhoneAccount.username == username))

    def all_ha1(self) -> dict[str, tuple[str, str]]:
        """Every account's (MD5 HA1, SHA-256 HA1), for the server's in-memory cache."""
        with self._sessions() as session:
            rows = session.execute(
                select(PhoneAccount.username, PhoneAccount.ha1_md5, PhoneAccount.ha1_sha256)
            ).all()
            return {row[0]: (row[1], row[2]) for row in rows}

    def find(self, username: str) -> AccountRecord | None:
        with self._sessions() as session:
            row = session.execute(
                select(PhoneAccount.username, User.username, PhoneAccount.created_at)
                .outerjoin(User, PhoneAccount.user_id == User.id)
                .where(PhoneAccount.username == username)
            ).first()
            return None if row is None else AccountRecord(row[0], row[1], row[2])

    def list_accounts(self) -> list[AccountRecord]:
        with self._sessions() as session:
            rows = session.execute(
                select(PhoneAccount.username, User.username, PhoneAccount.created_at)
                .outerjoin(User, PhoneAccount.user_id == User.id)
                .order_by(PhoneAccount.username)
            ).all()
            return [AccountRecord(row[0], row[1], row[2]) for row in rows]


class RegistrationRepo:
    """Durable copy of the registrar's bindings, so phones stay reachable across a
    restart. The registrar decides; this only records its decisions."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def load_all(self) -> list[StoredBinding]:
        """Every stored binding, expired ones included (the caller knows the time)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Registration).order_by(Registration.account, Registration.id)
            )
            return [_binding_record(row) for row in rows]

    def save(self, binding: StoredBinding) -> None:
        """Insert the binding, or replace the one with the same account and URI."""
        self.apply(saves=(binding,))

    def delete(self, account: str, uri: str) -> bool:
        """Remove one binding; True if it existed."""
        with self._sessions.begin() as session:
            result = session.execute(
                delete(Registration).where(Registration.account == account, Registration.uri == uri)
            )
            return _rowcount(result) > 0

    def delete_account(self, account: str) -> int:
        """Remove every binding of `account`; returns how many there were."""
        with self._sessions.begin() as session:
            result = session.execute(delete(Registration).where(Registration.account == account))
            return _rowcount(result)

    def purge_expired(self, now: float) -> int:
        """Remove bindings whose expiry time is `now` or earlier; returns the count."""
        with self._sessions.begin() as session:
            result = session.execute(delete(Registration).where(Registration.expires_at <= now))
            return _rowcount(result)

    def apply(
        self,
        *,
        saves: Iterable[StoredBinding] = (),
        deletes: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Upsert `saves` and remove `deletes` ((account, uri) pairs) in a single
        transaction, so one REGISTER's changes are stored all or not at all."""
        with self._sessions.begin() as session:
            for account, uri in deletes:
                session.execute(
                    delete(Registration).where(
                        Registration.account == account, Registration.uri == uri
                    )
                )
            _upsert_all(session, list(saves))


def _upsert_all(session: Session, bindings: list[StoredBinding]) -> None:
    if not bindings:
        return
    dialect = session.get_bind().dialect.name
    # Both SQLite and PostgreSQL have INSERT .. ON CONFLICT, which is atomic even
    # when two writers race.  One statement with bound parameters, executed for
    # every row, is compiled once: a batch of thousands costs one compilation.
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert(Registration)
        changed = [
            c.name for c in Registration.__table__.columns if c.name not in ("id", "account", "uri")
        ]
        stmt = stmt.on_conflict_do_update(
            index_elements=["account", "uri"],
            set_={name: stmt.excluded[name] for name in changed},
        )
        session.execute(stmt, [_binding_values(b) for b in bindings])
        return
    # Other databases: look, then write.
    for binding in bindings:
        values = _binding_values(binding)
        existing = session.scalar(
            select(Registration).where(
                Registration.account == binding.account, Registration.uri == binding.uri
            )
        )
        if existing is None:
            session.add(Registration(**values))
        else:
            for key, value in values.items():
                setattr(existing, key, value)
    session.flush()


def _rowcount(result: Any) -> int:
    # DELETE results are CursorResults, which carry the affected row count; the
    # generic Result type the session returns does not declare it.
    count = getattr(result, "rowcount", 0)
    return int(count) if count is not None else 0


# --- trunks -------------------------------------------------------------------------


class _Keep(enum.Enum):
    KEEP = "keep"


# "Leave this field as it is" for update arguments where None already means
# "clear it" (a trunk's prefix, outside number or username).
KEEP: Final = _Keep.KEEP
Keep = Literal[_Keep.KEEP]

TRUNK_TRANSPORTS = ("udp", "tcp")
DEFAULT_TRUNK_PORT = 5060
DEFAULT_REGISTER_EXPIRES = 3600
# Providers commonly refuse registrations shorter than a minute (423), and a
# binding that lasts more than a day outlives most address changes unnoticed.
MIN_REGISTER_EXPIRES = 60
MAX_REGISTER_EXPIRES = 86400

# A trunk prefix is what a user dials before the outside number ("9" in
# 9-0301234567): digits only, short enough to stay out of the way.
PREFIX_RE = re.compile(r"[0-9]{1,4}")
# An outside number as providers deliver and accept it: digits, maybe with '+'.
PHONE_NUMBER_RE = re.compile(rf"\+?[0-9]{{1,{NUMBER_LENGTH - 1}}}")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def normalise_host(host: str) -> str:
    """`host` in the one spelling trunks are stored and looked up with.

    Host names are case-insensitive (RFC 4343) and an IPv6 address has many
    spellings, so both are reduced to a canonical form: lower case without a
    trailing dot, or the compressed address without brackets.
    """
    text = host.strip()
    if not text:
        raise InvalidInput("host must not be empty")
    bracketed = text.startswith("[") and text.endswith("]")
    try:
        address = ipaddress.ip_address(text[1:-1] if bracketed else text)
    except ValueError:
        address = None
    if address is not None:
        if bracketed and address.version != 6:
            raise InvalidInput(f"host {host!r}: only IPv6 addresses go in brackets")
        return str(address)
    name = text.rstrip(".").lower()
    if bracketed or len(text) > HOST_LENGTH or not _HOSTNAME_RE.fullmatch(name):
        raise InvalidInput(f"host {host!r} is neither a host name nor an IP address")
    return name


def validate_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InvalidInput(f"port must be between 1 and 65535, not {port}")
    return port


def validate_prefix(prefix: str) -> str:
    if not PREFIX_RE.fullmatch(prefix):
        raise InvalidInput(f"prefix {prefix!r} must be 1 to 4 digits")
    return prefix


def validate_phone_number(number: str, what: str = "number") -> str:
    if not PHONE_NUMBER_RE.fullmatch(number):
        raise InvalidInput(
            f"{what} {number!r} must be digits, optionally after a '+' "
            f"(at most {NUMBER_LENGTH - 1} digits)"
        )
    return number


def _validate_trunk_name(name: str) -> str:
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            f"trunk name {name!r} must start with a letter or digit and contain only "
            f"letters, digits, '.', '_' and '-' (at most {NAME_LENGTH} characters)"
        )
    return name


def _validate_transport(transport: str) -> str:
    value = transport.lower()
    if value not in TRUNK_TRANSPORTS:
        raise InvalidInput(f"transport must be one of {', '.join(TRUNK_TRANSPORTS)}")
    return value


def _validate_header_text(what: str, value: str, limit: int) -> str:
    # Provider user names and realms go into Authorization headers and URIs;
    # control characters would let them break out of the header line.
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def _validate_register_expires(seconds: int) -> int:
    if not MIN_REGISTER_EXPIRES <= seconds <= MAX_REGISTER_EXPIRES:
        raise InvalidInput(
            f"registration time must be between {MIN_REGISTER_EXPIRES} and "
            f"{MAX_REGISTER_EXPIRES} seconds, not {seconds}"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class TrunkRecord:
    """A trunk as the rest of the program sees it.

    The HA1 hashes stay in the store: `has_credentials` says whether there are
    any, and `TrunkRepo.credentials` hands them out to the one place that needs
    them (the digest client), so they never end up in a listing or a log line.
    """

    id: int
    name: str
    host: str
    port: int
    transport: str
    prefix: str | None
    username: str | None
    realm: str | None
    has_credentials: bool
    outside_number: str | None
    use_pai: bool
    register: bool
    register_expires: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TrunkCredentials:
    """What a digest client needs to answer a provider's challenge.

    The hashes are left out of repr so that logging the object leaks nothing.
    """

    username: str
    realm: str
    ha1_md5: str = field(repr=False)
    ha1_sha256: str = field(repr=False)

    def ha1_for(self, realm: str, family: Algorithm) -> str | None:
        """The HA1 for a challenge in `realm`, or None for any other realm.

        Shaped for `teleoffice.sip.digest.build_authorization_from_ha1`: the
        hashes were made for one realm, so a challenge in another cannot be
        answered (the caller reports it; it usually means the configured realm
        is not the one the provider uses).
        """
        if realm != self.realm:
            return None
        return self.ha1_md5 if family.base is Algorithm.MD5 else self.ha1_sha256


def _trunk_record(trunk: Trunk) -> TrunkRecord:
    return TrunkRecord(
        id=trunk.id,
        name=trunk.name,
        host=trunk.host,
        port=trunk.port,
        transport=trunk.transport,
        prefix=trunk.prefix,
        username=trunk.username,
        realm=trunk.realm,
        has_credentials=trunk.ha1_md5 is not None and trunk.ha1_sha256 is not None,
        outside_number=trunk.outside_number,
        use_pai=trunk.use_pai,
        register=trunk.register,
        register_expires=trunk.register_expires,
        created_at=trunk.created_at,
    )


class TrunkRepo:
    """SIP trunks to providers, with their credentials kept as HA1 hashes.

    Decision: teleoffice never stores a secret in clear, and a provider's
    password is no exception. It is turned into HA1 = H(username:realm:password)
    for MD5 and SHA-256 when it is set, for one realm: the one given, else the
    trunk's host name. That realm must be the one the provider challenges with;
    a challenge in another realm cannot be answered and is refused (the digest
    client says which realm it was asked for). Changing the username or the
    realm therefore needs the password again.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def add(
        self,
        name: str,
        *,
        host: str,
        port: int = DEFAULT_TRUNK_PORT,
        transport: str = "udp",
        prefix: str | None = None,
        username: str | None = None,
        password: str | None = None,
        realm: str | None = None,
        outside_number: str | None = None,
        use_pai: bool = False,
        register: bool = False,
        register_expires: int = DEFAULT_REGISTER_EXPIRES,
    ) -> TrunkRecord:
        """Create a trunk. Raises `InvalidInput` for bad values and `Conflict` when
        the name, the prefix (or one overlapping it) or the address is taken."""
        trunk = Trunk(
            name=_validate_trunk_name(name),
            host=normalise_host(host),
            port=validate_port(port),
            transport=_validate_transport(transport),
            prefix=None if prefix is None else validate_prefix(prefix),
            outside_number=(
                None
                if outside_number is None
                else validate_phone_number(outside_number, "outside number")
            ),
            use_pai=use_pai,
            register=register,
            register_expires=_validate_register_expires(register_expires),
        )
        _set_trunk_credentials(trunk, username, password, realm)
        _check_register(trunk)
        with _transaction(self._sessions, f"trunk {name!r} clashes with another") as session:
            _check_trunk_clashes(session, trunk)
            session.add(trunk)
            session.flush()
            return _trunk_record(trunk)

    def update(
        self,
        name: str,
        *,
        host: str | None = None,
        port: int | None = None,
        transport: str | None = None,
        prefix: str | Keep | None = KEEP,
        username: str | Keep | None = KEEP,
        password: str | None = None,
        realm: str | None = None,
        outside_number: str | Keep | None = KEEP,
        use_pai: bool | None = None,
        register: bool | None = None,
        register_expires: int | None = None,
    ) -> TrunkRecord:
        """Change the given fields; None (or KEEP where None means "remove")
        leaves a field as it is.

        `prefix=None` makes the trunk inbound-only, `outside_number=None` presents
        the caller's extension again, and `username=None` removes the credentials.
        A new `password` is hashed for the new or current username and for
        `realm`, else the current realm, else the host. Raises `NotFound`,
        `InvalidInput` or `Conflict`; on any error nothing is changed.
        """
        with _transaction(self._sessions, f"cannot update trunk {name!r}") as session:
            trunk = session.scalar(select(Trunk).where(Trunk.name == name))
            if trunk is None:
                raise NotFound(f"no trunk {name!r}")
            if host is not None:
                trunk.host = normalise_host(host)
            if port is not None:
                trunk.port = validate_port(port)
            if transport is not None:
                trunk.transport = _validate_transport(transport)
            if prefix is not KEEP:
                trunk.prefix = None if prefix is None else validate_prefix(prefix)
            if outside_number is not KEEP:
                trunk.outside_number = (
                    None
                    if outside_number is None
                    else validate_phone_number(outside_number, "outside number")
                )
            if use_pai is not None:
                trunk.use_pai = use_pai
            if register is not None:
                trunk.register = register
            if register_expires is not None:
                trunk.register_expires = _validate_register_expires(register_expires)
            _update_trunk_credentials(trunk, username, password, realm)
            _check_register(trunk)
            _check_trunk_clashes(session, trunk)
            session.flush()
            return _trunk_record(trunk)

    def find(self, name: str) -> TrunkRecord | None:
        with self._sessions() as session:
            trunk = session.scalar(select(Trunk).where(Trunk.name == name))
            return None if trunk is None else _trunk_record(trunk)

    def get(self, name: str) -> TrunkRecord:
        """The trunk named `name`; `NotFound` if there is none."""
        found = self.find(name)
        if found is None:
            raise NotFound(f"no trunk {name!r}")
        return found

    def find_by_prefix(self, prefix: str) -> TrunkRecord | None:
        """The trunk whose dialling prefix is exactly `prefix`."""
        with self._sessions() as session:
            trunk = session.scalar(select(Trunk).where(Trunk.prefix == prefix))
            return None if trunk is None else _trunk_record(trunk)

    def find_by_address(self, host: str, port: int) -> TrunkRecord | None:
        """The trunk configured at `host`:`port`, to recognise requests from it.

        The host is compared in its canonical spelling (case, IPv6 form); a trunk
        configured by name matches only that name, so a caller holding a source
        IP address must resolve trunk names itself.
        """
        try:
            wanted = normalise_host(host)
        except InvalidInput:
            return None
        with self._sessions() as session:
            trunk = session.scalar(select(Trunk).where(Trunk.host == wanted, Trunk.port == port))
            return None if trunk is None else _trunk_record(trunk)

    def list_trunks(self) -> list[TrunkRecord]:
        """All trunks, by name."""
        with self._sessions() as session:
            return [_trunk_record(t) for t in session.scalars(select(Trunk).order_by(Trunk.name))]

    def credentials(self, trunk: TrunkRecord | str) -> TrunkCredentials | None:
        """The username and HA1s of a trunk (by record or name), or None when it
        has no password. `NotFound` if the trunk does not exist."""
        name = trunk if isinstance(trunk, str) else trunk.name
        with self._sessions() as session:
            row = session.execute(
                select(Trunk.username, Trunk.realm, Trunk.ha1_md5, Trunk.ha1_sha256).where(
                    Trunk.name == name
                )
            ).first()
        if row is None:
            raise NotFound(f"no trunk {name!r}")
        username, realm, ha1_md5, ha1_sha256 = row
        if username is None or realm is None or ha1_md5 is None or ha1_sha256 is None:
            return None
        return TrunkCredentials(username, realm, ha1_md5, ha1_sha256)

    def delete(self, name: str) -> None:
        """Remove a trunk; `NotFound` if there is none."""
        with self._sessions.begin() as session:
            result = session.execute(delete(Trunk).where(Trunk.name == name))
            if _rowcount(result) == 0:
                raise NotFound(f"no trunk {name!r}")

    # `list` reads best at call sites (`trunks.list()`); defined last, under the
    # descriptive name, so the annotations above still mean the builtin.
    list = list_trunks


def _set_trunk_credentials(
    trunk: Trunk, username: str | None, password: str | None, realm: str | None
) -> None:
    """Fill the credential columns of a new trunk."""
    if username is not None:
        trunk.username = _validate_header_text("username", username, TRUNK_USERNAME_LENGTH)
    if password is None:
        if realm is not None:
            raise InvalidInput("a realm only matters with a password: give --password too")
        return
    if trunk.username is None:
        raise InvalidInput("a password needs the username it belongs to")
    _validate_secret("password", password)
    trunk.realm = _validate_header_text(
        "realm", trunk.host if realm is None else realm, REALM_LENGTH
    )
    trunk.ha1_md5 = compute_ha1(trunk.username, trunk.realm, password, Algorithm.MD5)
    trunk.ha1_sha256 = compute_ha1(trunk.username, trunk.realm, password, Algorithm.SHA256)


def _update_trunk_credentials(
    trunk: Trunk, username: str | Keep | None, password: str | None, realm: str | None
) -> None:
    if username is None:
        if password is not None or realm is not None:
            raise InvalidInput("a password or realm needs a username")
        trunk.username = trunk.realm = trunk.ha1_md5 = trunk.ha1_sha256 = None
        return
    new_username = trunk.username if username is KEEP else username
    renamed = username is not KEEP and username != trunk.username
    if password is None:
        # The hashes cover username and realm: changing either without the
        # password would leave credentials that can never match.
        if realm is not None and realm != trunk.realm:
            raise InvalidInput("changing the realm needs the password again (--password)")
        if renamed and trunk.ha1_md5 is not None:
            raise InvalidInput("changing the username needs the password again (--password)")
        if renamed:
            trunk.username = _validate_header_text(
                "username", new_username or "", TRUNK_USERNAME_LENGTH
            )
        return
    _set_trunk_credentials(
        trunk, new_username, password, realm if realm is not None else trunk.realm
    )


def _check_register(trunk: Trunk) -> None:
    if trunk.register and trunk.username is None:
        raise InvalidInput(
            "registering needs a username: the account the provider knows the trunk by"
        )


def _check_trunk_clashes(session: Session, trunk: Trunk) -> None:
    """Refuse a trunk that could not be told apart from another one.

    Besides equal names and addresses, overlapping prefixes are refused too: with
    "9" and "90" a number dialled as 90... could leave through either trunk.
    """
    query = select(Trunk)
    if trunk.id is not None:
        query = query.where(Trunk.id != trunk.id)
    # No autoflush: writing the edited row first would hit the unique constraints
    # and turn these precise messages into a generic one.
    with session.no_autoflush:
        others = session.scalars(query).all()
    for other in others:
        if other.name == trunk.name:
            raise Conflict(f"trunk {trunk.name!r} already exists")
        if (other.host, other.port) == (trunk.host, trunk.port):
            raise Conflict(
                f"trunk {other.name!r} already uses {trunk.host}:{trunk.port}; "
                "calls from there could not be told apart"
            )
        if trunk.prefix is not None and other.prefix is not None:
            if other.prefix == trunk.prefix:
                raise Conflict(f"prefix {trunk.prefix} already belongs to trunk {other.name!r}")
            if other.prefix.startswith(trunk.prefix) or trunk.prefix.startswith(other.prefix):
                raise Conflict(
                    f"prefix {trunk.prefix} overlaps prefix {other.prefix} of trunk "
                    f"{other.name!r}: a dialled number could match both"
                )


# --- DIDs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DidRecord:
    """An outside number mapped to a user (`user` is their username)."""

    number: str
    user: str
    created_at: datetime


class DidRepo:
    """Direct inward dialling numbers: extra numbers that reach a user.

    Numbers are matched exactly as the provider delivers them in the
    Request-URI, so a DID is entered in the form the provider uses.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def add(self, number: str, *, user: str) -> DidRecord:
        """Map `number` to the user named `user`. Raises `InvalidInput`,
        `NotFound` (no such user) or `Conflict` (a DID or an extension already)."""
        validate_phone_number(number, "DID")
        with _transaction(self._sessions, f"number {number} is already taken") as session:
            owner = session.scalar(select(User).where(User.username == user))
            if owner is None:
                raise NotFound(f"no user {user!r}")
            taken = session.scalar(
                select(User.username).join(Did, Did.user_id == User.id).where(Did.number == number)
            )
            if taken is not None:
                raise Conflict(f"DID {number} already belongs to user {taken!r}")
            extension_of = session.scalar(select(User.username).where(User.extension == number))
            if extension_of is not None:
                raise Conflict(
                    f"{number} is the extension of user {extension_of!r}; "
                    "it reaches them without a DID"
                )
            did = Did(number=number, user_id=owner.id)
            session.add(did)
            session.flush()
            return DidRecord(did.number, owner.username, did.created_at)

    def list_dids(self) -> list[DidRecord]:
        """All DIDs, by number."""
        with self._sessions() as session:
            rows = session.execute(
                select(Did.number, User.username, Did.created_at)
                .join(User, Did.user_id == User.id)
                .order_by(Did.number)
            ).all()
            return [DidRecord(row[0], row[1], row[2]) for row in rows]

    def delete(self, number: str) -> None:
        """Remove a DID; `NotFound` if there is none."""
        with self._sessions.begin() as session:
            result = session.execute(delete(Did).where(Did.number == number))
            if _rowcount(result) == 0:
                raise NotFound(f"no DID {number}")

    def user_for(self, number: str) -> UserRecord | None:
        """The user a call to `number` reaches: the one whose extension it is,
        else the one it is a DID of; None for nobody."""
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.extension == number))
            if user is None:
                user = session.scalar(
                    select(User).join(Did, Did.user_id == User.id).where(Did.number == number)
                )
            return None if user is None else _user_record(user)

    # See TrunkRepo.list.
    list = list_dids


# --- call log -----------------------------------------------------------------------


class CallDirection(enum.StrEnum):
    INTERNAL = "internal"  # user to user
    INBOUND = "inbound"  # from a trunk
    OUTBOUND = "outbound"  # to a trunk


class CallOutcome(enum.StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELLED = "cancelled"  # the caller hung up before an answer
    NOT_FOUND = "not-found"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    DECLINED = "declined"  # the called phone turned it down (603)
    BARRED = "barred"  # refused by dialling restrictions or a call limit
    ENDED_BY_RESTART = "ended-by-restart"  # still open when the server stopped


class EndedBy(enum.StrEnum):
    CALLER = "caller"
    CALLEE = "callee"
    SYSTEM = "system"  # teleoffice ended it (a timeout, a refusal, the portal)
    # The process that carried the call stopped (a crash, kill -9, a power cut)
    # and the next one found the call still open: nobody hung up, the PBX died.
    RESTART = "restart"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call of the call log. `outcome` and `ended_at` are None while it lasts.

    `call_id` is teleoffice's own identifier of the call, not a SIP Call-ID (a
    call has one per leg). `caller_user` and `callee_user` name the users
    involved, if any, so each user's log can be listed.
    """

    call_id: str
    direction: CallDirection
    caller_number: str
    callee_number: str  # what was dialled
    started_at: datetime
    caller_name: str | None = None
    callee_name: str | None = None
    route: str | None = None  # where it went: "extension 201", "trunk provider1"
    trunk: str | None = None
    caller_user: str | None = None
    callee_user: str | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: CallOutcome | None = None
    status: int | None = None  # the final SIP status, when there was one
    ended_by: EndedBy | None = None

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    @property
    def duration(self) -> timedelta | None:
        """Talk time: from the answer to the end; None if it was not answered or
        has not ended."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(self.ended_at - self.answered_at, timedelta(0))


_CALL_FIELDS = tuple(f.name for f in fields(CallRecord))
_CALL_TIMES = ("started_at", "ringing_at", "answered_at", "ended_at")
MAX_CALL_LOG_LIMIT = 10_000


def _loggable(value: str | None, limit: int) -> str | None:
    """`value` fit for the log: control characters replaced, cut to `limit`.

    Names and numbers come from peers' headers. A log line must be stored
    whatever they contain (losing the record of a call is worse than shortening
    a name), and must not carry terminal escapes to whoever prints it.
    """
    if value is None:
        return None
    cleaned = "".join("\ufffd" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in value)
    return cleaned[:limit]


def _checked_call(record: CallRecord) -> CallRecord:
    """`record` with its enums checked and its texts made storable."""
    try:
        direction = CallDirection(record.direction)
        outcome = None if record.outcome is None else CallOutcome(record.outcome)
        ended_by = None if record.ended_by is None else EndedBy(record.ended_by)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not record.call_id:
        raise InvalidInput("a call needs a call id")
    for name in _CALL_TIMES:
        value = getattr(record, name)
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} must be a timezone-aware time")
    if record.status is not None and not 100 <= record.status <= 699:
        raise InvalidInput(f"status {record.status} is not a SIP status code")
    if (outcome is None) != (record.ended_at is None):
        raise InvalidInput("a call has an outcome exactly when it has ended")
    return replace(
        record,
        direction=direction,
        outcome=outcome,
        ended_by=ended_by,
        caller_number=_loggable(record.caller_number, LOGGED_NUMBER_LENGTH) or "",
        callee_number=_loggable(record.callee_number, LOGGED_NUMBER_LENGTH) or "",
        caller_name=_loggable(record.caller_name, DISPLAY_NAME_LENGTH),
        callee_name=_loggable(record.callee_name, DISPLAY_NAME_LENGTH),
    )


def _call_record(row: CallLogEntry) -> CallRecord:
    return CallRecord(
        call_id=row.call_id,
        direction=CallDirection(row.direction),
        caller_number=row.caller_number,
        callee_number=row.callee_number,
        started_at=row.started_at,
        caller_name=row.caller_name,
        callee_name=row.callee_name,
        route=row.route,
        trunk=row.trunk,
        caller_user=row.caller_user,
        callee_user=row.callee_user,
        ringing_at=row.ringing_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        outcome=None if row.outcome is None else CallOutcome(row.outcome),
        status=row.status,
        ended_by=None if row.ended_by is None else EndedBy(row.ended_by),
    )


def _call_values(record: CallRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in _CALL_FIELDS}
    for name in ("direction", "outcome", "ended_by"):
        if values[name] is not None:
            values[name] = str(values[name])
    return values


# What a later snapshot of a logged call may change before its end.
PROGRESS_FIELDS = (
    "ringing_at",
    "answered_at",
    "callee_name",
    "route",
    "trunk",
    "callee_user",
    "direction",
)


class CallLogRepo:
    """The call log: one row per call, written as the call goes along.

    The call engine calls `start` when a call arrives, `update` as it rings and
    is answered, and `finish` when it ends; at start-up the server calls
    `close_unfinished`, since calls do not survive a restart.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def start(self, record: CallRecord) -> CallRecord:
        """Log a new call. `Conflict` if its call id is already logged."""
        checked = _checked_call(record)
        clash = f"call {record.call_id!r} is already logged"
        with _transaction(self._sessions, clash) as session:
            if session.scalar(
                select(CallLogEntry.id).where(CallLogEntry.call_id == record.call_id)
            ):
                raise Conflict(clash)
            session.add(CallLogEntry(**_call_values(checked)))
        return checked

    def update(self, call_id: str, /, **changes: Any) -> CallRecord:
        """Change fields of a logged call (any of CallRecord's but `call_id`) and
        return it as it is now. `NotFound`, or `InvalidInput` for an unknown field
        or a bad value."""
        unknown = set(changes) - set(_CALL_FIELDS) | ({"call_id"} & set(changes))
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))} of a logged call")
        with self._sessions.begin() as session:
            row = self._row(session, call_id)
            checked = _checked_call(replace(_call_record(row), **changes))
            for name, value in _call_values(checked).items():
                setattr(row, name, value)
        return checked

    def finish(
        self,
        call_id: str,
        *,
        outcome: CallOutcome,
        ended_at: datetime,
        status: int | None = None,
        ended_by: EndedBy | None = None,
    ) -> CallRecord:
        """Record the end of a call and return it.

        The first end wins: a call can be reported ended twice (a BYE crossing a
        timeout, or `close_unfinished` racing the last call of a stopping
        server), and the later report must not rewrite what happened.
        """
        with self._sessions.begin() as session:
            row = self._row(session, call_id)
            current = _call_record(row)
            if current.finished:
                return current
            checked = _checked_call(
                replace(
                    current, outcome=outcome, ended_at=ended_at, status=status, ended_by=ended_by
                )
            )
            for name, value in _call_values(checked).items():
                setattr(row, name, value)
        return checked

    def record_all(self, entries: Sequence[CallRecord]) -> None:
        """Write the latest snapshot of several calls in one transaction (what the
        server does every 0.2 s): a call not logged yet is inserted whole; a
        logged one takes the snapshot's progress (`PROGRESS_FIELDS`) and its end
        unless an end is recorded already (the first end wins, as in `finish`).
        One transaction and one query for the batch instead of up to three per
        call. `InvalidInput` for a bad entry, and then nothing is written."""
        if not entries:
            return
        checked = [_checked_call(entry) for entry in entries]
        ids = {entry.call_id for entry in checked}
        with _transaction(self._sessions, "a call was logged twice at once") as session:
            rows = {
                row.call_id: row
                for row in session.scalars(
                    select(CallLogEntry).where(CallLogEntry.call_id.in_(ids))
                )
            }
            for entry in checked:
                row = rows.get(entry.call_id)
                if row is None:
                    row = CallLogEntry(**_call_values(entry))
                    session.add(row)
                    rows[entry.call_id] = row
                    continue
                current = _call_record(row)
                merged = replace(
                    current, **{name: getattr(entry, name) for name in PROGRESS_FIELDS}
                )
                if (
                    not current.finished
                    and entry.outcome is not None
                    and entry.ended_at is not None
                ):
                    merged = replace(
                        merged,
                        outcome=entry.outcome,
                        ended_at=entry.ended_at,
                        status=entry.status,
                        ended_by=entry.ended_by,
                    )
                for name, value in _call_values(_checked_call(merged)).items():
                    setattr(row, name, value)

    def get(self, call_id: str) -> CallRecord:
        with self._sessions() as session:
            return _call_record(self._row(session, call_id))

    def recent(self, limit: int = 50, user: str | None = None) -> list[CallRecord]:
        """The latest calls, newest first; with `user`, only the calls that user
        made or received (by username, so deleted users' calls still show)."""
        if not 1 <= limit <= MAX_CALL_LOG_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_CALL_LOG_LIMIT}")
        query = select(CallLogEntry).order_by(
            CallLogEntry.started_at.desc(), CallLogEntry.id.desc()
        )
        if user is not None:
            query = query.where(
                or_(CallLogEntry.caller_user == user, CallLogEntry.callee_user == user)
            )
        with self._sessions() as session:
            return [_call_record(row) for row in session.scalars(query.limit(limit))]

    def close_unfinished(self, now: datetime) -> int:
        """Mark every call without an end as ended by a restart; returns how many.

        Run at server start: calls live in memory and were cut when the previous
        process stopped, so any open row is a call that ended then.  `now` is
        the end recorded: the moment the previous process died is not known
        (its last write could be minutes older than its death), and the restart
        is the one time that is certainly not before the call's end.  With one
        process per database this is safe; nodes sharing a database must not
        close each other's calls, so a cluster will scope this by node.
        """
        if now.tzinfo is None:
            raise InvalidInput("now must be a timezone-aware time")
        with self._sessions.begin() as session:
            result = session.execute(
                update(CallLogEntry)
                .where(CallLogEntry.ended_at.is_(None))
                .values(
                    ended_at=now,
                    outcome=str(CallOutcome.ENDED_BY_RESTART),
                    ended_by=str(EndedBy.RESTART),
                )
            )
            return _rowcount(result)

    @staticmethod
    def _row(session: Session, call_id: str) -> CallLogEntry:
        row = session.scalar(select(CallLogEntry).where(CallLogEntry.call_id == call_id))
        if row is None:
            raise NotFound(f"no call {call_id!r} in the log")
        return row


# --- dialling restrictions -----------------------------------------------------------

# The profile of every user without one of their own; it cannot be deleted.
DEFAULT_RESTRICTION = DEFAULT_PROFILE.name


@dataclass(frozen=True, slots=True)
class RestrictionRecord:
    """A restriction profile as stored: rules as text, in the order given.

    `users` names the users it is explicitly assigned to (users without an
    assignment get `default` and are not listed).
    """

    name: str
    description: str
    allowed: tuple[str, ...]
    barred: tuple[str, ...]
    emergency: tuple[str, ...]
    users: tuple[str, ...]
    created_at: datetime

    def profile(self) -> RestrictionProfile:
        """The profile the call engine checks numbers against."""
        return RestrictionProfile.build(
            self.name,
            allowed=self.allowed,
            barred=self.barred,
            emergency=self.emergency,
            description=self.description,
        )


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.splitlines() if line.strip())


def _rules(what: str, texts: Iterable[str]) -> tuple[str, ...]:
    """Rules in their canonical spelling (no leading '_', labels trimmed);
    `InvalidInput` with the parser's explanation for a bad one."""
    out: list[str] = []
    for text in texts:
        try:
            rule = str(parse_rule(text))
        except PatternError as exc:
            raise InvalidInput(f"{what}: {exc}") from None
        if rule not in out:  # a repeated rule changes nothing; keep the list tidy
            out.append(rule)
    return tuple(out)


def _emergency_numbers(numbers: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for number in numbers:
        try:
            validate_emergency(number)
        except PatternError as exc:
            raise InvalidInput(str(exc)) from None
        if number not in out:
            out.append(number)
    return tuple(out)


def _restriction_name(name: str) -> str:
    try:
        return validate_profile_name(name)
    except PatternError as exc:
        raise InvalidInput(str(exc)) from None


def _restriction_description(description: str) -> str:
    if len(description) > RESTRICTION_DESCRIPTION_LENGTH:
        raise InvalidInput(
            f"description is longer than {RESTRICTION_DESCRIPTION_LENGTH} characters"
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in description):
        raise InvalidInput("description must not contain control characters")
    return description


class RestrictionRepo:
    """Dialling restriction profiles and which user has which (rule T11).

    Migration 0003 creates the built-in profiles `default`, `internal-only` and
    `unrestricted`; administrators may change them. A profile assigned to
    anybody cannot be deleted, and `default` never can, since it is what every
    user without an assignment gets.
    """

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def add(
        self,
        name: str,
        *,
        allowed: Iterable[str] = (),
        barred: Iterable[str] = (),
        emergency: Iterable[str] = DEFAULT_EMERGENCY,
        description: str = "",
    ) -> RestrictionRecord:
        """Create a profile. Raises `InvalidInput` (a bad pattern, number or name)
        or `Conflict` (the name is taken)."""
        row = RestrictionProfileRow(
            name=_restriction_name(name),
            description=_restriction_description(description),
            allowed="\n".join(_rules("allowed pattern", allowed)),
            barred="\n".join(_rules("barred pattern", barred)),
            emergency="\n".join(_emergency_numbers(emergency)),
        )
        clash = f"restriction profile {name!r} already exists"
        with _transaction(self._sessions, clash) as session:
            if self._row(session, name) is not None:
                raise Conflict(clash)
            session.add(row)
            session.flush()
            return self._record(session, row)

    def update(
        self,
        name: str,
        *,
        allowed: Iterable[str] | None = None,
        barred: Iterable[str] | None = None,
        emergency: Iterable[str] | None = None,
        description: str | None = None,
        add_allowed: Iterable[str] = (),
        add_barred: Iterable[str] = (),
    ) -> RestrictionRecord:
        """Replace the lists given (None keeps a list) and append `add_allowed`
        and `add_barred`. Raises `NotFound` or `InvalidInput`; on any error
        nothing changes."""
        if description is not None:
            _restriction_description(description)
        new_allowed = None if allowed is None else _rules("allowed pattern", allowed)
        new_barred = None if barred is None else _rules("barred pattern", barred)
        more_allowed = _rules("allowed pattern", add_allowed)
        more_barred = _rules("barred pattern", add_barred)
        new_emergency = None if emergency is None else _emergency_numbers(emergency)
        with _transaction(self._sessions, f"cannot update profile {name!r}") as session:
            row = self._row(session, name)
            if row is None:
                raise NotFound(f"no restriction profile {name!r}")
            base_allowed = _lines(row.allowed) if new_allowed is None else new_allowed
            base_barred = _lines(row.barred) if new_barred is None else new_barred
            row.allowed = "\n".join(_rules("allowed pattern", (*base_allowed, *more_allowed)))
            row.barred = "\n".join(_rules("barred pattern", (*base_barred, *more_barred)))
            if new_emergency is not None:
                row.emergency = "\n".join(new_emergency)
            if description is not None:
                row.description = description
            session.flush()
            return self._record(session, row)

    def find(self, name: str) -> RestrictionRecord | None:
        with self._sessions() as session:
            row = self._row(session, name)
            return None if row is None else self._record(session, row)

    def get(self, name: str) -> RestrictionRecord:
        found = self.find(name)
        if found is None:
            raise NotFound(f"no restriction profile {name!r}")
        return found

    def list_profiles(self) -> list[RestrictionRecord]:
        """All profiles, by name, with the users assigned to each."""
        with self._sessions() as session:
            users: dict[int, list[str]] = {}
            for profile_id, username in session.execute(
                select(UserRestriction.profile_id, User.username)
                .join(User, UserRestriction.user_id == User.id)
                .order_by(User.username)
            ):
                users.setdefault(profile_id, []).append(username)
            rows = session.scalars(
                select(RestrictionProfileRow).order_by(RestrictionProfileRow.name)
            )
            return [_restriction_record(row, users.get(row.id, [])) for row in rows]

    def delete(self, name: str) -> None:
        """Remove a profile; `Conflict` while it is `default` or assigned to anybody."""
        if name == DEFAULT_RESTRICTION:
            raise Conflict(
                f"profile {DEFAULT_RESTRICTION!r} cannot be deleted: it applies to every user "
                "without a profile of their own (change it with `restriction set` instead)"
            )
        with _transaction(self._sessions, f"profile {name!r} is in use") as session:
            row = self._row(session, name)
            if row is None:
                raise NotFound(f"no restriction profile {name!r}")
            users = self._users_of(session, row.id)
            if users:
                shown = ", ".join(users[:5]) + (" ..." if len(users) > 5 else "")
                raise Conflict(
                    f"profile {name!r} is assigned to {len(users)} user(s) ({shown}); "
                    "give them another profile first"
                )
            session.delete(row)

    def assign(self, username: str, profile: str) -> None:
        """Give the user `profile`. Raises `NotFound` for either name."""
        with _transaction(self._sessions, f"cannot assign {profile!r}") as session:
            user_id = session.scalar(select(User.id).where(User.username == username))
            if user_id is None:
                raise NotFound(f"no user {username!r}")
            row = self._row(session, profile)
            if row is None:
                raise NotFound(f"no restriction profile {profile!r}")
            link = session.get(UserRestriction, user_id)
            if link is None:
                session.add(UserRestriction(user_id=user_id, profile_id=row.id))
            else:
                link.profile_id = row.id

    def profile_name_for(self, username: str) -> str:
        """The name of the profile that applies to the user (`default` without one)."""
        with self._sessions() as session:
            if session.scalar(select(User.id).where(User.username == username)) is None:
                raise NotFound(f"no user {username!r}")
            name = session.scalar(
                select(RestrictionProfileRow.name)
                .join(UserRestriction, UserRestriction.profile_id == RestrictionProfileRow.id)
                .join(User, UserRestriction.user_id == User.id)
                .where(User.username == username)
            )
            return name or DEFAULT_RESTRICTION

    def profile_for(self, username: str) -> RestrictionProfile:
        """The profile that applies to the user, ready for the call engine."""
        found = self.find(self.profile_name_for(username))
        # Without its row (a database edited by hand) `default` is the built-in one.
        return DEFAULT_PROFILE if found is None else found.profile()

    def snapshot(self) -> tuple[dict[str, RestrictionProfile], dict[str, str]]:
        """Every profile by name, and the profile name of every user that has one:
        two queries, for the server's directory, which reloads every few seconds."""
        with self._sessions() as session:
            rows = session.scalars(select(RestrictionProfileRow)).all()
            profiles = {row.name: _restriction_record(row, []).profile() for row in rows}
            assigned = {
                username: name
                for username, name in session.execute(
                    select(User.username, RestrictionProfileRow.name)
                    .join(UserRestriction, UserRestriction.user_id == User.id)
                    .join(
                        RestrictionProfileRow,
                        UserRestriction.profile_id == RestrictionProfileRow.id,
                    )
                )
            }
            return profiles, assigned

    @staticmethod
    def _row(session: Session, name: str) -> RestrictionProfileRow | None:
        return session.scalar(
            select(RestrictionProfileRow).where(RestrictionProfileRow.name == name)
        )

    @staticmethod
    def _users_of(session: Session, profile_id: int) -> list[str]:
        return list(
            session.scalars(
                select(User.username)
                .join(UserRestriction, UserRestriction.user_id == User.id)
                .where(UserRestriction.profile_id == profile_id)
                .order_by(User.username)
            )
        )

    def _record(self, session: Session, row: RestrictionProfileRow) -> RestrictionRecord:
        return _restriction_record(row, self._users_of(session, row.id))

    # See TrunkRepo.list.
    list = list_profiles


def _restriction_record(row: RestrictionProfileRow, users: Iterable[str]) -> RestrictionRecord:
    return RestrictionRecord(
        name=row.name,
        description=row.description,
        allowed=_lines(row.allowed),
        barred=_lines(row.barred),
        emergency=_lines(row.emergency),
        users=tuple(users),
        created_at=row.created_at,
    )
