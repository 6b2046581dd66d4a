"""Presence in the running server: one `PresenceBook`, everything it touches.

Every input (a portal choice, a PUBLISH, calls starting and ending, portal
connections coming and going, time passing) goes into the book on the event
loop's thread; what changed is then carried out in one place, `_apply`:

- chosen states are saved (a worker thread; a restart keeps them);
- a choice that entered or left "dnd" switches the user's routing DND flag, so
  the very next call goes to voicemail, else busy (T9), and the directory
  snapshot is reloaded before the caller is answered;
- portal connections get `presence.changed` (the whole directory watches, but
  not watchers the user blocks), SIP watchers get NOTIFYs (`notify`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from teleoffice.calls.presence import (
    Changes,
    Chosen,
    PresenceBook,
    PresenceState,
    PresenceView,
)
from teleoffice.portal.presence import DirectoryEntry
from teleoffice.server.directory import Directory
from teleoffice.store.presence import PresenceRepo
from teleoffice.store.repos import UserRepo

log = logging.getLogger("teleoffice.presence")

Publish = Callable[[Mapping[str, Any], Iterable[str]], object]


class PresenceService:
    def __init__(
        self,
        *,
        repo: PresenceRepo,
        users: UserRepo,
        directory: Directory,
        publish: Publish,
        clock: Callable[[], float],
    ) -> None:
        self.repo = repo
        self.users = users
        self.directory = directory
        self.publish = publish
        self.clock = clock
        # SIP watchers of a user (set by the composition root once SIP exists).
        self.notify: Callable[[str], None] = lambda username: None
        self.book = PresenceBook({}, now=clock())
        self._blocks: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Chosen states and blocks from the store (blocking: at start-up)."""
        stored = {
            name: Chosen(record.state, record.note, record.updated_at.timestamp())
            for name, record in self.repo.load_all().items()
        }
        self.book = PresenceBook(stored, now=self.clock())
        self._blocks = self.repo.all_blocks()

    # ---- questions (event loop, memory only) ------------------------------------------

    def view(self, username: str) -> PresenceView:
        return self.book.view(username)

    def is_blocked(self, username: str, watcher: str) -> bool:
        return watcher in self._blocks.get(username, set())

    async def everyone(self) -> Sequence[DirectoryEntry]:
        out = []
        for name in self.directory.usernames():
            user = self.directory.user(name)
            if user is not None:
                out.append(
                    DirectoryEntry(name, user.display_name, user.extension, self.book.view(name))
                )
        return sorted(out, key=lambda entry: entry.extension)

    # ---- inputs ------------------------------------------------------------------------

    async def set_chosen(
        self, username: str, state: PresenceState, note: str | None
    ) -> PresenceView:
        async with self._lock:
            changes = self.book.set_chosen(username, state, note, self.clock())
            await self._apply(changes)
        return self.book.view(username)

    def publication(self, changes: Changes) -> None:
        """What a PUBLISH did to the book (the SIP side applied it there)."""
        self._spawn(self._apply(changes))

    def calls_changed(self, username: str, calls: int) -> None:
        self._spawn(self._apply(self.book.set_calls(username, calls, self.clock())))

    def online_changed(self, username: str, sources: int) -> None:
        self._spawn(self._apply(self.book.set_online(username, sources, self.clock())))

    def tick(self) -> None:
        """Expire publications whose time is up (called every few seconds)."""
        deadline = self.book.next_deadline()
        now = self.clock()
        if deadline is not None and deadline <= now:
            self._spawn(self._apply(self.book.expire(now)))

    async def routing_dnd_changed(self, username: str, on: bool) -> None:
        """DND switched in the settings or the CLI: the chosen state follows."""
        chosen = self.book.chosen(username)
        if on and (chosen is None or chosen.state is not PresenceState.DND):
            await self.set_chosen(username, PresenceState.DND, chosen.note if chosen else None)
        elif not on and chosen is not None and chosen.state is PresenceState.DND:
            await self.set_chosen(username, PresenceState.AVAILABLE, chosen.note)

    # ---- blocking -----------------------------------------------------------------------

    async def blocked(self, username: str) -> set[str]:
        return set(self._blocks.get(username, set()))

    async def blockers(self, watcher: str) -> set[str]:
        return {user for user, watchers in self._blocks.items() if watcher in watchers}

    async def block(self, username: str, watcher: str) -> bool:
        at = datetime.fromtimestamp(self.clock(), UTC)
        done = await asyncio.to_thread(self.repo.block, username, watcher, at)
        self._blocks.setdefault(username, set()).add(watcher)
        self.notify(username)  # a blocked SIP watcher's subscription ends
        return bool(done)

    async def unblock(self, username: str, watcher: str) -> bool:
        done = await asyncio.to_thread(self.repo.unblock, username, watcher)
        self._blocks.get(username, set()).discard(watcher)
        return bool(done)

    # ---- carrying out ----------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        task.add_done_callback(_log_failure)

    async def _apply(self, changes: Changes) -> None:
        if changes.chosen:
            saves = [
                (name, choice.state, choice.note, datetime.fromtimestamp(choice.since, UTC))
                for name, choice in changes.chosen.items()
            ]
            try:
                await asyncio.to_thread(self._save, saves)
            except Exception:
                log.exception("could not save presence of %s", ", ".join(changes.chosen))
        if changes.dnd:
            try:
                await asyncio.to_thread(self._routing_dnd, dict(changes.dnd))
            except Exception:
                log.exception("could not switch do not disturb for %s", ", ".join(changes.dnd))
        everybody = self.directory.usernames()
        for name in changes:
            view = self.book.view(name)
            event = {"type": "presence.changed", "presence": presence_json(name, view)}
            blocked = self._blocks.get(name, set())
            self.publish(event, [user for user in everybody if user not in blocked])
            self.notify(name)

    def _save(self, saves: list[tuple[str, PresenceState, str | None, datetime]]) -> None:
        for name, state, note, at in saves:
            self.repo.save(name, state, note, at)

    def _routing_dnd(self, dnd: dict[str, bool]) -> None:
        for name, on in dnd.items():
            user = self.users.find(name)
            if user is not None and user.dnd != on:
                self.users.update(name, dnd=on)
        self.directory.reload()


def presence_json(username: str, view: PresenceView) -> dict[str, Any]:
    return {
        "username": username,
        "state": view.state.value,
        "note": view.note,
        "on_the_phone": view.on_the_phone,
        "since": datetime.fromtimestamp(view.since, UTC).isoformat() if view.since else None,
    }


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("presence update failed", exc_info=task.exception())
