"""Portal login sessions: random bearer tokens, stored only as their SHA-256.

A token carries 256 random bits, so nobody guesses one and a fast hash is
enough to make a copy of the table useless (argon2 is for secrets people
choose). The token in clear exists only in the answer to a login; every request
then costs one index lookup of its hash.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, insert, select

from teleoffice.store.models import ApiToken, User
from teleoffice.store.repos import InvalidInput, NotFound, Sessions, _rowcount, _transaction

__all__ = ["MAX_TOKEN_TTL", "TokenRepo"]

TOKEN_BYTES: Final = 32
# What `secrets.token_urlsafe` produces (43 characters for 32 bytes), with room
# to spare. Anything else is refused before it is hashed or reaches the
# database, so a hostile header costs nothing.
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
# A login lasting more than a year is a mistake in the caller's arithmetic.
MAX_TOKEN_TTL: Final = 366 * 86400.0


def _digest(token: str) -> str | None:
    """The stored form of `token`, or None if it cannot be one of ours."""
    if not isinstance(token, str) or len(token) > 128 or not _TOKEN_RE.fullmatch(token):
        return None
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _check_now(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidInput("now must be a timezone-aware time")
    return now


class TokenRepo:
    """Bearer tokens of portal sessions (`api_tokens`)."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def issue(self, username: str, *, ttl: float, now: datetime) -> str:
        """A new token for the user, valid for `ttl` seconds from `now`.
        `NotFound` for an unknown user, `InvalidInput` for a bad `ttl`."""
        _check_now(now)
        if not math.isfinite(ttl) or not 0 < ttl <= MAX_TOKEN_TTL:
            raise InvalidInput(f"a token lifetime must be between 0 and {MAX_TOKEN_TTL:.0f} s")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = _digest(token)
        assert digest is not None
        with _transaction(self._sessions, "token collision; try again") as session:
            user_id = session.scalar(select(User.id).where(User.username == username))
            if user_id is None:
                raise NotFound(f"no user {username!r}")
            session.execute(
                insert(ApiToken).values(
                    token_hash=digest,
                    user_id=user_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
            )
        return token

    def resolve(self, token: str, now: datetime) -> str | None:
        """The username the token was issued to, or None when it is unknown,
        expired (at `now` or earlier) or not a token at all. Never raises on
        what a client sends."""
        _check_now(now)
        digest = _digest(token)
        if digest is None:
            return None
        with self._sessions() as session:
            return session.scalar(
                select(User.username)
                .join(ApiToken, ApiToken.user_id == User.id)
                .where(ApiToken.token_hash == digest, ApiToken.expires_at > now)
            )

    def revoke(self, token: str) -> bool:
        """End one session (logout); True if the token existed."""
        digest = _digest(token)
        if digest is None:
            return False
        with self._sessions.begin() as session:
            result = session.execute(delete(ApiToken).where(ApiToken.token_hash == digest))
            return _rowcount(result) > 0

    def revoke_all(self, username: str) -> int:
        """End every session of the user (a changed password, a lost device);
        returns how many there were. `NotFound` for an unknown user."""
        with self._sessions.begin() as session:
            user_id = session.scalar(select(User.id).where(User.username == username))
            if user_id is None:
                raise NotFound(f"no user {username!r}")
            result = session.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
            return _rowcount(result)

    def purge_expired(self, now: datetime) -> int:
        """Remove tokens that expired at `now` or earlier; returns how many."""
        _check_now(now)
        with self._sessions.begin() as session:
            result = session.execute(delete(ApiToken).where(ApiToken.expires_at <= now))
            return _rowcount(result)
