"""The whole application in-process, with a directory to act on, for the tests
that go through every route (tests/unit/test_authorization_matrix.py,
tests/unit/test_schemathesis.py).

A `World` is the real `teleoffice.app.Application` (portal API, telephony,
admin and UI routes) on an SQLite database of its own, driven through
FastAPI's TestClient, with alice, bob and admin logged in. Nothing listens on
a socket: the SIP side is built but never started.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from teleoffice.app import Application
from teleoffice.calls.engine import CallRecord, CallState, Direction, Party
from teleoffice.config import Settings
from teleoffice.portal.deps import attach_context
from teleoffice.store import (
    AccountRepo,
    RestrictionRepo,
    TrunkRepo,
    UserRepo,
    VoicemailStore,
    make_engine,
    session_factory,
    upgrade,
)
from teleoffice.store.presence import PresenceRepo
from teleoffice.store.telecommuter import TelecommuterRepo
from tests.unit.portal_kit import PASSWORDS, START, FakeClock, cheap_hasher, seed_users

ROLES = ("anonymous", "alice", "bob", "admin")
USERS = ("alice", "bob", "admin")
EVERYONE = ("admin", "alice", "bob", "carol")  # carol has no portal password
PHONES = {"admin": "200", "alice": "201", "bob": "202", "carol": "203"}
SAVED_NUMBER = "90612345"


def tone(seconds: float) -> bytes:
    return struct.pack(f"<{round(seconds * 8000)}h", *([1000, -1000] * round(seconds * 4000)))


def seed_database(data: Path) -> Path:
    """Fill the data folder `data` with the directory every world starts from:
    the users of `portal_kit.seed_users`; alice, bob and admin each with a
    voicemail message and a greeting, telecommuter mode allowed, a saved number
    and carol blocked; a trunk with prefix 9 and a spare restriction profile."""
    url = f"sqlite:///{(data / 'teleoffice.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    users = UserRepo(sessions, realm="teleoffice", hasher=cheap_hasher())
    seed_users(users)
    telecommuter = TelecommuterRepo(sessions, hasher=cheap_hasher())
    mailboxes = VoicemailStore(sessions, data / "voicemail", cheap_hasher())
    presence = PresenceRepo(sessions)
    TrunkRepo(sessions).add("provider", host="198.51.100.1", prefix="9")
    RestrictionRepo(sessions).add("spare", allowed=["internal"], description="unassigned")
    for name in USERS:
        users.update(name, voicemail_enabled=True)
        telecommuter.set_allowed(name, True)
        telecommuter.add_saved_number(name, SAVED_NUMBER, "home")
        presence.block(name, "carol", datetime.fromtimestamp(START, UTC))
        pending = mailboxes.new_message_writer(name)
        pending.write(tone(1.0))
        assert mailboxes.commit_message(pending, caller_number="203", caller_name="Carol")
        greeting = mailboxes.new_greeting_writer(name)
        greeting.write(tone(1.0))
        assert mailboxes.commit_greeting(greeting)
    engine.dispose()
    return data


@dataclass
class World:
    app: Application
    client: TestClient
    clock: FakeClock
    tokens: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def login(self, role: str) -> None:
        """A fresh session for `role` (after a logout, or a revoked session).

        When logins are being limited (a test guessed passwords), the clock
        moves on until the limit is over, as a patient user would wait.
        """
        body = {"username": role, "password": PASSWORDS[role]}
        response = self.client.post("/api/login", json=body)
        if response.status_code == 429:
            self.clock.advance(float(response.headers["retry-after"]))
            response = self.client.post("/api/login", json=body)
        self.client.cookies.clear()
        assert response.status_code == 200, response.text
        self.tokens[role] = response.json()["token"]

    def session_headers(self, role: str) -> dict[str, str]:
        """`headers(role)`, logging in again first if the session has ended."""
        context = self.app.portal
        if context.tokens.resolve(self.tokens[role], context.now()) is None:
            self.login(role)
        return self.headers(role)

    def fill(self, template: Any, role: str) -> Any:
        """`template` with the acting role's own ids put in (anonymous: alice's)."""
        values = self.values["alice" if role == "anonymous" else role]
        if isinstance(template, str):
            return template.format(**values)
        if isinstance(template, dict):
            return {key: self.fill(value, role) for key, value in template.items()}
        return template

    def request(self, role: str, method: str, path: str, body: Any = None) -> Any:
        response = self.client.request(
            method,
            self.fill(path, role),
            json=self.fill(body, role),
            headers=self.headers(role),
        )
        # Tests pass tokens explicitly: a session cookie from a login (or a
        # password change) would authenticate the next "anonymous" request.
        self.client.cookies.clear()
        return response

    def snapshot(self) -> dict[str, Any]:
        """Everything a request could change, per user, and the rest under ""."""
        context = self.app.portal
        telephony = self.app.telephony
        mailboxes = self.app.voicemail_store
        presence = PresenceRepo(self.app.sessions)
        state: dict[str, Any] = {}
        for name in EVERYONE:
            live = (telephony.location_view(name), telephony.calls_of(name))
            record = context.users.find(name)
            if record is None:  # deleted by an administrator
                state[name] = (None, *live)
                continue
            state[name] = (
                record,
                context.restrictions.profile_name_for(name),
                context.telecommuter.get(name),
                context.telecommuter.saved_numbers(name),
                mailboxes.box(name),
                mailboxes.messages(name),
                presence.get(name),
                presence.blocked(name),
                *live,
            )
        state[""] = (
            context.restrictions.list_profiles(),
            TrunkRepo(self.app.sessions).list_trunks(),
            AccountRepo(self.app.sessions).list_accounts(),
        )
        return state


def open_world(seeded: Path, folder: Path) -> Iterator[World]:
    """A running application on a copy of the `seeded` data folder, in `folder`,
    with alice, bob and admin logged in and each on a ringing call."""
    data = folder / "data"
    shutil.copytree(seeded, data)
    settings = Settings(data_dir=data, sip_port=0, prompt_dir=folder / "prompts")
    clock = FakeClock()
    app = Application(settings, clock=clock)
    # The same store with cheap argon2 parameters: real ones would rehash the
    # seeded passwords at every login (and PINs at every change).
    attach_context(
        app.http.state,
        replace(
            app.portal,
            users=UserRepo(app.sessions, realm=settings.realm, hasher=cheap_hasher()),
            voicemail=VoicemailStore(app.sessions, settings.voicemail_folder, cheap_hasher()),
        ),
    )
    with TestClient(app.http) as client:
        world = World(app, client, clock)
        for name in USERS:
            world.login(name)
            call_id = f"call-{name}"
            # A ringing call of each user, as the B2BUA reports it (on the loop's thread).
            client.portal.call(  # type: ignore[union-attr]
                app.telephony.on_record,
                CallRecord(
                    call_id=call_id,
                    direction=Direction.INTERNAL,
                    caller=Party(PHONES[name], name),
                    callee=Party("203", "carol"),
                    dialled="203",
                    route="internal",
                    trunk=None,
                    caller_user=name,
                    callee_user=None,
                    state=CallState.RINGING,
                    started_at=START,
                ),
            )
            (message,) = app.voicemail_store.messages(name)
            world.values[name] = {
                "message": str(message.id),
                "call": call_id,
                "phone": PHONES[name],
            }
        client.cookies.clear()
        yield world
    app.engine.dispose()
