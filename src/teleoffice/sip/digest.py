"""HTTP Digest authentication for SIP (RFC 3261 section 22, RFC 2617, RFC 7616, RFC 8760).

Sans-IO like the rest of the SIP core: the caller passes the current time, the
randomness source and an account lookup; nothing here reads a clock or a store.

Theory of operation (server side)
---------------------------------
A challenge carries a nonce that is *self-authenticating*: it packs the time it
was issued, a few random bytes and an HMAC (keyed with the server secret) over
both plus the realm.  A nonce whose MAC does not verify was not made by us and is
rejected without touching any state, so forged or edited nonces cost nothing but
one HMAC.  A nonce that verifies but is older than `nonce_ttl` is *stale*: if the
response to it is otherwise correct the UA knows the password, and RFC 7616
section 3.3 (`stale=true`) lets us ask it to retry silently with a fresh nonce.

Replay protection needs memory, which is why issued nonces also go into a bounded
table (oldest evicted first).  For each nonce it records the highest nonce-count
accepted so far (RFC 7616 section 3.4: the count must grow) and the user who first
authenticated with it, so a nonce captured from one user's exchange can never
authenticate another.  A valid nonce that is no longer in the table (evicted
under load, or issued before a restart) is treated like a stale one: correct
answers are asked to retry, nothing is accepted without its replay state.

Account probing: an unknown user and a known user with a wrong password must be
indistinguishable.  Both get FAILED, and an unknown user's response is computed
against a random dummy HA1 so the same hashes run in the same order.

Passwords are never needed here: accounts store HA1 = H(username:realm:password)
for each hash family (MD5 and SHA-256; RFC 7616 section 3.4.2).  The "-sess"
variants derive their per-session HA1 from that same stored value.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "MAX_HEADER_LENGTH",
    "Algorithm",
    "AuthOutcome",
    "AuthResult",
    "DigestError",
    "DigestServer",
    "build_authorization",
    "build_authorization_from_ha1",
    "choose_challenge",
    "compute_ha1",
    "parse_auth_params",
]

# Credentials longer than this are rejected before any parsing: no legitimate
# Authorization value comes close, and it bounds the work a hostile peer can cause.
MAX_HEADER_LENGTH = 4096


class DigestError(ValueError):
    """A challenge or credentials value is malformed or cannot be used."""


class Algorithm(enum.StrEnum):
    """Digest algorithms (RFC 7616 section 3.2; SHA-256 for SIP by RFC 8760)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"

    @classmethod
    def _missing_(cls, value: object) -> Algorithm | None:
        # Algorithm tokens are case-insensitive (RFC 7616 section 3.3), so
        # Algorithm("sha-256") works as well as Algorithm.parse("sha-256").
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if member.value.lower() == wanted:
                    return member
        return None

    @classmethod
    def parse(cls, text: str) -> Algorithm:
        """The algorithm named by `text` (any case); DigestError if unknown."""
        try:
            return cls(text)
        except ValueError:
            raise DigestError(f"unsupported digest algorithm {text[:40]!r}") from None

    @property
    def is_session(self) -> bool:
        """True for the "-sess" variants, whose HA1 also covers nonce and cnonce."""
        return self in (Algorithm.MD5_SESS, Algorithm.SHA256_SESS)

    @property
    def base(self) -> Algorithm:
        """The plain algorithm of the same hash family (the key stored HA1s use)."""
        if self in (Algorithm.MD5, Algorithm.MD5_SESS):
            return Algorithm.MD5
        return Algorithm.SHA256


