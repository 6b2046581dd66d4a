"""SDP session descriptions (RFC 4566) and the offer/answer model (RFC 3264).

Sans-IO and pure: bytes in, frozen dataclasses out, and back to bytes.

Theory of operation
-------------------
Parsing is deliberately *lossless* rather than interpretive.  Every line of a
body ends up somewhere in the model: the lines the PBX reasons about (v o s c
b t m a) get typed fields, and the rare ones (i u e p r z k, and letters this
module does not know) are kept verbatim in `other_lines`, so SDP relayed from one
call leg to another loses nothing.  Attribute values are kept as text and only
interpreted on demand (`rtpmap()`, `fmtp()`, `direction()`), which keeps one
odd attribute from failing a whole call.

Serializing writes the RFC 4566 section 5 line order (v o s i u e p c b t r z k
a, then per media m i c b k a).  Parsing accepts lines in any order within a
section, as real phones sometimes get it wrong, but stores the rare lines in
that canonical order, so `parse_sdp(x.to_bytes()) == x` holds for every parsed
`x`.  Two normalizations follow from the same idea: a missing t= line is read
as `t=0 0` (the only value SIP uses, RFC 3264 section 5) and an empty session
name is written as `s= ` (the form RFC 4566 section 5.3 recommends).

Where phones are sloppy and the meaning is still clear the parser is lenient
(bare LF line ends, trailing whitespace, blank lines, empty s=, missing t=,
repeated spaces between fields).  Where the meaning is *not* clear it raises
`SdpError` naming the line: a bad port, a duplicated c= in one section, a
session-only line inside a media section.  Sizes are bounded before any work
is done, because bodies come from the network.

Offer/answer (RFC 3264) is limited to what a media-anchoring PBX needs: one
audio stream over RTP/AVP (or RTP/SAVP, when the caller brings SDES keys)
answered per offer; anything else is rejected with port 0, which RFC 3264
section 6 always allows.

SDES key attributes (a=crypto, RFC 4568) are parsed and written here
(`CryptoAttribute`); which keys a leg uses is decided in `sip.sdes`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "MAX_LINES",
    "MAX_MEDIA",
    "MAX_SIZE",
    "STATIC_PAYLOAD_TYPES",
    "Codec",
    "Connection",
    "CryptoAttribute",
    "CryptoKey",
    "Direction",
    "MediaDescription",
    "Origin",
    "SdpError",
    "SessionDescription",
    "build_answer",
    "build_offer",
    "bump_version",
    "crypto_attributes",
    "is_hold",
    "negotiated_codecs",
    "parse_crypto",
    "parse_sdp",
    "with_connection",
    "with_crypto",
]

# Bounds on untrusted input.  A real SIP call's SDP is a few hundred bytes with
# a handful of m-lines; these limits are generous for that and cheap to check.
MAX_SIZE = 65536
MAX_LINES = 1000
MAX_MEDIA = 64

Attributes = tuple[tuple[str, str | None], ...]
Bandwidths = tuple[tuple[str, int], ...]
OtherLines = tuple[tuple[str, str], ...]


class SdpError(ValueError):
    """A session description is malformed, or cannot be built as asked.

    `line` is the 1-based line number in the parsed body when the problem is
    tied to one line, else None.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"SDP line {line}: {reason}")
        self.reason = reason
        self.line = line


class Direction(enum.Enum):
    """Media direction attributes (RFC 4566 section 6, RFC 3264 section 5.1).

    Always from the point of view of the side that wrote the description.
    """

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, send: bool, recv: bool) -> Direction:
        if send:
            return cls.SENDRECV if recv else cls.SENDONLY
        return cls.RECVONLY if recv else cls.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(send=self.receives, recv=self.sends)


_DIRECTIONS = {d.value: d for d in Direction}

# Static RTP payload types of RFC 3551 tables 4 and 5: number -> (encoding name,
# clock rate, channels).  Used when a format has no a=rtpmap (RFC 4566 section
# 6 makes rtpmap optional for static types), and to pick numbers in offers.
STATIC_PAYLOAD_TYPES: dict[str, tuple[str, int, str | None]] = {
    "0": ("PCMU", 8000, None),
    "3": ("GSM", 8000, None),
    "4": ("G723", 8000, None),
    "5": ("DVI4", 8000, None),
    "6": ("DVI4", 16000, None),
    "7": ("LPC", 8000, None),
    "8": ("PCMA", 8000, None),
    # G.722 samples at 16 kHz but is registered with an 8000 RTP clock rate for
    # historical reasons (RFC 3551 section 4.5.2).
    "9": ("G722", 8000, None),
    "10": ("L16", 44100, "2"),
    "11": ("L16", 44100, None),
    "12": ("QCELP", 8000, None),
    "13": ("CN", 8000, None),
    "14": ("MPA", 90000, None),
    "15": ("G728", 8000, None),
    "16": ("DVI4", 11025, None),
    "17": ("DVI4", 22050, None),
    "18": ("G729", 8000, None),
    "25": ("CelB", 90000, None),
    "26": ("JPEG", 90000, None),
    "28": ("nv", 90000, None),
    "31": ("H261", 90000, None),
    "32": ("MPV", 90000, None),
    "33": ("MP2T", 90000, None),
    "34": ("H263", 90000, None),
}

