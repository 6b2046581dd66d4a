"""Voicemail in the running server: menus for calls, message waiting, events.

The B2BUA hands a call answered by teleoffice to the runner as a
`LocalSession`; `VoicemailCalls.start` turns it into a `VoicemailCall` (the
runner's `LocalRun`), which builds the deposit or retrieval menu of
`voicemail_session` once it has read the mailbox (in a worker thread).

Mailbox changes, from a menu or from the portal, all end in `changed`: the
message counts are read again (in a thread), the message-waiting lamps of the
user's phones are updated (RFC 3842 NOTIFYs) and the portal is told
(`voicemail.new` for a new message, `voicemail.changed` with the counts).  The
SIP side asks for counts on the event loop, so it reads the cache kept here,
never the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from teleoffice.media.prompts import PromptLibrary
from teleoffice.media.session import MediaSession
from teleoffice.media.tones import ToneSet
from teleoffice.server.b2bua import LocalSession
from teleoffice.server.directory import Directory
from teleoffice.server.voicemail_session import (
    Caller,
    MailboxChange,
    VoicemailSession,
    VoicemailSettings,
    deposit_session,
    retrieval_session,
)
from teleoffice.store.voicemail import MessageRecord, VoicemailStore

log = logging.getLogger("teleoffice.voicemail")

Publish = Callable[[Mapping[str, Any], Iterable[str]], object]


@dataclass
class VoicemailCalls:
    store: VoicemailStore
    prompts: PromptLibrary | None
    directory: Directory
    settings: VoicemailSettings
    tones: ToneSet
    publish: Publish
    # Tells the SIP side a mailbox changed (message-waiting NOTIFYs); set by
    # the composition root once the SIP service exists.
    notify: Callable[[str], None] = lambda username: None

    def __post_init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._unsolicited: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- caches the SIP side reads on the event loop ------------------------------

    def load(self) -> None:
        """Fill the caches (blocking: at start-up, or in a worker thread)."""
        self._counts = dict(self.store.all_counts())
        self._unsolicited = {
            name for name in self.directory.usernames() if self.store.box(name).unsolicited_mwi
        }

    def counts(self, username: str) -> tuple[int, int]:
        return self._counts.get(username, (0, 0))

    def unsolicited(self, username: str) -> bool:
        return username in self._unsolicited

    # ---- changes ---------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def changed_from_thread(self, username: str) -> None:
        """A change made by the portal (in its worker thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(self.changed(username)))

    async def changed(self, username: str, new_message: MessageRecord | None = None) -> None:
        try:
            counts, box = await asyncio.to_thread(
                lambda: (self.store.counts(username), self.store.box(username))
            )
        except Exception:
            log.exception("could not read the mailbox of %s", username)
            return
        self._counts[username] = counts
        # The portal may have switched unsolicited message waiting: take it now
        # rather than at the next cache reload.
        if box.unsolicited_mwi:
            self._unsolicited.add(username)
        else:
            self._unsolicited.discard(username)
        new, old = counts
        if new_message is not None:
            self.publish(
                {
                    "type": "voicemail.new",
                    "message": {
                        "id": new_message.id,
                        "from": {
                            "number": new_message.caller_number,
                            "name": new_message.caller_name,
                        },
                        "created_at": new_message.created_at.isoformat(),
                        "duration": round(new_message.duration, 1),
                        "heard": new_message.heard,
                    },
                    "new": new,
                    "old": old,
                },
                [username],
            )
        self.publish({"type": "voicemail.changed", "new": new, "old": old}, [username])
        self.notify(username)

    def _on_change(self, change: MailboxChange) -> None:
        log.info("mailbox of %s: %s %s", change.username, change.kind, change.message_id or "")
        message = change.message if change.kind == "message" else None
        record = message if isinstance(message, MessageRecord) else None
        asyncio.get_running_loop().create_task(self.changed(change.username, record))

    # ---- calls --------------------------------------------------------------------------

    def start(self, local: LocalSession) -> VoicemailCall:
        return VoicemailCall(self, local)

    async def build(self, local: LocalSession) -> VoicemailSession[Any, Any]:
        """The menu for a call: leaving a message, or listening to one's own."""
        media = local.media
        assert isinstance(media, MediaSession)
        events = local.events_payload_type if local.events_payload_type >= 0 else None
        if local.deposit:
            user = self.directory.user(local.mailbox)
            return deposit_session(
                media,
                local.side,
                local.payload_type,
                self.store,
                local.mailbox,
                Caller(local.caller.number, local.caller.name),
                self.prompts,
                extension=user.extension if user is not None else local.mailbox,
                busy=local.busy,
                settings=self.settings,
                dtmf_payload_type=events,
                tones=self.tones,
                on_change=self._on_change,
            )
        box = await asyncio.to_thread(self.store.box, local.mailbox)
        # The caller is the mailbox's owner, proven by their phone's digest or
        # their portal login; a PIN, when they set one, is asked on top.
        return retrieval_session(
            media,
            local.side,
            local.payload_type,
            self.store,
            local.mailbox,
            self.prompts,
            authenticated=not box.has_pin,
            settings=self.settings,
            dtmf_payload_type=events,
            tones=self.tones,
            on_change=self._on_change,
        )


class VoicemailCall:
    """One call in a voicemail menu (the runner's `LocalRun`)."""

    def __init__(self, owner: VoicemailCalls, local: LocalSession) -> None:
        self._owner = owner
        self._local = local
        self._session: VoicemailSession[Any, Any] | None = None
        self._early: list[str] = []

    async def run(self) -> None:
        local = self._local
        what = "message for" if local.deposit else "mailbox of"
        log.info("call %s: voicemail, %s %s", local.call_id, what, local.mailbox)
        self._session = await self._owner.build(local)
        for digit in self._early:
            self._session.feed_digit(digit)
        outcome = await self._session.run()
        if outcome.message is not None:
            log.info(
                "call %s: message %s left for %s", local.call_id, outcome.message.id, local.mailbox
            )

    def feed_digit(self, digit: str) -> None:
        if self._session is None:
            self._early.append(digit)  # pressed before the menu was ready
        else:
            self._session.feed_digit(digit)
