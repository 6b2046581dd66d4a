"""Presence over SIP, sans-IO: PUBLISH (RFC 3903) into the presence model,
SUBSCRIBE/NOTIFY for the presence (RFC 3856, PIDF of RFC 3863) and dialog
(RFC 4235, busy lamps) event packages, on the generic notifier of
`server.subscriptions`.

Theory of operation
-------------------
One state per user (rule T9) lives in the presence model (`calls.presence`);
this module is its SIP face, and keeps nothing of a user's presence itself.

PUBLISH.  A phone publishes its own user's presence: authenticated with digest
like a REGISTER, by an account somebody is logged in on (hot desking: the
phone publishes for whoever is on it), to a Request-URI and To that name that
user (the account, their extension or their username; anyone else's is 403).
RFC 3903 section 6 in order: the event package must be `presence` (489), a
body must be application/pidf+xml (415); without SIP-If-Match the request is an
initial publication and needs a body (400); with it, the entity-tag must be a
current one of this user (412, whoever else it belongs to); `Expires: 0`
removes, no body refreshes, a body modifies.  Expires below the minimum gets
423 with Min-Expires, above the maximum is shortened; the 200 carries the new
SIP-ETag (a new one for every success) and the granted Expires.  A body is
parsed as hostile input (`sip.pidf`: size, depth, DTDs and entities refused)
only after authentication, and turned into one of the five states and a note
(`pidf.presence_of`; an `on-the-phone` activity describes a call, not a
choice, and is passed as such).  The model decides what a publication means
for the user's state (`calls.presence`: "latest change wins").

SUBSCRIBE.  A watcher subscribes to `sip:<extension>@<domain>` with `Event:
presence` (answers in PIDF) or `Event: dialog` (answers in dialog-info).  It
must authenticate as an account somebody is logged in on: the watcher is that
user.  An unknown extension is 404.  A watcher the target blocked is refused
with 403: in RFC 6665 section 4.2.1.1 a notifier that can tell at once that a
subscriber is not authorised answers 403, and RFC 3856 section 6.6 leaves the
finer choices to authorisation policy (RFC 5025's "polite-block" accepts and
shows a made-up state instead).  We do not pretend: a fake "offline" would be
a lie told to a colleague, and a 403 costs no dialog, no NOTIFY and no state,
which matters for a request from someone we already know we refuse.  A block
made while a subscription runs ends it with `terminated;reason=rejected`
(section 4.1.3: do not try again), without a body.  The same authorisation
guards both packages: a busy lamp shows as much as presence does.

Authorisation is not decided once.  Every NOTIFY first asks again who the
watcher is (hot desking changes the user on a phone), whether the extension
still belongs to the user watched, and whether the watcher may still watch:
a phone nobody is logged in on any more ends with `probation` (try again later,
when someone may be), an extension that went to another user with
`deactivated` (subscribe again: the new owner's rules apply), a deleted user
with `noresource`, a block with `rejected`; when the directory cannot answer,
the NOTIFY carries no state at all.  `account_changed` and `watchers_changed`
make that check happen at once.

NOTIFY bodies are built when they are sent, from the model's view of the
moment: presence from `model.view(username)` (`pidf.document_for`: busy
while on the phone, the chosen state otherwise); dialog from
`dialogs_of(username)`, with a version per subscription that starts at 0 and
grows by one with every NOTIFY (RFC 4235 section 4.1.2).  A NOTIFY that would
repeat what the subscriber already has is not sent at all, except for the
first, the one after a refresh and the one after a NOTIFY that may have been
lost: those carry full state.

Partial dialog-info (RFC 4235 section 4.1: only the dialogs that changed, ended
ones as `terminated`) is implemented but off by default: the common phones'
busy lamp fields are tested against servers that always send full state, and a
user's calls are few, so full state costs next to nothing.

Nothing here reads a clock or touches a socket: every input takes `now`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from teleoffice.calls.presence import (
    Changes,
    PresenceError,
    PresenceView,
    UnknownETag,
    tidy_note,
)
from teleoffice.server.subscriptions import (
    DEACTIVATED,
    NORESOURCE,
    PROBATION,
    REJECTED,
    Notification,
    Notifier,
    Respond,
    Subscription,
    SubscriptionLimits,
    event_of,
)
from teleoffice.sip import dialog_info, pidf
from teleoffice.sip.builders import make_response
from teleoffice.sip.dialog_info import (
    DialogEntry,
    DialogInfo,
    DocumentState,
    build_dialog_info,
    dialog_changes,
)
from teleoffice.sip.message import Request, Response
from teleoffice.sip.transaction import Address, TransactionLayer, TxKey
from teleoffice.sip.uri import SipUri

log = logging.getLogger("teleoffice.presence")

PRESENCE: Final = "presence"
DIALOG: Final = "dialog"
PIDF_TYPE: Final = pidf.CONTENT_TYPE
DIALOG_INFO_TYPE: Final = dialog_info.CONTENT_TYPE
PACKAGES: Final = (PRESENCE, DIALOG)

# Longest Request-URI echoed as a document's entity.
_MAX_ENTITY: Final = 256
# The states of `pidf.document_for`, by name (the model's states are an enum
# with the same values).
_PIDF_STATES: Final[dict[str, pidf.PresenceState]] = {s: s for s in pidf.PRESENCE_STATES}


@dataclass(frozen=True, slots=True)
class Watcher:
    """Who an account is: the user logged in on it and their extension."""

    username: str
    extension: str


class PresenceModel(Protocol):
    """What the SIP side needs of the presence model: `calls.presence.PresenceBook`
    has exactly these.

    The users of the `Changes` returned are those whose view changed: their
    watchers get a NOTIFY, and the whole `Changes` goes to `on_change` (for the
    composition root to persist, switch DND and tell the portal).
    `UnknownETag` answers 412, any other `PresenceError` 400.
    """

    def view(self, username: str) -> PresenceView: ...

    def publish(  # noqa: PLR0917 - the signature of PresenceBook.publish
        self,
        username: str,
        etag: str | None,
        state: str | None,
        note: str | None,
        expires: float,
        now: float,
        *,
        on_the_phone: bool = False,
        device: str | None = None,
    ) -> tuple[str, Changes]: ...

    def refresh(
        self, username: str, etag: str, expires: float, now: float, *, device: str | None = None
    ) -> tuple[str, Changes]: ...

    def remove(self, username: str, etag: str, now: float) -> Changes: ...

    def next_deadline(self) -> float | None: ...

    def expire(self, now: float) -> Changes: ...


WhoIs = Callable[[str], Watcher | None]
UserOfExtension = Callable[[str], str | None]
MayWatch = Callable[[str, str], bool]  # (watched username, watcher username)
OnChange = Callable[[Changes], object]
DialogsOf = Callable[[str], Sequence[DialogEntry]]


def device_key(host: str, port: int) -> str:
    """How a publishing device is named: the address its requests come from.

    A phone PUBLISHes and REGISTERs from the same socket, so this matches the
    source of its registrar binding and tells which registered phone speaks for
    itself in its publications."""
    return f"{host}:{port}"


def anyone_may_watch(target: str, watcher: str) -> bool:
    del target, watcher
    return True


def _busy_lamp_limits() -> SubscriptionLimits:
    # A phone with a busy lamp field (or a softphone's buddy list) subscribes
    # once per key: expansion modules reach 100 keys and more.
    return SubscriptionLimits(max_per_account=200, max_total=20_000)


@dataclass(frozen=True, slots=True)
class PresenceLimits:
    # PUBLISH (RFC 3903 section 6): the same bounds as subscriptions, an hour
    # by default (the presence package's default, RFC 3856 section 6.4).
    publish_min_expires: int = 60
    publish_max_expires: int = 3600
    publish_default_expires: int = 3600
    presence: SubscriptionLimits = field(default_factory=_busy_lamp_limits)
    dialog: SubscriptionLimits = field(default_factory=_busy_lamp_limits)
    # Partial dialog-info notifications (see the module docstring).
    partial_dialogs: bool = False


@dataclass(frozen=True, slots=True)
class PresenceProviders:
    """What the composition root hands the SIP service to serve presence: the
    model, the calls of each user, who may watch whom, and optionally who owns
    an extension (the service's default asks the call engine's directory)."""

    model: PresenceModel
    dialogs_of: DialogsOf
    may_watch: MayWatch = anyone_may_watch
    user_of_extension: UserOfExtension | None = None
    # What a PUBLISH or a publication running out did to the model.
    on_change: OnChange | None = None
    limits: PresenceLimits | None = None
    # The username after every accepted PUBLISH, changed or not: a phone that
    # publishes speaks for itself, so how the user can be reached is re-counted.
    on_publication: Callable[[str], object] | None = None
    # The account after every successful REGISTER (bindings added, refreshed or
    # removed): a registered phone is a way to reach its user.
    on_registration: Callable[[str], object] | None = None


@dataclass(slots=True)
class Watch:
    """A presence or dialog subscription's own state."""

    extension: str  # the one subscribed to
    watcher: str  # the watcher's username when last checked
    entity: str  # sip:<extension>@<domain>, the document's entity
    # presence: the last body sent (a NOTIFY repeating it is not sent)
    last_body: bytes | None = None
    # dialog: the version of the next document, and the dialogs last shown
    version: int = 0
    shown: dict[str, DialogEntry] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Directory:
    """Who is who, for deciding who may watch whom."""

    who_is: WhoIs
    user_of_extension: UserOfExtension
    may_watch: MayWatch = anyone_may_watch