class AuthOutcome(enum.Enum):
    """What the caller should do with a request after checking its credentials."""

    OK = "ok"  # authenticated as AuthResult.username
    STALE = "stale"  # right password, old nonce: challenge again with stale=true
    FAILED = "failed"  # wrong credentials (or unknown user; deliberately the same)
    NO_CREDENTIALS = "no-credentials"  # nothing for us here: challenge as if absent
    MALFORMED = "malformed"  # the header value cannot be parsed or lacks parameters


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The verdict on one Authorization / Proxy-Authorization value.

    `username` is the name the credentials *claim* (set whenever the value could be
    read), so FAILED results can be logged and rate-limited per name; only OK means
    it was proven.  `uri` is the digest-uri the response covers: the caller must
    check it against the Request-URI (RFC 3261 section 22.4 leaves that to policy,
    since proxies may legitimately rewrite it).
    """

    outcome: AuthOutcome
    username: str | None = None
    uri: str | None = None
    algorithm: Algorithm | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


# --- hashing ------------------------------------------------------------------


def _hex_digest(algorithm: Algorithm, data: bytes) -> str:
    """H(data) in lower-case hex for the algorithm's hash family.

    Every hash in this module goes through here, which lets tests count the work
    done on each verification path.
    """
    if algorithm.base is Algorithm.MD5:
        # MD5 is weak, but RFC 3261 section 22.4 makes it the interoperable default
        # and most deployed phones support nothing else; SHA-256 is offered first.
        return hashlib.md5(data).hexdigest()  # noqa: S324
    return hashlib.sha256(data).hexdigest()


def _h(algorithm: Algorithm, *parts: str) -> str:
    # Values are hashed as UTF-8 (RFC 7616 section 3.4.1, charset=UTF-8).
    # surrogatepass keeps hashing total even for strings no peer could send.
    return _hex_digest(algorithm, ":".join(parts).encode("utf-8", "surrogatepass"))


def compute_ha1(
    username: str, realm: str, password: str, algorithm: Algorithm = Algorithm.MD5
) -> str:
    """The HA1 an account stores instead of its password: H(username:realm:password).

    For a "-sess" algorithm this returns the value of its hash family (what is
    stored); the per-session HA1 is derived from it during authentication
    (RFC 7616 section 3.4.2).
    """
    return _h(algorithm.base, username, realm, password)


def _response(
    algorithm: Algorithm,
    *,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str,
    cnonce: str,
    body: bytes,
) -> str:
    """The request-digest of RFC 7616 section 3.4.1 (and RFC 2617 section 3.2.2.1)."""
    if algorithm.is_session:
        ha1 = _h(algorithm, ha1, nonce, cnonce)
    if qop == "auth-int":
        ha2 = _h(algorithm, method, uri, _hex_digest(algorithm, body))
    else:
        ha2 = _h(algorithm, method, uri)
    if qop is None:
        # RFC 2069 compatibility: no client nonce and no count.
        return _h(algorithm, ha1, nonce, ha2)
    return _h(algorithm, ha1, nonce, nc, cnonce, qop, ha2)


# --- parsing ------------------------------------------------------------------

# token of RFC 3261 section 25.1.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
# Header folding is undone by the message parser, but LWS (RFC 3261 section 25.1)
# may still reach us from other callers, so CR and LF count as white space here.
_LWS = frozenset(" \t\r\n")
# Unquoted values: tokens in the grammar, but peers also send bare values such as
# base64 nonces or URIs; accept any visible ASCII that cannot end the value.
_BARE_VALUE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('",\\')


def _skip_lws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _LWS:
        pos += 1
    return pos


def _scan(text: str, pos: int, chars: frozenset[str]) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _read_scheme(value: str) -> tuple[str, int]:
    """The auth-scheme token at the start of `value` and the index after it."""
    if len(value) > MAX_HEADER_LENGTH:
        raise DigestError(f"credentials longer than {MAX_HEADER_LENGTH} characters")
    start = _skip_lws(value, 0)
    end = _scan(value, start, _TOKEN_CHARS)
    if end == start:
        raise DigestError("missing authentication scheme")
    if end < len(value) and value[end] not in _LWS:
        raise DigestError("authentication scheme not followed by white space")
    return value[start:end], end


def _is_control(char: str) -> bool:
    """A character no header value may carry: C0 controls but TAB, and DEL."""
    return (char < " " and char != "\t") or char == "\x7f"


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """The content of the quoted-string at text[pos] == '"', and the index after it."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            # quoted-pair (RFC 3261 section 25.1): the next character, literally;
            # CR and LF may not be escaped.
            if pos + 1 >= len(text) or text[pos + 1] in "\r\n":
                break
            escaped = text[pos + 1]
            # The grammar lets a quoted-pair carry other control characters, but
            # no realm, nonce or username needs one, and a value holding one
            # could not be quoted back into our own header (`_quote` refuses
            # it): a provider's challenge with "\<0x01>" in its realm would
            # otherwise escape build_authorization as a bare ValueError.
            if _is_control(escaped):
                raise DigestError("control character in quoted string")
            out.append(escaped)
            pos += 2
            continue
        if _is_control(char):
            raise DigestError("control character in quoted string")
        out.append(char)
        pos += 1
    raise DigestError("unterminated quoted string")


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split a challenge or credentials value into its scheme and parameters.

    `Digest realm="a", qop="auth,auth-int"` gives `("Digest", {"realm": "a",
    "qop": "auth,auth-int"})`.  Parameter names are lower-cased (they are
    case-insensitive, RFC 7616 section 3.3); values are unquoted and unescaped;
    the scheme keeps its spelling.  The grammar is RFC 3261 section 25.1
    (`challenge` and `credentials`): parameters separated by commas, LWS allowed
    around "=" and ",", empty list elements tolerated (RFC 7230 section 7).

    Raises DigestError, and nothing else, for any value it cannot read: a missing
    scheme, bad quoting, a repeated parameter (RFC 7616 section 3.4 allows each
    at most once), or more than MAX_HEADER_LENGTH characters.
    """
    scheme, pos = _read_scheme(value)
    params: dict[str, str] = {}
    while True:
        pos = _skip_lws(value, pos)
        if pos >= len(value):
            return scheme, params
        if value[pos] == ",":
            pos += 1
            continue
        name_end = _scan(value, pos, _TOKEN_CHARS)
        if name_end == pos:
            raise DigestError(f"unexpected {value[pos]!r} at offset {pos}")
        name = value[pos:name_end].lower()
        pos = _skip_lws(value, name_end)
        if pos >= len(value) or value[pos] != "=":
            raise DigestError(f"parameter {name[:40]!r} has no value")
        pos = _skip_lws(value, pos + 1)
        if pos < len(value) and value[pos] == '"':
            param_value, pos = _read_quoted(value, pos)
        else:
            value_end = _scan(value, pos, _BARE_VALUE_CHARS)
            if value_end == pos:
                raise DigestError(f"parameter {name[:40]!r} has an empty value")
            param_value, pos = value[pos:value_end], value_end
        if name in params:
            raise DigestError(f"parameter {name[:40]!r} given twice")
        params[name] = param_value
        pos = _skip_lws(value, pos)
        if pos < len(value) and value[pos] != ",":
            raise DigestError(f"expected ',' at offset {pos}")


def _quote(value: str) -> str:
    """`value` as a quoted-string; refuses control characters (header injection)."""
    if any(_is_control(c) for c in value):
        raise ValueError(f"control character in {value[:40]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _qop_options(challenge_params: dict[str, str]) -> set[str]:
    # The challenge's qop is a quoted, comma-separated list (RFC 7616 section 3.3).
    raw = challenge_params.get("qop", "")
    return {item.strip().lower() for item in raw.split(",") if item.strip()}


_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_NC_RE = re.compile(r"[0-9a-fA-F]{1,8}")


# --- server -------------------------------------------------------------------

_NONCE_TIME = struct.Struct(">q")  # issue time in whole milliseconds
_NONCE_RANDOM_BYTES = 12
_NONCE_MAC_BYTES = 16
# 8 + 12 + 16 = 36 bytes: a multiple of 3, so base64 needs no padding and every
# nonce has exactly one spelling.
_NONCE_BYTES = _NONCE_TIME.size + _NONCE_RANDOM_BYTES + _NONCE_MAC_BYTES
_NONCE_RE = re.compile(rf"[A-Za-z0-9_-]{{{_NONCE_BYTES * 4 // 3}}}")
# last_nc marker for a nonce consumed by a request without qop: higher than any
# 8-hex-digit count, so the nonce cannot be used again in either style.
_USED_WITHOUT_QOP = 1 << 32


@dataclass(frozen=True, slots=True)
class _NonceState:
    issued: float
    last_nc: int = 0  # highest nonce-count accepted; 0 until first use
    user: str | None = None  # who first authenticated with this nonce


class DigestServer:
    """Challenges requests and verifies the credentials sent back (UAS or proxy).

    One instance serves one realm.  `secret` keys the nonce MACs: nodes that
    share it accept each other's nonces (as stale, since replay state is local).
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        nonce_ttl: float = 300.0,
        max_nonces: int = 100_000,
        algorithms: Sequence[Algorithm] = (Algorithm.SHA256, Algorithm.MD5),
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not secret:
            raise ValueError("the nonce secret must not be empty")
        if not nonce_ttl > 0:
            raise ValueError("nonce_ttl must be positive")
        if max_nonces < 1:
            raise ValueError("max_nonces must be at least 1")
        unique = list(dict.fromkeys(Algorithm(a) for a in algorithms))
        if not unique:
            raise ValueError("at least one algorithm is required")
        _quote(realm)  # refuses a realm that could not be sent in a header
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.max_nonces = max_nonces
        # RFC 8760 section 2.4: the UAC takes the first challenge it supports, so
        # the SHA-256 family goes first; configured order is kept otherwise.
        self.algorithms: tuple[Algorithm, ...] = tuple(
            sorted(unique, key=lambda a: a.base is not Algorithm.SHA256)
        )
        self._secret = secret
        self._random_bytes = random_bytes
        self._nonces: OrderedDict[str, _NonceState] = OrderedDict()
        # Stand-in HA1s for unknown users: random, so no response can match them,
        # and computed once so the unknown path hashes exactly like the known one.
        self._dummy_ha1 = {
            family: _h(family, random_bytes(16).hex())
            for family in (Algorithm.MD5, Algorithm.SHA256)
        }

    @property
    def active_nonces(self) -> int:
        """How many issued nonces are remembered (bounded by max_nonces)."""
        return len(self._nonces)

    # -- nonces

    def _mac(self, label: bytes, data: bytes) -> bytes:
        msg = label + b"\0" + self.realm.encode("utf-8", "surrogatepass") + b"\0" + data
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    def _new_nonce(self, now: float) -> str:
        if not math.isfinite(now):
            raise ValueError("now must be a finite number")
        stamp = _NONCE_TIME.pack(math.floor(now * 1000))
        rand = self._random_bytes(_NONCE_RANDOM_BYTES)
        if len(rand) != _NONCE_RANDOM_BYTES:
            raise ValueError("random_bytes returned the wrong number of bytes")
        mac = self._mac(b"nonce", stamp + rand)[:_NONCE_MAC_BYTES]
        return base64.urlsafe_b64encode(stamp + rand + mac).decode("ascii")

    def _nonce_issued(self, nonce: str) -> float | None:
        """When we issued `nonce`, or None if we did not make it."""
        if not _NONCE_RE.fullmatch(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce)
        signed, mac = raw[:-_NONCE_MAC_BYTES], raw[-_NONCE_MAC_BYTES:]
        if not hmac.compare_digest(self._mac(b"nonce", signed)[:_NONCE_MAC_BYTES], mac):
            return None
        (millis,) = _NONCE_TIME.unpack_from(signed)
        return float(millis) / 1000.0

    def _opaque(self, nonce: str) -> str:
        # Bound to the nonce, so it can be checked without remembering it.
        return self._mac(b"opaque", nonce.encode("ascii")).hex()[:16]

    def _remember(self, nonce: str, issued: float, now: float) -> None:
        # Nonces enter in issue order, so expired ones sit at the front.
        while self._nonces:
            oldest = next(iter(self._nonces.values()))
            if now - oldest.issued <= self.nonce_ttl:
                break
            self._nonces.popitem(last=False)
        # setdefault: a repeated nonce (only possible with a rigged random source)
        # must not reset the replay state of the first one.
        self._nonces.setdefault(nonce, _NonceState(issued=issued))
        while len(self._nonces) > self.max_nonces:
            self._nonces.popitem(last=False)

    # -- challenge

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """WWW-Authenticate (or Proxy-Authenticate) values, one per algorithm.

        All values share one fresh nonce.  qop="auth" is always offered: RFC 7616
        requires it of clients, and the nonce-count it brings is what makes replay
        detection possible.  `stale=True` tells a UA whose password was right that
        it only needs to retry with the new nonce (RFC 7616 section 3.3).
        """
        nonce = self._new_nonce(now)
        self._remember(nonce, math.floor(now * 1000) / 1000.0, now)
        common = f'realm={_quote(self.realm)}, nonce="{nonce}", opaque="{self._opaque(nonce)}"'
        suffix = ", stale=true" if stale else ""
        return [
            f'Digest {common}, algorithm={algorithm.value}, qop="auth"{suffix}'
            for algorithm in self.algorithms
        ]

    # -- verification

    def verify(
        self,
        *,
        method: str,
        header_value: str,
        lookup: Callable[[str, Algorithm], str | None],
        now: float,
        body: bytes = b"",
    ) -> AuthResult:
        """Check an Authorization (or Proxy-Authorization) value.

        `lookup(username, family)` returns the stored HA1 of that account for the
        hash family (Algorithm.MD5 or Algorithm.SHA256, also for the "-sess"
        variants), or None when there is no such account.  `body` is the message
        body, needed only when the UA chose qop=auth-int.  Never raises on
        anything the peer sent; exceptions from `lookup` propagate.
        """
        try:
            scheme, _ = _read_scheme(header_value)
        except DigestError:
            return AuthResult(AuthOutcome.MALFORMED)
        if scheme.lower() != "digest":
            # Another scheme (RFC 4475 test regaut01: an unknown one must not
            # cause an error); to us it is as if no credentials were sent.
            return AuthResult(AuthOutcome.NO_CREDENTIALS)
        try:
            _, params = parse_auth_params(header_value)
        except DigestError:
            return AuthResult(AuthOutcome.MALFORMED)

        try:
            username = params["username"]
            realm = params["realm"]
            nonce = params["nonce"]
            uri = params["uri"]
            response = params["response"]
        except KeyError:
            return AuthResult(AuthOutcome.MALFORMED)
        if realm != self.realm:
            # Realms are case-sensitive (RFC 2617 section 1.2).  Credentials for
            # another realm are meant for someone else (e.g. a further proxy,
            # RFC 3261 section 22.3).
            return AuthResult(AuthOutcome.NO_CREDENTIALS)

        qop = params.get("qop")
        nc_text = params.get("nc", "")
        cnonce = params.get("cnonce", "")
        if qop is not None and not (_NC_RE.fullmatch(nc_text) and cnonce):
            # RFC 7616 section 3.4: with qop, nc and cnonce are mandatory.
            return AuthResult(AuthOutcome.MALFORMED, username, uri)
        if not _HEX_RE.fullmatch(response):
            return AuthResult(AuthOutcome.MALFORMED, username, uri)

        def failed() -> AuthResult:
            return AuthResult(AuthOutcome.FAILED, username, uri)

        try:
            # Absent algorithm means MD5 (RFC 2617 section 3.2.1).
            algorithm = Algorithm.parse(params.get("algorithm", "MD5"))
        except DigestError:
            return failed()
        if algorithm not in self.algorithms:
            return failed()
        if qop is not None:
            qop = qop.lower()
            # auth-int is stronger than the "auth" we offer, so it is welcome too.
            if qop not in ("auth", "auth-int"):
                return failed()
        if algorithm.is_session and not cnonce:
            return AuthResult(AuthOutcome.MALFORMED, username, uri)

        issued = self._nonce_issued(nonce)
        if issued is None:
            return failed()  # forged, altered or foreign nonce
        opaque = params.get("opaque")
        if opaque is not None and not hmac.compare_digest(
            opaque.encode("utf-8", "surrogatepass"), self._opaque(nonce).encode("ascii")
        ):
            return failed()

        # From here on known and unknown users take the same path: same lookup,
        # same hashes, same comparison, same outcome when the answer is wrong.
        stored = lookup(username, algorithm.base)
        known = stored is not None
        ha1 = stored.lower() if stored is not None else self._dummy_ha1[algorithm.base]
        expected = _response(
            algorithm,
            ha1=ha1,
            nonce=nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
            body=body,
        )
        matched = hmac.compare_digest(expected.encode("ascii"), response.lower().encode("ascii"))
        if not known or not matched:
            return failed()

        state = self._nonces.get(nonce)
        age = now - issued
        if state is None or not 0 <= age <= self.nonce_ttl:
            return AuthResult(AuthOutcome.STALE, username, uri, algorithm)
        if state.user is not None and state.user != username:
            return failed()  # a nonce belongs to the first user who proved a password
        if qop is None:
            # No count to check, so a qop-less nonce is good exactly once.
            if state.last_nc != 0:
                return failed()
            new_nc = _USED_WITHOUT_QOP
        else:
            new_nc = int(nc_text, 16)
            if new_nc <= state.last_nc:
                return failed()  # replayed (or reordered) request
        self._nonces[nonce] = replace(state, last_nc=new_nc, user=username)
        return AuthResult(AuthOutcome.OK, username, uri, algorithm)


