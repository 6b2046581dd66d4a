"""The registrar: which contacts each phone account is reachable at (RFC 3261 section 10.3).

Pure domain logic.  `Registrar.register` takes an authenticated REGISTER (the
caller has already checked digest credentials) and returns the response to send
plus the storage commands that make the change durable; `expire` drops bindings
whose time has come.  All-or-nothing: when any contact of a request is refused,
no binding changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from teleoffice.sip.builders import make_response
from teleoffice.sip.errors import ParseError
from teleoffice.sip.headers import NameAddr, parse_uint, unquote
from teleoffice.sip.message import Request, Response
from teleoffice.sip.transaction import Address
from teleoffice.sip.uri import SipUri


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an account."""

    account: str
    contact: str  # the Contact as a name-addr, without its expires parameter
    uri: str  # the contact URI alone, canonical text: the binding's identity
    expires_at: float
    call_id: str
    cseq: int
    q: float | None
    transport: str
    source_host: str
    source_port: int
    instance_id: str | None = None
    user_agent: str | None = None
    path: str | None = None

    @property
    def source(self) -> Address:
        """Where requests for this contact go: the address the REGISTER came from,
        which is what works behind NAT (RFC 3581 symmetric response routing)."""
        return Address(self.transport, self.source_host, self.source_port)


class CommandKind(Enum):
    SAVE = "save"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class StoreCommand:
    kind: CommandKind
    binding: Binding


@dataclass(frozen=True, slots=True)
class RegistrarLimits:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10


@dataclass(frozen=True, slots=True)
class RegisterResult:
    response: Response
    commands: tuple[StoreCommand, ...]