class _WatchNotifier(Notifier[Watch]):
    """What both packages share: who may watch whom, checked at every NOTIFY."""

    def __init__(
        self,
        *,
        package: str,
        content_type: str,
        transactions: TransactionLayer,
        respond: Respond,
        local: Callable[[Address], Address],
        limits: SubscriptionLimits,
        directory: Directory,
    ) -> None:
        super().__init__(
            package=package,
            content_type=content_type,
            transactions=transactions,
            respond=respond,
            local=local,
            limits=limits,
        )
        self.directory = directory

    def render(self, sub: Subscription[Watch], now: float) -> Notification | None:
        try:
            reason = self._denied(sub)
        except Exception:  # a directory error: unsure who may see what, so show nothing
            log.exception("could not check the %s subscription of %s", self.package, sub.account)
            return None
        if reason is not None:
            if sub.ending is None:
                log.info(
                    "%s subscription of %s to %s ends: %s",
                    self.package,
                    sub.state.watcher,
                    sub.resource,
                    reason,
                )
                sub.ending = reason
            return None  # a refused watcher learns nothing more
        return self.body(sub, now)

    @abstractmethod
    def body(self, sub: Subscription[Watch], now: float) -> Notification | None:
        """The package's body for an authorised subscription (None: nothing new)."""

    def _denied(self, sub: Subscription[Watch]) -> str | None:
        """Why `sub` may not go on (a Subscription-State reason), or None."""
        directory = self.directory
        owner = directory.user_of_extension(sub.state.extension)
        if owner is None:
            return NORESOURCE
        if owner != sub.resource:
            return DEACTIVATED  # the number changed hands: subscribe afresh
        watcher = directory.who_is(sub.account)
        if watcher is None:
            return PROBATION  # nobody on that phone now; maybe later
        sub.state.watcher = watcher.username
        return None if directory.may_watch(owner, watcher.username) else REJECTED


