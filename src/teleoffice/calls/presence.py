"""Presence: one state per user, shared by every client they use (rule T9).

Pure: a `PresenceBook` holds everything in memory, takes the time as an
argument and returns the `Changes` each input made; the composition root
persists `Changes.chosen`, couples `Changes.dnd` to call routing and tells
watchers (SIP NOTIFYs, portal events) about `Changes.users`.  Nothing here
reads a clock, a socket or the database.

Theory of operation
-------------------
A user's presence is put together from four inputs:

1. The **chosen state**: available, away, busy, dnd or offline, with an
   optional note (a status message in any language).  It is *the* state of
   T9, the one every client shows and changes.  It is persisted.
2. **Publications** (RFC 3903): soft state that SIP devices PUBLISH under an
   entity-tag and must refresh before it expires; one user may have several
   (desk phone, softphone, mobile).
3. **Calls**: how many calls the user is on (desk phone or telecommuter line),
   from the call engine.
4. **Online sources**: how many other clients are connected (portal
   connections, registered phones...), as the composition root counts them.

*Latest change wins.*  Whatever the user last said in any client becomes the
chosen state: a portal `PUT`, or a PUBLISH whose content is a new *user
statement* from that device.  A device speaks for the user only when it says
something it had not said before; what merely describes the device is not a
choice:

- a new publication saying plain "available" with no note is a device coming
  up (phones publish that when they boot), not a user clearing their "away";
- "offline" (PIDF basic `closed`) means this device cannot be reached, not
  that the user wants to look offline (only an explicit choice does that);
- "on-the-phone" describes a call in progress, which ends by itself;
- re-sending the same content (a refresh with a body) repeats, not changes.

Each publication keeps the last user statement it made (starting at
"available, no note"); content that differs from it is adopted as the chosen
state at that moment.  So a change made on one phone reaches the portal and
the other phones, and a change made in the portal is not undone when a phone
refreshes what it said earlier.  A device's last word stands when it goes
away: publications expiring or being removed never change the chosen state.
The price: a phone that does not watch its own presence cannot re-assert the
very statement it made last (it looks like a refresh); it takes any other
state, or the portal, to change it again.

*The view* (what everybody sees) is derived from the chosen state:

- on a call (the engine's count, or a current publication saying
  on-the-phone): `busy` with `on_the_phone` set, except that `dnd` stays
  `dnd` (it is the stronger "do not call me"; `on_the_phone` is set all the
  same).  The chosen state is not touched, and shows again after the call;
- "available" needs somebody to be reachable: with no online source, no
  current publication other than "offline" and no call, it shows as
  `offline`.  The other chosen states are messages to colleagues ("away:
  back on Monday") and show whether or not a client is connected;
- a user who never chose anything is "available" underneath, so they show as
  available while reachable and offline otherwise;
- the note is always the chosen note.

*Do not disturb* is routing as well as presence: `Changes.dnd` names the users
whose chosen state entered (True) or left (False) `dnd`, and the composition
root turns the users' routing DND flag on or off accordingly.
"""

from __future__ import annotations

import enum
import heapq
import math
import secrets
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

__all__ = [
    "MAX_NOTE_LENGTH",
    "MAX_PUBLICATIONS_PER_USER",
    "Changes",
    "Chosen",
    "PresenceBook",
    "PresenceError",
    "PresenceState",
    "PresenceView",
    "Publication",
    "UnknownETag",
    "parse_state",
    "tidy_note",
    "validate_note",
]

MAX_NOTE_LENGTH: Final = 200  # characters (code points), in any script
# A device that loses its entity-tag (a reboot loop, a buggy client) starts a
# new publication each time; the oldest is dropped beyond this many.
MAX_PUBLICATIONS_PER_USER: Final = 16


