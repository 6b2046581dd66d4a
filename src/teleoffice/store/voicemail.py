"""Voicemail: mailboxes, PINs, greetings and recorded messages (rule T12).

Theory of operation
-------------------
A message is two things that no single transaction covers: a WAV file under
``<root>/<username>/`` and a row in `voicemail_messages` naming it. Every
change orders its two writes so that a crash at any point leaves at worst a
file that no row names, never a row pointing at a half-written file:

- recording: `WavWriter` writes a hidden ``.NAME.*.part`` file; committing
  fsyncs it and renames it to NAME atomically (see `teleoffice.media.wavfile`),
  and only then is the row inserted. A failed insert removes the file again.
- deleting a message: the row goes first, then the file.
- replacing a greeting: the new file is published, the row is pointed at it,
  then the old file is removed.

`recover()`, run at start-up before anything records, removes the partial
files, the files no row names, and (for files lost some other way: a restored
backup, an administrator's `rm`) the rows whose file is gone.

File names never come from input: they are random tokens the store chooses,
and a name read back from the database is checked against the same shape
before it becomes a path. Folders are named by username, which the directory
restricts to letters, digits, '.', '_' and '-' without a leading dot, so no
name can step outside the root.

PINs are typed on a keypad, so they are short and guessable; they are kept as
argon2id hashes, and checking one costs the same work whether or not the user
exists or has a PIN.

Everything here blocks (database, fsync, argon2); asyncio callers use
`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from teleoffice.media.wavfile import WavWriter, remove_partials
from teleoffice.store.models import (
    DISPLAY_NAME_LENGTH,
    LOGGED_NUMBER_LENGTH,
    User,
    VoicemailBox,
    VoicemailMessage,
    utcnow,
)
from teleoffice.store.repos import (
    USERNAME_RE,
    InvalidInput,
    NotFound,
    Sessions,
    _rowcount,
    _transaction,
)
from teleoffice.store.secrets import SecretChecker

__all__ = [
    "DEFAULT_MIN_DURATION",
    "BoxRecord",
    "MessageRecord",
    "PendingGreeting",
    "PendingMessage",
    "PendingRecording",
    "VoicemailStore",
    "validate_pin",
]

log = logging.getLogger(__name__)

PIN_RE: Final = re.compile(r"[0-9]{4,12}")
# Shorter recordings are a caller hanging up at the beep, not a message.
DEFAULT_MIN_DURATION: Final = 1.0
# The names the store gives files: a kind and 128 random bits.
_TOKEN_BYTES: Final = 16
_FILE_RE: Final = re.compile(r"(?:msg|greeting)-[0-9a-f]{32}\.wav")
# Message ids are SQLite/PostgreSQL 64-bit integers; anything outside cannot
# name a row (and a larger Python int would overflow the driver).
_MAX_ID: Final = 2**63 - 1


def validate_pin(pin: str) -> str:
    """A voicemail PIN: 4 to 12 digits (it is typed on a phone keypad)."""
    # A regex on [0-9], not str.isdigit(), which also accepts other scripts' digits.
    if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
        raise InvalidInput("a voicemail PIN must be 4 to 12 digits")
    return pin


@dataclass(frozen=True, slots=True)
class BoxRecord:
    """A user's mailbox as the rest of the program sees it (no PIN, no paths)."""

    username: str
    enabled: bool  # users.voicemail_enabled: whether calls may reach the mailbox
    has_pin: bool
    has_greeting: bool  # a recorded greeting; without one the system greeting plays
    unsolicited_mwi: bool


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: int
    username: str
    caller_number: str
    caller_name: str | None
    created_at: datetime
    duration: float  # seconds
    heard: bool