# RFC 3551 section 3: 96-127 is the dynamic range.
_DYNAMIC_PAYLOAD_TYPES = range(96, 128)
_TELEPHONE_EVENT = "telephone-event"
# RFC 4733 section 3.2: events 0-15 are the DTMF digits and 16 is flash.
_TELEPHONE_EVENT_FMTP = "0-16"
# RFC 2543 put a call on hold with this address; RFC 3264 section 8.4 asks us to
# still understand it.
_HOLD_ADDRESS = "0.0.0.0"  # noqa: S104 - an SDP marker, not a socket bind


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format as negotiated: encoding name, clock rate, number.

    Names compare case-insensitively (they are media subtypes, RFC 4855); use
    `same_format()` rather than `==` to match codecs between descriptions.
    `channels` is the rtpmap encoding parameter (needed for e.g. opus/48000/2).
    """

    name: str
    clock_rate: int
    payload_type: int | None = None
    channels: int | None = None

    def same_format(self, other: Codec) -> bool:
        return self.name.lower() == other.name.lower() and self.clock_rate == other.clock_rate

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == _TELEPHONE_EVENT


@dataclass(frozen=True, slots=True)
class Origin:
    """The o= line (RFC 4566 section 5.2)."""

    username: str
    session_id: str
    session_version: int
    net_type: str
    addr_type: str
    address: str


@dataclass(frozen=True, slots=True)
class Connection:
    """A c= line (RFC 4566 section 5.7); `address` keeps any /ttl/count suffix."""

    net_type: str
    addr_type: str
    address: str


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section (RFC 4566 section 5.14) with the lines that follow it.

    `other_lines` keeps i=, k= and unknown lines of the section verbatim.
    """

    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    bandwidths: Bandwidths = ()
    attributes: Attributes = ()
    other_lines: OtherLines = ()

    def attribute_values(self, name: str) -> list[str | None]:
        """Values of every a=NAME line, in order (None for a flag attribute)."""
        return _attribute_values(self.attributes, name)

    def rtpmap(self) -> dict[str, tuple[str, int, str | None]]:
        """Payload type -> (encoding name, clock rate, encoding parameters).

        Only explicit a=rtpmap lines (RFC 4566 section 6); malformed ones are
        skipped so that one bad attribute does not fail a call, and the first of
        duplicates wins.
        """
        result: dict[str, tuple[str, int, str | None]] = {}
        for value in self.attribute_values("rtpmap"):
            parsed = _parse_rtpmap(value)
            if parsed is not None and parsed[0] not in result:
                result[parsed[0]] = parsed[1]
        return result

    def fmtp(self, pt: str | int) -> str | None:
        """Format parameters of a=fmtp for one format ("" if the line has none)."""
        wanted = str(pt)
        for value in self.attribute_values("fmtp"):
            if value is None:
                continue
            fields = value.strip().split(None, 1)
            if fields and fields[0] == wanted:
                return fields[1].strip() if len(fields) > 1 else ""
        return None

    def direction(self, session_default: Direction = Direction.SENDRECV) -> Direction:
        """The stream's direction; without a media-level attribute, the session's.

        RFC 4566 section 6: a direction attribute at session level applies to
        every media section that does not carry its own.
        """
        found = _direction_of(self.attributes)
        return session_default if found is None else found

    @property
    def is_rtp(self) -> bool:
        # RFC 4566 section 5.14: the fmt list holds RTP payload type numbers only
        # when the transport is RTP (RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, ...).
        return "RTP" in self.proto.upper().split("/")

    def codec_names(self) -> list[str | None]:
        """The encoding name of each format, in order.

        From a=rtpmap, else the RFC 3551 static table; None for an RTP payload
        type with neither.  For non-RTP transports the format *is* the name
        (e.g. "t38" over udptl).
        """
        if not self.is_rtp:
            return list(self.formats)
        rtpmap = self.rtpmap()
        names: list[str | None] = []
        for fmt in self.formats:
            entry = rtpmap.get(fmt) or STATIC_PAYLOAD_TYPES.get(fmt)
            names.append(entry[0] if entry else None)
        return names

    def codecs(self) -> list[Codec]:
        """The formats whose encoding is known, as Codecs, in the m-line's order."""
        return [codec for _, codec, _ in _known_formats(self)]


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body (RFC 4566 section 5).

    `other_lines` keeps the session-level i u e p r z k (and unknown) lines in
    canonical order.  Repeat times (r=) are not tied to their t= line, which no
    SIP use of SDP needs (RFC 3264 section 5 fixes t=0 0).
    """

    version: int
    origin: Origin
    session_name: str
    connection: Connection | None = None
    bandwidths: Bandwidths = ()
    times: tuple[tuple[int, int], ...] = ((0, 0),)
    attributes: Attributes = ()
    media: tuple[MediaDescription, ...] = ()
    other_lines: OtherLines = ()

    def attribute_values(self, name: str) -> list[str | None]:
        return _attribute_values(self.attributes, name)

    def session_direction(self) -> Direction:
        """The session-level direction attribute, sendrecv if there is none."""
        found = _direction_of(self.attributes)
        return Direction.SENDRECV if found is None else found

    def media_direction(self, index: int) -> Direction:
        return self.media[index].direction(self.session_direction())

    def connection_for(self, index: int) -> Connection | None:
        """The c= that applies to one m-line: its own, else the session's."""
        media = self.media[index]
        return media.connection if media.connection is not None else self.connection

    def to_bytes(self) -> bytes:
        """Serialize with CRLF line ends in RFC 4566 section 5 order.

        Raises SdpError if a field could not be parsed back to the same value
        (a space in a token, a line break in a text field): serializing such an
        object would let one field inject lines into the body.
        """
        lines: list[str] = [f"v={_uint(self.version, 'version')}"]
        o = self.origin
        lines.append(
            "o="
            + " ".join(
                (
                    _token(o.username, "origin username"),
                    _token(o.session_id, "origin session id"),
                    str(_uint(o.session_version, "origin session version")),
                    _token(o.net_type, "origin network type"),
                    _token(o.addr_type, "origin address type"),
                    _token(o.address, "origin address"),
                )
            )
        )
        lines.append("s=" + (_text(self.session_name, "session name") or " "))
        others = _sorted_other_lines(self.other_lines, _SESSION_RANK)
        for kind, _ in others:
            _check_other_kind(kind, media=False)
        # Of the rare lines, i u e p (rank < 4) come before c=, the rest after t=.
        before = [(k, v) for k, v in others if _SESSION_RANK.get(k, _UNKNOWN_RANK) < 4]
        after = others[len(before) :]
        lines.extend(_other_line(k, v) for k, v in before)
        if self.connection is not None:
            lines.append(_connection_line(self.connection))
        lines.extend(_bandwidth_lines(self.bandwidths))
        for start, stop in self.times or ((0, 0),):
            lines.append(f"t={_uint(start, 'start time')} {_uint(stop, 'stop time')}")
        lines.extend(_other_line(k, v) for k, v in after)
        lines.extend(_attribute_lines(self.attributes))
        for media in self.media:
            lines.extend(_media_lines(media))
        return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="surrogateescape")