class PresenceState(enum.StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    BUSY = "busy"
    DND = "dnd"
    OFFLINE = "offline"


class PresenceError(ValueError):
    """Input the model refuses (an unknown state, a hostile note...); nothing changed."""


class UnknownETag(PresenceError):
    """A PUBLISH names an entity-tag that is not (or no longer) current for the
    user: RFC 3903 section 6 answers it with 412 Conditional Request Failed."""


def parse_state(value: str) -> PresenceState:
    """`value` as a state; `PresenceError` for anything else (exact spelling)."""
    try:
        return PresenceState(value)
    except ValueError:
        raise PresenceError(
            f"presence state {value!r} must be one of " + ", ".join(s.value for s in PresenceState)
        ) from None


# ---- notes ---------------------------------------------------------------------------

# Embeddings, overrides and isolates reorder the text around them: in a
# directory listing a note could make other people's names read backwards
# ("trojan source").  The plain marks (LRM, RLM, ALM) are harmless and needed
# in mixed right-to-left text, so they stay allowed.
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (C0, DEL, C1), lone surrogates (a JSON "\ud800" decodes to
# one, and it cannot be encoded as UTF-8 later) and line/paragraph separators:
# a note is one line of text that ends up in XML (PIDF) and JSON.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _refused(ch: str) -> bool:
    code = ord(ch)
    # Noncharacters (U+FDD0..U+FDEF and the last two of every plane); U+FFFE
    # and U+FFFF are not even allowed in XML.
    noncharacter = 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE
    return noncharacter or ch in _BIDI_CONTROLS or unicodedata.category(ch) in _REFUSED_CATEGORIES


def validate_note(note: str | None) -> str | None:
    """A note as people typed it, checked strictly (the portal and the store).

    Surrounding whitespace goes; an empty note is None. Any script, emoji
    sequences (joiners, variation selectors, tags) included; at most
    `MAX_NOTE_LENGTH` characters; `PresenceError` for control characters,
    line breaks, text-reordering controls, surrogates and noncharacters.
    """
    if note is None:
        return None
    if not isinstance(note, str):
        raise PresenceError("a presence note must be text")
    # Checked before stripping: strip() would quietly drop a trailing newline
    # or unit separator, and a hostile note is refused, not repaired.
    for ch in note:
        if _refused(ch):
            raise PresenceError(
                f"a presence note must not contain control characters (U+{ord(ch):04X})"
            )
    text = note.strip()
    if len(text) > MAX_NOTE_LENGTH:
        raise PresenceError(f"a presence note is at most {MAX_NOTE_LENGTH} characters")
    return text or None


def tidy_note(text: str | None) -> str | None:
    """A note that came from a device (a PIDF `<note>`), made acceptable.

    Devices are not asked twice: whitespace runs (the line breaks of an
    indented XML element) become one space, refused characters are dropped,
    and the note is cut to `MAX_NOTE_LENGTH`. The result passes
    `validate_note` unchanged.
    """
    if text is None:
        return None
    words: list[str] = []
    word: list[str] = []
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in ("Zl", "Zp"):
            if word:
                words.append("".join(word))
                word = []
        elif not _refused(ch):
            word.append(ch)
    if word:
        words.append("".join(word))
    tidy = " ".join(words)[:MAX_NOTE_LENGTH].strip()
    return tidy or None


# ---- records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chosen:
    """What a user chose, and when (unix time)."""

    state: PresenceState
    note: str | None = None
    since: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", parse_state(self.state))
        object.__setattr__(self, "note", validate_note(self.note))


@dataclass(frozen=True, slots=True)
class PresenceView:
    """What every client shows for a user.

    `chosen` is the state underneath (what the user chose, "available" when
    they never chose); `since` is when `state` and `on_the_phone` last changed.
    """

    state: PresenceState
    note: str | None
    on_the_phone: bool
    chosen: PresenceState
    since: float

    def same_as(self, other: PresenceView) -> bool:
        """Equal apart from `since`: nothing a watcher would notice."""
        return replace(self, since=other.since) == other


@dataclass(frozen=True, slots=True)
class Publication:
    """One current publication of a device, as the book sees it."""

    etag: str
    state: PresenceState
    note: str | None
    on_the_phone: bool
    expires_at: float
    changed_at: float  # when its content last changed (a refresh does not)
    # Where the device publishes from ("host:port"), so that the composition root
    # can tell which registered phone speaks for itself; None when unknown.
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """What one input changed.

    `users`: whose view changed (tell their watchers). `chosen`: new chosen
    states to persist. `dnd`: users whose chosen state entered (True) or left
    (False) do-not-disturb, for call routing. Iterating a `Changes` gives
    `users`, so it can be used where a set of usernames is expected.
    """

    users: frozenset[str] = frozenset()
    chosen: Mapping[str, Chosen] = field(default_factory=dict)
    dnd: Mapping[str, bool] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.users or self.chosen or self.dnd)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.users))

    def __contains__(self, username: object) -> bool:
        return username in self.users


NO_CHANGES: Final = Changes()

