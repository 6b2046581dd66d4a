"""Telecommuter permissions, hot-desk login codes and saved numbers (rules T1, T2, T10).

The permission flag is `users.telecommuter_allowed`; the numbers an
administrator allows are patterns in the restriction pattern language
(`teleoffice.calls.restrictions`), stored in their canonical spelling and only
if the parser accepts them, so the call layer never meets one it cannot match.
An empty list means: any number the user may dial anyway.

Login codes are typed on a keypad, so they are short and guessable; they are
kept as argon2id hashes like portal passwords, and checking one costs the same
work whether or not the extension exists or has a code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from teleoffice.calls.restrictions import PatternError, parse_pattern
from teleoffice.store.models import (
    SAVED_NUMBER_LABEL_LENGTH,
    SavedNumber,
    TelecommuterSettings,
    User,
)
from teleoffice.store.repos import (
    EXTENSION_RE,
    Conflict,
    InvalidInput,
    NotFound,
    Sessions,
    _transaction,
    validate_forward_number,
)
from teleoffice.store.secrets import SecretChecker

__all__ = [
    "MAX_SAVED_NUMBERS",
    "MAX_TELECOMMUTER_PATTERNS",
    "SavedNumberRecord",
    "TelecommuterRecord",
    "TelecommuterRepo",
    "telecommuter_patterns",
    "validate_login_code",
]

LOGIN_CODE_RE: Final = re.compile(r"[0-9]{4,12}")
MAX_SAVED_NUMBERS: Final = 20
# Far more than any real policy needs; it bounds what one command can store.
MAX_TELECOMMUTER_PATTERNS: Final = 50


def validate_login_code(code: str) -> str:
    """A hot-desk login code: 4 to 12 digits (it is typed on a phone keypad)."""
    # A regex on [0-9], not str.isdigit(), which also accepts other scripts' digits.
    if not isinstance(code, str) or not LOGIN_CODE_RE.fullmatch(code):
        raise InvalidInput("a login code must be 4 to 12 digits")
    return code


def telecommuter_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """The patterns in canonical spelling, duplicates dropped; `InvalidInput`
    with the parser's explanation for one the PBX could not match."""
    out: list[str] = []
    for text in patterns:
        if not isinstance(text, str):
            raise InvalidInput(f"telecommuter pattern {text!r} is not text")
        if "=" in text:
            # Labels explain a barred call; a refused telecommuter number gets
            # its own message, so a label would only be silently ignored.
            raise InvalidInput(f"telecommuter pattern {text!r}: patterns here take no =LABEL")
        try:
            pattern = parse_pattern(text).text
        except PatternError as exc:
            raise InvalidInput(f"telecommuter pattern: {exc}") from None
        if pattern not in out:
            out.append(pattern)
    if len(out) > MAX_TELECOMMUTER_PATTERNS:
        raise InvalidInput(f"at most {MAX_TELECOMMUTER_PATTERNS} telecommuter patterns")
    return tuple(out)


def _validate_label(label: str) -> str:
    if not isinstance(label, str):
        raise InvalidInput("a label must be text")
    label = label.strip()
    if len(label) > SAVED_NUMBER_LABEL_LENGTH:
        raise InvalidInput(f"a label is at most {SAVED_NUMBER_LABEL_LENGTH} characters")
    # Shown in the portal and on the command line; no control or format characters.
    if not label.isprintable():
        raise InvalidInput("a label must contain only printable characters")
    return label


@dataclass(frozen=True, slots=True)
class TelecommuterRecord:
    """A user's telecommuter settings; the login code itself never leaves the store."""

    username: str
    allowed: bool
    patterns: tuple[str, ...]  # empty: any number the user may dial
    has_login_code: bool


@dataclass(frozen=True, slots=True)
class SavedNumberRecord:
    number: str
    label: str


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.splitlines() if line.strip())


