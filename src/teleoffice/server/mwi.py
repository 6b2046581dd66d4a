"""Message waiting indication: the message-summary event package (RFC 3842) as
a notifier of SIP-specific event notification (RFC 6665), sans-IO.

Theory of operation
-------------------
A phone SUBSCRIBEs with `Event: message-summary`; the SIP service checks what
can be checked without knowing who asks (`check`: event package, Accept,
Expires), authenticates it with digest exactly like a REGISTER, and hands it to
`subscribe`.  Everything a subscription does from then on (the dialog, the
immediate NOTIFY, refreshes, expiry with `terminated;reason=timeout`, one
NOTIFY in flight with coalescing, removal on 481 or a timeout, the limits) is
the generic notifier's, `server.subscriptions`; this module adds what is
particular to message waiting.

Whose messages a phone shows is asked every time a NOTIFY is built
(`mailbox_of(account)`), since hot desking changes the user on a phone; the
composition root calls `changed(username, now)` when a mailbox changes and
`account_changed(account, now)` when the user on a phone changes.  The mailbox is
always the authenticated account's: the Request-URI of the SUBSCRIBE is not
consulted, so nobody can watch someone else's mailbox by naming it.

Phones that never subscribe can be sent unsolicited NOTIFYs (out of any dialog,
`Subscription-State: terminated`, the body of RFC 3842) at their registered
contacts, when `unsolicited(account)` says so.  RFC 6665 does not define them;
many phones light their lamp on them anyway.  A device that has a subscription
does not also get the unsolicited kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from teleoffice.calls.registrar import Binding
from teleoffice.server.subscriptions import (
    DEACTIVATED,
    TIMEOUT,
    EventHeader,
    Notification,
    Notifier,
    Respond,
    Subscription,
    SubscriptionCounters,
    SubscriptionLimits,
    parse_event,
)
from teleoffice.sip.builders import make_request, new_call_id, new_tag
from teleoffice.sip.errors import ParseError
from teleoffice.sip.headers import NameAddr
from teleoffice.sip.message import Request
from teleoffice.sip.transaction import Address, TransactionLayer, TxKey
from teleoffice.sip.uri import SipUri, parse_uri

__all__ = [
    "ALLOW_EVENTS",
    "CONTENT_TYPE",
    "DEACTIVATED",
    "EVENT_PACKAGE",
    "TIMEOUT",
    "EventHeader",
    "Mailbox",
    "MessageWaiting",
    "MwiCounters",
    "MwiLimits",
    "parse_event",
    "summary_body",
]

log = logging.getLogger("teleoffice.mwi")

EVENT_PACKAGE = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
# What an Allow-Events header lists when message waiting is the only package
# served (RFC 6665 section 8.2.2).
ALLOW_EVENTS = EVENT_PACKAGE

# Below `min_expires` a SUBSCRIBE gets 423 with Min-Expires (RFC 6665 section
# 4.2.1.1 lets the notifier refuse a too short interval, as RFC 3261 does for
# REGISTER); above `max_expires` it is shortened.  RFC 3842 section 3.4: the
# default duration of a message-summary subscription is an hour, which is the
# generic default.  A phone has a handful of lines at most: 10 per account.
MwiLimits = SubscriptionLimits


@dataclass(frozen=True, slots=True)
class Mailbox:
    """Whose messages a phone shows: the user, and the number in Message-Account."""

    username: str
    number: str


@dataclass
class MwiCounters(SubscriptionCounters):
    unsolicited_sent: int = 0


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


@dataclass(slots=True)
class _Shown:
    """What a subscription's last NOTIFY showed, to repeat when counting fails."""

    counts: tuple[int, int] = (0, 0)


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


