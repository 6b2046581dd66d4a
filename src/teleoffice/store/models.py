"""The database schema as SQLAlchemy 2 typed ORM classes.

These classes stay inside the store package: `repos.py` converts rows into frozen
records before they leave it, so the rest of the code never holds a session-bound
object (no lazy loads on a closed session, no accidental writes).

Any change here needs a new migration under `migrations/versions/`; a unit test
compares this metadata with the migrated schema and fails when they drift.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names: Alembic needs names to drop or alter constraints,
# and SQLite's batch mode recreates tables by name. Without a convention each
# database engine would invent its own.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Lengths shared with the hand-written migration.
NAME_LENGTH = 64
DISPLAY_NAME_LENGTH = 128
EXTENSION_LENGTH = 8
# A forwarding target: a trunk prefix and an outside number, up to 32 characters.
FORWARD_NUMBER_LENGTH = 32


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timezone-aware type and hands back naive datetimes; storing naive
    UTC everywhere and attaching UTC on the way out gives the same result on SQLite
    and PostgreSQL.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A person in the directory: their number, portal login and call features."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_LENGTH), default="")
    extension: Mapped[str] = mapped_column(String(EXTENSION_LENGTH), unique=True)
    # argon2id hash of the portal password; NULL means the user cannot log in.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    telecommuter_allowed: Mapped[bool] = mapped_column(default=False, server_default=false())
    call_waiting: Mapped[bool] = mapped_column(default=True, server_default=true())
    voicemail_enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    no_answer_timeout: Mapped[int] = mapped_column(Integer, default=15, server_default="15")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Call forwarding targets, as the user would dial them; NULL means off.
    forward_always: Mapped[str | None] = mapped_column(String(FORWARD_NUMBER_LENGTH))
    forward_busy: Mapped[str | None] = mapped_column(String(FORWARD_NUMBER_LENGTH))
    forward_no_answer: Mapped[str | None] = mapped_column(String(FORWARD_NUMBER_LENGTH))
    dnd: Mapped[bool] = mapped_column(default=False, server_default=false())


class PhoneAccount(Base):
    """SIP digest credentials of one device (a user's base phone, or a shared one).

    Only HA1 values are kept, never the password: one per hash family, so phones
    that only speak MD5 and phones that prefer SHA-256 (RFC 8760) both work.
    """

    __tablename__ = "phone_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    # SET NULL rather than CASCADE: a desk phone outlives the person who sat there.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Registration(Base):
    """One contact bound to a SIP account by REGISTER (RFC 3261 section 10).

    Kept so that phones stay reachable across a restart without re-registering.
    `account` is deliberately not a foreign key: the registrar's own state is the
    authority and must be able to write what it has accepted without a lookup.
    """

    __tablename__ = "registrations"
    __table_args__ = (
        # A binding is identified by its contact URI (RFC 3261 section 10.3 step 7);
        # `contact` keeps the whole Contact value with its header parameters.
        UniqueConstraint("account", "uri"),
        Index("ix_registrations_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(NAME_LENGTH))
    contact: Mapped[str] = mapped_column(Text)
    uri: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float)  # unix time
    call_id: Mapped[str] = mapped_column(Text)
    cseq: Mapped[int] = mapped_column(Integer)
    q: Mapped[float | None] = mapped_column(Float)
    transport: Mapped[str] = mapped_column(String(16))
    source_host: Mapped[str] = mapped_column(String(255))
    source_port: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)


# Lengths of the trunk and call-log columns, shared with migration 0002.
HOST_LENGTH = 255
TRANSPORT_LENGTH = 8
PREFIX_LENGTH = 4
NUMBER_LENGTH = 32
# Provider account names are not ours to choose; some are long e-mail-like ids.
TRUNK_USERNAME_LENGTH = 128
REALM_LENGTH = 255
OUTCOME_LENGTH = 24
# Numbers in the call log are whatever the peer put in From or the Request-URI,
# so they get more room than the numbers teleoffice itself accepts.
LOGGED_NUMBER_LENGTH = 64


class Trunk(Base):
    """A SIP trunk: a provider that carries calls to and from the outside world.

    Numbers dialled as `prefix` + digits leave through it as the digits, and
    requests arriving from `host`:`port` are taken as coming from it, which is
    why no two trunks may share a prefix or an address.

    The provider's password is kept the way phone passwords are: as HA1 hashes
    (one per hash family) for `realm`, never in clear. A digest client needs no
    more than that, but it does mean the realm is fixed when the password is
    stored; a challenge in any other realm cannot be answered.
    """

    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("host", "port"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    host: Mapped[str] = mapped_column(String(HOST_LENGTH))
    port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(
        String(TRANSPORT_LENGTH), default="udp", server_default="udp"
    )
    # NULL for a trunk that only receives calls; NULLs never clash in a unique
    # constraint, on SQLite and PostgreSQL alike.
    prefix: Mapped[str | None] = mapped_column(String(PREFIX_LENGTH), unique=True)
    username: Mapped[str | None] = mapped_column(String(TRUNK_USERNAME_LENGTH))
    realm: Mapped[str | None] = mapped_column(String(REALM_LENGTH))
    ha1_md5: Mapped[str | None] = mapped_column(String(32))
    ha1_sha256: Mapped[str | None] = mapped_column(String(64))
    # The caller number presented on calls out of this trunk; NULL means the
    # caller's own extension.
    outside_number: Mapped[str | None] = mapped_column(String(NUMBER_LENGTH))
    use_pai: Mapped[bool] = mapped_column(default=False, server_default=false())
    register: Mapped[bool] = mapped_column(default=False, server_default=false())
    register_expires: Mapped[int] = mapped_column(Integer, default=3600, server_default="3600")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Did(Base):
    """A direct inward dialling number: an extra outside number that reaches a user.

    Calls to a user's extension number reach them anyway; a DID maps any other
    number a provider delivers. It goes with its user (ON DELETE CASCADE): a
    number pointing at nobody would only turn calls into 404s silently.
    """

    __tablename__ = "dids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(NUMBER_LENGTH), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CallLogEntry(Base):
    """One call, as the portal's call log and `teleoffice calls` show it.

    Users are kept by username rather than by foreign key: the log is history and
    must survive the deletion or renaming of the people in it.
    """

    __tablename__ = "call_log"
    __table_args__ = (Index("ix_call_log_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(Text, unique=True)
    direction: Mapped[str] = mapped_column(String(16))
    caller_number: Mapped[str] = mapped_column(String(LOGGED_NUMBER_LENGTH))
    caller_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_LENGTH))
    callee_number: Mapped[str] = mapped_column(String(LOGGED_NUMBER_LENGTH))
    callee_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_LENGTH))
    route: Mapped[str | None] = mapped_column(Text)
    trunk: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    # Indexed for the per-user log the portal shows.
    caller_user: Mapped[str | None] = mapped_column(String(NAME_LENGTH), index=True)
    callee_user: Mapped[str | None] = mapped_column(String(NAME_LENGTH), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ringing_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # NULL while the call is in progress.
    outcome: Mapped[str | None] = mapped_column(String(OUTCOME_LENGTH))
    status: Mapped[int | None] = mapped_column(Integer)
    ended_by: Mapped[str | None] = mapped_column(String(16))


# Lengths of the restriction columns, shared with migration 0003.
RESTRICTION_DESCRIPTION_LENGTH = 200


class RestrictionProfileRow(Base):
    """A dialling restriction profile (rule T11), as administrators write it.

    The pattern lists are kept as text, one rule per line (`00.=international`):
    they are read and written whole, never queried, and the text is exactly what
    `teleoffice restriction show` prints. `teleoffice.calls.restrictions` parses
    them; the repository refuses anything it cannot parse before it is stored.
    """

    __tablename__ = "restriction_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str] = mapped_column(String(RESTRICTION_DESCRIPTION_LENGTH), default="")
    allowed: Mapped[str] = mapped_column(Text, default="")
    barred: Mapped[str] = mapped_column(Text, default="")
    emergency: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class UserRestriction(Base):
    """Which profile applies to a user; a user without a row gets `default`.

    A table of its own rather than a column of `users`: SQLite cannot add a
    foreign-key column to an existing table without rebuilding it, and
    rebuilding `users` while foreign keys are enforced would run the ON DELETE
    actions of `dids` and `phone_accounts` against every user. The row goes with
    its user (CASCADE); a profile that is still assigned cannot be deleted
    (RESTRICT), which the repository reports as a conflict first.
    """

    __tablename__ = "user_restrictions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("restriction_profiles.id", ondelete="RESTRICT"), index=True
    )


# ---- telecommuter mode, hot desking, portal sessions (migration 0005) --------------

LOCATION_KIND_LENGTH = 16
LOGIN_CODE_HASH_LENGTH = 255
SAVED_NUMBER_LABEL_LENGTH = 64
TOKEN_HASH_LENGTH = 64


class UserLocation(Base):
    """Where calls to a user ring, when it is not the default (rule T10, T3, T7).

    No row means the default: the user's base phone if they have one, unless
    another user is logged in on it.  A row is written when the user moves: a
    hot-desk login (`kind` "phone", `account` the phone account), telecommuter
    mode (`kind` "telecommuter", `number` as the user would dial it), or
    logged out (`kind` "logged-out").  One row per user: a user is in one
    location at a time, and the unique `account` means one user per phone.
    """

    __tablename__ = "user_locations"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(LOCATION_KIND_LENGTH))
    account: Mapped[str | None] = mapped_column(String(NAME_LENGTH), unique=True)
    number: Mapped[str | None] = mapped_column(String(FORWARD_NUMBER_LENGTH))
    since: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TelecommuterSettings(Base):
    """A user's telecommuter permission details (rule T1) and hot-desk login code.

    The permission flag itself is `users.telecommuter_allowed`; the numbers an
    administrator allows are pattern lines here (empty: any number the user may
    dial).  The login code is an argon2id hash, like portal passwords.
    """

    __tablename__ = "user_telecommuter"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    patterns: Mapped[str] = mapped_column(Text, default="")
    login_code_hash: Mapped[str | None] = mapped_column(String(LOGIN_CODE_HASH_LENGTH))


class SavedNumber(Base):
    """A telecommuter number a user keeps for next time (rule T2)."""

    __tablename__ = "saved_numbers"
    __table_args__ = (UniqueConstraint("user_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(FORWARD_NUMBER_LENGTH))
    label: Mapped[str] = mapped_column(String(SAVED_NUMBER_LABEL_LENGTH), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ApiToken(Base):
    """A portal login session: the SHA-256 of a random bearer token.

    Tokens carry 256 random bits, so a fast hash is enough to make a stolen
    table useless (argon2 is for guessable secrets); the lookup stays an index
    hit per request.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


# ---- voicemail (migration 0006) ----------------------------------------------------

PIN_HASH_LENGTH = 255


class VoicemailBox(Base):
    """A user's mailbox settings beyond `users.voicemail_enabled` (rule T12).

    No row means the defaults: no PIN, the system greeting, no unsolicited
    message-waiting NOTIFYs. A table of its own for the reason given at
    `UserRestriction`: `users` is never rebuilt. The PIN is an argon2id hash
    (it is typed on a keypad, so it is short and guessable); `greeting` is the
    name of a file in the user's voicemail folder, never a path.
    """

    __tablename__ = "voicemail_boxes"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    pin_hash: Mapped[str | None] = mapped_column(String(PIN_HASH_LENGTH))
    greeting: Mapped[str | None] = mapped_column(Text)
    unsolicited_mwi: Mapped[bool] = mapped_column(default=False, server_default=false())


class VoicemailMessage(Base):
    """One recorded message: its metadata here, its audio in `file` (a name in
    the owner's voicemail folder, unique across all mailboxes).

    Caller details are what the call carried, so they get the call log's
    lengths. The row goes with its user (CASCADE); the file is removed by the
    store's start-up recovery once no row names it.
    """

    __tablename__ = "voicemail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    caller_number: Mapped[str] = mapped_column(String(LOGGED_NUMBER_LENGTH))
    caller_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    duration: Mapped[float] = mapped_column(Float)  # seconds
    heard: Mapped[bool] = mapped_column(default=False, server_default=false())
    file: Mapped[str] = mapped_column(Text, unique=True)


# ---- presence (migration 0007) -----------------------------------------------------

PRESENCE_STATE_LENGTH = 16
# Characters, in any script: PostgreSQL's VARCHAR counts characters, not bytes.
PRESENCE_NOTE_LENGTH = 200


class UserPresence(Base):
    """The presence state and note a user chose (rule T9); no row means they
    never chose one ("available" while a client of theirs is connected).

    Only the choice is kept: what phones publish expires within the hour and
    calls end, so they are rebuilt after a restart rather than stored. A
    table of its own for the reason given at `UserRestriction`.
    """

    __tablename__ = "user_presence"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(PRESENCE_STATE_LENGTH))
    note: Mapped[str | None] = mapped_column(String(PRESENCE_NOTE_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class PresenceBlock(Base):
    """A user (`user_id`) does not let another (`watcher_user_id`) see their
    presence: SIP subscriptions are refused and the portal shows them offline.

    Both go with their users (CASCADE). The index on the watcher serves the
    portal's "who blocks me" lookup and the cascade when a watcher is deleted.
    """

    __tablename__ = "presence_blocks"
    __table_args__ = (UniqueConstraint("user_id", "watcher_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    watcher_user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DirectoryGeneration(Base):
    """One row whose `generation` database triggers bump on every change to the
    tables the server's in-memory directory holds (users, phone accounts, DIDs,
    trunks, restriction profiles and assignments; migration 0008). The server
    polls it and reloads the directory only when it moved."""

    __tablename__ = "directory_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
