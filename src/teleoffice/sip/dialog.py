"""SIP dialogs (RFC 3261 section 12): the state two UAs share for a call.

A dialog is identified by Call-ID and the two tags, and remembers what is
needed to send requests inside it: both URIs, both CSeq counters, where the
peer can be reached (the remote target, from its Contact) and the proxies that
asked to stay on the path (the route set, from Record-Route).

Each side sees the same dialog from its own end: the UAS takes the route set
in Record-Route order, the UAC reverses it (section 12.1), and "local" and
"remote" swap.  `DialogTable.find` takes the same care when it turns a message
into a dialog id: in a request we receive, the To tag is ours.

Like the rest of `sip/`, this module is pure: it builds `Request` objects and
hands them back with the URI of the next hop; sending is someone else's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TypeAlias

from teleoffice.sip.builders import make_request
from teleoffice.sip.errors import LocalProtocolError, ParseError, RemoteProtocolError
from teleoffice.sip.headers import MAX_CSEQ, NameAddr, Via
from teleoffice.sip.message import Request, Response
from teleoffice.sip.uri import SipUri, remove_param

DialogId: TypeAlias = tuple[str, str, str]  # (Call-ID, local tag, remote tag)

# Requests that may change the peer's address: re-INVITE (RFC 3261 section
# 12.2), UPDATE (RFC 3311) and, for event subscriptions, SUBSCRIBE and NOTIFY
# (RFC 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _without_tag(addr: NameAddr) -> NameAddr:
    return addr.without_param("tag")


def _target_of(msg: Request | Response) -> SipUri:
    """The remote target from the Contact of a dialog-creating or refreshing message."""
    contacts = msg.contacts
    if not contacts:
        raise RemoteProtocolError("a dialog needs a Contact to reach the peer")
    return contacts[0].sip_uri  # a non-SIP Contact raises ParseError (416)


def _checked_routes(values: Iterable[NameAddr]) -> list[NameAddr]:
    routes = list(values)
    for route in routes:
        route.sip_uri  # noqa: B018 - a route must be a SIP URI (raises ParseError otherwise)
    return routes


def _is_secure(request: Request) -> bool:
    # Sections 12.1.1 and 12.1.2: a sips Request-URI carried over TLS.  The top
    # Via names the transport of the hop between the two of us.
    uri = request.uri
    return isinstance(uri, SipUri) and uri.scheme == "sips" and request.top_via.transport == "TLS"


def _as_request_uri(uri: SipUri) -> SipUri:
    """Drop what RFC 3261 section 19.1.1 (table 1) forbids in a Request-URI:
    header components and the method parameter."""
    return replace(uri, headers=(), params=remove_param(uri.params, "method"))


@dataclass(eq=False, slots=True)
class Dialog:
    """The state of one dialog (RFC 3261 section 12), seen from our side."""

    call_id: str
    local_tag: str
    remote_tag: str  # "" for an RFC 2543 peer that sent no tag
    local_uri: NameAddr  # without tag
    remote_uri: NameAddr  # without tag
    local_seq: int  # 0 while empty: the next request gets 1
    remote_seq: int | None
    remote_target: SipUri
    route_set: list[NameAddr] = field(default_factory=list)
    secure: bool = False
    state: DialogState = DialogState.CONFIRMED
    local_contact: NameAddr | None = None

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    # ---- creation -----------------------------------------------------------

    @classmethod
    def from_uas(
        cls,
        request: Request,
        response_to_tag: str,
        local_contact: NameAddr | None,
        *,
        state: DialogState = DialogState.CONFIRMED,
    ) -> Dialog:
        """The dialog a UAS creates when it answers `request` with a 2xx (or a
        1xx, `state=EARLY`) carrying `response_to_tag` (section 12.1.1)."""
        if request.method in {"ACK", "CANCEL"}:
            raise LocalProtocolError(f"{request.method} creates no dialog")
        return cls(
            call_id=request.call_id,
            local_tag=response_to_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            local_seq=0,
            remote_seq=request.cseq.seq,
            remote_target=_target_of(request),
            # The UAS keeps the Record-Route order: its first hop back toward
            # the caller is the proxy nearest to itself, listed first.
            route_set=_checked_routes(request.addr_list("Record-Route")),
            secure=_is_secure(request),
            state=state,
            local_contact=local_contact,
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAC creates from a 2xx (confirmed) or a tagged 101-199
        (early) to `request` (section 12.1.2)."""
        status = response.status
        to_tag = response.to.tag
        if not (200 <= status < 300 or (101 <= status < 200 and to_tag)):
            raise LocalProtocolError(f"a {status} response creates no dialog")
        local_tag = request.from_.tag
        if not local_tag:
            raise LocalProtocolError("our request has no From tag")
        if response.contacts:
            target = _target_of(response)
        elif status < 200 and isinstance(request.uri, SipUri):
            # Section 12.1.1 asks for a Contact in an 18x too, but some phones
            # leave it out; the 2xx will bring the real target.
            target = _as_request_uri(request.uri)
        else:
            raise RemoteProtocolError("a dialog-creating response needs a Contact")
        contacts = request.contacts
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=to_tag or "",
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(request.to),
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=target,
            # The response lists the proxies from the callee back to us; our
            # requests visit them in the opposite order.
            route_set=_checked_routes(reversed(response.addr_list("Record-Route"))),
            secure=_is_secure(request),
            state=DialogState.EARLY if status < 200 else DialogState.CONFIRMED,
            local_contact=contacts[0] if contacts else None,
        )

    # ---- requests we send ---------------------------------------------------

    def next_hop(self) -> SipUri:
        """Where a request in this dialog goes first (section 12.2.1.1 and
        RFC 3263): the first route, or the remote target when there is none.
        With a strict router that first route is also the Request-URI."""
        if self.route_set:
            return self.route_set[0].sip_uri
        return self.remote_target

    def create_request(
        self,
        method: str,
        *,
        via: Via,
        contact: NameAddr | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> tuple[Request, SipUri]:
        """A new request in this dialog (section 12.2.1.1) and its next hop.

        The local CSeq goes up by one.  ACK and CANCEL do not count: an ACK
        for a 2xx comes from `create_ack`, and a CANCEL is built from the
        INVITE it cancels (`builders.make_cancel`).
        """
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(
                f"{method} reuses the INVITE's CSeq; see create_ack/make_cancel"
            )
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("the dialog is terminated")
        seq = self.local_seq + 1
        if seq > MAX_CSEQ:
            raise LocalProtocolError("the local CSeq would overflow")
        request = self._build(
            method,
            seq,
            via=via,
            contact=contact,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        self.local_seq = seq
        return request, self.next_hop()

    def create_ack(
        self,
        invite_cseq: int,
        *,
        via: Via,
        contact: NameAddr | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> tuple[Request, SipUri]:
        """The ACK for a 2xx to the INVITE numbered `invite_cseq` (section
        13.2.2.4): routed like any request in the dialog, CSeq number of the
        INVITE.  `via` should carry a new branch: the ACK for a 2xx is a
        transaction of its own."""
        ack = self._build(
            "ACK",
            invite_cseq,
            via=via,
            contact=contact,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        return ack, self.next_hop()

    def _build(
        self,
        method: str,
        seq: int,
        *,
        via: Via,
        contact: NameAddr | None,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
    ) -> Request:
        request_uri, routes = self._request_uri_and_routes()
        to = self.remote_uri
        if self.remote_tag:
            to = to.with_param("tag", self.remote_tag)
        return make_request(
            method,
            request_uri,
            from_=self.local_uri.with_param("tag", self.local_tag),
            to=to,
            call_id=self.call_id,
            cseq=seq,
            via=via,
            contact=contact,
            headers=[*(("Route", str(route)) for route in routes), *headers],
            body=body,
            content_type=content_type,
        )

    def _request_uri_and_routes(self) -> tuple[SipUri, list[NameAddr]]:
        """Section 12.2.1.1: Request-URI and Route set for loose and strict routers."""
        if not self.route_set:
            return _as_request_uri(self.remote_target), []
        first = self.route_set[0].sip_uri
        if first.has_param("lr"):
            # Loose routing (RFC 3261): the request names its real target and
            # the proxies to visit are listed in Route.
            return _as_request_uri(self.remote_target), list(self.route_set)
        # Strict routing (RFC 2543 proxies): the first proxy goes in the
        # Request-URI, and the real target travels as the last Route so the
        # strict router can put it back.
        return _as_request_uri(first), [*self.route_set[1:], NameAddr(self.remote_target)]

    # ---- messages we receive ------------------------------------------------

    def receive_request(self, req: Request) -> int | None:
        """Check and record an incoming request in this dialog (section 12.2.2).

        Returns the status to reject it with (500 when it is out of order), or
        None when it may proceed.  ACK and CANCEL carry the number of the
        INVITE they belong to and are neither checked nor counted.
        """
        if req.method in ("ACK", "CANCEL"):
            return None
        seq = req.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500
        if req.method in TARGET_REFRESH_METHODS and req.contacts:
            try:
                self.remote_target = _target_of(req)
            except ParseError:
                return 400
        self.remote_seq = seq
        return None

    def update_from_response(self, resp: Response) -> None:
        """Take in a response to a request we sent in this dialog.

        A 2xx to the INVITE confirms an early dialog and, per section
        13.2.2.4, recomputes the route set from it; a 2xx to a target refresh
        request updates the remote target (section 12.2.1.2); a 3xx-6xx to the
        INVITE ends an early dialog (section 12.3); 481 and 408 end any dialog
        (section 12.2.1.2).
        """
        if resp.call_id != self.call_id or (resp.from_.tag or "") != self.local_tag:
            raise LocalProtocolError("the response does not belong to this dialog")
        to_tag = resp.to.tag or ""
        if self.remote_tag and to_tag != self.remote_tag:
            raise LocalProtocolError("the response comes from another dialog (a fork)")
        status = resp.status
        method = resp.cseq.method
        if status in (408, 481):
            self.state = DialogState.TERMINATED
            return
        if self.state is DialogState.EARLY and method == "INVITE":
            if 200 <= status < 300:
                self.state = DialogState.CONFIRMED
                self.route_set = _checked_routes(reversed(resp.addr_list("Record-Route")))
            elif status >= 300:
                self.state = DialogState.TERMINATED
                return
        if 200 <= status < 300 and method in TARGET_REFRESH_METHODS and resp.contacts:
            self.remote_target = _target_of(resp)


class DialogTable:
    """The dialogs of one UA, by id."""

    __slots__ = ("_dialogs",)

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def add(self, dialog: Dialog) -> None:
        existing = self._dialogs.get(dialog.id)
        if existing is not None and existing is not dialog:
            raise LocalProtocolError(f"dialog {dialog.id} exists already")
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog: Dialog | DialogId) -> Dialog | None:
        dialog_id = dialog.id if isinstance(dialog, Dialog) else dialog
        return self._dialogs.pop(dialog_id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def find(self, msg: Request | Response, as_uas: bool) -> Dialog | None:
        """The dialog `msg` belongs to.

        `as_uas` is true for a request we received: its To tag is our local
        tag and its From tag the remote one.  Otherwise (a response to our
        request) From carries our tag.  A received request without a To tag is
        not in any dialog (section 12.2.2).
        """
        try:
            from_tag = msg.from_.tag or ""
            to_tag = msg.to.tag
            call_id = msg.call_id
        except ParseError:
            return None
        if as_uas:
            if to_tag is None:
                return None
            return self._dialogs.get((call_id, to_tag, from_tag))
        return self._dialogs.get((call_id, from_tag, to_tag or ""))
