"""SIP requests and responses: parsing, typed access to the hot headers, serialization.

Theory of operation
-------------------
`parse_message` takes one complete message (a UDP datagram, or a frame cut from a
TCP stream by `sip.framing`) and returns a `Request` or `Response`.  It parses in
one pass: the start line, header fields (unfolding continuation lines, RFC 3261
section 7.3.1, and expanding compact names), then the hot headers the core always
needs (Via, From, To, Call-ID, CSeq, Max-Forwards, Contact, Content-Length) are
parsed strictly and kept, so nothing re-parses them later.  Anything else stays
text until somebody asks.

Errors raise `ParseError`.  When the fault is in a header but the Via header and the
basic identifiers survived, the error carries a `partial` message so the UAS can
still address a 400 to the sender (RFC 4475 asks for exactly that); otherwise the
message is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from teleoffice.sip.errors import ParseError
from teleoffice.sip.headers import (
    LIST_HEADERS,
    SINGLE_HEADERS,
    ContentType,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    check_date,
    is_decimal,
    parse_content_type,
    parse_cseq,
    parse_name_addr,
    parse_uint,
    parse_via,
    split_list,
)
from teleoffice.sip.uri import AbsoluteUri, SipUri, Uri, is_token, parse_uri

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # RFC 3261 token, as uri.is_token

SIP_VERSION = "SIP/2.0"
MAX_HEADERS = 256  # more than any real phone sends; a flood of headers is refused


# Performance: every message looks its header names up dozens of times (parsing,
# the consistency checks, the transaction and dialog layers), and `canonical_name`
# plus `lower()` on each lookup was the parser's largest single cost. Names are
# mapped once to (lower-case canonical key, canonical spelling) and remembered.
# Real traffic uses a few dozen spellings; the tables are bounded because names
# come from the network.
_NAME_CACHE_MAX = 2048
_NAMES: dict[str, tuple[str, str]] = {}
# The same for names read off the wire, which must also be tokens (RFC 3261
# section 7.3.1): only names that passed that check are remembered here.
_WIRE_NAMES: dict[str, tuple[str, str]] = {}


def _name_key(name: str) -> tuple[str, str]:
    """(lower-case canonical key, canonical spelling) of a header name."""
    found = _NAMES.get(name)
    if found is None:
        canonical = canonical_name(name)
        found = (canonical.lower(), canonical)
        if len(_NAMES) < _NAME_CACHE_MAX:
            _NAMES[name] = found
    return found


def _wire_name(name: str) -> tuple[str, str] | None:
    """`_name_key` of a header name read from a message, or None if it is no token."""
    found = _WIRE_NAMES.get(name)
    if found is None:
        if not _TOKEN_RE.fullmatch(name):
            return None
        found = _name_key(name)
        if len(_WIRE_NAMES) < _NAME_CACHE_MAX:
            _WIRE_NAMES[name] = found
    return found


class Headers:
    """An ordered multi-map of header fields with case-insensitive names.

    Each value is stored separately (a list header split at its commas), under its
    canonical name, so `get_all("Via")` is the list of Via values in order.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = [(*_name_key(n), v) for n, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, name, value in self._items:
            yield name, value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _name_key(name)[0]
        for item in self._items:  # noqa: SIM110 - faster than any() over a generator
            if item[0] == key:
                return True
        return False

    def keys(self) -> set[str]:
        """The lower-case canonical names present."""
        return {item[0] for item in self._items}

    def get(self, name: str) -> str | None:
        key = _name_key(name)[0]
        for k, _, v in self._items:
            if k == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        key = _name_key(name)[0]
        return [v for k, _, v in self._items if k == key]

    def add(self, name: str, value: str) -> None:
        self._items.append((*_name_key(name), value))

    def remove(self, name: str) -> None:
        key = _name_key(name)[0]
        self._items = [item for item in self._items if item[0] != key]

    def set(self, name: str, value: str | Iterable[str]) -> None:
        """Replace every value of `name`, keeping the position of the first one."""
        key, canonical = _name_key(name)
        values = [value] if isinstance(value, str) else list(value)
        new_items = [(key, canonical, v) for v in values]
        for index, item in enumerate(self._items):
            if item[0] == key:
                rest = [it for it in self._items[index:] if it[0] != key]
                self._items = self._items[:index] + new_items + rest
                return
        self._items.extend(new_items)

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone


class Message:
    """Common part of requests and responses."""

    __slots__ = ("_cache", "body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._cache: dict[str, Any] = {}

    # Typed access to the hot headers.  Values are parsed once and cached; the
    # setters below keep the cache and the text in step.

    def _typed(self, name: str, parse: Any) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            value = parse()
            self._cache[name] = value
            return value

    @property
    def vias(self) -> list[Via]:
        result: list[Via] = self._typed(
            "via", lambda: [parse_via(v) for v in self.headers.get_all("Via")]
        )
        return result

    @vias.setter
    def vias(self, value: list[Via]) -> None:
        self.headers.set("Via", [str(v) for v in value])
        self._cache["via"] = list(value)

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise ParseError("missing Via")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        return self._single_addr("From")

    @from_.setter
    def from_(self, value: NameAddr) -> None:
        self._set_typed("From", value)

    @property
    def to(self) -> NameAddr:
        return self._single_addr("To")

    @to.setter
    def to(self, value: NameAddr) -> None:
        self._set_typed("To", value)

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if not value:
            raise ParseError("missing Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        def parse() -> CSeq:
            value = self.headers.get("CSeq")
            if value is None:
                raise ParseError("missing CSeq")
            return parse_cseq(value)

        result: CSeq = self._typed("cseq", parse)
        return result

    @cseq.setter
    def cseq(self, value: CSeq) -> None:
        self._set_typed("CSeq", value)

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; a wildcard `*` is reported by `contact_is_wildcard`."""

        def parse() -> list[NameAddr]:
            values = self.headers.get_all("Contact")
            if values == ["*"]:
                return []
            return [parse_name_addr(v) for v in values]

        result: list[NameAddr] = self._typed("contact", parse)
        return result

    @property
    def contact_is_wildcard(self) -> bool:
        return "*" in (v.strip() for v in self.headers.get_all("Contact"))

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else parse_uint(value, "Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        return None if value is None else parse_uint(value, "Expires", 2**32 - 1)

    @property
    def content_type(self) -> ContentType | None:
        value = self.headers.get("Content-Type")
        return None if value is None else parse_content_type(value)

    def addr_list(self, name: str) -> list[NameAddr]:
        """Route, Record-Route, Path, P-Asserted-Identity ... as name-addrs."""
        key = "addr:" + name.lower()
        result: list[NameAddr] = self._typed(
            key, lambda: [parse_name_addr(v) for v in self.headers.get_all(name)]
        )
        return result

    def set_addr_list(self, name: str, values: Iterable[NameAddr]) -> None:
        items = list(values)
        self.headers.remove(name)
        for item in items:
            self.headers.add(name, str(item))
        self._cache["addr:" + name.lower()] = items

    def token_list(self, name: str) -> list[str]:
        return [t.strip() for t in self.headers.get_all(name) if t.strip()]

    def _single_addr(self, name: str) -> NameAddr:
        def parse() -> NameAddr:
            value = self.headers.get(name)
            if value is None:
                raise ParseError(f"missing {name}")
            return parse_name_addr(value)

        result: NameAddr = self._typed(name.lower(), parse)
        return result

    def _set_typed(self, name: str, value: NameAddr | CSeq) -> None:
        self.headers.set(name, str(value))
        self._cache[name.lower()] = value

    def invalidate(self) -> None:
        """Forget parsed values after editing `headers` directly."""
        self._cache.clear()

    # Serialization.

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        lines = [self.start_line()]
        for name, value in self.headers:
            if name == "Content-Length":
                continue
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", errors="surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    __slots__ = ("method", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: Uri,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self.version = version

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


class MessageParseError(ParseError):
    """A message could not be parsed.

    `partial` is a request rebuilt from the start line and header fields when the
    fault lies elsewhere (one header's value, the body length): the UAS uses it to
    address an error response.  It is None when nothing can be answered.
    """

    def __init__(self, reason: str, status: int = 400, partial: Request | None = None) -> None:
        super().__init__(reason, status)
        self.partial = partial


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split at the blank line; None if the head is not complete."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    # Tolerate bare LF line ends (RFC 3261 section 7.5 asks for CRLF, but being
    # liberal here costs nothing).
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    return None


def _header_lines(head: str) -> list[str]:
    text = head.replace("\r\n", "\n")
    if "\n " not in text and "\n\t" not in text:
        return text.split("\n")  # no continuation lines: the common case
    raw_lines = text.split("\n")
    lines: list[str] = []
    for raw in raw_lines:
        if raw[:1] in (" ", "\t") and lines:
            # Continuation line: its leading whitespace and the line break are
            # equivalent to a single SP (RFC 3261 section 7.3.1).
            lines[-1] = lines[-1].rstrip(" \t") + " " + raw.lstrip(" \t")
        else:
            lines.append(raw)
    return lines


def _parse_start_line(line: str) -> Request | Response:
    if line.upper().startswith("SIP/"):
        parts = line.split(" ", 2)
        if len(parts) < 2:
            raise MessageParseError(f"bad status line {line[:80]!r}")
        version, code = parts[0], parts[1]
        reason = parts[2] if len(parts) == 3 else ""
        if version.upper() != SIP_VERSION:
            raise MessageParseError(f"unsupported version {version[:20]!r}", status=505)
        if len(code) != 3 or not is_decimal(code) or not 100 <= int(code) <= 699:
            raise MessageParseError(f"bad status code {code[:20]!r}")
        return Response(int(code), reason)
    # Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP between
    # the elements and none around them (RFC 4475 sections 3.1.2.6 to 3.1.2.9).
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise MessageParseError(f"bad request line {line[:80]!r}")
    method, uri_text, version = parts
    if not _TOKEN_RE.fullmatch(method):
        raise MessageParseError(f"bad method {method[:40]!r}")
    if version.upper() != SIP_VERSION:
        if version.upper().startswith("SIP/"):
            raise MessageParseError(f"unsupported version {version[:20]!r}", status=505)
        raise MessageParseError(f"bad request line {line[:80]!r}")
    if uri_text.startswith("<"):
        raise MessageParseError("Request-URI must not be enclosed in <>")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 section 19.1.1, table 1: headers are not allowed in a Request-URI.
        raise MessageParseError("header fields are not allowed in a Request-URI")
    return Request(method, uri, version=version.upper())


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one message.  `stream` is true for TCP frames, where Content-Length is
    mandatory and the framer already cut the body to length."""
    split = split_head(data)
    if split is None:
        head_bytes, body = data.rstrip(b"\r\n"), b""
    else:
        head_bytes, body = split
    head = head_bytes.decode("utf-8", errors="surrogateescape")
    lines = _header_lines(head.lstrip("\r\n"))
    if not lines or not lines[0]:
        raise MessageParseError("empty message")
    deferred: ParseError | None = None
    try:
        msg = _parse_start_line(lines[0])
    except ParseError as exc:
        method = lines[0].split(" ", 1)[0]
        if lines[0].upper().startswith("SIP/") or not is_token(method):
            raise MessageParseError(exc.reason, exc.status) from None
        # A request whose start line is broken can still be answered (400 or 505)
        # if its header fields are sound: read them, then report the fault.
        msg = Request(method, AbsoluteUri("invalid", "request-uri"))
        deferred = exc
    if len(lines) - 1 > MAX_HEADERS:
        raise MessageParseError("too many header fields")

    items = msg.headers._items
    seen_single: set[str] = set()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        named = _wire_name(name.rstrip(" \t")) if colon else None
        if named is None:
            raise MessageParseError(f"bad header line {line[:80]!r}")
        key, canonical = named
        value = value.strip(" \t")
        if key in SINGLE_HEADERS:
            if key in seen_single:
                raise _partial_error(msg, f"duplicate {canonical} header")
            seen_single.add(key)
        if key in LIST_HEADERS:
            try:
                values = split_list(value)
            except ParseError as exc:
                raise _partial_error(msg, f"{canonical}: {exc.reason}") from None
            for item in values:
                items.append((key, canonical, item))
        else:
            items.append((key, canonical, value))

    if deferred is not None:
        raise _partial_error(msg, deferred.reason, deferred.status)
    try:
        _check_headers(msg)
    except ParseError as exc:
        raise _partial_error(msg, exc.reason, exc.status) from None

    msg.body = _cut_body(msg, body, stream=stream)
    return msg


def _partial_error(msg: Request | Response, reason: str, status: int = 400) -> MessageParseError:
    partial = msg if isinstance(msg, Request) else None
    if partial is not None:
        partial._cache.clear()
    return MessageParseError(reason, status, partial)


def _cut_body(msg: Request | Response, body: bytes, *, stream: bool) -> bytes:
    cl_text = msg.headers.get("Content-Length")
    if cl_text is None:
        if stream:
            raise _partial_error(msg, "missing Content-Length on a stream transport")
        return body
    try:
        length = parse_uint(cl_text, "Content-Length", 2**31)
    except ParseError as exc:
        raise _partial_error(msg, exc.reason) from None
    if length > len(body):
        raise _partial_error(msg, "Content-Length exceeds the body")
    # Octets past Content-Length in a datagram are discarded (RFC 3261 section 18.3).
    return body[:length]


_REQUIRED = ("To", "From", "CSeq", "Call-ID", "Via")
_REQUIRED_KEYS = tuple((name.lower(), name) for name in _REQUIRED)


def _check_headers(msg: Request | Response) -> None:
    """Parse the hot headers strictly and check the message's basic consistency."""
    present = msg.headers.keys()
    for key, name in _REQUIRED_KEYS:
        if key not in present:
            raise ParseError(f"missing {name} header")
    vias = msg.vias
    if not vias:
        raise ParseError("missing Via header")
    msg.from_  # noqa: B018 - parse and cache
    msg.to  # noqa: B018
    msg.cseq  # noqa: B018
    call_id = msg.call_id
    if not call_id or call_id.split() != [call_id]:  # no whitespace anywhere in it
        raise ParseError("bad Call-ID")
    if "contact" in present:
        if not msg.contact_is_wildcard:
            msg.contacts  # noqa: B018
        elif len(msg.headers.get_all("Contact")) != 1:
            raise ParseError("a wildcard Contact must stand alone")
    # The optional headers are parsed only when present (the accessors would
    # search for them in vain otherwise).
    if "max-forwards" in present:
        msg.max_forwards  # noqa: B018
    if "expires" in present:
        msg.expires  # noqa: B018
    if "content-type" in present:
        msg.content_type  # noqa: B018
    for key, name in (("route", "Route"), ("record-route", "Record-Route")):
        if key in present:
            msg.addr_list(name)
    if "date" in present:
        check_date(msg.headers.get("Date") or "")
    if isinstance(msg, Request):
        if msg.cseq.method != msg.method:
            raise ParseError(f"CSeq method {msg.cseq.method} does not match {msg.method}")
    elif not _TOKEN_RE.fullmatch(msg.cseq.method):
        raise ParseError("bad CSeq method")