class TelecommuterRepo:
    """Telecommuter settings, login codes and saved numbers of users.

    `hasher` hashes login codes (argon2id by default; tests pass a cheaper one).
    """

    def __init__(self, sessions: Sessions, hasher: PasswordHasher | None = None) -> None:
        self._sessions = sessions
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._secrets = SecretChecker(self._hasher)

    # --- settings -----------------------------------------------------------------

    def get(self, username: str) -> TelecommuterRecord:
        """The user's settings; `NotFound` for an unknown user."""
        with self._sessions() as session:
            user = self._user(session, username)
            row = session.get(TelecommuterSettings, user.id)
            return self._record(user, row)

    def set_patterns(self, username: str, patterns: Iterable[str]) -> TelecommuterRecord:
        """Replace the numbers the user may use as a telecommuter (empty: any
        number they may dial). `InvalidInput` for a pattern the parser refuses."""
        canonical = telecommuter_patterns(patterns)
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            row = self._settings(session, user.id)
            row.patterns = "\n".join(canonical)
            session.flush()
            return self._record(user, row)

    def set_allowed(self, username: str, allowed: bool) -> TelecommuterRecord:
        """Allow or forbid telecommuter mode for the user (rule T1)."""
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            user.telecommuter_allowed = bool(allowed)
            session.flush()
            return self._record(user, session.get(TelecommuterSettings, user.id))

    def set_login_code(self, username: str, code: str) -> None:
        """Set the user's hot-desk login code (4 to 12 digits), kept hashed."""
        code_hash = self._hasher.hash(validate_login_code(code))
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            self._settings(session, user.id).login_code_hash = code_hash

    def clear_login_code(self, username: str) -> None:
        """Remove the user's login code: they can no longer log in on a phone by code."""
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            row = session.get(TelecommuterSettings, user.id)
            if row is not None:
                row.login_code_hash = None

    def verify_login_code(self, extension: str, code: str) -> str | None:
        """The username of the user with `extension` if `code` is their login
        code, else None.

        Unknown extensions and users without a code cost the same argon2 work
        as a wrong code, so a caller cannot tell them apart by timing. Input
        that cannot be an extension or a code at all is refused at once: its
        shape is public knowledge and reveals nothing about who exists.
        """
        if not isinstance(extension, str) or not EXTENSION_RE.fullmatch(extension):
            return None
        if not isinstance(code, str) or not LOGIN_CODE_RE.fullmatch(code):
            return None
        with self._sessions() as session:
            found = session.execute(
                select(User.username, User.id, TelecommuterSettings.login_code_hash)
                .outerjoin(TelecommuterSettings, TelecommuterSettings.user_id == User.id)
                .where(User.extension == extension)
            ).first()
        stored = None if found is None else found[2]
        checked = self._secrets.check(stored, code)
        if found is None or not checked.ok:
            return None
        username, user_id = found[0], found[1]
        if checked.upgraded is not None:
            # Only if the code was not changed meanwhile.
            with self._sessions.begin() as session:
                session.execute(
                    update(TelecommuterSettings)
                    .where(
                        TelecommuterSettings.user_id == user_id,
                        TelecommuterSettings.login_code_hash == stored,
                    )
                    .values(login_code_hash=checked.upgraded)
                )
        return str(username)

    def snapshot(self) -> dict[str, tuple[str, ...]]:
        """Username -> allowed patterns, for every user who has any: one query,
        for the server's directory."""
        with self._sessions() as session:
            rows = session.execute(
                select(User.username, TelecommuterSettings.patterns)
                .join(User, TelecommuterSettings.user_id == User.id)
                .where(TelecommuterSettings.patterns != "")
            )
            out = {username: _lines(text) for username, text in rows}
            return {username: patterns for username, patterns in out.items() if patterns}

    # --- saved numbers ------------------------------------------------------------

    def saved_numbers(self, username: str) -> list[SavedNumberRecord]:
        """The user's saved numbers, oldest first; `NotFound` for an unknown user."""
        with self._sessions() as session:
            user = self._user(session, username)
            rows = session.scalars(
                select(SavedNumber).where(SavedNumber.user_id == user.id).order_by(SavedNumber.id)
            )
            return [SavedNumberRecord(row.number, row.label) for row in rows]

    def add_saved_number(self, username: str, number: str, label: str = "") -> SavedNumberRecord:
        """Save a number (as the user would dial it) with an optional label; a
        number already saved gets the new label. `InvalidInput` for a bad number
        or label, `Conflict` when the user already has `MAX_SAVED_NUMBERS`."""
        if not isinstance(number, str):
            raise InvalidInput("a saved number must be text")
        validate_forward_number(number, "saved number")
        label = _validate_label(label)
        with _transaction(self._sessions, f"number {number} is already saved") as session:
            user = self._user(session, username)
            row = self._saved(session, user.id, number)
            if row is not None:
                row.label = label
                return SavedNumberRecord(row.number, row.label)
            count = session.scalar(
                select(func.count()).select_from(SavedNumber).where(SavedNumber.user_id == user.id)
            )
            if (count or 0) >= MAX_SAVED_NUMBERS:
                raise Conflict(
                    f"user {username!r} already has {MAX_SAVED_NUMBERS} saved numbers, "
                    "the most allowed; delete one first"
                )
            session.add(SavedNumber(user_id=user.id, number=number, label=label))
            session.flush()
            return SavedNumberRecord(number, label)

    def delete_saved_number(self, username: str, number: str) -> None:
        """Forget a saved number; `NotFound` when the user or the number is unknown."""
        with _transaction(self._sessions, f"cannot delete number {number!r}") as session:
            user = self._user(session, username)
            row = self._saved(session, user.id, number)
            if row is None:
                raise NotFound(f"user {username!r} has no saved number {number!r}")
            session.delete(row)

    # --- helpers ------------------------------------------------------------------

    @staticmethod
    def _user(session: Session, username: str) -> User:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user

    @staticmethod
    def _saved(session: Session, user_id: int, number: str) -> SavedNumber | None:
        return session.scalar(
            select(SavedNumber).where(SavedNumber.user_id == user_id, SavedNumber.number == number)
        )

    @staticmethod
    def _settings(session: Session, user_id: int) -> TelecommuterSettings:
        """The user's settings row, created (empty) if they have none yet."""
        row = session.get(TelecommuterSettings, user_id)
        if row is None:
            row = TelecommuterSettings(user_id=user_id, patterns="", login_code_hash=None)
            session.add(row)
        return row

    @staticmethod
    def _record(user: User, row: TelecommuterSettings | None) -> TelecommuterRecord:
        return TelecommuterRecord(
            username=user.username,
            allowed=user.telecommuter_allowed,
            patterns=() if row is None else _lines(row.patterns),
            has_login_code=row is not None and row.login_code_hash is not None,
        )