# -- parsing -------------------------------------------------------------------

_UINT_RE = re.compile(r"[0-9]{1,20}")
_SESSION_ONLY = frozenset("vosuepztr")
# Canonical position of each rare line among its section's lines (RFC 4566
# section 5).  Unknown letters go after the known ones, just before a=.
_SESSION_RANK = {"i": 0, "u": 1, "e": 2, "p": 3, "r": 4, "z": 5, "k": 6}
_MEDIA_RANK = {"i": 0, "k": 1}
_UNKNOWN_RANK = 7
_STRUCTURAL = frozenset("vosmcbta")


class _Section:
    """Mutable accumulator for one m= section while parsing."""

    __slots__ = ("attributes", "bandwidths", "connection", "head", "other_lines")

    def __init__(self, head: tuple[str, int, int | None, str, tuple[str, ...]]) -> None:
        self.head = head
        self.connection: Connection | None = None
        self.bandwidths: list[tuple[str, int]] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.other_lines: list[tuple[str, str]] = []

    def freeze(self) -> MediaDescription:
        media, port, port_count, proto, formats = self.head
        return MediaDescription(
            media=media,
            port=port,
            port_count=port_count,
            proto=proto,
            formats=formats,
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            attributes=tuple(self.attributes),
            other_lines=tuple(_sorted_other_lines(self.other_lines, _MEDIA_RANK)),
        )


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; raise SdpError (naming the line) if it is malformed.

    Text is UTF-8 (RFC 4566 section 5.3's default charset); bytes that are not
    valid UTF-8, which some phones send in s= or i=, are carried through
    unchanged rather than rejected.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            raise SdpError("SDP text holds characters that cannot be encoded") from None
    else:
        raw = bytes(data)
    if len(raw) > MAX_SIZE:
        raise SdpError(f"SDP body of {len(raw)} bytes exceeds the {MAX_SIZE} byte limit")
    lines = raw.decode("utf-8", errors="surrogateescape").split("\n")
    if lines[-1] == "":
        lines.pop()  # the line end of the last line
    if len(lines) > MAX_LINES:
        raise SdpError(f"SDP body has {len(lines)} lines, more than {MAX_LINES}")

    version: int | None = None
    origin: Origin | None = None
    session_name: str | None = None
    connection: Connection | None = None
    bandwidths: list[tuple[str, int]] = []
    times: list[tuple[int, int]] = []
    attributes: list[tuple[str, str | None]] = []
    other_lines: list[tuple[str, str]] = []
    sections: list[_Section] = []

    for lineno, raw_line in enumerate(lines, start=1):
        # Trailing blanks are a common sloppiness and never meaningful (text
        # fields end at the line end); CR is stripped here too, so a lone LF
        # line end is accepted just like CRLF.
        line = raw_line.rstrip(" \t\r")
        if not line:
            continue
        if "\r" in line or "\0" in line:
            raise SdpError("CR or NUL inside a line", lineno)
        kind = line[0]
        if len(line) < 2 or line[1] != "=" or not (kind.isascii() and kind.isalpha()):
            raise SdpError(f"expected '<letter>=<value>', got {_excerpt(line)}", lineno)
        value = line[2:]
        if version is None:
            if kind != "v":
                raise SdpError(f"the first line must be v=, got {_excerpt(line)}", lineno)
            version = _parse_uint(value, "version", lineno)
            continue

        if kind == "m":
            if len(sections) >= MAX_MEDIA:
                raise SdpError(f"more than {MAX_MEDIA} media sections", lineno)
            sections.append(_Section(_parse_media(value, lineno)))
        elif sections:
            section = sections[-1]
            if kind == "c":
                if section.connection is not None:
                    raise SdpError("more than one c= line in a media section", lineno)
                section.connection = _parse_connection(value, lineno)
            elif kind == "b":
                section.bandwidths.append(_parse_bandwidth(value, lineno))
            elif kind == "a":
                section.attributes.append(_parse_attribute(value, lineno))
            elif kind in _SESSION_ONLY:
                raise SdpError(f"{kind}= line is not allowed in a media section", lineno)
            else:
                section.other_lines.append((kind, value))
        elif kind == "v":
            raise SdpError("more than one v= line", lineno)
        elif kind == "o":
            if origin is not None:
                raise SdpError("more than one o= line", lineno)
            origin = _parse_origin(value, lineno)
        elif kind == "s":
            if session_name is not None:
                raise SdpError("more than one s= line", lineno)
            session_name = value
        elif kind == "c":
            if connection is not None:
                raise SdpError("more than one session-level c= line", lineno)
            connection = _parse_connection(value, lineno)
        elif kind == "b":
            bandwidths.append(_parse_bandwidth(value, lineno))
        elif kind == "t":
            times.append(_parse_times(value, lineno))
        elif kind == "a":
            attributes.append(_parse_attribute(value, lineno))
        else:
            other_lines.append((kind, value))

    if version is None:
        raise SdpError("empty SDP body (no v= line)")
    if origin is None:
        raise SdpError("missing o= line")
    if session_name is None:
        raise SdpError("missing s= line")
    return SessionDescription(
        version=version,
        origin=origin,
        session_name=session_name,
        connection=connection,
        bandwidths=tuple(bandwidths),
        times=tuple(times) or ((0, 0),),
        attributes=tuple(attributes),
        media=tuple(section.freeze() for section in sections),
        other_lines=tuple(_sorted_other_lines(other_lines, _SESSION_RANK)),
    )


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= 60 else line[:57] + "...")