class PendingRecording:
    """A recording in progress: write 16-bit 8 kHz mono PCM into it, then hand
    it back to the store to commit or discard. Nothing of it is visible (or
    survives a crash) before the commit."""

    def __init__(self, username: str, writer: WavWriter, started_at: datetime) -> None:
        self.username = username
        self.writer = writer
        self.started_at = started_at

    def write(self, pcm: bytes) -> None:
        self.writer.write(pcm)

    @property
    def duration(self) -> float:
        """Seconds recorded so far."""
        return self.writer.duration

    @property
    def finished(self) -> bool:
        """Committed or discarded: it takes no more audio."""
        return self.writer.closed


class PendingMessage(PendingRecording):
    """A message being left in a mailbox (`VoicemailStore.new_message_writer`)."""


class PendingGreeting(PendingRecording):
    """A greeting being recorded (`VoicemailStore.new_greeting_writer`)."""


def _clean(text: str | None, limit: int) -> str:
    """Caller details as the call carried them, made fit to store and show:
    no control characters, at most `limit` characters. A message is never
    refused for an odd From header."""
    if not text:
        return ""
    kept = "".join(ch for ch in str(text) if ch.isprintable())
    return kept.strip()[:limit]


def _valid_id(message_id: object) -> bool:
    return (
        isinstance(message_id, int)
        and not isinstance(message_id, bool)
        and 1 <= message_id <= _MAX_ID
    )