# --- client -------------------------------------------------------------------

# Preference among challenges: SHA-256 before MD5 (RFC 8760), plain before -sess
# (the session variants add nothing for SIP and are less widely implemented).
_CLIENT_PREFERENCE = (
    Algorithm.SHA256,
    Algorithm.SHA256_SESS,
    Algorithm.MD5,
    Algorithm.MD5_SESS,
)


def _usable_challenge(value: str) -> Algorithm | None:
    """The algorithm of a challenge we could answer, or None."""
    try:
        scheme, params = parse_auth_params(value)
        if scheme.lower() != "digest" or "realm" not in params or "nonce" not in params:
            return None
        algorithm = Algorithm.parse(params.get("algorithm", "MD5"))
    except DigestError:
        return None
    options = _qop_options(params)
    if "qop" in params and not options & {"auth", "auth-int"}:
        return None
    return algorithm


def choose_challenge(values: Sequence[str]) -> str:
    """The challenge to answer among several (one WWW-Authenticate value each).

    Picks the strongest algorithm we support; among equals, the first listed
    (RFC 7616 section 3.7: servers list challenges in order of preference).
    Challenges of other schemes or with unusable parameters are skipped;
    DigestError when none is left.
    """
    best: tuple[int, str] | None = None
    for value in values:
        algorithm = _usable_challenge(value)
        if algorithm is None:
            continue
        rank = _CLIENT_PREFERENCE.index(algorithm)
        if best is None or rank < best[0]:
            best = (rank, value)
    if best is None:
        raise DigestError("no usable Digest challenge")
    return best[1]