def _parse_uint(text: str, what: str, lineno: int) -> int:
    # ASCII digits only: int() would also take "+5", " 5", "5_000" and other
    # scripts' digits, none of which SDP allows.
    if not _UINT_RE.fullmatch(text):
        raise SdpError(f"{what} {_excerpt(text)} is not a non-negative integer", lineno)
    return int(text)


def _parse_origin(value: str, lineno: int) -> Origin:
    fields = value.split()
    if len(fields) != 6:
        raise SdpError(f"o= needs 6 fields, got {len(fields)}", lineno)
    username, session_id, version, net_type, addr_type, address = fields
    return Origin(
        username=username,
        session_id=session_id,
        session_version=_parse_uint(version, "session version", lineno),
        net_type=net_type,
        addr_type=addr_type,
        address=address,
    )


def _parse_connection(value: str, lineno: int) -> Connection:
    fields = value.split()
    if len(fields) != 3:
        raise SdpError(f"c= needs 3 fields, got {len(fields)}", lineno)
    return Connection(*fields)


def _parse_bandwidth(value: str, lineno: int) -> tuple[str, int]:
    bwtype, sep, amount = value.partition(":")
    if not sep or not bwtype or bwtype.split() != [bwtype]:
        raise SdpError(f"b= must be '<type>:<kbps>', got {_excerpt(value)}", lineno)
    return bwtype, _parse_uint(amount.strip(), "bandwidth", lineno)


def _parse_times(value: str, lineno: int) -> tuple[int, int]:
    fields = value.split()
    if len(fields) != 2:
        raise SdpError(f"t= needs 2 fields, got {len(fields)}", lineno)
    return _parse_uint(fields[0], "start time", lineno), _parse_uint(fields[1], "stop time", lineno)


def _parse_attribute(value: str, lineno: int) -> tuple[str, str | None]:
    # RFC 4566 section 5.13: "a=<flag>" or "a=<attribute>:<value>"; the value
    # may itself hold colons (a=fingerprint, a=candidate) so split only once.
    name, sep, rest = value.partition(":")
    if not name:
        raise SdpError("attribute with an empty name", lineno)
    return name, (rest if sep else None)


def _parse_media(value: str, lineno: int) -> tuple[str, int, int | None, str, tuple[str, ...]]:
    fields = value.split()
    if len(fields) < 3:
        raise SdpError(f"m= needs '<media> <port> <proto> <fmt>...', got {_excerpt(value)}", lineno)
    # Formats are required by the grammar, but a rejected stream written by a
    # sloppy peer may list none; nothing depends on them then, so accept it.
    media, port_field, proto, *formats = fields
    port_text, slash, count_text = port_field.partition("/")
    port = _parse_uint(port_text, "port", lineno)
    if port > 65535:
        raise SdpError(f"port {port} is out of range", lineno)
    port_count: int | None = None
    if slash:
        port_count = _parse_uint(count_text, "port count", lineno)
        if port_count < 1:
            raise SdpError("port count must be at least 1", lineno)
    return media, port, port_count, proto, tuple(formats)


def _sorted_other_lines(
    lines: Iterable[tuple[str, str]], rank: dict[str, int]
) -> list[tuple[str, str]]:
    # A stable sort: lines of one kind keep their relative order (r= after r=).
    return sorted(lines, key=lambda kv: rank.get(kv[0], _UNKNOWN_RANK))


def _attribute_values(attributes: Attributes, name: str) -> list[str | None]:
    # Attribute names are case-sensitive in RFC 4566, but a peer writing
    # "a=SendOnly" means nothing else, so look them up case-insensitively.
    wanted = name.lower()
    return [value for key, value in attributes if key.lower() == wanted]


def _direction_of(attributes: Attributes) -> Direction | None:
    for key, value in attributes:
        if value is None and key.lower() in _DIRECTIONS:
            return _DIRECTIONS[key.lower()]
    return None


def _known_formats(
    media: MediaDescription,
) -> list[tuple[str, Codec, tuple[str, int, str | None]]]:
    # (format as written, Codec, rtpmap entry) for each RTP format whose encoding
    # is known; the written form is kept so answers echo it exactly.
    if not media.is_rtp:
        return []
    rtpmap = media.rtpmap()
    result = []
    for fmt in media.formats:
        entry = rtpmap.get(fmt) or STATIC_PAYLOAD_TYPES.get(fmt)
        if entry is None or not _UINT_RE.fullmatch(fmt) or int(fmt) > 127:
            continue
        name, rate, params = entry
        channels = int(params) if params is not None and _UINT_RE.fullmatch(params) else None
        result.append((fmt, Codec(name, rate, int(fmt), channels), entry))
    return result


