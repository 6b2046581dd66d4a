"""Checking guessable secrets (portal passwords, login codes, voicemail PINs).

All three are argon2id hashes, and all three are checked the same way: an
unknown user, or one without a secret set, costs the same argon2 work as a
wrong secret, so response times do not reveal who exists or has one; and a
hash made with weaker parameters than the current ones is upgraded on a
successful check (the caller writes it back, only if it did not change
meanwhile).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["Checked", "SecretChecker"]


@dataclass(frozen=True, slots=True)
class Checked:
    ok: bool
    upgraded: str | None = None  # a stronger hash of the same secret, to store


class SecretChecker:
    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        self._dummy_hash: str | None = None

    def hash(self, secret: str) -> str:
        return self.hasher.hash(secret)

    def check(self, stored: str | None, secret: str) -> Checked:
        """Whether `secret` matches `stored` (None: nothing stored, same work)."""
        if stored is None:
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash("teleoffice-nothing-stored")
            with suppress(VerificationError, InvalidHashError):
                self.hasher.verify(self._dummy_hash, secret)
            return Checked(False)
        try:
            self.hasher.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return Checked(False)
        if self.hasher.check_needs_rehash(stored):
            return Checked(True, self.hasher.hash(secret))
        return Checked(True)