class Registrar:
    def __init__(self, limits: RegistrarLimits, bindings: Iterable[Binding] = ()) -> None:
        self.limits = limits
        self._bindings: dict[str, dict[str, Binding]] = {}
        # Expiry times in a heap with lazy deletion: the service asks for the next
        # deadline after every message, so this must not scan every binding.  An
        # entry whose binding was refreshed or removed is skipped when it surfaces.
        self._expiries: list[tuple[float, str, str]] = []
        self._count = 0
        for binding in bindings:
            self._store(binding)

    def _store(self, binding: Binding) -> None:
        per = self._bindings.setdefault(binding.account, {})
        if binding.uri not in per:
            self._count += 1
        per[binding.uri] = binding
        heapq.heappush(self._expiries, (binding.expires_at, binding.account, binding.uri))

    def _drop(self, binding: Binding) -> None:
        per = self._bindings.get(binding.account)
        if per is not None and per.pop(binding.uri, None) is not None:
            self._count -= 1
            if not per:
                del self._bindings[binding.account]

    def _current(self, expires_at: float, account: str, uri: str) -> Binding | None:
        binding = self._bindings.get(account, {}).get(uri)
        return binding if binding is not None and binding.expires_at == expires_at else None

    def lookup(self, account: str, now: float) -> list[Binding]:
        """Live bindings of an account, highest q first (RFC 3261 section 16.6 order)."""
        live = [b for b in self._bindings.get(account, {}).values() if b.expires_at > now]
        return sorted(live, key=lambda b: -(b.q if b.q is not None else 1.0))

    def count(self) -> int:
        return self._count

    def next_expiry(self) -> float | None:
        heap = self._expiries
        while heap and self._current(*heap[0]) is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def expire(self, now: float) -> list[StoreCommand]:
        commands: list[StoreCommand] = []
        heap = self._expiries
        while heap and heap[0][0] <= now:
            binding = self._current(*heapq.heappop(heap))
            if binding is not None:
                self._drop(binding)
                commands.append(StoreCommand(CommandKind.DELETE, binding))
        return commands

    def register(
        self, request: Request, *, account: str, source: Address, now: float
    ) -> RegisterResult:
        """Apply an authenticated REGISTER for `account` (the digest user)."""
        try:
            return self._register(request, account, source, now)
        except ParseError as exc:
            return RegisterResult(make_response(request, 400, exc.reason), ())

    def _register(
        self, request: Request, account: str, source: Address, now: float
    ) -> RegisterResult:
        to_uri = request.to.uri
        # Step 4 and 5 of section 10.3: the address of record is the To URI, and the
        # authenticated account may only change its own bindings.
        if not isinstance(to_uri, SipUri) or to_uri.user is None:
            return self._fail(request, 404, "Address of record must be a SIP URI with a user")
        if to_uri.user != account:
            return self._fail(request, 403, "You may only register your own account")

        current = dict(self._bindings.get(account, {}))
        header_expires = request.expires
        call_id = request.call_id
        cseq = request.cseq.seq

        if request.contact_is_wildcard:
            # Section 10.3 step 6: "*" only with Expires: 0, and alone.
            if header_expires != 0:
                return self._fail(request, 400, "Wildcard Contact requires Expires: 0")
            for binding in current.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    return self._fail(request, 400, "CSeq out of order")
            commands = tuple(StoreCommand(CommandKind.DELETE, b) for b in current.values())
            for binding in current.values():
                self._drop(binding)
            return RegisterResult(self._ok(request, [], now), commands)

        updated = dict(current)
        commands_list: list[StoreCommand] = []
        user_agent = request.headers.get("User-Agent")
        path_values = request.headers.get_all("Path")
        for contact in request.contacts:
            if not isinstance(contact.uri, SipUri):
                return self._fail(request, 400, "Contact must be a SIP URI")
            expires = self._expires_for(contact, header_expires)
            if 0 < expires < self.limits.min_expires:
                response = make_response(
                    request, 423, headers=[("Min-Expires", str(self.limits.min_expires))]
                )
                return RegisterResult(response, ())
            expires = min(expires, self.limits.max_expires)
            uri_key = str(contact.uri)
            existing = updated.get(uri_key)
            # Step 7: a request with the same Call-ID must have a higher CSeq.
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                return self._fail(request, 400, "CSeq out of order")
            if expires == 0:
                if existing is not None:
                    del updated[uri_key]
                    commands_list.append(StoreCommand(CommandKind.DELETE, existing))
                continue
            binding = Binding(
                account=account,
                contact=str(contact.without_param("expires")),
                uri=uri_key,
                expires_at=now + expires,
                call_id=call_id,
                cseq=cseq,
                q=_q_value(contact),
                transport=source.transport,
                source_host=source.host,
                source_port=source.port,
                instance_id=_instance(contact),
                user_agent=user_agent[:200] if user_agent else None,
                path=", ".join(path_values) if path_values else None,
            )
            # RFC 5626 section 6: a new registration from the same instance (same
            # +sip.instance and reg-id) replaces the old flow's binding.
            if binding.instance_id is not None:
                for other in list(updated.values()):
                    if other.uri != uri_key and other.instance_id == binding.instance_id:
                        del updated[other.uri]
                        commands_list.append(StoreCommand(CommandKind.DELETE, other))
            updated[uri_key] = binding
            commands_list.append(StoreCommand(CommandKind.SAVE, binding))

        live = [b for b in updated.values() if b.expires_at > now]
        if len(live) > self.limits.max_contacts:
            return self._fail(request, 403, "Too many registered contacts")
        for command in commands_list:
            if command.kind is CommandKind.DELETE:
                self._drop(command.binding)
            else:
                self._store(command.binding)
        return RegisterResult(self._ok(request, live, now), tuple(commands_list))

    def _expires_for(self, contact: NameAddr, header_expires: int | None) -> int:
        value = contact.param("expires")
        if value is not None:
            return parse_uint(value, "expires parameter", 2**32 - 1)
        if header_expires is not None:
            return header_expires
        return self.limits.default_expires

    def _ok(self, request: Request, live: list[Binding], now: float) -> Response:
        # Section 10.3 step 8: the 200 lists every current binding with its expiry.
        headers = [
            ("Contact", f"{b.contact};expires={max(0, int(b.expires_at - now + 0.5))}")
            for b in live
        ]
        return make_response(request, 200, headers=headers)

    @staticmethod
    def _fail(request: Request, status: int, reason: str) -> RegisterResult:
        return RegisterResult(make_response(request, status, reason), ())


def _q_value(contact: NameAddr) -> float | None:
    value = contact.param("q")
    if value is None:
        return None
    try:
        q = float(value)
    except ValueError:
        raise ParseError(f"bad q value {value[:10]!r}") from None
    if not 0.0 <= q <= 1.0:
        raise ParseError(f"q value {q} out of range")
    return q


def _instance(contact: NameAddr) -> str | None:
    value = contact.param("+sip.instance")
    if value is None:
        return None
    reg_id = contact.param("reg-id")
    instance = unquote(value)
    return f"{instance};reg-id={reg_id}" if reg_id else instance
