"""SIP-specific event notification (RFC 6665), the notifier side, sans-IO: what
every event package teleoffice serves has in common.

Theory of operation
-------------------
A subscriber SUBSCRIBEs with an `Event` header naming a package.  `check`
refuses what can be refused before knowing who asks (the package, Accept,
Expires, Contact); the SIP service then authenticates the request and the
package decides whether this subscriber may watch this resource.  `accept`
makes the subscription: a dialog of its own (RFC 6665 section 4.2.1.1), a 200
with the granted Expires and our Contact, and a NOTIFY at once (section
4.2.1.2) with `Subscription-State: active;expires=N` and the current state.
Every refresh inside the dialog (`in_dialog`) is answered the same way and gets
a NOTIFY too; it is not challenged again: like a BYE in a call, it is
recognised by the dialog's Call-ID and two random tags, which only the
subscriber and we know.  `Expires: 0` ends the subscription with a final
NOTIFY, as does running out of time (section 4.2.2), both
`terminated;reason=timeout` (of the reasons of section 4.1.3, "timeout" is the
one for a subscription that was not refreshed, and it lets the subscriber
subscribe again at once; "noresource" or "rejected" tell it never to try
again).  `Expires: 0` on a new SUBSCRIBE is a fetch (section 4.4.3): one NOTIFY
with the state, and nothing is kept.

What a NOTIFY carries is the package's business: the subclass's `render` is
asked for the body whenever one is due, so a NOTIFY always shows the state of
the moment it is sent.  A subscription watches one `resource` (a mailbox, a
user); `notify_resource` tells every subscription of a resource that it changed.

At most one NOTIFY per subscription is in flight.  A change while one is
outstanding marks the subscription (`again`) and a fresh NOTIFY follows when
the first is answered: the subscriber never sees an older state after a newer
one, and a burst of changes costs one NOTIFY, not one each.  A NOTIFY answered
481 or 408, any other failure without Retry-After, or no answer at all (Timer
F) ends the subscription without another word (section 4.2.2); the
subscriber's next refresh then gets 481 and it subscribes afresh.  A failure
with Retry-After keeps the subscription but marks it `resync`: the subscriber
may have missed a state, so a package that sends partial state (RFC 4235's
dialog package) sends full state next.

Limits: a subscription lasts between `min_expires` (shorter gets 423 with
Min-Expires) and `max_expires` (longer is shortened, as section 4.2.1.1
allows); an account may hold `max_per_account` subscriptions (403 beyond:
the subscriber's own doing, as the registrar answers too many contacts) and the
table `max_total` (503 with Retry-After beyond: our capacity).  The expiry
heap has lazy deletion and is rebuilt when stale entries pile up, so a
subscriber refreshing in a loop cannot grow it without bound.

Nothing here reads a clock or touches a socket: every input takes `now`,
`next_timer` says when the next subscription runs out, and requests go through
the shared transaction layer (the service routes their responses back here by
`owns(key)`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from teleoffice.sip.builders import make_response, new_branch, new_tag
from teleoffice.sip.dialog import Dialog, DialogId
from teleoffice.sip.errors import LocalProtocolError, ParseError
from teleoffice.sip.headers import NameAddr, Via, parse_params
from teleoffice.sip.message import Request, Response
from teleoffice.sip.transaction import Address, TransactionLayer, TxKey
from teleoffice.sip.uri import Params, SipUri, find_param, is_token

log = logging.getLogger("teleoffice.subscriptions")

# Subscription-State reasons (RFC 6665 section 4.1.3).
TIMEOUT = "timeout"  # not refreshed (or Expires: 0); the subscriber may subscribe again at once
DEACTIVATED = "deactivated"  # we are going away; subscribe again (elsewhere) at once
PROBATION = "probation"  # ended for now; subscribe again after retry-after
REJECTED = "rejected"  # no longer authorised; do not subscribe again
NORESOURCE = "noresource"  # the resource is gone; do not subscribe again

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class SubscriptionLimits:
    min_expires: int = 60
    max_expires: int = 3600
    # When the SUBSCRIBE has no Expires: the package's default duration (an
    # hour for message-summary, presence and dialog alike).
    default_expires: int = 3600
    max_per_account: int = 10
    max_total: int = 10_000
    # Retry-After of the 503 for a full table, and of `probation` endings.
    retry_after: int = 300


@dataclass
class SubscriptionCounters:
    subscriptions_created: int = 0
    notifies_sent: int = 0
    notify_failures: int = 0
    # SUBSCRIBEs refused by the limits (per account or in total).
    refused: int = 0


@dataclass(frozen=True, slots=True)
class EventHeader:
    """An Event header value: the package and its optional id (RFC 6665 section 8.2.1)."""

    package: str
    params: Params = ()

    @property
    def id(self) -> str | None:
        return find_param(self.params, "id")[1]

    def __str__(self) -> str:
        # The NOTIFY names the same package and id as the SUBSCRIBE (RFC 6665
        # sections 3.2.1 and 8.2.1); other parameters are not echoed.
        event_id = self.id
        return self.package if event_id is None else f"{self.package};id={event_id}"


def parse_event(value: str) -> EventHeader:
    package, semi, rest = value.strip(" \t").partition(";")
    package = package.strip(" \t")
    if not package or not is_token(package):
        raise ParseError(f"bad Event {value[:60]!r}")
    return EventHeader(package, parse_params(semi + rest, "Event"))


def event_of(request: Request) -> EventHeader | None:
    """The request's Event (the first one), None when it has none; a malformed
    one raises ParseError (the service answers 400)."""
    values = request.headers.get_all("Event")
    return parse_event(values[0]) if values else None


def accepts(request: Request, content_types: Iterable[str]) -> bool:
    """Whether the request's Accept (if any) admits one of `content_types`."""
    if "Accept" not in request.headers:
        return True  # every package names its format as the default
    wanted = list(content_types)
    for item in request.headers.get_all("Accept"):
        media = item.split(";", 1)[0].strip().lower()
        for content_type in wanted:
            major = content_type.split("/", 1)[0]
            if media in (content_type, f"{major}/*", "*/*"):
                return True
    # An empty Accept means that no format is acceptable (RFC 3261 section 20.1).
    return False


