"""Header field names and the typed values of the headers the core relies on.

RFC 3261 section 7.3 and the grammar of section 25.  Only headers whose values
teleoffice interprets get a type here; everything else stays text and is passed
through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from teleoffice.sip.errors import ParseError
from teleoffice.sip.uri import (
    Params,
    SipUri,
    Uri,
    find_param,
    format_host_port,
    is_token,
    parse_host_port,
    parse_uri,
    remove_param,
    set_param,
)

# Compact forms, RFC 3261 section 7.3.3 and later RFCs (o: RFC 6665, u: RFC 6665,
# r: RFC 3515, b: RFC 3892, x: RFC 4028, y: RFC 3841, d: RFC 3841).
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
}

_KNOWN_NAMES = [
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Replaces",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}
for _short, _long in COMPACT_FORMS.items():
    _CANONICAL[_short] = _long

# Headers whose grammar is a comma-separated list (RFC 3261 section 7.3.1), so a
# field may carry several values and several fields may be combined.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Diversion",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "Path",
        "Proxy-Require",
        "Record-Route",
        "Require",
        "Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
        "Reason",
        "Privacy",
    )
)

# Headers that may appear at most once (RFC 3261 section 20 and table 2); a
# duplicate is a 400 (RFC 4475 section 3.1.2.19 and .20).
SINGLE_HEADERS = frozenset(
    name.lower()
    for name in (
        "Call-ID",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "From",
        "To",
        "Max-Forwards",
        "Expires",
        "Min-Expires",
        "Date",
        "Content-Disposition",
        "MIME-Version",
        "Retry-After",
        "Session-Expires",
        "Min-SE",
        "Event",
        "RSeq",
        "RAck",
        "Refer-To",
    )
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_LWS_RE = re.compile(r"[ \t]+")


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded)."""
    return _CANONICAL.get(name.lower(), name)


def split_list(value: str) -> list[str]:
    """Split a list-valued header at commas outside quotes and angle brackets."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    items: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    if in_quotes:
        raise ParseError(f"unbalanced quotes in {value[:80]!r}")
    items.append(value[start:].strip())
    if any(not item for item in items):
        raise ParseError(f"empty element in list {value[:80]!r}")
    return items


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted-string starting at text[start] == '"'; return (value, index after)."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise ParseError(f"unterminated quoted string in {text[:80]!r}")


def unquote(value: str) -> str:
    """The content of a quoted-string parameter value (token values pass through)."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return read_quoted(value, 0)[0]
    return value


def quote_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# gen-value = token / host / quoted-string (the quoted form is read separately).
_GEN_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+")


