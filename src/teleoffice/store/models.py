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