def _parse_rtpmap(value: str | None) -> tuple[str, tuple[str, int, str | None]] | None:
    # a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
    if value is None:
        return None
    fields = value.split()
    if len(fields) != 2:
        return None
    parts = fields[1].split("/")
    if len(parts) not in (2, 3) or not parts[0] or not _UINT_RE.fullmatch(parts[1]):
        return None
    params = parts[2] if len(parts) == 3 and parts[2] else None
    return fields[0], (parts[0], int(parts[1]), params)


# -- serializing ---------------------------------------------------------------


def _token(value: str, what: str) -> str:
    # A token must come back from value.split() as itself: non-empty, with no
    # whitespace (which includes CR and LF) and no NUL.
    if value.split() != [value] or "\0" in value:
        raise SdpError(f"{what} {value!r} is empty or holds whitespace")
    return value


def _text(value: str, what: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise SdpError(f"{what} {value!r} holds CR, LF or NUL")
    return value


def _uint(value: int, what: str) -> int:
    if value < 0:
        raise SdpError(f"{what} {value} is negative")
    return value


def _other_line(kind: str, value: str) -> str:
    return f"{kind}={_text(value, kind + '= line')}"


def _connection_line(connection: Connection) -> str:
    return "c=" + " ".join(
        (
            _token(connection.net_type, "connection network type"),
            _token(connection.addr_type, "connection address type"),
            _token(connection.address, "connection address"),
        )
    )


def _bandwidth_lines(bandwidths: Bandwidths) -> list[str]:
    out = []
    for bwtype, amount in bandwidths:
        if ":" in _token(bwtype, "bandwidth type"):
            raise SdpError(f"bandwidth type {bwtype!r} holds a colon")
        out.append(f"b={bwtype}:{_uint(amount, 'bandwidth')}")
    return out


def _attribute_lines(attributes: Attributes) -> list[str]:
    out = []
    for name, value in attributes:
        if not name or ":" in name:
            raise SdpError(f"attribute name {name!r} is empty or holds a colon")
        _text(name, "attribute name")
        out.append(f"a={name}" if value is None else f"a={name}:{_text(value, name)}")
    return out


def _check_other_kind(kind: str, *, media: bool) -> None:
    if not (len(kind) == 1 and kind.isascii() and kind.isalpha()) or kind in _STRUCTURAL:
        raise SdpError(f"{kind!r} cannot be kept as an other line")
    if media and kind in _SESSION_ONLY:
        raise SdpError(f"{kind}= line is not allowed in a media section")


def _media_lines(media: MediaDescription) -> list[str]:
    port = str(_uint(media.port, "port"))
    if media.port > 65535:
        raise SdpError(f"port {media.port} is out of range")
    if media.port_count is not None:
        if media.port_count < 1:
            raise SdpError("port count must be at least 1")
        port += f"/{media.port_count}"
    head = [_token(media.media, "media type"), port, _token(media.proto, "protocol")]
    head.extend(_token(fmt, "format") for fmt in media.formats)
    lines = ["m=" + " ".join(head)]
    others = _sorted_other_lines(media.other_lines, _MEDIA_RANK)
    for kind, _ in others:
        _check_other_kind(kind, media=True)
    # RFC 4566 section 5: m i c b k a.
    lines.extend(_other_line(k, v) for k, v in others if k == "i")
    if media.connection is not None:
        lines.append(_connection_line(media.connection))
    lines.extend(_bandwidth_lines(media.bandwidths))
    lines.extend(_other_line(k, v) for k, v in others if k != "i")
    lines.extend(_attribute_lines(media.attributes))
    return lines


# -- SDES key attributes (RFC 4568) ---------------------------------------------

# RFC 4568 section 9.1: tag = 1*9DIGIT, and a suite name is letters, digits and
# underscores.  Bounds on the rest keep a hostile attribute cheap to refuse.
_CRYPTO_TAG_RE = re.compile(r"[0-9]{1,9}")
_CRYPTO_SUITE_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_KEY_PARAMS = 16
# A key-salt of the longest SRTP suite (AES-256 with a 14-octet salt) is 46
# octets; anything far beyond that is not a key.
_MAX_KEY_SALT = 128
# RFC 4568 section 6.1: "lifetime = ["2^"] 1*(DIGIT)"; SRTP allows 2^48 packets
# at most (RFC 3711 section 9.2), so a larger value is as good as "no limit".
_MAX_LIFETIME_EXPONENT = 64
_MAX_MKI_LENGTH = 128


@dataclass(frozen=True, slots=True)
class CryptoKey:
    """One key-param of a crypto attribute: ``inline:<key||salt>[|lifetime][|mki:len]``.

    `lifetime` is the number of packets the key may protect (None: the suite's
    maximum); `mki` is (value, length in octets) when the key carries a master
    key identifier (RFC 4568 section 6.1).
    """

    key_salt: bytes
    lifetime: int | None = None
    mki: tuple[int, int] | None = None

    def __repr__(self) -> str:
        # A master key must never end up in a log line through repr().
        return f"CryptoKey(<{len(self.key_salt)} octets>, lifetime={self.lifetime}, mki={self.mki})"


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """An SDES ``a=crypto`` attribute (RFC 4568 section 4).

    ``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]``.  The key
    of an offer's attribute is the one its writer *sends* with; an answer picks
    one offered attribute by its tag and suite and brings its own key.
    """

    tag: int
    suite: str
    keys: tuple[CryptoKey, ...]
    session_params: tuple[str, ...] = ()

    def to_value(self) -> str:
        """The attribute value (what follows ``a=crypto:``)."""
        if not 0 <= self.tag <= 999_999_999:
            raise SdpError(f"crypto tag {self.tag} is out of range")
        if not _CRYPTO_SUITE_RE.fullmatch(self.suite):
            raise SdpError(f"crypto suite {self.suite!r} is not a token")
        if not self.keys:
            raise SdpError("a crypto attribute needs at least one key")
        params = ";".join(_key_param(key) for key in self.keys)
        for param in self.session_params:
            _token(param, "crypto session parameter")
        return " ".join((str(self.tag), self.suite, params, *self.session_params))

    def __repr__(self) -> str:
        return (
            f"CryptoAttribute(tag={self.tag}, suite={self.suite!r}, keys={self.keys!r}, "
            f"session_params={self.session_params!r})"
        )


def _key_param(key: CryptoKey) -> str:
    if not key.key_salt or len(key.key_salt) > _MAX_KEY_SALT:
        raise SdpError(f"a key of {len(key.key_salt)} octets cannot be written")
    text = "inline:" + base64.b64encode(key.key_salt).decode("ascii")
    if key.lifetime is not None:
        if key.lifetime < 1:
            raise SdpError(f"key lifetime {key.lifetime} is not positive")
        exponent = key.lifetime.bit_length() - 1
        power_of_two = key.lifetime == 1 << exponent
        text += f"|2^{exponent}" if power_of_two else f"|{key.lifetime}"
    if key.mki is not None:
        value, length = key.mki
        if value < 0 or not 1 <= length <= _MAX_MKI_LENGTH or value >= 1 << (8 * length):
            raise SdpError(f"MKI {value}:{length} is out of range")
        text += f"|{value}:{length}"
    return text


def parse_crypto(value: str) -> CryptoAttribute:
    """Parse the value of an ``a=crypto`` attribute; raise SdpError if malformed.

    Only the ``inline`` key method exists for SRTP (RFC 4568 section 6.1); the
    literal is matched case-insensitively, as ABNF strings are.  A key that is
    not valid base64 is malformed, not merely unusable.
    """
    fields = value.split()
    if len(fields) < 3:
        raise SdpError(
            f"crypto attribute needs '<tag> <suite> <key-params>', got {_excerpt(value)}"
        )
    tag_text, suite, key_params, *session_params = fields
    if not _CRYPTO_TAG_RE.fullmatch(tag_text):
        raise SdpError(f"crypto tag {_excerpt(tag_text)} is not 1 to 9 digits")
    if not _CRYPTO_SUITE_RE.fullmatch(suite):
        raise SdpError(f"crypto suite {_excerpt(suite)} is not a token")
    params = key_params.split(";")
    if len(params) > _MAX_KEY_PARAMS:
        raise SdpError(f"more than {_MAX_KEY_PARAMS} keys in one crypto attribute")
    keys = tuple(_parse_key_param(param) for param in params)
    return CryptoAttribute(int(tag_text), suite, keys, tuple(session_params))


def _parse_key_param(param: str) -> CryptoKey:
    method, sep, info = param.partition(":")
    if not sep or method.lower() != "inline":
        raise SdpError(f"key method of {_excerpt(param)} is not 'inline'")
    parts = info.split("|")
    if len(parts) > 3:
        raise SdpError(f"key {_excerpt(param)} has too many '|' fields")
    key_salt = _decode_key(parts[0])
    lifetime: int | None = None
    mki: tuple[int, int] | None = None
    for extra in parts[1:]:
        # The lifetime and the MKI are both optional, in that order; only the
        # MKI holds a colon.
        if ":" in extra:
            if mki is not None:
                raise SdpError("a key has two MKIs")
            mki = _parse_mki(extra)
        elif lifetime is not None or mki is not None:
            raise SdpError("a key lifetime must come once, before the MKI")
        else:
            lifetime = _parse_lifetime(extra)
    return CryptoKey(key_salt, lifetime, mki)


def _decode_key(text: str) -> bytes:
    if not text or len(text) > 4 * _MAX_KEY_SALT // 3 + 4 or not _BASE64_RE.fullmatch(text):
        raise SdpError(f"key {_excerpt(text)} is not base64")
    # Some phones leave out the '=' padding; the key is still unambiguous.
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise SdpError(f"key {_excerpt(text)} is not base64") from None


def _parse_lifetime(text: str) -> int:
    if text.startswith("2^"):
        exponent = text[2:]
        if not exponent.isascii() or not exponent.isdigit() or len(exponent) > 2:
            raise SdpError(f"key lifetime {_excerpt(text)} is not 2^N")
        if int(exponent) > _MAX_LIFETIME_EXPONENT:
            raise SdpError(f"key lifetime {_excerpt(text)} is out of range")
        return 1 << int(exponent)
    if not _UINT_RE.fullmatch(text) or int(text) == 0 or int(text) > 1 << _MAX_LIFETIME_EXPONENT:
        raise SdpError(f"key lifetime {_excerpt(text)} is not a positive number")
    return int(text)


def _parse_mki(text: str) -> tuple[int, int]:
    value_text, _, length_text = text.partition(":")
    if not _UINT_RE.fullmatch(value_text) or not re.fullmatch(r"[0-9]{1,3}", length_text):
        raise SdpError(f"MKI {_excerpt(text)} is not '<value>:<length>'")
    value, length = int(value_text), int(length_text)
    if not 1 <= length <= _MAX_MKI_LENGTH or value >= 1 << (8 * length):
        raise SdpError(f"MKI {_excerpt(text)} is out of range")
    return value, length


def crypto_attributes(media: MediaDescription) -> list[CryptoAttribute]:
    """The a=crypto attributes of one m-line that parse, in order.

    Malformed ones are skipped, as for rtpmap: RFC 4568 section 7.1.2 has the
    answerer ignore attributes it cannot use, and one bad line must not hide a
    good one after it.
    """
    found = []
    for value in media.attribute_values("crypto"):
        if value is None:
            continue
        try:
            found.append(parse_crypto(value))
        except SdpError:
            continue
    return found


def with_crypto(
    sdp: SessionDescription, proto: str, crypto: Sequence[CryptoAttribute]
) -> SessionDescription:
    """A copy whose active audio streams use `proto` and carry exactly `crypto`.

    Every a=crypto already in the description goes first, in every m-line and
    at session level: it holds the keys of whoever wrote it, which must never
    reach another leg.  Rejected and non-audio streams keep their protocol.
    """
    _token(proto, "protocol")
    values = [attr.to_value() for attr in crypto]

    def scrubbed(attributes: Attributes) -> list[tuple[str, str | None]]:
        return [(name, value) for name, value in attributes if name.lower() != "crypto"]

    media = []
    for m in sdp.media:
        attributes = scrubbed(m.attributes)
        if m.port != 0 and m.media.lower() == "audio":
            attributes.extend(("crypto", value) for value in values)
            media.append(replace(m, proto=proto, attributes=tuple(attributes)))
        else:
            media.append(replace(m, attributes=tuple(attributes)))
    return replace(sdp, attributes=tuple(scrubbed(sdp.attributes)), media=tuple(media))


# -- offer/answer (RFC 3264) ----------------------------------------------------

_AUDIO_PROTO = "RTP/AVP"
_SECURE_AUDIO_PROTO = "RTP/SAVP"


def _addr_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _check_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise SdpError(f"port {port} is out of range")
    return port


def _rtpmap_value(pt: str, name: str, rate: int, params: str | None) -> str:
    return f"{pt} {name}/{rate}" + (f"/{params}" if params else "")


def _static_payload_type(codec: Codec) -> str | None:
    channels = str(codec.channels) if codec.channels not in (None, 1) else None
    for pt, (name, rate, params) in STATIC_PAYLOAD_TYPES.items():
        if name.lower() == codec.name.lower() and rate == codec.clock_rate and params == channels:
            return pt
    return None


def build_offer(
    *,
    address: str,
    port: int,
    codecs: Sequence[Codec],
    session_id: int,
    session_version: int,
    direction: Direction = Direction.SENDRECV,
    username: str = "teleoffice",
    ptime: int = 20,
) -> SessionDescription:
    """An audio-only offer (RFC 3264 section 5) listing `codecs` in preference order.

    Payload numbers: a codec's own `payload_type` if set, else its RFC 3551
    static number, else the next free dynamic number from 96.  Every format gets
    an a=rtpmap even when static, since some phones ignore the static table.
    `ptime=0` leaves a=ptime out.
    """
    if not codecs:
        raise SdpError("an offer needs at least one codec")
    _check_port(port)
    taken = {c.payload_type for c in codecs if c.payload_type is not None}
    free = (pt for pt in _DYNAMIC_PAYLOAD_TYPES if pt not in taken)
    formats: list[str] = []
    attributes: list[tuple[str, str | None]] = []
    fmtps: list[tuple[str, str | None]] = []
    for codec in codecs:
        if codec.payload_type is not None:
            pt = str(codec.payload_type)
        else:
            static = _static_payload_type(codec)
            if static is not None and int(static) not in taken:
                pt = static
            else:
                pt = str(next(free, -1))
                if pt == "-1":
                    raise SdpError("more codecs than dynamic payload types")
            taken.add(int(pt))
        if not 0 <= int(pt) <= 127:
            raise SdpError(f"payload type {pt} is out of range")
        if pt in formats:
            raise SdpError(f"payload type {pt} is used twice")
        formats.append(pt)
        params = str(codec.channels) if codec.channels is not None else None
        attributes.append(("rtpmap", _rtpmap_value(pt, codec.name, codec.clock_rate, params)))
        if codec.is_telephone_event:
            fmtps.append(("fmtp", f"{pt} {_TELEPHONE_EVENT_FMTP}"))
    attributes.extend(fmtps)
    if ptime > 0:
        attributes.append(("ptime", str(ptime)))
    attributes.append((direction.value, None))
    offer = SessionDescription(
        version=0,
        origin=Origin(
            username, str(session_id), session_version, "IN", _addr_type(address), address
        ),
        session_name="-",
        connection=Connection("IN", _addr_type(address), address),
        times=((0, 0),),
        media=(
            MediaDescription(
                media="audio",
                port=port,
                port_count=None,
                proto=_AUDIO_PROTO,
                formats=tuple(formats),
                attributes=tuple(attributes),
            ),
        ),
    )
    offer.to_bytes()  # validates every field now, not when the INVITE goes out
    return offer


def _rejected(media: MediaDescription) -> MediaDescription:
    # RFC 3264 section 6: a rejected stream keeps its m-line with port 0; the
    # formats are ignored but the grammar needs at least one, so keep the offer's.
    return MediaDescription(
        media=media.media,
        port=0,
        port_count=None,
        proto=media.proto,
        formats=media.formats,
    )


def _offered_direction(offer: SessionDescription, index: int) -> Direction:
    direction = offer.media_direction(index)
    connection = offer.connection_for(index)
    if connection is not None and connection.address == _HOLD_ADDRESS:
        # RFC 2543 hold: the offerer asks not to be sent anything (RFC 3264
        # section 8.4), whatever the direction attribute says.
        direction = Direction.from_flags(send=direction.sends, recv=False)
    return direction


def build_answer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    supported: Sequence[Codec],
    session_id: int,
    session_version: int,
    hold: bool = False,
    username: str = "teleoffice",
    secure: bool = False,
) -> SessionDescription:
    """Answer `offer` (RFC 3264 section 6), one m-line per offered m-line, in order.

    The first active RTP/AVP audio stream with a codec in common is accepted on
    `port` (there is one local port, so later audio streams are rejected);
    every other stream gets port 0.  The accepted stream lists the common codecs
    in the *offer's* order with the offer's payload numbers (section 6.1), plus
    telephone-event only if it was offered.  Its direction is the offer's seen
    from our side; `hold=True` additionally stops us receiving (section 8.4).

    With `secure`, an RTP/SAVP audio stream is accepted too (its protocol is
    echoed); the caller then adds the SDES keys with `with_crypto`.  Without
    it an RTP/SAVP stream is rejected, since an answer with no key would be
    unusable (RFC 4568 section 7.1.2).

    Raises SdpError only when the offer itself is unusable (an active stream
    with no connection address).
    """
    _check_port(port)
    protos = {_AUDIO_PROTO, _SECURE_AUDIO_PROTO} if secure else {_AUDIO_PROTO}
    answered: list[MediaDescription] = []
    accepted = False
    for index, media in enumerate(offer.media):
        if media.port == 0:
            answered.append(_rejected(media))
            continue
        if offer.connection_for(index) is None:
            # RFC 4566 section 5.7: every active stream needs a c= somewhere.
            raise SdpError(f"offered m-line {index} has no connection address")
        if accepted or media.media.lower() != "audio" or media.proto.upper() not in protos:
            answered.append(_rejected(media))
            continue
        chosen = [
            (fmt, codec, entry)
            for fmt, codec, entry in _known_formats(media)
            if any(codec.same_format(mine) for mine in supported)
        ]
        if all(codec.is_telephone_event for _, codec, _ in chosen):
            answered.append(_rejected(media))
            continue
        attributes: list[tuple[str, str | None]] = []
        fmtps: list[tuple[str, str | None]] = []
        for fmt, codec, (name, rate, params) in chosen:
            attributes.append(("rtpmap", _rtpmap_value(fmt, name, rate, params)))
            if codec.is_telephone_event:
                fmtps.append(("fmtp", f"{fmt} {_TELEPHONE_EVENT_FMTP}"))
            else:
                # Codec parameters (annexb=no, opus settings) we cannot reason
                # about are echoed: media is relayed, so the peers' own
                # preferences are the right ones.
                fmtp = media.fmtp(fmt)
                if fmtp:
                    fmtps.append(("fmtp", f"{fmt} {fmtp}"))
        attributes.extend(fmtps)
        for ptime in media.attribute_values("ptime")[:1]:
            attributes.append(("ptime", ptime))
        theirs = _offered_direction(offer, index)
        ours = Direction.from_flags(send=theirs.receives, recv=theirs.sends and not hold)
        attributes.append((ours.value, None))
        answered.append(
            MediaDescription(
                media=media.media,
                port=port,
                port_count=None,
                proto=media.proto,
                formats=tuple(fmt for fmt, _, _ in chosen),
                attributes=tuple(attributes),
            )
        )
        accepted = True
    answer = SessionDescription(
        version=0,
        origin=Origin(
            username, str(session_id), session_version, "IN", _addr_type(address), address
        ),
        session_name="-",
        connection=Connection("IN", _addr_type(address), address),
        # RFC 3264 section 6: "The t= line in the answer MUST equal that of the offer."
        times=offer.times,
        media=tuple(answered),
    )
    answer.to_bytes()  # validates the local fields (address, username)
    return answer