class PresenceNotifier(_WatchNotifier):
    def __init__(
        self,
        *,
        model: PresenceModel,
        transactions: TransactionLayer,
        respond: Respond,
        local: Callable[[Address], Address],
        limits: SubscriptionLimits,
        directory: Directory,
    ) -> None:
        super().__init__(
            package=PRESENCE,
            content_type=PIDF_TYPE,
            transactions=transactions,
            respond=respond,
            local=local,
            limits=limits,
            directory=directory,
        )
        self.model = model

    def body(self, sub: Subscription[Watch], now: float) -> Notification | None:
        del now
        username = sub.resource or ""
        try:
            view = self.model.view(username)
            state = _PIDF_STATES.get(str(view.state), "offline")
            document = pidf.document_for(
                sub.state.entity, state, view.note, on_the_phone=view.on_the_phone
            )
            body = pidf.build_pidf(document)
        except Exception:  # the model failing must not cost the NOTIFY: repeat the last one
            log.exception("could not build the presence of %s", username)
            last = sub.state.last_body
            offline = pidf.document_for(sub.state.entity, "offline", None)
            body = last if last is not None else pidf.build_pidf(offline)
        if body == sub.state.last_body and not sub.resync and sub.ending is None:
            return None
        sub.state.last_body = body
        return Notification(body, PIDF_TYPE)