@dataclass(frozen=True, slots=True)
class Notification:
    """What a NOTIFY carries: a body of the package's format."""

    body: bytes
    content_type: str


@dataclass(eq=False, slots=True)
class Subscription(Generic[S]):
    """One subscription (a dialog of its own); `state` is the package's."""

    account: str  # the authenticated account that subscribed
    dialog: Dialog
    peer: Address  # where the SUBSCRIBE came from: NOTIFYs go there (NAT)
    event: EventHeader
    expires_at: float
    state: S
    resource: str | None = None  # what it watches (the index of `notify_resource`)
    in_flight: TxKey | None = None
    again: bool = False  # another NOTIFY is due once the one in flight is answered
    ending: str | None = None  # the reason of the final NOTIFY, once decided
    live: bool = True
    # The next NOTIFY must carry full state: the first one, the one after a
    # refresh, the one after a NOTIFY that may not have arrived.
    resync: bool = True

    @property
    def id(self) -> DialogId:
        return self.dialog.id


Respond = Callable[[TxKey, Response, float], None]


class Notifier(ABC, Generic[S]):
    """A table of subscriptions to one event package and their NOTIFYs.

    A package subclasses it with `render` (the body of the next NOTIFY) and
    decides itself who may subscribe to what before calling `accept`.
    """

    counters: SubscriptionCounters

    def __init__(
        self,
        *,
        package: str,
        content_type: str,
        transactions: TransactionLayer,
        respond: Respond,
        local: Callable[[Address], Address],
        limits: SubscriptionLimits | None = None,
        counters: SubscriptionCounters | None = None,
    ) -> None:
        self.package = package
        self.content_type = content_type
        # What a 489 lists (RFC 6665 section 8.2.2); the service may widen it.
        self.allow_events = package
        self.tx = transactions
        self.respond = respond
        # Our address toward a peer: a callable, since the SIP port is known only
        # once the socket is bound, and TLS listens on a port of its own.
        self.local = local
        self.limits = limits or SubscriptionLimits()
        self.counters = counters if counters is not None else SubscriptionCounters()
        self._subs: dict[DialogId, Subscription[S]] = {}
        self._by_account: dict[str, dict[DialogId, Subscription[S]]] = {}
        self._by_resource: dict[str, dict[DialogId, Subscription[S]]] = {}
        # Our NOTIFY transactions; None for one outside any subscription (a
        # package's unsolicited NOTIFY: nothing to update when it is answered).
        self._keys: dict[TxKey, Subscription[S] | None] = {}
        # Expiry times with lazy deletion, as in the registrar: a refreshed or
        # ended subscription's old entry is skipped when it surfaces.
        self._expiries: list[tuple[float, int, Subscription[S]]] = []
        self._order = itertools.count()

    # ---- the package's part -----------------------------------------------------

    @abstractmethod
    def render(self, sub: Subscription[S], now: float) -> Notification | None:
        """The body of the NOTIFY about to go to `sub`, or None when there is
        nothing new to say (only honoured for a NOTIFY that is neither the first
        nor a final one nor due for full state).  It may also decide that the
        subscription ends (set `sub.ending`), e.g. when the resource is gone."""

    # ---- queries ----------------------------------------------------------------

    def count(self) -> int:
        return len(self._subs)

    def subscriptions_of(self, account: str) -> list[Subscription[S]]:
        return list(self._by_account.get(account, {}).values())

    def subscriptions_for(self, resource: str) -> list[Subscription[S]]:
        return list(self._by_resource.get(resource, {}).values())

    def owns(self, key: TxKey) -> bool:
        return key in self._keys

    def next_timer(self) -> float | None:
        heap = self._expiries
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ---- SUBSCRIBE ----------------------------------------------------------------

    def check(self, request: Request) -> Response | None:
        """What can be refused before knowing who asks: event package, Accept,
        Expires and Contact.  None when the request may be authenticated."""
        event = event_of(request)
        if event is None or event.package.lower() != self.package:
            # RFC 6665 section 3.1.2 requires exactly one Event.  Under RFC 3265
            # a missing one meant the PINT package, which we do not serve either;
            # 489 with Allow-Events tells the subscriber what we do serve.
            return self.bad_event(request)
        if not accepts(request, (self.content_type,)):
            # RFC 3261 section 21.4.7: we can only send the one body format the
            # package defines.
            return make_response(request, 406, headers=[("Accept", self.content_type)])
        expires = request.expires
        if expires is not None and 0 < expires < self.limits.min_expires:
            return make_response(
                request, 423, headers=[("Min-Expires", str(self.limits.min_expires))]
            )
        if request.to.tag is None and not request.contacts:
            return make_response(request, 400, "Missing Contact")
        return None

    def bad_event(self, request: Request) -> Response:
        return make_response(request, 489, headers=[("Allow-Events", self.allow_events)])

    def accept(
        self,
        key: TxKey,
        request: Request,
        source: Address,
        account: str,
        now: float,
        *,
        state: S,
        resource: str | None = None,
    ) -> Subscription[S] | None:
        """Make the subscription for a `check`ed, authenticated and authorised
        SUBSCRIBE: answer it and send the first NOTIFY.  None when the limits
        refuse it (already answered) or for a fetch (nothing kept)."""
        expires = request.expires
        if expires is None:
            expires = self.limits.default_expires
        event = event_of(request) or EventHeader(self.package)
        fetch = expires == 0
        if not fetch and self._refused_by_limits(key, request, account, now):
            return None
        granted = min(expires, self.limits.max_expires)
        to_tag = new_tag()
        contact = self._contact(source)
        dialog = Dialog.from_uas(request, to_tag, contact)
        self.respond(
            key,
            make_response(
                request,
                200,
                to_tag=to_tag,
                headers=[("Expires", str(granted)), ("Contact", str(contact))],
            ),
            now,
        )
        sub = Subscription(account, dialog, source, event, now + granted, state)
        if fetch:
            sub.ending = TIMEOUT
            sub.live = False
            sub.resource = resource
            self.notify(sub, now)
            return None
        self._index(sub, resource)
        self._subs[sub.id] = sub
        self._by_account.setdefault(account, {})[sub.id] = sub
        self._push_expiry(sub)
        self.counters.subscriptions_created += 1
        log.debug("account %s subscribed to %s for %ds", account, self.package, granted)
        self.notify(sub, now)
        return sub

    def _refused_by_limits(self, key: TxKey, request: Request, account: str, now: float) -> bool:
        if len(self._subs) >= self.limits.max_total:
            log.warning("%s subscription table full (%d): 503", self.package, len(self._subs))
            self.counters.refused += 1
            self.respond(
                key,
                make_response(
                    request, 503, headers=[("Retry-After", str(self.limits.retry_after))]
                ),
                now,
            )
            return True
        if len(self._by_account.get(account, {})) >= self.limits.max_per_account:
            self.counters.refused += 1
            self.respond(key, make_response(request, 403, "Too Many Subscriptions"), now)
            return True
        return False

    def find(self, request: Request) -> Subscription[S] | None:
        """The live subscription a request inside a dialog belongs to."""
        try:
            dialog_id = (request.call_id, request.to.tag or "", request.from_.tag or "")
        except ParseError:
            return None
        return self._subs.get(dialog_id)

    def in_dialog(self, key: TxKey, request: Request, source: Address, now: float) -> bool:
        """A SUBSCRIBE inside a dialog: a refresh or an unsubscribe if it is one
        of ours (True), else False for the caller to try elsewhere."""
        sub = self.find(request)
        if sub is None:
            return False
        if sub.ending is not None:
            # The final NOTIFY is waiting for the one in flight: as far as the
            # subscriber is concerned, the subscription is over.
            self.respond(key, make_response(request, 481), now)
            return True
        error = self.check(request)
        if error is None:
            event = event_of(request)
            if event is None or event.id != sub.event.id:
                # Another subscription (by id) in this dialog: none such here.
                error = make_response(request, 481)
        if error is None:
            status = sub.dialog.receive_request(request)  # CSeq order, target refresh
            if status is not None:
                error = make_response(request, status)
        if error is not None:
            self.respond(key, error, now)
            return True
        sub.peer = source  # the subscriber may have moved (a new NAT binding)
        expires = request.expires
        if expires is None:
            expires = self.limits.default_expires
        granted = min(expires, self.limits.max_expires)
        self.respond(
            key,
            make_response(
                request,
                200,
                headers=[("Expires", str(granted)), ("Contact", str(self._contact(source)))],
            ),
            now,
        )
        if granted == 0:
            sub.ending = TIMEOUT
        else:
            sub.expires_at = now + granted
            self._push_expiry(sub)
        # Section 4.2.1.2: a refresh, like a new subscription, gets the current
        # (full) state at once; an unsubscribe gets the final NOTIFY.
        sub.resync = True
        self.notify(sub, now)
        return True

    # ---- changes from outside ----------------------------------------------------

    def notify(self, sub: Subscription[S], now: float) -> None:
        """Send `sub` a NOTIFY with the state of now, or as soon as the one in
        flight is answered."""
        if sub.in_flight is not None:
            sub.again = True
            return
        sub.again = False
        note = self.render(sub, now)
        if note is None and sub.ending is None and not sub.resync:
            return  # nothing new to say
        if sub.ending is not None:
            state = f"terminated;reason={sub.ending}"
            if sub.ending == PROBATION:
                state += f";retry-after={self.limits.retry_after}"
        else:
            state = f"active;expires={max(0, math.ceil(sub.expires_at - now))}"
        try:
            request, _ = sub.dialog.create_request(
                "NOTIFY",
                via=self._via(sub.peer),
                contact=self._contact(sub.peer),
                headers=[("Event", str(sub.event)), ("Subscription-State", state)],
                body=note.body if note is not None else b"",
                content_type=note.content_type if note is not None else None,
            )
        except LocalProtocolError as exc:  # the dialog's CSeq ran out
            log.info("cannot NOTIFY %s of %s: %s", sub.account, self.package, exc)
            self._forget(sub)
            return
        key = self.tx.send_request(request, sub.peer, now)
        self._keys[key] = sub
        sub.in_flight = key
        if note is not None:
            sub.resync = False  # a NOTIFY without a body showed no state
        self.counters.notifies_sent += 1
        if sub.ending is not None:
            self._forget(sub)

    def notify_resource(self, resource: str, now: float) -> int:
        """`resource` changed: NOTIFY every subscription watching it.  Returns
        how many subscribers are told (one that must wait for a NOTIFY in
        flight counts too)."""
        told = 0
        for sub in self.subscriptions_for(resource):
            if sub.ending is None:
                self.notify(sub, now)
                told += 1
        return told

    def end(self, sub: Subscription[S], reason: str, now: float) -> None:
        """End `sub` with a final NOTIFY giving `reason` (RFC 6665 section 4.2.2)."""
        if sub.ending is not None or not sub.live:
            return
        sub.ending = reason
        self.notify(sub, now)

    def track(self, key: TxKey) -> None:
        """Route the answer to a NOTIFY sent outside any subscription here."""
        self._keys[key] = None

    # ---- timers, responses --------------------------------------------------------

    def handle_timers(self, now: float) -> None:
        heap = self._expiries
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._current(entry):
                continue
            sub = entry[2]
            log.debug("%s subscription of %s expired", self.package, sub.account)
            sub.ending = TIMEOUT
            self.notify(sub, now)

    def response(self, key: TxKey, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            return
        sub = self._keys.pop(key, None)
        if sub is None:
            if status >= 300:
                log.debug("%s NOTIFY outside a subscription answered %d", self.package, status)
            return
        if sub.in_flight != key:
            return
        sub.in_flight = None
        if not sub.live:
            return  # the answer to a final NOTIFY
        if status < 300:
            # A 2xx with a Contact moves the remote target (a target refresh);
            # one that is not of this dialog after all teaches nothing.
            with contextlib.suppress(LocalProtocolError):
                sub.dialog.update_from_response(response)
        elif status in (408, 481) or response.headers.get("Retry-After") is None:
            # RFC 6665 section 4.2.2: the NOTIFY failed; the subscription is gone.
            self.counters.notify_failures += 1
            log.info(
                "NOTIFY to %s answered %d: %s subscription of %s removed",
                sub.peer.host,
                status,
                self.package,
                sub.account,
            )
            self._forget(sub)
            return
        else:
            # Kept, but the subscriber did not take this state in.
            sub.resync = True
        if sub.again:
            sub.again = False
            self.notify(sub, now)

    def timeout(self, key: TxKey, now: float) -> None:
        del now
        sub = self._keys.pop(key, None)
        if sub is None or sub.in_flight != key:
            return
        sub.in_flight = None
        if sub.live:
            # Timer F: the subscriber is gone (section 4.2.2).
            self.counters.notify_failures += 1
            log.info(
                "NOTIFY to %s timed out: %s subscription of %s removed",
                sub.peer.host,
                self.package,
                sub.account,
            )
            self._forget(sub)

    def terminated(self, key: TxKey) -> None:
        self._keys.pop(key, None)

    def shutdown(self, now: float) -> None:
        """Tell every subscriber we are going (terminated;reason=deactivated): they
        subscribe again, to this process's successor."""
        for sub in list(self._subs.values()):
            if sub.ending is None:
                sub.ending = DEACTIVATED
            sub.in_flight = None  # no waiting for an answer now
            self.notify(sub, now)

    # ---- addresses ----------------------------------------------------------------

    def _via(self, peer: Address) -> Via:
        local = self.local(peer)
        return Via(
            peer.transport, local.host, local.port, (("branch", new_branch()), ("rport", None))
        )

    def _contact(self, peer: Address) -> NameAddr:
        local = self.local(peer)
        params = (("transport", peer.transport.lower()),) if peer.transport != "UDP" else ()
        return NameAddr(SipUri(host=local.host, port=local.port, user="teleoffice", params=params))

    # ---- the tables -----------------------------------------------------------------

    def reindex(self, sub: Subscription[S], resource: str | None) -> None:
        """`sub` now watches `resource` (hot desking moves a phone's mailbox)."""
        self._index(sub, resource)

    def _index(self, sub: Subscription[S], resource: str | None) -> None:
        if sub.resource == resource:
            return
        self._unindex(sub)
        sub.resource = resource
        if resource is not None and sub.live:
            self._by_resource.setdefault(resource, {})[sub.id] = sub

    def _unindex(self, sub: Subscription[S]) -> None:
        if sub.resource is None:
            return
        others = self._by_resource.get(sub.resource)
        if others is not None and others.get(sub.id) is sub:
            del others[sub.id]
            if not others:
                del self._by_resource[sub.resource]

    def _forget(self, sub: Subscription[S]) -> None:
        sub.live = False
        if self._subs.get(sub.id) is sub:
            del self._subs[sub.id]
        mine = self._by_account.get(sub.account)
        if mine is not None and mine.get(sub.id) is sub:
            del mine[sub.id]
            if not mine:
                del self._by_account[sub.account]
        self._unindex(sub)

    def _push_expiry(self, sub: Subscription[S]) -> None:
        heapq.heappush(self._expiries, (sub.expires_at, next(self._order), sub))
        if len(self._expiries) > 2 * len(self._subs) + 64:
            # Every refresh leaves a stale entry behind; a subscriber refreshing
            # in a loop must not grow the heap without bound, so rebuild it.
            self._expiries = [
                (s.expires_at, next(self._order), s)
                for s in self._subs.values()
                if s.ending is None
            ]
            heapq.heapify(self._expiries)

    @staticmethod
    def _current(entry: tuple[float, int, Subscription[S]]) -> bool:
        at, _, sub = entry
        return sub.live and sub.ending is None and sub.expires_at == at