def negotiated_codecs(
    offer: SessionDescription, answer: SessionDescription, index: int = 0
) -> list[Codec]:
    """The codecs of one stream that both sides agreed on, in the answer's order.

    Empty when either side has port 0 on that m-line.  Payload numbers are the
    answer's (which RFC 3264 section 6.1 asks to equal the offer's).
    """
    offered, answered = offer.media[index], answer.media[index]
    if offered.port == 0 or answered.port == 0:
        return []
    theirs = offered.codecs()
    return [codec for codec in answered.codecs() if any(codec.same_format(o) for o in theirs)]


def is_hold(sdp: SessionDescription, index: int = 0) -> bool:
    """Whether m-line `index` puts the writer's peer on hold (RFC 3264 section 8.4).

    True for sendonly or inactive, and for the RFC 2543 style c=0.0.0.0.
    """
    if sdp.media_direction(index) in (Direction.SENDONLY, Direction.INACTIVE):
        return True
    connection = sdp.connection_for(index)
    return connection is not None and connection.address == _HOLD_ADDRESS


def with_connection(
    sdp: SessionDescription, address: str, ports: Sequence[int], session_version: int
) -> SessionDescription:
    """A copy with media anchored at `address`: every c= and each m-line's port.

    `ports` has one entry per m-line.  Rejected m-lines (port 0) stay at 0, and
    a c=0.0.0.0 is kept, so a rejection or an RFC 2543 hold reaches the other
    leg unchanged.
    """
    if len(ports) != len(sdp.media):
        raise SdpError(f"{len(ports)} ports given for {len(sdp.media)} m-lines")
    for port in ports:
        _check_port(port)
    _token(address, "address")
    connection = Connection("IN", _addr_type(address), address)

    def anchored(old: Connection | None) -> Connection | None:
        if old is None or old.address == _HOLD_ADDRESS:
            return old
        return connection

    media = tuple(
        replace(m, port=0 if m.port == 0 else port, connection=anchored(m.connection))
        for m, port in zip(sdp.media, ports, strict=True)
    )
    return replace(
        sdp,
        origin=replace(sdp.origin, session_version=session_version),
        connection=anchored(sdp.connection),
        media=media,
    )


def bump_version(sdp: SessionDescription) -> SessionDescription:
    """The same description with o= version + 1 (RFC 3264 section 8: a new offer)."""
    return replace(sdp, origin=replace(sdp.origin, session_version=sdp.origin.session_version + 1))