# What a user says through a device: a state and a note.
_Statement = tuple[PresenceState, str | None]
# A device that has not said anything yet is taken to say this.
_DEVICE_UP: Final[_Statement] = (PresenceState.AVAILABLE, None)


@dataclass(slots=True)
class _Publication:
    etag: str
    state: PresenceState
    note: str | None
    on_the_phone: bool
    expires_at: float
    changed_at: float
    refreshed_at: float
    said: _Statement = _DEVICE_UP  # the last user statement it made
    device: str | None = None

    def record(self) -> Publication:
        return Publication(
            self.etag,
            self.state,
            self.note,
            self.on_the_phone,
            self.expires_at,
            self.changed_at,
            self.device,
        )

    def statement(self) -> _Statement | None:
        """What the content says about the user, if it is a user statement."""
        if self.state is PresenceState.OFFLINE or self.on_the_phone:
            return None
        return (self.state, self.note)


@dataclass(slots=True)
class _User:
    shown: PresenceView
    chosen: Chosen | None = None
    publications: dict[str, _Publication] = field(default_factory=dict)
    calls: int = 0
    sources: int = 0


@dataclass(slots=True)
class _Batch:
    """The users one input touched, with their view before it."""

    before: dict[str, PresenceView] = field(default_factory=dict)
    chosen: dict[str, Chosen] = field(default_factory=dict)
    dnd: dict[str, bool] = field(default_factory=dict)


def _new_etag() -> str:
    # Unguessable: an entity-tag is only honoured for the user it was issued
    # to, but nothing is lost by making it impossible to guess as well.
    return secrets.token_urlsafe(12)


