"""Typed data access for the CLI and the server.

Every public method runs in its own transaction and either completes or changes
nothing. What goes in and out are plain values and frozen records; ORM objects
never leave this module, so callers cannot trigger lazy loads or stray writes.
Input the schema would reject is refused here first with a `StoreError` that
says what is wrong, because a database IntegrityError names a constraint, not
the problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from teleoffice.sip.digest import Algorithm, compute_ha1
from teleoffice.store.models import (
    DISPLAY_NAME_LENGTH,
    NAME_LENGTH,
    PhoneAccount,
    Registration,
    User,
)

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
        self._dummy_hash: str | None = None

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
    ) -> UserRecord:
        """Change the given fields (None leaves a field as it is).

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
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"no user {username!r}")
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
        if user is None or stored is None:
            self._burn(password)
            return None
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(stored):
            with self._sessions.begin() as session:
                session.execute(
                    update(User)
                    .where(User.id == user.id, User.password_hash == stored)
                    .values(password_hash=self._hasher.hash(password))
                )
        return _user_record(user)

    def _burn(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("teleoffice-no-such-user")
        with suppress(VerificationError):
            self._hasher.verify(self._dummy_hash, password)


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
            for binding in saves:
                _upsert(session, binding)


def _upsert(session: Session, binding: StoredBinding) -> None:
    values = _binding_values(binding)
    changes = {k: v for k, v in values.items() if k not in ("account", "uri")}
    dialect = session.get_bind().dialect.name
    # Both SQLite and PostgreSQL have INSERT .. ON CONFLICT, which is atomic even
    # when two writers race; other databases fall back to look-then-write.
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert(Registration).values(**values)
        session.execute(stmt.on_conflict_do_update(index_elements=["account", "uri"], set_=changes))
        return
    existing = session.scalar(
        select(Registration).where(
            Registration.account == binding.account, Registration.uri == binding.uri
        )
    )
    if existing is None:
        session.add(Registration(**values))
    else:
        for key, value in changes.items():
            setattr(existing, key, value)
    session.flush()


def _rowcount(result: Any) -> int:
    # DELETE results are CursorResults, which carry the affected row count; the
    # generic Result type the session returns does not declare it.
    count = getattr(result, "rowcount", 0)
    return int(count) if count is not None else 0