@dataclass(frozen=True, slots=True)
class _Challenge:
    """The parts of a WWW-Authenticate / Proxy-Authenticate value a client uses."""

    realm: str
    nonce: str
    algorithm: Algorithm
    qop: str | None  # the qop we answer with; None for the RFC 2069 form
    opaque: str | None


def _read_challenge(challenge: str) -> _Challenge:
    scheme, params = parse_auth_params(challenge)
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest challenge: {scheme[:40]!r}")
    try:
        realm = params["realm"]
        nonce = params["nonce"]
    except KeyError as exc:
        raise DigestError(f"challenge lacks {exc.args[0]}") from None
    algorithm = Algorithm.parse(params.get("algorithm", "MD5"))
    options = _qop_options(params)
    qop: str | None
    if "auth" in options:
        qop = "auth"
    elif "auth-int" in options:
        qop = "auth-int"
    elif "qop" in params:
        raise DigestError(f"no supported qop in {params['qop'][:40]!r}")
    else:
        qop = None
    return _Challenge(realm, nonce, algorithm, qop, params.get("opaque"))


def _answer(
    parsed: _Challenge,
    *,
    ha1: Callable[[Algorithm], str],
    method: str,
    uri: str,
    username: str,
    nc: int,
    cnonce: str | None,
    body: bytes,
    random_bytes: Callable[[int], bytes],
) -> str:
    """The credentials value for `parsed`, given a way to get the base HA1.

    The one place that computes a client response: `build_authorization` derives
    the HA1 from a password, `build_authorization_from_ha1` looks a stored one up,
    and everything after that (cnonce, nc, the -sess HA1, the header layout) is
    shared, so the two cannot drift apart.  `ha1` is called after the arguments
    are checked, with the challenge's hash family (MD5 or SHA-256).
    """
    if not 1 <= nc <= 0xFFFFFFFF:
        raise ValueError("nc must be between 1 and 0xFFFFFFFF")
    if cnonce is None:
        cnonce = random_bytes(16).hex()
    nc_text = f"{nc:08x}"
    response = _response(
        parsed.algorithm,
        ha1=ha1(parsed.algorithm.base),
        nonce=parsed.nonce,
        method=method,
        uri=uri,
        qop=parsed.qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(parsed.realm)}",
        f"nonce={_quote(parsed.nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
        f"algorithm={parsed.algorithm.value}",
    ]
    if parsed.qop is not None or parsed.algorithm.is_session:
        parts.append(f"cnonce={_quote(cnonce)}")
    if parsed.opaque is not None:
        parts.append(f"opaque={_quote(parsed.opaque)}")
    if parsed.qop is not None:
        # qop and nc are bare tokens in credentials (RFC 7616 section 3.4).
        parts.append(f"qop={parsed.qop}")
        parts.append(f"nc={nc_text}")
    return "Digest " + ", ".join(parts)


