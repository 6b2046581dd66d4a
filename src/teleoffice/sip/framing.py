"""Cutting SIP messages out of a byte stream (TCP, later TLS), sans-IO.

Theory of operation
-------------------
A datagram carries exactly one message, but a stream carries a sequence of
messages with nothing between them but their own lengths: the head ends at the
first blank line and the body is exactly Content-Length octets long, which is why
RFC 3261 section 18.3 makes Content-Length mandatory on stream transports.  TCP
segments cut that sequence anywhere, so a `StreamFramer` keeps the unconsumed
bytes and, per connection, walks through three phases:

``BETWEEN``  skipping line ends before a start line.  RFC 3261 section 7.5 says
             CRLFs before a start line are ignored; RFC 5626 section 4.4.1 gives
             a double CRLF there a meaning: a keepalive *ping*, which the
             transport answers with a single CRLF *pong*.  A lone CRLF is
             remembered so that a second one arriving in a later segment still
             makes a ping.
``HEAD``     looking for the blank line that ends the head.  The search resumes
             where the previous one stopped (minus the two octets a terminator
             could straddle), so feeding a message byte by byte stays linear.
             The start line is checked as soon as it is complete, and control
             octets in it are refused as they arrive, so a TLS ClientHello or
             binary noise on the SIP port is refused at once instead of after
             64 KiB of buffering.
``BODY``     waiting until Content-Length octets of body have arrived.

Any `FramingError` means the stream can no longer be split reliably: the
transport must close the connection (there is no resynchronising a byte stream
whose lengths cannot be trusted).  The framer refuses further input after one.

Only framing is checked here.  A message whose header fields are wrong in ways
that do not affect its length goes up as a `Frame`, so the parser can still
answer it with a 400 (RFC 4475 expects that for many of its torture messages).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["Frame", "FrameEvent", "FramingError", "KeepAlivePing", "StreamFramer"]


class FramingError(ValueError):
    """The stream cannot be split into SIP messages; close the connection."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete message: the head, the blank line and exactly the body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """A double CRLF between messages (RFC 5626 section 4.4.1); answer with CRLF."""


FrameEvent = Frame | KeepAlivePing


class _Phase(enum.Enum):
    BETWEEN = enum.auto()
    HEAD = enum.auto()
    BODY = enum.auto()


# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
# (RFC 3261 section 25.1).  A method is a token and a status line starts with
# "SIP/", itself token characters, so every SIP message starts with one of these.
_TOKEN_BYTES = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)

# Control octets have no place in a start line (CR is allowed: it ends the line).
_START_LINE_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f]")

# Status-Line = SIP-Version SP ... ; Request-Line = Method SP Request-URI SP SIP-Version.
# Deliberately loose (any version number, odd spacing): the parser turns those into
# a 400 or 505 the peer can read, which is kinder than closing the connection.
# What it refuses is a line that is not SIP at all, such as an HTTP request.
_START_LINE = re.compile(
    rb"(?:(?i:SIP)/[^ \t]* .*|[-.!%*_+`'~0-9A-Za-z]+ .* (?i:SIP)/[^ \t]*[ \t]*)\r?",
    re.DOTALL,
)

# The end of a head: a line end followed by an empty line.  Bare LF line ends are
# tolerated as the parser tolerates them (liberal in what we accept).
_HEAD_END = re.compile(rb"\n\r?\n")

# Unfolding continuation lines (RFC 3261 section 7.3.1) before looking for
# Content-Length, whose long or compact ("l", section 7.3.3) name is case-insensitive.
_FOLD = re.compile(rb"\r?\n[ \t]+")
_CONTENT_LENGTH = re.compile(
    rb"^(?:content-length|l)[ \t]*:[ \t]*(.*?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE
)
# Leading zeros are legal; more than ten significant digits is never a real length
# and would only make int() work hard.
_DIGITS = re.compile(rb"0*[0-9]{1,10}")


class StreamFramer:
    """Splits one connection's byte stream into `Frame` and `KeepAlivePing` events."""

    __slots__ = (
        "_body_end",
        "_buf",
        "_failed",
        "_line_end_pending",
        "_max",
        "_phase",
        "_scan",
        "_start",
        "_start_line_done",
    )

    def __init__(self, max_message_size: int = 65535) -> None:
        if max_message_size <= 0:
            raise ValueError("max_message_size must be positive")
        self._max = max_message_size
        self._buf = bytearray()
        self._phase = _Phase.BETWEEN
        # Offsets into _buf: where the current message starts, where the search
        # for its head end (or for control octets in its start line) resumes, and
        # where its body ends once the head is known.
        self._start = 0
        self._scan = 0
        self._body_end = 0
        self._start_line_done = False
        # One line end seen between messages; a second one makes a ping.
        self._line_end_pending = False
        self._failed = False

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned in a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Add received octets; return the messages and pings they complete, in order.

        Raises `FramingError` when the stream cannot be framed; the caller must then
        close the connection (every later call raises too).
        """
        if self._failed:
            raise FramingError("stream already failed framing")
        self._buf += data
        events: list[FrameEvent] = []
        try:
            self._run(events)
        except FramingError:
            self._failed = True
            self._buf.clear()
            raise
        return events

    def _run(self, events: list[FrameEvent]) -> None:
        buf = self._buf
        pos = self._start
        while True:
            if self._phase is _Phase.BETWEEN:
                pos = self._skip_line_ends(pos, events)
                if pos >= len(buf) or buf[pos] == 0x0D:
                    # Nothing left, or a CR whose LF is still in flight.
                    break
                if buf[pos] not in _TOKEN_BYTES:
                    raise FramingError(
                        f"stream does not start a SIP message (octet {buf[pos]:#04x})"
                    )
                self._phase = _Phase.HEAD
                self._start = self._scan = pos
                self._start_line_done = False
                self._line_end_pending = False
            if self._phase is _Phase.HEAD and not self._find_head():
                break
            if self._phase is _Phase.BODY:
                if len(buf) < self._body_end:
                    break
                events.append(Frame(bytes(buf[self._start : self._body_end])))
                pos = self._body_end
                self._phase = _Phase.BETWEEN
                self._start = pos
        # Drop what was consumed once per feed, not once per message, so a segment
        # carrying many messages is not copied over and over.  Offsets shift along.
        if self._phase is _Phase.BETWEEN:
            self._start = self._scan = self._body_end = pos
        consumed = self._start
        if consumed:
            del buf[:consumed]
            self._start = 0
            self._scan -= consumed
            self._body_end -= consumed

    def _skip_line_ends(self, pos: int, events: list[FrameEvent]) -> int:
        buf = self._buf
        end = len(buf)
        while pos < end:
            octet = buf[pos]
            if octet == 0x0D:  # CR: a CRLF, or its first half still in flight
                if pos + 1 >= end:
                    break
                if buf[pos + 1] != 0x0A:
                    raise FramingError("CR without LF between messages")
                pos += 2
            elif octet == 0x0A:
                pos += 1
            else:
                break
            if self._line_end_pending:
                events.append(KeepAlivePing())
                self._line_end_pending = False
            else:
                self._line_end_pending = True
        return pos

    def _find_head(self) -> bool:
        """Look for the end of the head; on success move to BODY and return True."""
        buf = self._buf
        if not self._start_line_done:
            self._check_start_line()
        match = _HEAD_END.search(buf, self._scan)
        if match is None:
            if len(buf) - self._start > self._max:
                raise FramingError(f"no end of head within {self._max} octets")
            # A terminator is at most three octets long, so it can start at most two
            # octets before the end: resume there next time, not at the start.
            self._scan = max(self._start, len(buf) - 2)
            return False
        head_end = match.end()
        length = self._content_length(bytes(buf[self._start : head_end]))
        if head_end - self._start + length > self._max:
            raise FramingError(f"message larger than {self._max} octets")
        self._body_end = head_end + length
        self._phase = _Phase.BODY
        return True

    def _check_start_line(self) -> None:
        buf = self._buf
        newline = buf.find(b"\n", self._scan)
        end = len(buf) if newline < 0 else newline
        if _START_LINE_CONTROL.search(buf, self._scan, end) is not None:
            raise FramingError("control octet in the start line")
        if newline < 0:
            return
        if _START_LINE.fullmatch(buf, self._start, newline) is None:
            raise FramingError(f"not a SIP start line: {bytes(buf[self._start : newline])[:60]!r}")
        self._start_line_done = True
        # The blank line can only come after the start line's own line end.
        self._scan = newline

    def _content_length(self, head: bytes) -> int:
        # The start line cannot match the pattern (it has no colon right after a
        # name), so looking at the whole unfolded head is safe.
        values = {m.group(1) for m in _CONTENT_LENGTH.finditer(_FOLD.sub(b" ", head))}
        if not values:
            # RFC 3261 section 18.3: "In the case of stream-oriented transports such
            # as TCP, the Content-Length header field indicates the size of the body.
            # ... it MUST be used with stream oriented transports."
            raise FramingError("missing Content-Length on a stream transport")
        if len(values) > 1:
            # Two different lengths leave the message boundary ambiguous.
            raise FramingError("conflicting Content-Length header fields")
        (text,) = values
        if _DIGITS.fullmatch(text) is None:
            raise FramingError(f"bad Content-Length {text[:20]!r}")
        return int(text)