def _check_count(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PresenceError(f"{what} must be a whole number of at least 0, not {value!r}")
    return value


class PresenceBook:
    """Every user's presence. `chosen` are the stored choices, `now` the time
    the book starts at (the `since` of views nothing has changed yet)."""

    def __init__(
        self,
        chosen: Mapping[str, Chosen] | None = None,
        *,
        now: float,
        new_etag: Callable[[], str] = _new_etag,
        max_publications: int = MAX_PUBLICATIONS_PER_USER,
    ) -> None:
        if max_publications < 1:
            raise ValueError("max_publications must be at least 1")
        self._start = now
        self._new_etag = new_etag
        self._max_publications = max_publications
        self._users: dict[str, _User] = {}
        self._owner: dict[str, str] = {}  # etag -> username
        # (expires_at, etag), with stale entries left in until they surface.
        self._deadlines: list[tuple[float, str]] = []
        for username, choice in (chosen or {}).items():
            if not isinstance(choice, Chosen):
                raise PresenceError(f"the stored presence of {username!r} is not a choice")
            user = _User(shown=self._default(), chosen=choice)
            state, note, on_the_phone = self._compute(user)
            since = choice.since if state is choice.state else now
            user.shown = PresenceView(state, note, on_the_phone, choice.state, since)
            self._users[username] = user

    # ---- questions -------------------------------------------------------------------

    def view(self, username: str) -> PresenceView:
        user = self._users.get(username)
        return self._default() if user is None else user.shown

    def chosen(self, username: str) -> Chosen | None:
        """What the user chose; None when they never chose anything."""
        user = self._users.get(username)
        return None if user is None else user.chosen

    def publications(self, username: str) -> tuple[Publication, ...]:
        """The user's current publications, oldest first."""
        user = self._users.get(username)
        if user is None:
            return ()
        return tuple(p.record() for p in user.publications.values())

    def next_deadline(self) -> float | None:
        """When the next publication expires: call `expire` then."""
        while self._deadlines:
            expires_at, etag = self._deadlines[0]
            if self._current_deadline(etag) == expires_at:
                return expires_at
            heapq.heappop(self._deadlines)
        return None

    # ---- inputs ----------------------------------------------------------------------

    def set_chosen(
        self, username: str, state: PresenceState | str, note: str | None, now: float
    ) -> Changes:
        """The user chose a state in a client (the portal, an app). Choosing
        what is already chosen changes nothing (its `since` included)."""
        choice = Chosen(parse_state(state), validate_note(note), now)
        batch = self._begin(now)
        self._choose(batch, username, choice)
        return self._finish(batch, now)

    def publish(  # noqa: PLR0917 - the order agreed for presence (issue 6)
        self,
        username: str,
        etag: str | None,
        state: PresenceState | str | None,
        note: str | None,
        expires: float,
        now: float,
        *,
        on_the_phone: bool = False,
        device: str | None = None,
    ) -> tuple[str, Changes]:
        """A PUBLISH (RFC 3903): initial with `etag` None, else a modification
        (`state` given) or a refresh (`state` None: no body, content kept).
        `device` says where it came from (kept as the latest one seen).

        Returns the new entity-tag (a new one for every successful PUBLISH,
        RFC 3903 section 6) and the changes. `UnknownETag` when `etag` is not
        a current publication of this user (answer 412); `PresenceError` for
        a missing state on an initial publication, a refused note (pass device
        notes through `tidy_note` first) or `expires` not above 0 (a removal
        is `remove`). The SIP side applies its Min-Expires before calling.
        """
        parsed = None if state is None else parse_state(state)
        clean_note = validate_note(note)
        if not (math.isfinite(expires) and expires > 0):
            raise PresenceError(f"a publication must last more than 0 seconds, not {expires!r}")
        if etag is None and parsed is None:
            raise PresenceError("an initial publication needs a state")
        if parsed is None and (note is not None or on_the_phone):
            raise PresenceError("a refresh carries no content")
        if etag is not None:
            # Before anything changes: a refused PUBLISH must not swallow the
            # changes of the expiries that `_begin` would apply.
            self._check_etag(username, etag, now)
        batch = self._begin(now)
        user = self._user(username)
        if etag is None:
            self._touch(batch, username)
            self._make_room(user)
            assert parsed is not None
            publication = _Publication(
                etag="",
                state=parsed,
                note=clean_note,
                on_the_phone=on_the_phone,
                expires_at=now + expires,
                changed_at=now,
                refreshed_at=now,
            )
        else:
            publication = self._take(username, etag)
            self._touch(batch, username)
            publication.expires_at = now + expires
            publication.refreshed_at = now
            if parsed is not None and (parsed, clean_note, on_the_phone) != (
                publication.state,
                publication.note,
                publication.on_the_phone,
            ):
                publication.state, publication.note = parsed, clean_note
                publication.on_the_phone = on_the_phone
                publication.changed_at = now
        if device is not None:
            publication.device = device
        publication.etag = self._fresh_etag()
        user.publications[publication.etag] = publication
        self._owner[publication.etag] = username
        heapq.heappush(self._deadlines, (publication.expires_at, publication.etag))
        said = publication.statement()
        if said is not None and said != publication.said:
            publication.said = said
            self._choose(batch, username, Chosen(said[0], said[1], now))
        return publication.etag, self._finish(batch, now)

    def refresh(
        self, username: str, etag: str, expires: float, now: float, *, device: str | None = None
    ) -> tuple[str, Changes]:
        """A PUBLISH without a body: the publication lasts longer, unchanged."""
        return self.publish(username, etag, None, None, expires, now, device=device)

    def remove(self, username: str, etag: str, now: float) -> Changes:
        """A PUBLISH with Expires 0: the device withdraws what it published.
        `UnknownETag` when `etag` is not a current publication of this user."""
        self._check_etag(username, etag, now)
        batch = self._begin(now)
        self._take(username, etag)
        self._touch(batch, username)
        return self._finish(batch, now)

    def expire(self, now: float) -> Changes:
        """Drop the publications whose time is up (`next_deadline`)."""
        return self._finish(self._begin(now), now)

    def set_calls(self, username: str, calls: int, now: float) -> Changes:
        """How many calls the user is on now (desk phone or telecommuter line)."""
        _check_count("a number of calls", calls)
        batch = self._begin(now)
        user = self._user(username)
        if user.calls != calls:
            self._touch(batch, username)
            user.calls = calls
        return self._finish(batch, now)

    def set_online(self, username: str, sources: int, now: float) -> Changes:
        """How many clients of the user are connected that are not counted by
        publications: portal connections, registered phones that publish
        nothing. (A registered phone that does publish speaks for itself: if
        it is counted here as well, its "offline" cannot show.)"""
        _check_count("a number of connected clients", sources)
        batch = self._begin(now)
        user = self._user(username)
        if user.sources != sources:
            self._touch(batch, username)
            user.sources = sources
        return self._finish(batch, now)

    def forget(self, username: str) -> None:
        """The user was deleted: everything about them goes (no change to tell)."""
        user = self._users.pop(username, None)
        if user is not None:
            for etag in user.publications:
                self._owner.pop(etag, None)

    # ---- inside ----------------------------------------------------------------------

    def _default(self) -> PresenceView:
        return PresenceView(
            PresenceState.OFFLINE, None, False, PresenceState.AVAILABLE, self._start
        )

    def _user(self, username: str) -> _User:
        user = self._users.get(username)
        if user is None:
            user = self._users[username] = _User(shown=self._default())
        return user

    def _begin(self, now: float) -> _Batch:
        """A new batch, with the publications due by `now` already dropped."""
        batch = _Batch()
        while self._deadlines and self._deadlines[0][0] <= now:
            expires_at, etag = heapq.heappop(self._deadlines)
            if self._current_deadline(etag) != expires_at:
                continue  # refreshed, replaced or removed since
            username = self._owner.pop(etag)
            self._touch(batch, username)
            del self._users[username].publications[etag]
        return batch

    def _touch(self, batch: _Batch, username: str) -> None:
        if username not in batch.before:
            batch.before[username] = self.view(username)

    def _check_etag(self, username: str, etag: str, now: float) -> None:
        deadline = self._current_deadline(etag)
        # Somebody else's entity-tag is as unknown as one never issued, and one
        # whose time is up is gone even if `expire` has not run yet.
        if self._owner.get(etag) != username or deadline is None or deadline <= now:
            raise UnknownETag(f"no current publication {etag!r} of {username!r}")

    def _take(self, username: str, etag: str) -> _Publication:
        """Remove and return the user's current publication `etag` (checked)."""
        del self._owner[etag]
        return self._users[username].publications.pop(etag)

    def _make_room(self, user: _User) -> None:
        while len(user.publications) >= self._max_publications:
            stalest = min(user.publications.values(), key=lambda p: p.refreshed_at)
            del user.publications[stalest.etag]
            self._owner.pop(stalest.etag, None)

    def _fresh_etag(self) -> str:
        for _ in range(8):
            etag = self._new_etag()
            if etag and etag not in self._owner:
                return etag
        raise RuntimeError("the entity-tag source keeps repeating itself")

    def _current_deadline(self, etag: str) -> float | None:
        username = self._owner.get(etag)
        if username is None:
            return None
        return self._users[username].publications[etag].expires_at

    def _choose(self, batch: _Batch, username: str, choice: Chosen) -> None:
        user = self._user(username)
        old = user.chosen
        if old is not None and (old.state, old.note) == (choice.state, choice.note):
            return
        self._touch(batch, username)
        user.chosen = choice
        batch.chosen[username] = choice
        was_dnd = old is not None and old.state is PresenceState.DND
        is_dnd = choice.state is PresenceState.DND
        if was_dnd != is_dnd:
            batch.dnd[username] = is_dnd

    @staticmethod
    def _compute(user: _User) -> tuple[PresenceState, str | None, bool]:
        chosen = PresenceState.AVAILABLE if user.chosen is None else user.chosen.state
        note = None if user.chosen is None else user.chosen.note
        publications = user.publications.values()
        on_the_phone = user.calls > 0 or any(p.on_the_phone for p in publications)
        if on_the_phone:
            state = PresenceState.DND if chosen is PresenceState.DND else PresenceState.BUSY
            return state, note, True
        reachable = user.sources > 0 or any(
            p.state is not PresenceState.OFFLINE for p in publications
        )
        if chosen is PresenceState.AVAILABLE and not reachable:
            return PresenceState.OFFLINE, note, False
        return chosen, note, False

    def _finish(self, batch: _Batch, now: float) -> Changes:
        changed: set[str] = set()
        for username, before in batch.before.items():
            user = self._users[username]
            state, note, on_the_phone = self._compute(user)
            chosen = PresenceState.AVAILABLE if user.chosen is None else user.chosen.state
            moved = (state, on_the_phone) != (before.state, before.on_the_phone)
            view = PresenceView(state, note, on_the_phone, chosen, now if moved else before.since)
            user.shown = view
            if not view.same_as(before):
                changed.add(username)
        self._compact()
        if not (changed or batch.chosen or batch.dnd):
            return NO_CHANGES
        return Changes(frozenset(changed), dict(batch.chosen), dict(batch.dnd))

    def _compact(self) -> None:
        # Every refresh leaves its old deadline behind; rebuild the heap before
        # the stale entries outnumber the live ones.
        if len(self._deadlines) > 2 * len(self._owner) + 64:
            self._deadlines = [
                (p.expires_at, p.etag)
                for user in self._users.values()
                for p in user.publications.values()
            ]
            heapq.heapify(self._deadlines)