def build_authorization(
    *,
    challenge: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> str:
    """The Authorization (or Proxy-Authorization) value answering `challenge`.

    `uri` must be the Request-URI of the request being authorized (RFC 3261
    section 22.4).  qop=auth is chosen when offered, else auth-int (which covers
    `body`), else the RFC 2069 form without qop.  `nc` counts the requests sent
    with this nonce, starting at 1; `cnonce` defaults to a random value.
    DigestError when the challenge cannot be answered, ValueError for bad
    arguments.
    """
    parsed = _read_challenge(challenge)
    return _answer(
        parsed,
        ha1=lambda family: compute_ha1(username, parsed.realm, password, family),
        method=method,
        uri=uri,
        username=username,
        nc=nc,
        cnonce=cnonce,
        body=body,
        random_bytes=random_bytes,
    )


def build_authorization_from_ha1(
    *,
    challenge: str,
    method: str,
    uri: str,
    username: str,
    ha1_for: Callable[[str, Algorithm], str | None],
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> str:
    """Like `build_authorization`, from a stored HA1 instead of a password.

    teleoffice keeps no password in clear, not even a SIP provider's: it stores
    H(username:realm:password) per hash family, which is all a client needs to
    answer a challenge (RFC 7616 section 3.4.2; for the "-sess" algorithms the
    session HA1 is H(HA1:nonce:cnonce), derived here).  The price is that the
    realm is fixed when the password is stored.

    `ha1_for(realm, family)` returns the stored HA1 for the challenge's realm and
    hash family (Algorithm.MD5 or Algorithm.SHA256, also for the "-sess"
    variants), or None when there is none.  A challenge in a realm we hold no HA1
    for raises DigestError naming that realm, since it usually means the realm
    configured for the credentials is not the one the server uses.
    """
    parsed = _read_challenge(challenge)

    def stored(family: Algorithm) -> str:
        ha1 = ha1_for(parsed.realm, family)
        if ha1 is None:
            raise DigestError(
                f"challenged in realm {parsed.realm!r} ({family.value}), "
                "but no credentials are stored for that realm"
            )
        return ha1

    return _answer(
        parsed,
        ha1=stored,
        method=method,
        uri=uri,
        username=username,
        nc=nc,
        cnonce=cnonce,
        body=body,
        random_bytes=random_bytes,
    )