def _unlink(path: Path) -> bool:
    """Remove a file; True if it was there. Other errors are logged, not raised:
    the row is already gone and `recover()` will retry."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("could not remove voicemail file %s: %s", path, exc)
        return False
    return True


class VoicemailStore:
    """Mailbox settings (`voicemail_boxes`), messages (`voicemail_messages`)
    and their audio files under `root`.

    `hasher` hashes PINs (argon2id by default; tests pass a cheaper one);
    `clock` gives the time stamped on new messages.
    """

    def __init__(
        self,
        sessions: Sessions,
        root: Path,
        hasher: PasswordHasher | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        # Absolute once: a later change of working directory moves nothing.
        self._root = Path(root).resolve()
        self._hasher = hasher if hasher is not None else PasswordHasher()
        self._clock = clock
        self._secrets = SecretChecker(self._hasher)

    @property
    def root(self) -> Path:
        return self._root

    # --- mailbox settings ---------------------------------------------------------

    def box(self, username: str) -> BoxRecord:
        """The user's mailbox; `NotFound` for an unknown user."""
        with self._sessions() as session:
            user = self._user(session, username)
            return self._box_record(user, session.get(VoicemailBox, user.id))

    def set_pin(self, username: str, pin: str) -> None:
        """Set the PIN for reaching the mailbox by phone (4 to 12 digits), kept hashed."""
        pin_hash = self._hasher.hash(validate_pin(pin))
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            self._box_row(session, user.id).pin_hash = pin_hash

    def clear_pin(self, username: str) -> None:
        """Remove the PIN: the mailbox can then be reached only from the user's own
        phones or the portal (the menu decides; the store only says there is none)."""
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            row = session.get(VoicemailBox, user.id)
            if row is not None:
                row.pin_hash = None

    def verify_pin(self, username: str, pin: str) -> bool:
        """Whether `pin` is the user's voicemail PIN.

        Unknown users and users without a PIN cost the same argon2 work as a
        wrong PIN, so a caller cannot tell them apart by timing. Input that
        cannot be a PIN at all is refused at once: its shape is public
        knowledge and reveals nothing about the mailbox.
        """
        if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
            return False
        with self._sessions() as session:
            found = session.execute(
                select(User.id, VoicemailBox.pin_hash)
                .outerjoin(VoicemailBox, VoicemailBox.user_id == User.id)
                .where(User.username == username)
            ).first()
        stored = None if found is None else found[1]
        checked = self._secrets.check(stored, pin)
        if found is None or not checked.ok:
            return False
        if checked.upgraded is not None:
            # Only if the PIN was not changed meanwhile.
            with self._sessions.begin() as session:
                session.execute(
                    update(VoicemailBox)
                    .where(VoicemailBox.user_id == found[0], VoicemailBox.pin_hash == stored)
                    .values(pin_hash=checked.upgraded)
                )
        return True

    def set_unsolicited_mwi(self, username: str, on: bool) -> BoxRecord:
        """Whether the user's phones get message-waiting NOTIFYs without
        subscribing (for phones configured that way)."""
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            row = self._box_row(session, user.id)
            row.unsolicited_mwi = bool(on)
            session.flush()
            return self._box_record(user, row)

    # --- messages -----------------------------------------------------------------

    def new_message_writer(self, username: str) -> PendingMessage:
        """Start recording a message for the user; `NotFound` for an unknown user.

        Commit it with `commit_message` or throw it away with `discard`.
        """
        writer, started = self._start(username, "msg")
        return PendingMessage(username, writer, started)

    def commit_message(
        self,
        pending: PendingMessage,
        *,
        caller_number: str,
        caller_name: str | None = None,
        min_duration: float = DEFAULT_MIN_DURATION,
    ) -> MessageRecord | None:
        """Store a recorded message; None (and nothing stored) when it is shorter
        than `min_duration` seconds.

        The file is published first, then the row inserted; if the insert fails
        (the user was deleted meanwhile) the file is removed and the error raised.
        """
        self._check_pending(pending, PendingMessage)
        if pending.duration < min_duration:
            log.info(
                "voicemail for %s discarded: %.2f s is shorter than %.2f s",
                pending.username,
                pending.duration,
                min_duration,
            )
            pending.writer.abort()
            return None
        duration = round(pending.duration, 3)
        path = pending.writer.commit()
        number = _clean(caller_number, LOGGED_NUMBER_LENGTH)
        name = _clean(caller_name, DISPLAY_NAME_LENGTH) or None
        try:
            with _transaction(self._sessions, "cannot store the voicemail message") as session:
                user = self._user(session, pending.username)
                row = VoicemailMessage(
                    user_id=user.id,
                    caller_number=number,
                    caller_name=name,
                    created_at=pending.started_at,
                    duration=duration,
                    heard=False,
                    file=path.name,
                )
                session.add(row)
                session.flush()
                record = self._message_record(user.username, row)
        except BaseException:
            _unlink(path)
            raise
        log.info(
            "voicemail message %d for %s from %s (%.1f s)",
            record.id,
            record.username,
            record.caller_number or "unknown",
            record.duration,
        )
        return record

    def discard(self, pending: PendingRecording) -> None:
        """Throw a recording away (idempotent, and harmless after a commit)."""
        pending.writer.abort()

    def messages(self, username: str) -> list[MessageRecord]:
        """The user's messages, newest first; `NotFound` for an unknown user."""
        with self._sessions() as session:
            user = self._user(session, username)
            rows = session.scalars(
                select(VoicemailMessage)
                .where(VoicemailMessage.user_id == user.id)
                .order_by(VoicemailMessage.created_at.desc(), VoicemailMessage.id.desc())
            )
            return [self._message_record(user.username, row) for row in rows]

    def message(self, username: str, message_id: int) -> MessageRecord:
        """One of the user's messages; `NotFound` when the user has no message
        with that id, whether or not somebody else has."""
        with self._sessions() as session:
            user = self._user(session, username)
            return self._message_record(user.username, self._message_row(session, user, message_id))

    def audio_path(self, username: str, message_id: int) -> Path:
        """The WAV file of one of the user's messages; `NotFound` as for
        `message`, and when the file has gone missing."""
        with self._sessions() as session:
            user = self._user(session, username)
            row = self._message_row(session, user, message_id)
            name = row.file
        path = self._file(username, name)
        if path is None or not path.is_file():
            log.warning("voicemail message %d of %s has no audio file", message_id, username)
            raise NotFound(f"the audio of voicemail message {message_id} is missing")
        return path

    def mark_heard(self, username: str, message_id: int, heard: bool = True) -> MessageRecord:
        """Mark a message heard (saved) or new again."""
        with _transaction(self._sessions, "cannot update the voicemail message") as session:
            user = self._user(session, username)
            row = self._message_row(session, user, message_id)
            row.heard = bool(heard)
            session.flush()
            return self._message_record(user.username, row)

    def delete_message(self, username: str, message_id: int) -> None:
        """Delete a message: its row, then its file."""
        with _transaction(self._sessions, "cannot delete the voicemail message") as session:
            user = self._user(session, username)
            row = self._message_row(session, user, message_id)
            name = row.file
            session.delete(row)
        path = self._file(username, name)
        if path is not None:
            _unlink(path)

    def counts(self, username: str) -> tuple[int, int]:
        """(new, old) message counts, as message-waiting indication reports them."""
        with self._sessions() as session:
            user = self._user(session, username)
            rows = session.execute(
                select(VoicemailMessage.heard, func.count())
                .where(VoicemailMessage.user_id == user.id)
                .group_by(VoicemailMessage.heard)
            )
            by_heard = {bool(heard): int(count) for heard, count in rows}
        return by_heard.get(False, 0), by_heard.get(True, 0)

    def all_counts(self) -> dict[str, tuple[int, int]]:
        """Username -> (new, old) for every user with messages: one query, for
        the NOTIFYs a server sends after starting."""
        with self._sessions() as session:
            rows = session.execute(
                select(User.username, VoicemailMessage.heard, func.count())
                .join(User, VoicemailMessage.user_id == User.id)
                .group_by(User.username, VoicemailMessage.heard)
            )
            out: dict[str, tuple[int, int]] = {}
            for username, heard, count in rows:
                new, old = out.get(username, (0, 0))
                out[username] = (new, old + count) if heard else (new + count, old)
            return out

    # --- greetings ----------------------------------------------------------------

    def new_greeting_writer(self, username: str) -> PendingGreeting:
        """Start recording a greeting; `NotFound` for an unknown user."""
        writer, started = self._start(username, "greeting")
        return PendingGreeting(username, writer, started)

    def commit_greeting(
        self, pending: PendingGreeting, *, min_duration: float = DEFAULT_MIN_DURATION
    ) -> bool:
        """Make the recording the user's greeting, replacing any older one;
        False (and nothing changed) when it is shorter than `min_duration`."""
        self._check_pending(pending, PendingGreeting)
        if pending.duration < min_duration:
            pending.writer.abort()
            return False
        path = pending.writer.commit()
        try:
            with _transaction(self._sessions, "cannot store the greeting") as session:
                user = self._user(session, pending.username)
                row = self._box_row(session, user.id)
                old, row.greeting = row.greeting, path.name
        except BaseException:
            _unlink(path)
            raise
        if old is not None:
            old_path = self._file(pending.username, old)
            if old_path is not None:
                _unlink(old_path)
        log.info("new voicemail greeting for %s (%.1f s)", pending.username, pending.duration)
        return True

    def greeting_path(self, username: str) -> Path | None:
        """The user's recorded greeting, or None for the system greeting."""
        with self._sessions() as session:
            user = self._user(session, username)
            row = session.get(VoicemailBox, user.id)
            name = None if row is None else row.greeting
        if name is None:
            return None
        path = self._file(username, name)
        if path is None or not path.is_file():
            log.warning("the voicemail greeting of %s has gone missing", username)
            return None
        return path

    def delete_greeting(self, username: str) -> None:
        """Go back to the system greeting; `NotFound` when there is no recorded one."""
        with _transaction(self._sessions, f"cannot update user {username!r}") as session:
            user = self._user(session, username)
            row = session.get(VoicemailBox, user.id)
            name = None if row is None else row.greeting
            if row is None or name is None:
                raise NotFound(f"user {username!r} has no recorded greeting")
            row.greeting = None
        path = self._file(username, name)
        if path is not None:
            _unlink(path)

    # --- start-up recovery --------------------------------------------------------

    def recover(self) -> int:
        """Make every mailbox consistent after a crash; returns how many files
        and rows were removed (each is logged).

        Removes partial recordings, files that no row names (a crash between
        publishing a file and inserting its row, or a deleted user's files) and
        rows whose file is gone. Run it before anything records: a recording
        in progress looks like a partial file. Files and folders the store
        never makes are left alone (and logged). A missing root is taken for
        a configuration mistake (a moved or unmounted folder), not for every
        file being lost: then nothing is removed.
        """
        if not self._root.is_dir():
            with self._sessions() as session:
                indexed = session.scalar(select(func.count()).select_from(VoicemailMessage))
            if indexed:
                log.error(
                    "voicemail folder %s is missing but %d messages are indexed; "
                    "nothing removed (is the folder configured or mounted?)",
                    self._root,
                    indexed,
                )
            return 0
        fixed = self._drop_rows_without_files()
        with self._sessions() as session:
            usernames = set(session.scalars(select(User.username)))
            referenced = self._referenced_files(session)
        for folder in sorted(self._root.iterdir()):
            if not folder.is_dir() or not USERNAME_RE.fullmatch(folder.name):
                log.warning("voicemail recovery: %s is not a mailbox; left alone", folder)
                continue
            fixed += self._clean_folder(folder, referenced.get(folder.name, set()))
            if folder.name not in usernames:
                # A deleted user's folder: empty now unless somebody put files in it.
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    log.warning(
                        "voicemail recovery: removed the folder of deleted user %s", folder.name
                    )
        if fixed:
            log.warning("voicemail recovery: %d files and rows removed", fixed)
        return fixed

    def _drop_rows_without_files(self) -> int:
        with self._sessions() as session:
            messages = session.execute(
                select(VoicemailMessage.id, VoicemailMessage.file, User.username).join(
                    User, VoicemailMessage.user_id == User.id
                )
            ).all()
            greetings = session.execute(
                select(VoicemailBox.user_id, VoicemailBox.greeting, User.username)
                .join(User, VoicemailBox.user_id == User.id)
                .where(VoicemailBox.greeting.is_not(None))
            ).all()
        fixed = 0
        for message_id, name, username in messages:
            path = self._file(username, name)
            if path is not None and path.is_file():
                continue
            with self._sessions.begin() as session:
                # Only the row as it was read: nothing else runs during recovery,
                # but a row that changed is no longer the one found broken.
                result = session.execute(
                    delete(VoicemailMessage).where(
                        VoicemailMessage.id == message_id, VoicemailMessage.file == name
                    )
                )
            if _rowcount(result):
                log.warning(
                    "voicemail recovery: message %d of %s had no audio file; removed",
                    message_id,
                    username,
                )
                fixed += 1
        for user_id, greeting, username in greetings:
            path = None if greeting is None else self._file(username, greeting)
            if path is not None and path.is_file():
                continue
            with self._sessions.begin() as session:
                result = session.execute(
                    update(VoicemailBox)
                    .where(VoicemailBox.user_id == user_id, VoicemailBox.greeting == greeting)
                    .values(greeting=None)
                )
            if _rowcount(result):
                log.warning("voicemail recovery: the greeting of %s had no file; removed", username)
                fixed += 1
        return fixed

    @staticmethod
    def _referenced_files(session: Session) -> dict[str, set[str]]:
        """Username -> the file names its rows name."""
        out: dict[str, set[str]] = {}
        for username, name in session.execute(
            select(User.username, VoicemailMessage.file).join(
                VoicemailMessage, VoicemailMessage.user_id == User.id
            )
        ):
            out.setdefault(username, set()).add(name)
        for username, greeting in session.execute(
            select(User.username, VoicemailBox.greeting)
            .join(VoicemailBox, VoicemailBox.user_id == User.id)
            .where(VoicemailBox.greeting.is_not(None))
        ):
            if greeting is not None:
                out.setdefault(username, set()).add(greeting)
        return out

    @staticmethod
    def _clean_folder(folder: Path, keep: set[str]) -> int:
        fixed = remove_partials(folder)
        if fixed:
            log.warning("voicemail recovery: removed %d partial recordings in %s", fixed, folder)
        for entry in sorted(folder.iterdir()):
            if entry.name in keep:
                continue
            if not _FILE_RE.fullmatch(entry.name) or not entry.is_file():
                log.warning("voicemail recovery: %s is not the store's; left alone", entry)
                continue
            if _unlink(entry):
                log.warning(
                    "voicemail recovery: removed %s, which no message or greeting names", entry
                )
                fixed += 1
        return fixed

    # --- helpers ------------------------------------------------------------------

    def _folder(self, username: str) -> Path:
        """``<root>/<username>``. The username pattern admits no '/' and no
        leading '.', so this cannot leave the root; checked all the same, since
        a mistake here would be a write anywhere on the file system."""
        if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
            raise NotFound(f"no user {username!r}")
        folder = self._root / username
        if folder.parent != self._root:  # pragma: no cover - excluded by the pattern
            raise NotFound(f"no user {username!r}")
        return folder

    def _file(self, username: str, name: str) -> Path | None:
        """The path of a file a row names, or None when the name is not one the
        store gives (a row written by something else is never followed)."""
        if not _FILE_RE.fullmatch(name):
            log.warning("voicemail: %r of %s is not a file name of the store", name, username)
            return None
        return self._folder(username) / name

    def _start(self, username: str, kind: str) -> tuple[WavWriter, datetime]:
        with self._sessions() as session:
            self._user(session, username)
        folder = self._folder(username)
        # Private: these are other people's messages.
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.mkdir(exist_ok=True, mode=0o700)
        name = f"{kind}-{secrets.token_hex(_TOKEN_BYTES)}.wav"
        return WavWriter(folder / name), self._clock()

    def _check_pending(self, pending: PendingRecording, kind: type[PendingRecording]) -> None:
        if not isinstance(pending, kind):
            raise InvalidInput(f"expected a {kind.__name__}, not a {type(pending).__name__}")
        if pending.finished:
            raise InvalidInput("this recording was already committed or discarded")
        if pending.writer.path.parent != self._folder(pending.username):
            raise InvalidInput("this recording does not belong to this voicemail store")

    @staticmethod
    def _user(session: Session, username: str) -> User:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user

    @staticmethod
    def _message_row(session: Session, user: User, message_id: int) -> VoicemailMessage:
        # The same answer for an id that does not exist and for somebody else's.
        missing = NotFound(f"no voicemail message {message_id!r}")
        if not _valid_id(message_id):
            raise missing
        row = session.scalar(
            select(VoicemailMessage).where(
                VoicemailMessage.id == message_id, VoicemailMessage.user_id == user.id
            )
        )
        if row is None:
            raise missing
        return row

    @staticmethod
    def _box_row(session: Session, user_id: int) -> VoicemailBox:
        """The user's box row, created (with the defaults) if they have none yet."""
        row = session.get(VoicemailBox, user_id)
        if row is None:
            row = VoicemailBox(user_id=user_id, pin_hash=None, greeting=None, unsolicited_mwi=False)
            session.add(row)
        return row

    @staticmethod
    def _box_record(user: User, row: VoicemailBox | None) -> BoxRecord:
        return BoxRecord(
            username=user.username,
            enabled=user.voicemail_enabled,
            has_pin=row is not None and row.pin_hash is not None,
            has_greeting=row is not None and row.greeting is not None,
            unsolicited_mwi=row is not None and row.unsolicited_mwi,
        )

    @staticmethod
    def _message_record(username: str, row: VoicemailMessage) -> MessageRecord:
        return MessageRecord(
            id=row.id,
            username=username,
            caller_number=row.caller_number,
            caller_name=row.caller_name,
            created_at=row.created_at,
            duration=row.duration,
            heard=row.heard,
        )
