"""SDES key negotiation (RFC 4568) for one call leg: which keys each side sends with.

Theory of operation
-------------------
teleoffice anchors media, so it is the SRTP endpoint of every secure leg: the
phone and teleoffice each declare, in a=crypto, the master key they *send*
with (RFC 4568 section 5.1.2), and the other side decrypts with it.  The two
legs of a call negotiate independently; keys are never relayed from one leg's
SDP to the other's (`sdp.with_crypto` scrubs them).

Three moves, all pure functions over parsed SDP:

* `answer_offer`: a leg offered; pick the first offered crypto attribute we can
  use, in the offerer's order of preference (section 7.1.1), and answer it with
  the same tag and suite and a key of ours.  An RTP/SAVP offer with nothing
  usable gets 488 from the caller (`NoUsableCrypto`); an RTP/AVP offer that
  carries keys ("best effort" SRTP, as baresip's ``mediaenc=srtp`` sends) is
  answered with SRTP too, and without keys it is plain RTP.
* `make_offer`: we offer to a leg, listing the suites we prefer, each under a
  tag and a key of its own.
* `accept_answer`: the leg answered our offer; its one crypto attribute must
  name a tag we offered with the same suite (section 7.1.3).

A re-offer (hold, a session refresh, a transfer's new media) keeps the keys
already agreed when nothing forces a change (section 7.1.4 allows either): our
libsrtp sender keeps its state, so no packet index is ever protected twice
under one key, and the phone's receiver is not disturbed.

What we refuse to use (so an offer holding only such attributes gets 488): a
suite we do not speak, several keys in one attribute (they need MKIs, which
libsrtp's simple API does not take), any MKI, a key of the wrong length, a key
lifetime shorter than a long call (we never rekey in mid-call), and session
parameters other than the window-size hint WSH (KDR, UNENCRYPTED_SRTP and the
like change the protection in ways our policy cannot express; section 6.3
makes an unknown parameter a reason to refuse the attribute).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from teleoffice.sip.sdp import (
    CryptoAttribute,
    CryptoKey,
    MediaDescription,
    SdpError,
    SessionDescription,
    crypto_attributes,
)

__all__ = [
    "ACCEPTED_SUITES",
    "MIN_KEY_LIFETIME",
    "OFFERED_SUITES",
    "KeySource",
    "NoUsableCrypto",
    "Sdes",
    "SdesOffer",
    "accept_answer",
    "active_audio",
    "answer_offer",
    "is_secure_proto",
    "make_offer",
    "proto_for",
    "unusable_reason",
]

# Master key plus salt, in octets, of each suite we can run (RFC 4568 section
# 6.2; RFC 7714 section 12 for AES-GCM).  `media.srtp.Suite` maps the same names
# to libsrtp's profiles.
ACCEPTED_SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}
# What we offer, in order of preference: the two suites every SDES phone has.
# The 80-bit tag first: it is SRTP's default transform (RFC 3711 section 5);
# the 32-bit one only saves 6 octets a packet, which G.711 hardly notices.
OFFERED_SUITES: tuple[str, ...] = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
# 2^24 packets are 93 hours of 20 ms audio: longer than any call, and a key that
# may protect fewer packets would need rekeying, which teleoffice does not do.
MIN_KEY_LIFETIME = 1 << 24

_SECURE = "RTP/SAVP"
_PLAIN = "RTP/AVP"

KeySource = Callable[[int], bytes]
"""Returns `n` random octets: a fresh master key and salt (secrets.token_bytes)."""


class NoUsableCrypto(SdpError):
    """An RTP/SAVP offer whose crypto attributes we can use none of (answer 488)."""


@dataclass(frozen=True, slots=True)
class Sdes:
    """The keys agreed on one leg: `ours` protects what we send to it, `theirs`
    what it sends to us.  `proto` is the leg's audio transport (RTP/SAVP, or
    RTP/AVP for best-effort SRTP), which every answer to it must echo."""

    proto: str
    ours: CryptoAttribute
    theirs: CryptoAttribute

    @property
    def suite(self) -> str:
        return self.ours.suite

    @property
    def send_key(self) -> bytes:
        return self.ours.keys[0].key_salt

    @property
    def receive_key(self) -> bytes:
        return self.theirs.keys[0].key_salt


@dataclass(frozen=True, slots=True)
class SdesOffer:
    """The crypto attributes we offered a leg, awaiting its answer."""

    proto: str
    lines: tuple[CryptoAttribute, ...]


def is_secure_proto(proto: str) -> bool:
    """RTP/SAVP and RTP/SAVPF (not DTLS's UDP/TLS/RTP/SAVP, which uses no SDES)."""
    return proto.upper() in ("RTP/SAVP", "RTP/SAVPF")


def proto_for(proto: str, *, secure: bool) -> str:
    """`proto` switched to its secure or plain twin (RTP/AVP <-> RTP/SAVP, and the
    same for the F variants); anything else (not RTP) is left alone."""
    upper = proto.upper()
    if upper in ("RTP/AVP", "RTP/SAVP"):
        return _SECURE if secure else _PLAIN
    if upper in ("RTP/AVPF", "RTP/SAVPF"):
        return "RTP/SAVPF" if secure else "RTP/AVPF"
    return proto


def active_audio(sdp: SessionDescription) -> MediaDescription | None:
    """The stream keys are negotiated for: the first audio m-line not rejected
    (the one the B2BUA's media session carries)."""
    for media in sdp.media:
        if media.media.lower() == "audio" and media.port != 0:
            return media
    return None


def unusable_reason(attr: CryptoAttribute) -> str | None:
    """Why we cannot run SRTP with this attribute, or None when we can."""
    length = ACCEPTED_SUITES.get(attr.suite.upper())
    if length is None:
        return f"crypto suite {attr.suite} is not supported"
    if len(attr.keys) != 1:
        return "several master keys (they need MKIs) are not supported"
    key = attr.keys[0]
    if key.mki is not None:
        return "master key identifiers (MKI) are not supported"
    if len(key.key_salt) != length:
        return f"{attr.suite} needs a {length}-octet key and salt, not {len(key.key_salt)}"
    if key.lifetime is not None and key.lifetime < MIN_KEY_LIFETIME:
        return f"key lifetime {key.lifetime} is shorter than a call may last"
    for param in attr.session_params:
        name, _, value = param.partition("=")
        if name.upper() != "WSH" or not value.isascii() or not value.isdigit():
            return f"session parameter {param[:40]!r} is not supported"
    return None


def _fresh(tag: int, suite: str, new_key: KeySource) -> CryptoAttribute:
    canonical = suite.upper()
    return CryptoAttribute(tag, canonical, (CryptoKey(new_key(ACCEPTED_SUITES[canonical])),))


def answer_offer(
    media: MediaDescription,
    previous: Sdes | None = None,
    new_key: KeySource = secrets.token_bytes,
) -> Sdes | None:
    """Our side of a leg's offered stream: the keys to use, or None for plain RTP.

    Raises `NoUsableCrypto` for an RTP/SAVP stream with no usable attribute.
    Our key of `previous` is kept when the chosen suite is unchanged.
    """
    offered = crypto_attributes(media)
    for attr in offered:
        if unusable_reason(attr) is not None:
            continue
        if previous is not None and previous.ours.suite == attr.suite.upper():
            ours = CryptoAttribute(attr.tag, previous.ours.suite, previous.ours.keys)
        else:
            ours = _fresh(attr.tag, attr.suite, new_key)
        return Sdes(media.proto, ours, attr)
    if is_secure_proto(media.proto):
        reasons = "; ".join(unusable_reason(a) or "" for a in offered) or "no crypto attribute"
        raise NoUsableCrypto(f"no usable SDES key in the {media.proto} offer ({reasons})")
    return None


def make_offer(
    previous: Sdes | None = None,
    new_key: KeySource = secrets.token_bytes,
    suites: tuple[str, ...] = OFFERED_SUITES,
) -> SdesOffer:
    """The crypto attributes to offer a leg: the agreed key again when there is
    one, else one fresh key per suite in `suites` (tags 1, 2, ...)."""
    if previous is not None:
        return SdesOffer(previous.proto, (previous.ours,))
    if not suites:
        raise ValueError("an SDES offer needs at least one suite")
    lines = tuple(_fresh(tag, suite, new_key) for tag, suite in enumerate(suites, start=1))
    return SdesOffer(_SECURE, lines)


def accept_answer(offer: SdesOffer, media: MediaDescription) -> Sdes:
    """The keys of a leg that answered `offer`; SdpError when its answer does not
    hold exactly one usable attribute matching an offered tag and suite."""
    answered = crypto_attributes(media)
    if len(answered) != 1:
        raise SdpError(f"an SDES answer needs one crypto attribute, it has {len(answered)}")
    theirs = answered[0]
    ours = next((line for line in offer.lines if line.tag == theirs.tag), None)
    if ours is None or ours.suite != theirs.suite.upper():
        raise SdpError(f"the answer's crypto tag {theirs.tag} ({theirs.suite}) was not offered")
    reason = unusable_reason(theirs)
    if reason is not None:
        raise SdpError(f"the answer's key cannot be used: {reason}")
    return Sdes(media.proto, ours, theirs)