class DialogNotifier(_WatchNotifier):
    def __init__(
        self,
        *,
        dialogs_of: DialogsOf,
        partial: bool,
        transactions: TransactionLayer,
        respond: Respond,
        local: Callable[[Address], Address],
        limits: SubscriptionLimits,
        directory: Directory,
    ) -> None:
        super().__init__(
            package=DIALOG,
            content_type=DIALOG_INFO_TYPE,
            transactions=transactions,
            respond=respond,
            local=local,
            limits=limits,
            directory=directory,
        )
        self.dialogs_of = dialogs_of
        self.partial = partial

    def body(self, sub: Subscription[Watch], now: float) -> Notification | None:
        del now
        watch = sub.state
        username = sub.resource or ""
        try:
            entries = list(self.dialogs_of(username))
        except Exception:  # show what was shown rather than fail
            log.exception("could not list the dialogs of %s", username)
            entries = list(watch.shown.values())
        current = {e.id: e for e in entries if e.state != "terminated"}
        full = sub.resync or sub.ending is not None or not self.partial
        kind: DocumentState
        if full:
            if current == watch.shown and not sub.resync and sub.ending is None:
                return None
            dialogs = tuple(current.values())
            kind = "full"
        else:
            # The dialogs that changed; one that is gone is reported once more,
            # as terminated (RFC 4235 section 4.1).
            dialogs = dialog_changes(list(watch.shown.values()), list(current.values()))
            if not dialogs:
                return None
            kind = "partial"
        info = DialogInfo(watch.entity, watch.version, kind, dialogs)
        body = build_dialog_info(info)
        watch.version += 1
        watch.shown = current
        return Notification(body, DIALOG_INFO_TYPE)


