"""SIP and SIPS URIs (RFC 3261 section 19.1) and other absolute URIs.

Components are stored unescaped: `sip:al%69ce@x` and `sip:alice@x` give equal
objects, which is what RFC 3261 section 19.1.4 asks of comparison.  Serializing
escapes exactly the characters each component's grammar does not allow, so the
output always parses back to the same object (the original escaping style is not
kept, and need not be).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote_to_bytes

from teleoffice.sip.errors import ParseError

Params = tuple[tuple[str, str | None], ...]

# Character classes of RFC 3261 section 25.1.
_ALPHANUM = string.ascii_letters + string.digits
_MARK = "-_.!~*'()"
_UNRESERVED = _ALPHANUM + _MARK
_USER_SAFE = _UNRESERVED + "&=+$,;?/"
_PASSWORD_SAFE = _UNRESERVED + "&=+$,"
_PARAM_SAFE = _UNRESERVED + "[]/:&+$"
_HEADER_SAFE = _UNRESERVED + "[]/?:+$"
TOKEN_CHARS = frozenset(_ALPHANUM + "-.!%*_+`'~")

_ESCAPED = "%[0-9A-Fa-f]{2}"


def _component_re(safe: str, *, allow_empty: bool = False) -> re.Pattern[str]:
    chars = re.escape(safe)
    return re.compile(f"(?:[{chars}]|{_ESCAPED}){'*' if allow_empty else '+'}")


_USER_RE = _component_re(_USER_SAFE)
_PASSWORD_RE = _component_re(_PASSWORD_SAFE, allow_empty=True)
_PARAM_RE = _component_re(_PARAM_SAFE)
_HEADER_RE = _component_re(_HEADER_SAFE, allow_empty=True)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_HOSTNAME_RE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?"
)
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_OPAQUE_RE = re.compile(r"[^\s<>\"]+")


def unescape(text: str) -> str:
    """Decode %XX escapes; the result may hold any octet (a %00 stays a NUL character)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", errors="surrogateescape")


def escape(text: str, safe: str) -> str:
    return quote(text.encode("utf-8", errors="surrogateescape"), safe=safe)


def is_token(text: str) -> bool:
    return bool(text) and all(c in TOKEN_CHARS for c in text)


def parse_host_port(text: str) -> tuple[str, int | None]:
    """Parse `host [":" port]` as used by SIP URIs and Via sent-by."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if not _IPV6_RE.fullmatch(host):
            raise ParseError(f"bad IPv6 reference {host!r}")
    else:
        host, sep, port_text = text.partition(":")
        rest = sep + port_text
        if not _HOSTNAME_RE.fullmatch(host):
            raise ParseError(f"bad host {host!r}")
    if not rest:
        return host, None
    port_text = rest[1:]
    ascii_digits = port_text.isascii() and port_text.isdigit()
    if not rest.startswith(":") or not ascii_digits or len(rest) > 6:
        raise ParseError(f"bad port in {text!r}")
    port = int(port_text)
    if not 0 < port <= 65535:
        raise ParseError(f"port {port} out of range")
    return host, port


def format_host_port(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


def find_param(params: Params, name: str) -> tuple[bool, str | None]:
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return True, value
    return False, None


def set_param(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    kept = tuple(p for p in params if p[0].lower() != lname)
    return (*kept, (name, value))


def remove_param(params: Params, name: str) -> Params:
    lname = name.lower()
    return tuple(p for p in params if p[0].lower() != lname)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A sip: or sips: URI with its parts unescaped."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)[1]

    def has_param(self, name: str) -> bool:
        return find_param(self.params, name)[0]

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return replace(self, params=set_param(self.params, name, value))

    def without_param(self, name: str) -> SipUri:
        return replace(self, params=remove_param(self.params, name))

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.upper() if value else None

    def equivalent(self, other: object) -> bool:
        """URI comparison of RFC 3261 section 19.1.4 (the parts that matter in practice)."""
        if not isinstance(other, SipUri):
            return False
        if (self.scheme, self.user, self.password, self.host.lower(), self.port) != (
            other.scheme,
            other.user,
            other.password,
            other.host.lower(),
            other.port,
        ):
            return False
        mine = {k.lower(): v for k, v in self.params}
        theirs = {k.lower(): v for k, v in other.params}
        # Parameters present in both must match; user, ttl, method and maddr must
        # match even when present in only one of them.
        for key in mine.keys() | theirs.keys():
            if key in mine and key in theirs:
                a, b = mine[key], theirs[key]
                if (a or "").lower() != (b or "").lower():
                    return False
            elif key in ("user", "ttl", "method", "maddr", "transport"):
                return False
        return sorted(self.headers) == sorted(other.headers)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(escape(self.user, _USER_SAFE.replace("?", "")))
            if self.password is not None:
                parts.append(":" + escape(self.password, _PASSWORD_SAFE))
            parts.append("@")
        parts.append(format_host_port(self.host, self.port))
        for key, value in self.params:
            parts.append(";" + escape(key, _PARAM_SAFE))
            if value is not None:
                parts.append("=" + escape(value, _PARAM_SAFE))
        if self.headers:
            parts.append(
                "?"
                + "&".join(
                    escape(k, _HEADER_SAFE.replace("?", "")) + "=" + escape(v, _HEADER_SAFE)
                    for k, v in self.headers
                )
            )
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any URI of another scheme (tel:, mailto:, http:, ...), kept as text."""

    scheme: str
    body: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.body}"


Uri = SipUri | AbsoluteUri


def _parse_params(text: str, what: str) -> Params:
    if not text:
        return ()
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not _PARAM_RE.fullmatch(name) or (eq and not _PARAM_RE.fullmatch(value)):
            raise ParseError(f"bad {what} parameter {item!r}")
        params.append((unescape(name), unescape(value) if eq else None))
    return tuple(params)


def parse_uri(text: str) -> Uri:
    """Parse a URI as found in a Request-URI or inside `<...>` of a name-addr."""
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme) or not rest:
        raise ParseError(f"not a URI: {text[:80]!r}")
    lscheme = scheme.lower()
    if lscheme not in ("sip", "sips"):
        if not _OPAQUE_RE.fullmatch(rest):
            raise ParseError(f"bad characters in URI {text[:80]!r}")
        return AbsoluteUri(lscheme, rest)
    return _parse_sip_uri(lscheme, rest, text)


def _parse_sip_uri(scheme: str, rest: str, original: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user_text, colon, password_text = userinfo.partition(":")
        if not _USER_RE.fullmatch(user_text):
            raise ParseError(f"bad user part in {original[:80]!r}")
        if colon and not _PASSWORD_RE.fullmatch(password_text):
            raise ParseError(f"bad password in {original[:80]!r}")
        user = unescape(user_text)
        password = unescape(password_text) if colon else None
    rest, qmark, header_text = rest.partition("?")
    host_text, _, param_text = rest.partition(";")
    if param_text == "" and rest.endswith(";"):
        raise ParseError(f"empty URI parameter in {original[:80]!r}")
    host, port = parse_host_port(host_text)
    params = _parse_params(param_text, "URI")
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if (
                not eq
                or not name
                or not _HEADER_RE.fullmatch(name)
                or not _HEADER_RE.fullmatch(value)
            ):
                raise ParseError(f"bad URI header {item!r}")
            headers.append((unescape(name), unescape(value)))
    return SipUri(
        host=host,
        user=user,
        port=port,
        scheme=scheme,
        password=password,
        params=params,
        headers=tuple(headers),
    )