def parse_params(text: str, what: str) -> Params:
    """Parse `*( SEMI generic-param )` where text starts after the element itself."""
    if not text:
        return ()
    params: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise ParseError(f"expected ';' in {what} parameters {text[:80]!r}")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        m = _TOKEN_RE.match(text, i)
        if not m:
            raise ParseError(f"empty or bad {what} parameter in {text[:80]!r}")
        name = m.group()
        i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                value, i = read_quoted(text, i)
                value = quote_string(value)
            else:
                j = i
                # gen-value = token / host / quoted-string; hosts add ':' and '[]'.
                while j < n and text[j] not in "; \t,":
                    j += 1
                value = text[i:j]
                if not value or not _GEN_VALUE_RE.fullmatch(value):
                    raise ParseError(f"bad value for {what} parameter {name!r}")
                i = j
        params.append((name, value))
    return tuple(params)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """`[display-name] <URI> *(;param)` as in From, To, Contact, Route (RFC 3261 section 20)."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return find_param(self.params, "tag")[1]

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)[1]

    def has_param(self, name: str) -> bool:
        return find_param(self.params, name)[0]

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=set_param(self.params, name, value))

    def without_param(self, name: str) -> NameAddr:
        return replace(self, params=remove_param(self.params, name))

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise ParseError(f"not a SIP URI: {self.uri}", status=416)
        return self.uri

    def __str__(self) -> str:
        head = "" if self.display_name is None else quote_string(self.display_name) + " "
        return f"{head}<{self.uri}>{format_params(self.params)}"


# Performance: the same From, To and Contact values come back in every message of
# a dialog (INVITE, 1xx, 200, ACK, BYE and its 200), and URI parsing is most of
# the cost of reading them. NameAddr and its URI are frozen, so a parsed value can
# be handed out again. Bounded, since the values come from the network: when
# full, the table is emptied (cheaper than LRU bookkeeping on every hit).
_ADDR_CACHE_MAX = 4096
_addr_cache: dict[str, NameAddr] = {}


def parse_name_addr(text: str) -> NameAddr:
    """Parse name-addr or addr-spec followed by header parameters."""
    found = _addr_cache.get(text)
    if found is not None:
        return found
    parsed = _parse_name_addr(text)
    if len(_addr_cache) >= _ADDR_CACHE_MAX:
        _addr_cache.clear()
    _addr_cache[text] = parsed
    return parsed


def _parse_name_addr(text: str) -> NameAddr:
    text = text.strip(" \t")
    if not text:
        raise ParseError("empty address")
    display: str | None = None
    i = 0
    if text[0] == '"':
        display, i = read_quoted(text, 0)
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text) or text[i] != "<":
            raise ParseError(f"display name without <URI> in {text[:80]!r}")
    else:
        lt = text.find("<")
        if lt > 0:
            words = text[:lt].split()
            if not words or not all(_TOKEN_RE.fullmatch(w) for w in words):
                raise ParseError(f"bad display name in {text[:80]!r}; quote it")
            display = " ".join(words)
            i = lt
        elif lt < 0:
            return _parse_addr_spec(text)
    # name-addr: no LWS is allowed just inside the brackets (RFC 3261 LAQUOT/RAQUOT).
    gt = text.find(">", i)
    if gt < 0:
        raise ParseError(f"missing '>' in {text[:80]!r}")
    inner = text[i + 1 : gt]
    if not inner or inner != inner.strip(" \t"):
        raise ParseError(f"whitespace inside <...> in {text[:80]!r}")
    uri = parse_uri(inner)
    return NameAddr(uri=uri, display_name=display, params=parse_params(text[gt + 1 :], "address"))


def _parse_addr_spec(text: str) -> NameAddr:
    # Without brackets a ';' starts header parameters, and the URI may hold neither
    # '?' nor ',' (RFC 3261 section 20): such a URI must be written in <...>.
    uri_text, semi, rest = text.partition(";")
    uri_text = uri_text.rstrip(" \t")
    if "?" in uri_text or "," in uri_text or " " in uri_text:
        raise ParseError(f"URI with '?', ',' or space must be in <...>: {text[:80]!r}")
    uri = parse_uri(uri_text)
    return NameAddr(uri=uri, params=parse_params(semi + rest, "address"))


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 section 20.42), with RFC 3581 rport."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return find_param(self.params, "branch")[1]

    @property
    def received(self) -> str | None:
        return find_param(self.params, "received")[1]

    @property
    def rport(self) -> tuple[bool, int | None]:
        present, value = find_param(self.params, "rport")
        return present, int(value) if value and is_decimal(value, 5) else None

    @property
    def maddr(self) -> str | None:
        return find_param(self.params, "maddr")[1]

    @property
    def sent_by(self) -> str:
        return format_host_port(self.host, self.port).lower()

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=set_param(self.params, name, value))

    def __str__(self) -> str:
        sent_by = format_host_port(self.host, self.port)
        return f"{self.protocol}/{self.transport} {sent_by}{format_params(self.params)}"


_VIA_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+([^;\s]+(?:[ \t]*:[ \t]*\d+)?)"
)


def parse_via(text: str) -> Via:
    text = text.strip(" \t")
    m = _VIA_RE.match(text)
    if not m:
        raise ParseError(f"bad Via {text[:80]!r}")
    name, version, transport, sent_by = m.groups()
    if " " in sent_by or "\t" in sent_by:
        sent_by = _LWS_RE.sub("", sent_by)
    host, port = parse_host_port(sent_by)
    params = parse_params(text[m.end() :], "Via")
    for key, value in params:
        lkey = key.lower()
        if lkey == "branch" and not value:
            raise ParseError("empty Via branch")
        if lkey == "rport" and value is not None and not is_decimal(value, 5):
            raise ParseError("bad Via rport")
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{name.upper()}/{version}",
    )


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


MAX_CSEQ = 2**31 - 1  # RFC 3261 section 8.1.1.5: must be less than 2**31


def is_decimal(text: str, max_digits: int = 12) -> bool:
    """ASCII digits only, and not too many: `str.isdigit` alone accepts "²" and
    other Unicode digits that `int` refuses, and `int` refuses over 4300 digits;
    either would escape the parser as ValueError instead of a parse error."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def parse_cseq(text: str) -> CSeq:
    parts = text.split()
    if len(parts) != 2 or not is_decimal(parts[0]) or not _TOKEN_RE.fullmatch(parts[1]):
        raise ParseError(f"bad CSeq {text[:80]!r}")
    seq = int(parts[0])
    if seq > MAX_CSEQ:
        raise ParseError("CSeq number out of range")
    return CSeq(seq, parts[1])


def parse_uint(text: str, name: str, maximum: int) -> int:
    value = text.strip(" \t")
    if not is_decimal(value) or int(value) > maximum:
        raise ParseError(f"bad {name} {value[:40]!r}")
    return int(value)


_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} GMT"
)


def check_date(text: str) -> None:
    # RFC 3261 section 20.17: SIP-date is RFC 1123 form and always in GMT.
    if not _DATE_RE.fullmatch(text.strip(" \t")):
        raise ParseError(f"bad Date {text[:60]!r} (must be RFC 1123 in GMT)")


@dataclass(frozen=True, slots=True)
class ContentType:
    type: str
    subtype: str
    params: Params = ()

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}".lower()

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params)}"


def parse_content_type(text: str) -> ContentType:
    main, _, rest = text.strip(" \t").partition(";")
    type_, slash, subtype = main.partition("/")
    type_, subtype = type_.strip(" \t"), subtype.strip(" \t")
    if not slash or not is_token(type_) or not is_token(subtype):
        raise ParseError(f"bad Content-Type {text[:60]!r}")
    return ContentType(type_, subtype, parse_params(";" + rest if rest else "", "Content-Type"))