class PresenceAgent:
    """PUBLISH and the presence and dialog packages of one PBX."""

    def __init__(
        self,
        *,
        transactions: TransactionLayer,
        respond: Respond,
        local: Callable[[Address], Address],
        domain: str,
        model: PresenceModel,
        dialogs_of: DialogsOf,
        directory: Directory,
        on_change: OnChange | None = None,
        limits: PresenceLimits | None = None,
        on_publication: Callable[[str], object] | None = None,
    ) -> None:
        self.respond = respond
        self.domain = domain
        self.model = model
        self.on_change = on_change
        self.on_publication = on_publication
        self.directory = directory
        self.limits = limits or PresenceLimits()
        self.presence = PresenceNotifier(
            model=model,
            transactions=transactions,
            respond=respond,
            local=local,
            limits=self.limits.presence,
            directory=directory,
        )
        self.dialogs = DialogNotifier(
            dialogs_of=dialogs_of,
            partial=self.limits.partial_dialogs,
            transactions=transactions,
            respond=respond,
            local=local,
            limits=self.limits.dialog,
            directory=directory,
        )
        self.publications_accepted = 0

    @property
    def notifiers(self) -> tuple[PresenceNotifier, DialogNotifier]:
        return (self.presence, self.dialogs)

    def notifier_for(self, package: str) -> _WatchNotifier | None:
        package = package.lower()
        if package == PRESENCE:
            return self.presence
        if package == DIALOG:
            return self.dialogs
        return None

    def count(self) -> int:
        return self.presence.count() + self.dialogs.count()

    # ---- PUBLISH ------------------------------------------------------------------

    def check_publish(self, request: Request) -> Response | None:
        """What can be refused before knowing who publishes; None to authenticate."""
        event = event_of(request)
        if event is None or event.package.lower() != PRESENCE:
            return make_response(request, 489, headers=[("Allow-Events", PRESENCE)])
        expires = request.expires
        limits = self.limits
        if expires is not None and 0 < expires < limits.publish_min_expires:
            return make_response(
                request, 423, headers=[("Min-Expires", str(limits.publish_min_expires))]
            )
        if request.body:
            content_type = request.content_type
            if content_type is None or content_type.mime != PIDF_TYPE:
                return make_response(request, 415, headers=[("Accept", PIDF_TYPE)])
        etag = _if_match(request)
        if etag is None:
            if not request.body:
                return make_response(request, 400, "Missing Body In Initial Publication")
            if expires == 0:
                return make_response(request, 400, "Removal Without SIP-If-Match")
        return None

    def publish(
        self,
        key: TxKey,
        request: Request,
        account: str,
        now: float,
        source: Address | None = None,
    ) -> None:
        """A `check_publish`ed PUBLISH authenticated as `account`, from `source`."""
        device = None if source is None else device_key(source.host, source.port)
        watcher = self._who(account)
        if watcher is None:
            self.respond(key, make_response(request, 403, "Account Has No User"), now)
            return
        mine = {account, watcher.username, watcher.extension}
        if _user_of(request.uri) not in mine or _user_of(request.to.uri) not in mine:
            self.respond(key, make_response(request, 403, "Not Your Presence"), now)
            return
        etag = _if_match(request)
        expires = request.expires
        if expires is None:
            expires = self.limits.publish_default_expires
        granted = min(expires, self.limits.publish_max_expires)
        username = watcher.username
        try:
            if granted == 0:
                assert etag is not None  # check_publish refused a removal without one
                changed = self.model.remove(username, etag, now)
                new_etag = None
            elif request.body:
                document = pidf.parse_pidf(request.body)
                state, note = pidf.presence_of(document)
                person = document.person
                on_the_phone = person is not None and "on-the-phone" in person.activities
                new_etag, changed = self.model.publish(
                    username,
                    etag,
                    state,
                    tidy_note(note),
                    granted,
                    now,
                    on_the_phone=on_the_phone,
                    device=device,
                )
            else:
                assert etag is not None  # check_publish refused an initial one without a body
                new_etag, changed = self.model.refresh(username, etag, granted, now, device=device)
        except pidf.PidfError as exc:
            log.info("PUBLISH from %s with a bad PIDF body: %s", account, exc)
            self.respond(key, make_response(request, 400, _reason("Bad PIDF", exc)), now)
            return
        except UnknownETag:
            # RFC 3903 section 6 step 4: not a current entity-tag of this user.
            self.respond(key, make_response(request, 412), now)
            return
        except PresenceError as exc:
            self.respond(key, make_response(request, 400, _reason("Bad Publication", exc)), now)
            return
        headers = [("Expires", str(granted))]
        if new_etag is not None:
            headers.insert(0, ("SIP-ETag", new_etag))
        self.respond(key, make_response(request, 200, headers=headers), now)
        self.publications_accepted += 1
        self._apply(changed, now)
        if self.on_publication is not None:
            try:
                self.on_publication(username)
            except Exception:
                log.exception("publication hook failed")

    # ---- SUBSCRIBE ----------------------------------------------------------------

    def check(self, request: Request) -> Response | None:
        """A new SUBSCRIBE to one of our packages: what needs no identity."""
        event = event_of(request)
        notifier = self.notifier_for(event.package) if event is not None else None
        if notifier is None:
            return self.presence.bad_event(request)
        return notifier.check(request)

    def subscribe(
        self, key: TxKey, request: Request, source: Address, account: str, now: float
    ) -> None:
        """A `check`ed SUBSCRIBE authenticated as `account`."""
        event = event_of(request)
        notifier = self.notifier_for(event.package) if event is not None else None
        assert notifier is not None  # `check` answered 489 otherwise
        watcher = self._who(account)
        if watcher is None:
            self.respond(key, make_response(request, 403, "Account Has No User"), now)
            return
        extension = _user_of(request.uri)
        target = self._owner(extension) if extension is not None else None
        if extension is None or target is None:
            self.respond(key, make_response(request, 404), now)
            return
        if not self._allowed(target, watcher.username):
            log.info("%s may not watch %s: 403", watcher.username, target)
            self.respond(key, make_response(request, 403), now)
            return
        entity = _entity(request.uri, extension, self.domain)
        notifier.accept(
            key,
            request,
            source,
            account,
            now,
            state=Watch(extension, watcher.username, entity),
            resource=target,
        )

    def in_dialog(self, key: TxKey, request: Request, source: Address, now: float) -> bool:
        return any(n.in_dialog(key, request, source, now) for n in self.notifiers)

    # ---- changes from outside -------------------------------------------------------

    def changed(self, username: str, now: float) -> int:
        """The user's presence view changed: NOTIFY their presence watchers."""
        return self.presence.notify_resource(username, now)

    def dialogs_changed(self, username: str, now: float) -> int:
        """The user's calls changed: NOTIFY their dialog watchers."""
        return self.dialogs.notify_resource(username, now)

    def watchers_changed(self, username: str, now: float) -> int:
        """Who may watch `username` changed (a block): re-check every watcher;
        the ones no longer allowed get their final NOTIFY."""
        return sum(n.notify_resource(username, now) for n in self.notifiers)

    def account_changed(self, account: str, now: float) -> int:
        """The user on a phone changed (hot desking): re-check its subscriptions."""
        told = 0
        for notifier in self.notifiers:
            for sub in notifier.subscriptions_of(account):
                if sub.ending is None:
                    notifier.notify(sub, now)
                    told += 1
        return told

    # ---- timers, responses -------------------------------------------------------------

    def owns(self, key: TxKey) -> bool:
        return any(n.owns(key) for n in self.notifiers)

    def response(self, key: TxKey, response: Response, now: float) -> None:
        for notifier in self.notifiers:
            if notifier.owns(key):
                notifier.response(key, response, now)
                return

    def timeout(self, key: TxKey, now: float) -> None:
        for notifier in self.notifiers:
            if notifier.owns(key):
                notifier.timeout(key, now)
                return

    def terminated(self, key: TxKey) -> None:
        for notifier in self.notifiers:
            notifier.terminated(key)

    def next_timer(self) -> float | None:
        candidates = [n.next_timer() for n in self.notifiers]
        try:
            candidates.append(self.model.next_deadline())
        except Exception:
            log.exception("could not ask the presence model for its next deadline")
        deadlines = [t for t in candidates if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timers(self, now: float) -> None:
        for notifier in self.notifiers:
            notifier.handle_timers(now)
        try:
            deadline = self.model.next_deadline()
            if deadline is None or deadline > now:
                return
            changed = self.model.expire(now)
        except Exception:
            log.exception("could not expire publications")
            return
        self._apply(changed, now)

    def _apply(self, changes: Changes, now: float) -> None:
        """Carry out what the model says changed: the composition root's part
        first (it may persist and tell the portal), then our NOTIFYs."""
        if changes and self.on_change is not None:
            try:
                self.on_change(changes)
            except Exception:
                log.exception("presence change hook failed")
        for username in changes.users:
            self.changed(username, now)

    def shutdown(self, now: float) -> None:
        for notifier in self.notifiers:
            notifier.shutdown(now)

    # ---- directory -------------------------------------------------------------------------

    def _who(self, account: str) -> Watcher | None:
        try:
            return self.directory.who_is(account)
        except Exception:
            log.exception("could not find the user on account %s", account)
            return None

    def _owner(self, extension: str) -> str | None:
        try:
            return self.directory.user_of_extension(extension)
        except Exception:
            log.exception("could not look extension %r up", extension[:32])
            return None

    def _allowed(self, target: str, watcher: str) -> bool:
        try:
            return self.directory.may_watch(target, watcher)
        except Exception:  # refuse rather than show presence to someone blocked
            log.exception("could not check whether %s may watch %s", watcher, target)
            return False


def _if_match(request: Request) -> str | None:
    value = request.headers.get("SIP-If-Match")
    if value is None:
        return None
    return value.strip() or None


def _user_of(uri: object) -> str | None:
    return uri.user if isinstance(uri, SipUri) and uri.user else None


def _entity(uri: object, extension: str, domain: str) -> str:
    """The documents' entity: the URI as subscribed (Snom compares them), without
    parameters; ours when that one is unfit to echo."""
    if isinstance(uri, SipUri):
        entity = str(SipUri(host=uri.host, user=extension, port=uri.port, scheme=uri.scheme))
        if len(entity) <= _MAX_ENTITY and entity.isprintable() and " " not in entity:
            return entity
    return f"sip:{extension}@{domain}"


def _reason(prefix: str, exc: Exception) -> str:
    # A reason phrase says what was wrong without echoing control characters
    # or a long stretch of the attacker's input back onto the wire.
    text = "".join(c if c.isprintable() else "?" for c in str(exc))
    return f"{prefix} ({text})"[:120]


__all__ = [
    "DIALOG",
    "DIALOG_INFO_TYPE",
    "PACKAGES",
    "PIDF_TYPE",
    "PRESENCE",
    "DialogNotifier",
    "Directory",
    "OnChange",
    "PresenceAgent",
    "PresenceLimits",
    "PresenceModel",
    "PresenceNotifier",
    "PresenceProviders",
    "Watch",
    "Watcher",
    "anyone_may_watch",
]
