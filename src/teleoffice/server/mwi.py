"""Message waiting indication: the message-summary event package (RFC 3842) as
a notifier of SIP-specific event notification (RFC 6665), sans-IO.

Theory of operation
-------------------
A phone SUBSCRIBEs with `Event: message-summary`; the SIP service checks what
can be checked without knowing who asks (`check`: event package, Accept,
Expires), authenticates it with digest exactly like a REGISTER, and hands it to
`subscribe`.  The subscription is a dialog (RFC 6665 section 4.2.1.1): we answer
200 with the granted Expires and our Contact, and send a NOTIFY at once (section
4.2.1.2) with `Subscription-State: active;expires=N` and the mailbox summary.
Every refresh inside the dialog is answered the same way and gets a NOTIFY too
(it is not challenged again: like a BYE in a call, it is recognised by the
dialog's Call-ID and two random tags, which only the phone and we know);
`Expires: 0` ends the subscription with a final NOTIFY, as does running out of
time (section 4.2.2), both `terminated;reason=timeout` (of the reasons listed
in section 4.1.3, "timeout" is the one for a subscription that was not
refreshed, and it lets the subscriber subscribe again at once; "noresource" or
"rejected" would tell it never to try again).

Whose messages a phone shows is asked every time a NOTIFY is built
(`mailbox_of(account)`), since hot desking changes the user on a phone; the
composition root calls `changed(username, now)` when a mailbox changes and
`account_changed(account, now)` when the user on a phone changes.  The mailbox is
always the authenticated account's: the Request-URI of the SUBSCRIBE is not
consulted, so nobody can watch someone else's mailbox by naming it.

At most one NOTIFY per subscription is in flight.  A change while one is
outstanding marks the subscription and a fresh NOTIFY (with the state of that
moment) follows when the first is answered: the phone never sees an older
state after a newer one, and a burst of changes costs one NOTIFY, not one each.
A NOTIFY answered 481 or 408, any other failure without Retry-After, or no
answer at all (Timer F) ends the subscription without another word (section
4.2.2); the phone's next refresh then gets 481 and it subscribes afresh.

Phones that never subscribe can be sent unsolicited NOTIFYs (out of any dialog,
`Subscription-State: terminated`, the body of RFC 3842) at their registered
contacts, when `unsolicited(account)` says so.  RFC 6665 does not define them;
many phones light their lamp on them anyway.  A device that has a subscription
does not also get the unsolicited kind.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from teleoffice.calls.registrar import Binding
from teleoffice.sip.builders import make_request, make_response, new_branch, new_call_id, new_tag
from teleoffice.sip.dialog import Dialog, DialogId
from teleoffice.sip.errors import LocalProtocolError, ParseError
from teleoffice.sip.headers import NameAddr, Via, parse_params
from teleoffice.sip.message import Request, Response
from teleoffice.sip.transaction import Address, TransactionLayer, TxKey
from teleoffice.sip.uri import Params, SipUri, find_param, is_token, parse_uri

log = logging.getLogger("teleoffice.mwi")

EVENT_PACKAGE = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
# What an Allow-Events header lists (RFC 6665 section 8.2.2): the packages we
# are a notifier for.
ALLOW_EVENTS = EVENT_PACKAGE

# Subscription-State reasons used here (RFC 6665 section 4.4.1).
TIMEOUT = "timeout"  # not refreshed (or Expires: 0); the phone may subscribe again at once
DEACTIVATED = "deactivated"  # we are going away; the phone should subscribe again


@dataclass(frozen=True, slots=True)
class Mailbox:
    """Whose messages a phone shows: the user, and the number in Message-Account."""

    username: str
    number: str


@dataclass(frozen=True, slots=True)
class MwiLimits:
    # Below `min_expires` a SUBSCRIBE gets 423 with Min-Expires (RFC 6665 section
    # 4.2.1.1 lets the notifier refuse a too short interval, as RFC 3261 does for
    # REGISTER); above `max_expires` it is shortened, which the RFC allows and
    # the 200's Expires tells the phone.  RFC 3842 section 3.4: the default
    # duration of a message-summary subscription is an hour.
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    # Per account and in total.  The per-account limit is the phone's own
    # doing (403, as the registrar answers too many contacts); the total is our
    # capacity, so 503 with Retry-After.
    max_per_account: int = 10
    max_total: int = 10_000
    retry_after: int = 300


@dataclass
class MwiCounters:
    subscriptions_created: int = 0
    notifies_sent: int = 0
    notify_failures: int = 0
    unsolicited_sent: int = 0


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


def summary_body(counts: tuple[int, int] | None, account_uri: str | None) -> bytes:
    """An application/simple-message-summary body (the syntax of RFC 3842).

    `counts` is (new, old) voice messages; None when the phone shows nobody's
    mailbox (a hot desk nobody is logged in on): then only "no".
    """
    new, old = counts if counts is not None else (0, 0)
    lines = [f"Messages-Waiting: {'yes' if new > 0 else 'no'}"]
    if account_uri is not None:
        lines.append(f"Message-Account: {account_uri}")
    if counts is not None:
        lines.append(f"Voice-Message: {new}/{old}")
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass(eq=False, slots=True)
class Subscription:
    """One message-summary subscription (a dialog of its own)."""

    account: str
    dialog: Dialog
    peer: Address  # where the SUBSCRIBE came from: NOTIFYs go there (NAT)
    event: EventHeader
    expires_at: float
    mailbox: str | None = None  # whose state the last NOTIFY carried
    last_counts: tuple[int, int] = (0, 0)
    in_flight: TxKey | None = None
    again: bool = False  # another NOTIFY is due once the one in flight is answered
    ending: str | None = None  # the reason of the final NOTIFY, once decided
    live: bool = True

    @property
    def id(self) -> DialogId:
        return self.dialog.id


Respond = Callable[[TxKey, Response, float], None]
MailboxOf = Callable[[str], Mailbox | None]
Counts = Callable[[str], tuple[int, int]]
Unsolicited = Callable[[str], bool]
Contacts = Callable[[str, float], Sequence[Binding]]


def _no_counts(username: str) -> tuple[int, int]:
    del username
    return (0, 0)


def _never(account: str) -> bool:
    del account
    return False


class MessageWaiting:
    """The message-summary notifier: subscriptions, NOTIFYs, unsolicited NOTIFYs."""

    def __init__(
        self,
        *,
        transactions: TransactionLayer,
        respond: Respond,
        local: Callable[[], Address],
        domain: str,
        mailbox_of: MailboxOf,
        contacts: Contacts,
        counts: Counts | None = None,
        unsolicited: Unsolicited | None = None,
        limits: MwiLimits | None = None,
    ) -> None:
        self.tx = transactions
        self.respond = respond
        # A callable: the SIP port is known only once the socket is bound.
        self.local = local
        self.domain = domain
        self.mailbox_of = mailbox_of
        self.contacts = contacts
        # Both are called on the event loop's thread, for every NOTIFY: they
        # must answer from memory (a cache the mailbox keeps up to date), not
        # query a database.
        self.counts = counts if counts is not None else _no_counts
        self.unsolicited = unsolicited if unsolicited is not None else _never
        self.limits = limits or MwiLimits()
        self.counters = MwiCounters()
        self._subs: dict[DialogId, Subscription] = {}
        self._by_account: dict[str, dict[DialogId, Subscription]] = {}
        self._by_mailbox: dict[str, dict[DialogId, Subscription]] = {}
        # Our NOTIFY transactions; None for an unsolicited one (nothing to update).
        self._keys: dict[TxKey, Subscription | None] = {}
        # Expiry times with lazy deletion, as in the registrar: a refreshed or
        # ended subscription's old entry is skipped when it surfaces.
        self._expiries: list[tuple[float, int, Subscription]] = []
        self._order = itertools.count()
        # Accounts that registered through us: the candidates for unsolicited
        # NOTIFYs (pruned when their bindings are gone).
        self._registered: set[str] = set()

    # ---- queries ------------------------------------------------------------

    def count(self) -> int:
        return len(self._subs)

    def subscriptions_of(self, account: str) -> list[Subscription]:
        return list(self._by_account.get(account, {}).values())

    def owns(self, key: TxKey) -> bool:
        return key in self._keys

    def next_timer(self) -> float | None:
        heap = self._expiries
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ---- SUBSCRIBE ------------------------------------------------------------

    def check(self, request: Request) -> Response | None:
        """What can be refused before knowing who asks: event package, Accept,
        Expires and Contact.  None when the request may be authenticated."""
        values = request.headers.get_all("Event")
        if not values:
            # RFC 6665 section 3.1.2 requires exactly one Event.  Under RFC 3265
            # a missing one meant the PINT package, which we do not serve either;
            # 489 with Allow-Events tells the phone what we do serve.
            return self._bad_event(request)
        event = parse_event(values[0])
        if event.package.lower() != EVENT_PACKAGE:
            return self._bad_event(request)
        if not _accepts(request):
            # RFC 3261 section 21.4.7: we can only send the one body format the
            # package defines.
            return make_response(request, 406, headers=[("Accept", CONTENT_TYPE)])
        expires = request.expires
        if expires is not None and 0 < expires < self.limits.min_expires:
            return make_response(
                request, 423, headers=[("Min-Expires", str(self.limits.min_expires))]
            )
        if request.to.tag is None and not request.contacts:
            return make_response(request, 400, "Missing Contact")
        return None

    def subscribe(
        self, key: TxKey, request: Request, source: Address, account: str, now: float
    ) -> None:
        """A new SUBSCRIBE, already `check`ed and authenticated as `account`."""
        expires = request.expires
        if expires is None:
            expires = self.limits.default_expires
        event = parse_event(request.headers.get_all("Event")[0])
        fetch = expires == 0
        if not fetch:
            if len(self._subs) >= self.limits.max_total:
                log.warning("subscription table full (%d): 503", len(self._subs))
                self.respond(
                    key,
                    make_response(
                        request, 503, headers=[("Retry-After", str(self.limits.retry_after))]
                    ),
                    now,
                )
                return
            if len(self._by_account.get(account, {})) >= self.limits.max_per_account:
                self.respond(key, make_response(request, 403, "Too Many Subscriptions"), now)
                return
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
        sub = Subscription(account, dialog, source, event, now + granted)
        if fetch:
            # Expires: 0 on a new SUBSCRIBE is a fetch (RFC 6665 section
            # 4.4.3): one NOTIFY with the state, and no subscription remains.
            sub.ending = TIMEOUT
            sub.live = False
            self._notify(sub, now)
            return
        self._subs[sub.id] = sub
        self._by_account.setdefault(account, {})[sub.id] = sub
        self._push_expiry(sub)
        self.counters.subscriptions_created += 1
        log.debug("account %s subscribed to message-summary for %ds", account, granted)
        self._notify(sub, now)

    def in_dialog(self, key: TxKey, request: Request, source: Address, now: float) -> bool:
        """A SUBSCRIBE inside a dialog: a refresh or an unsubscribe if it is one
        of ours (True), else False for the caller to try elsewhere."""
        try:
            dialog_id = (request.call_id, request.to.tag or "", request.from_.tag or "")
        except ParseError:
            return False
        sub = self._subs.get(dialog_id)
        if sub is None:
            return False
        if sub.ending is not None:
            # The final NOTIFY is waiting for the one in flight: as far as the
            # phone is concerned, the subscription is over.
            self.respond(key, make_response(request, 481), now)
            return True
        error = self.check(request)
        if error is None:
            event = parse_event(request.headers.get_all("Event")[0])
            if event.id != sub.event.id:
                # Another subscription (by id) in this dialog: none such here.
                error = make_response(request, 481)
        if error is None:
            status = sub.dialog.receive_request(request)  # CSeq order, target refresh
            if status is not None:
                error = make_response(request, status)
        if error is not None:
            self.respond(key, error, now)
            return True
        sub.peer = source  # the phone may have moved (a new NAT binding)
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
        # state at once; an unsubscribe gets the final NOTIFY.
        self._notify(sub, now)
        return True

    # ---- changes from outside ----------------------------------------------------

    def changed(self, username: str, now: float) -> int:
        """A user's mailbox changed: NOTIFY every subscription showing it, and
        the registered contacts that want unsolicited NOTIFYs, with the counts
        the `counts` provider gives now.  Returns how many phones are told (a
        NOTIFY that must wait for one in flight counts too)."""
        told = 0
        for sub in list(self._by_mailbox.get(username, {}).values()):
            if sub.ending is None:
                self._notify(sub, now)
                told += 1
        for account in list(self._registered):
            mailbox = self._mailbox(account)
            if mailbox is not None and mailbox.username == username:
                told += self._unsolicited(account, mailbox, now)
        return told

    def account_changed(self, account: str, now: float) -> int:
        """The user on a phone changed (hot desking): show it the new mailbox."""
        told = 0
        for sub in self.subscriptions_of(account):
            if sub.ending is None:
                self._notify(sub, now)
                told += 1
        if account in self._registered:
            mailbox = self._mailbox(account)
            told += self._unsolicited(account, mailbox, now)
        return told

    def note_registered(self, account: str) -> None:
        """`account` has just registered a contact (a candidate for unsolicited NOTIFYs)."""
        self._registered.add(account)

    # ---- timers, responses ------------------------------------------------------

    def handle_timers(self, now: float) -> None:
        heap = self._expiries
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._current(entry):
                continue
            sub = entry[2]
            log.debug("message-summary subscription of %s expired", sub.account)
            sub.ending = TIMEOUT
            self._notify(sub, now)

    def response(self, key: TxKey, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            return
        sub = self._keys.pop(key, None)
        if sub is None:
            if status >= 300:
                log.debug("unsolicited NOTIFY answered %d", status)
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
                "NOTIFY to %s answered %d: subscription of %s removed",
                sub.peer.host,
                status,
                sub.account,
            )
            self._forget(sub)
            return
        if sub.again:
            sub.again = False
            self._notify(sub, now)

    def timeout(self, key: TxKey, now: float) -> None:
        del now
        sub = self._keys.pop(key, None)
        if sub is None or sub.in_flight != key:
            return
        sub.in_flight = None
        if sub.live:
            # Timer F: the phone is gone (section 4.2.2).
            self.counters.notify_failures += 1
            log.info(
                "NOTIFY to %s timed out: subscription of %s removed", sub.peer.host, sub.account
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
            self._notify(sub, now)

    # ---- sending ----------------------------------------------------------------

    def _notify(self, sub: Subscription, now: float) -> None:
        if sub.in_flight is not None:
            sub.again = True
            return
        sub.again = False
        mailbox = self._mailbox(sub.account)
        self._index(sub, mailbox.username if mailbox else None)
        if sub.ending is not None:
            state = f"terminated;reason={sub.ending}"
        else:
            state = f"active;expires={max(0, math.ceil(sub.expires_at - now))}"
        body = self._body(mailbox, sub)
        try:
            request, _ = sub.dialog.create_request(
                "NOTIFY",
                via=self._via(sub.peer),
                contact=self._contact(sub.peer),
                headers=[("Event", str(sub.event)), ("Subscription-State", state)],
                body=body,
                content_type=CONTENT_TYPE,
            )
        except LocalProtocolError as exc:  # the dialog's CSeq ran out
            log.info("cannot NOTIFY %s: %s", sub.account, exc)
            self._forget(sub)
            return
        key = self.tx.send_request(request, sub.peer, now)
        self._keys[key] = sub
        sub.in_flight = key
        self.counters.notifies_sent += 1
        if sub.ending is not None:
            self._forget(sub)

    def _unsolicited(self, account: str, mailbox: Mailbox | None, now: float) -> int:
        bindings = self.contacts(account, now)
        if not bindings:
            self._registered.discard(account)
            return 0
        if not self.unsolicited(account):
            return 0
        # A device that subscribed gets its NOTIFYs in its dialog.
        subscribed = {sub.peer for sub in self.subscriptions_of(account)}
        sent = 0
        for binding in bindings:
            if binding.source in subscribed:
                continue
            try:
                uri = parse_uri(binding.uri)
            except ParseError:
                continue
            if not isinstance(uri, SipUri):
                continue
            peer = binding.source
            number = mailbox.number if mailbox else account
            request = make_request(
                "NOTIFY",
                uri,
                from_=NameAddr(SipUri(host=self.domain, user=number), params=(("tag", new_tag()),)),
                to=NameAddr(SipUri(host=self.domain, user=account)),
                call_id=new_call_id(self.local().host),
                cseq=1,
                via=self._via(peer),
                contact=self._contact(peer),
                # No subscription exists, and the state says so; phones that
                # take unsolicited NOTIFYs read the body regardless.
                headers=[("Event", EVENT_PACKAGE), ("Subscription-State", "terminated")],
                body=self._body(mailbox, None),
                content_type=CONTENT_TYPE,
            )
            key = self.tx.send_request(request, peer, now)
            self._keys[key] = None
            self.counters.unsolicited_sent += 1
            sent += 1
        return sent

    def _body(self, mailbox: Mailbox | None, sub: Subscription | None) -> bytes:
        if mailbox is None:
            return summary_body(None, None)
        try:
            counts = self.counts(mailbox.username)
        except Exception:  # a store error must not cost the NOTIFY: repeat the last state
            log.exception("could not count the messages of %s", mailbox.username)
            counts = sub.last_counts if sub is not None else (0, 0)
        if sub is not None:
            sub.last_counts = counts
        account_uri = f"sip:{mailbox.number}@{self.domain}"
        return summary_body(counts, account_uri)

    def _mailbox(self, account: str) -> Mailbox | None:
        try:
            return self.mailbox_of(account)
        except Exception:  # a directory error: show nobody's mailbox rather than fail
            log.exception("could not find the mailbox of account %s", account)
            return None

    def _via(self, peer: Address) -> Via:
        local = self.local()
        return Via(
            peer.transport, local.host, local.port, (("branch", new_branch()), ("rport", None))
        )

    def _contact(self, peer: Address) -> NameAddr:
        local = self.local()
        params = (("transport", peer.transport.lower()),) if peer.transport != "UDP" else ()
        return NameAddr(SipUri(host=local.host, port=local.port, user="teleoffice", params=params))

    # ---- the tables ---------------------------------------------------------------

    def _index(self, sub: Subscription, username: str | None) -> None:
        if sub.mailbox == username:
            return
        if sub.mailbox is not None:
            self._unindex(sub)
        sub.mailbox = username
        if username is not None and sub.live:
            self._by_mailbox.setdefault(username, {})[sub.id] = sub

    def _unindex(self, sub: Subscription) -> None:
        if sub.mailbox is None:
            return
        others = self._by_mailbox.get(sub.mailbox)
        if others is not None:
            others.pop(sub.id, None)
            if not others:
                del self._by_mailbox[sub.mailbox]

    def _forget(self, sub: Subscription) -> None:
        sub.live = False
        if self._subs.get(sub.id) is sub:
            del self._subs[sub.id]
        mine = self._by_account.get(sub.account)
        if mine is not None and mine.get(sub.id) is sub:
            del mine[sub.id]
            if not mine:
                del self._by_account[sub.account]
        self._unindex(sub)

    def _push_expiry(self, sub: Subscription) -> None:
        heapq.heappush(self._expiries, (sub.expires_at, next(self._order), sub))
        if len(self._expiries) > 2 * len(self._subs) + 64:
            # Every refresh leaves a stale entry behind; a phone refreshing in a
            # loop must not grow the heap without bound, so rebuild it.
            self._expiries = [
                (s.expires_at, next(self._order), s)
                for s in self._subs.values()
                if s.ending is None
            ]
            heapq.heapify(self._expiries)

    @staticmethod
    def _current(entry: tuple[float, int, Subscription]) -> bool:
        at, _, sub = entry
        return sub.live and sub.ending is None and sub.expires_at == at

    def _bad_event(self, request: Request) -> Response:
        return make_response(request, 489, headers=[("Allow-Events", ALLOW_EVENTS)])


def _accepts(request: Request) -> bool:
    """Whether the SUBSCRIBE's Accept (if any) admits our body format."""
    if "Accept" not in request.headers:
        return True  # RFC 3842 section 3.5: the package's format is the default
    major = CONTENT_TYPE.split("/", 1)[0]
    for item in request.headers.get_all("Accept"):
        media = item.split(";", 1)[0].strip().lower()
        if media in (CONTENT_TYPE, f"{major}/*", "*/*"):
            return True
    # An empty Accept means that no format is acceptable (RFC 3261 section 20.1).
    return False