class MessageWaiting(Notifier[_Shown]):
    """The message-summary notifier: subscriptions, NOTIFYs, unsolicited NOTIFYs.

    A subscription's resource is the username of the mailbox its last NOTIFY
    showed (None: nobody's)."""

    counters: MwiCounters

    def __init__(
        self,
        *,
        transactions: TransactionLayer,
        respond: Respond,
        local: Callable[[Address], Address],
        domain: str,
        mailbox_of: MailboxOf,
        contacts: Contacts,
        counts: Counts | None = None,
        unsolicited: Unsolicited | None = None,
        limits: MwiLimits | None = None,
    ) -> None:
        super().__init__(
            package=EVENT_PACKAGE,
            content_type=CONTENT_TYPE,
            transactions=transactions,
            respond=respond,
            local=local,
            limits=limits,
            counters=MwiCounters(),
        )
        self.domain = domain
        self.mailbox_of = mailbox_of
        self.contacts = contacts
        # Both are called on the event loop's thread, for every NOTIFY: they
        # must answer from memory (a cache the mailbox keeps up to date), not
        # query a database.
        self.counts = counts if counts is not None else _no_counts
        self.unsolicited = unsolicited if unsolicited is not None else _never
        # Accounts that registered through us: the candidates for unsolicited
        # NOTIFYs (pruned when their bindings are gone).
        self._registered: set[str] = set()

    # ---- SUBSCRIBE ------------------------------------------------------------

    def subscribe(
        self, key: TxKey, request: Request, source: Address, account: str, now: float
    ) -> None:
        """A new SUBSCRIBE, already `check`ed and authenticated as `account`."""
        self.accept(key, request, source, account, now, state=_Shown())

    # ---- changes from outside ----------------------------------------------------

    def changed(self, username: str, now: float) -> int:
        """A user's mailbox changed: NOTIFY every subscription showing it, and
        the registered contacts that want unsolicited NOTIFYs, with the counts
        the `counts` provider gives now.  Returns how many phones are told (a
        NOTIFY that must wait for one in flight counts too)."""
        told = self.notify_resource(username, now)
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
                self.notify(sub, now)
                told += 1
        if account in self._registered:
            mailbox = self._mailbox(account)
            told += self._unsolicited(account, mailbox, now)
        return told

    def note_registered(self, account: str) -> None:
        """`account` has just registered a contact (a candidate for unsolicited NOTIFYs)."""
        self._registered.add(account)

    # ---- the body -------------------------------------------------------------------

    def render(self, sub: Subscription[_Shown], now: float) -> Notification:
        del now
        mailbox = self._mailbox(sub.account)
        self.reindex(sub, mailbox.username if mailbox else None)
        return Notification(self._body(mailbox, sub.state), CONTENT_TYPE)

    def _body(self, mailbox: Mailbox | None, shown: _Shown | None) -> bytes:
        if mailbox is None:
            return summary_body(None, None)
        try:
            counts = self.counts(mailbox.username)
        except Exception:  # a store error must not cost the NOTIFY: repeat the last state
            log.exception("could not count the messages of %s", mailbox.username)
            counts = shown.counts if shown is not None else (0, 0)
        if shown is not None:
            shown.counts = counts
        account_uri = f"sip:{mailbox.number}@{self.domain}"
        return summary_body(counts, account_uri)

    def _mailbox(self, account: str) -> Mailbox | None:
        try:
            return self.mailbox_of(account)
        except Exception:  # a directory error: show nobody's mailbox rather than fail
            log.exception("could not find the mailbox of account %s", account)
            return None

    # ---- unsolicited NOTIFYs ----------------------------------------------------------

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
                call_id=new_call_id(self.local(peer).host),
                cseq=1,
                via=self._via(peer),
                contact=self._contact(peer),
                # No subscription exists, and the state says so; phones that
                # take unsolicited NOTIFYs read the body regardless.
                headers=[("Event", EVENT_PACKAGE), ("Subscription-State", "terminated")],
                body=self._body(mailbox, None),
                content_type=CONTENT_TYPE,
            )
            self.track(self.tx.send_request(request, peer, now))
            self.counters.unsolicited_sent += 1
            sent += 1
        return sent
