"""SRTP (RFC 3711) for one side of a media session, behind a small interface.

Theory of operation
-------------------
Media is anchored in teleoffice, so SRTP is terminated per leg: what arrives
from an SRTP leg is authenticated and decrypted (`SrtpReceiver.unprotect`)
before the relay, the recorder or the DTMF detector see it, and whatever is
sent to an SRTP leg (relayed audio, tones, prompts) is encrypted on the way
out (`SrtpSender.protect`).  The other leg is untouched: it may be plain RTP
or SRTP with keys of its own.

The keys come from SDES (RFC 4568, negotiated in `sip.sdes`): each side of a
leg declares the master key it *sends* with, so a leg has two: ours (we
protect with it) and the phone's (we unprotect with it).

The cipher itself is libsrtp, through `pylibsrtp`; nothing here touches
cryptography beyond choosing the profile and the key.  libsrtp keeps per-SSRC
state (rollover counter, replay window), so one sender serves every stream sent
to a leg, whoever's SSRC it carries: the caller's relayed audio and our own
tones each get their own context inside it.

Two details matter for a relay rather than an endpoint:

* Replay protection on the *sending* side.  libsrtp refuses to protect a packet
  index it protected before, which a relay cannot always promise (a phone that
  restarts its sequence numbers after a re-INVITE, the same SSRC relayed again
  after a transfer).  Sending the same index twice under one key is exactly what
  SRTP forbids (the keystream would repeat), so such a packet is dropped, never
  sent with `allow_repeat_tx`.
* A key change.  When a phone offers a new key in a re-INVITE it may still
  send a few packets under the old one (RFC 4568 section 7.1.4), so the
  receiver keeps the previous key as a fallback until the new one has
  authenticated a packet.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

import pylibsrtp

__all__ = [
    "SrtpError",
    "SrtpKeys",
    "SrtpReceiver",
    "SrtpSender",
    "Suite",
    "new_master_key",
]


class SrtpError(ValueError):
    """A packet failed authentication or could not be protected."""


class Suite(enum.Enum):
    """The SRTP crypto suites teleoffice speaks, by their SDES names.

    Each value is (libsrtp profile, master key length, master salt length):
    RFC 4568 section 6.2 for the AES counter-mode suites, RFC 7714 section 12
    for AES-GCM.
    """

    AES_CM_128_HMAC_SHA1_80 = (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14)
    AES_CM_128_HMAC_SHA1_32 = (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 16, 14)
    AEAD_AES_128_GCM = (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12)
    AEAD_AES_256_GCM = (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32, 12)

    @property
    def profile(self) -> int:
        return int(self.value[0])

    @property
    def key_length(self) -> int:
        """Master key plus master salt, in octets: what one SDES inline key holds."""
        return int(self.value[1]) + int(self.value[2])

    @classmethod
    def named(cls, name: str) -> Suite | None:
        """The suite of an SDES crypto-suite name, or None if we do not speak it.

        Matched without regard to case, as ABNF literals are (RFC 4568 section 9.2).
        """
        return cls.__members__.get(name.upper())


def new_master_key(suite: Suite) -> bytes:
    """A fresh random master key and salt for `suite` (RFC 3711 section 8.1)."""
    return secrets.token_bytes(suite.key_length)


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """The keys of one SRTP leg: ours protects what we send, theirs what we receive.

    Both use `suite`: in SDES the answer picks one of the offered suites and
    both directions use it.
    """

    suite: Suite
    send: bytes = b""
    receive: bytes = b""

    def __post_init__(self) -> None:
        for name in ("send", "receive"):
            key = getattr(self, name)
            if len(key) != self.suite.key_length:
                raise ValueError(
                    f"{self.suite.name} needs a {self.suite.key_length}-octet {name} key, "
                    f"not {len(key)}"
                )

    def __repr__(self) -> str:
        # Keys never reach a log line, not even by accident through repr().
        return f"SrtpKeys({self.suite.name}, <keys hidden>)"


def _session(suite: Suite, key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=suite.profile)
    return pylibsrtp.Session(policy)


class SrtpSender:
    """Protects every RTP packet sent to one leg with our master key."""

    __slots__ = ("_session", "key", "suite")

    def __init__(self, suite: Suite, key: bytes) -> None:
        if len(key) != suite.key_length:
            raise ValueError(f"{suite.name} needs a {suite.key_length}-octet key")
        self.suite = suite
        self.key = key
        self._session = _session(suite, key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)

    def protect(self, packet: bytes) -> bytes:
        """The SRTP packet for an RTP packet; raises SrtpError when libsrtp refuses
        (a packet index already sent under this key, a malformed header)."""
        try:
            return self._session.protect(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None


class SrtpReceiver:
    """Authenticates and decrypts what one leg sends, with the leg's master key."""

    __slots__ = ("_previous", "_session", "key", "suite")

    def __init__(self, suite: Suite, key: bytes, previous: SrtpReceiver | None = None) -> None:
        if len(key) != suite.key_length:
            raise ValueError(f"{suite.name} needs a {suite.key_length}-octet key")
        self.suite = suite
        self.key = key
        self._session = _session(suite, key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
        # The key this one replaced, tried when the new one fails (see the module
        # docstring); never more than one generation back.
        self._previous = previous._session if previous is not None else None

    def unprotect(self, packet: bytes) -> bytes:
        """The RTP packet inside an SRTP packet; raises SrtpError when it fails
        authentication, is a replay, or is too short to be SRTP."""
        try:
            plain = self._session.unprotect(packet)
        except pylibsrtp.Error as exc:
            if self._previous is None:
                raise SrtpError(str(exc)) from None
            try:
                return self._previous.unprotect(packet)
            except pylibsrtp.Error:
                raise SrtpError(str(exc)) from None
        # The new key works: the old one is of no more use.
        self._previous = None
        return plain
