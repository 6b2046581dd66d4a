"""An in-memory view of users, accounts, DIDs and trunks for the SIP service.

A REGISTER or INVITE must not wait for the database: the service only reads the
last snapshot.  The server reloads it in a worker thread every few seconds
(`reload_if_changed`: only when the database's directory generation moved), so
changes made with the CLI, another process, reach a running server within that
time and the event loop never stalls on a reload.

It is also the call engine's `DirectoryView` (with the users' dialling
restrictions: a `RestrictingDirectory`) and tells the B2BUA how to reach and
authenticate to each trunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from teleoffice.calls.engine import Party
from teleoffice.calls.restrictions import DEFAULT_PROFILE, RestrictionProfile
from teleoffice.calls.routing import TrunkView, UserView
from teleoffice.server.b2bua import TrunkPeer
from teleoffice.server.trunk_registration import RegisteringTrunk
from teleoffice.sip.digest import Algorithm, build_authorization_from_ha1
from teleoffice.sip.transaction import Address
from teleoffice.store.generation import directory_generation
from teleoffice.store.repos import (
    AccountRepo,
    DidRepo,
    RestrictionRepo,
    TrunkCredentials,
    TrunkRecord,
    TrunkRepo,
    UserRecord,
    UserRepo,
)


@dataclass(frozen=True, slots=True)
class Repos:
    users: UserRepo
    accounts: AccountRepo
    trunks: TrunkRepo
    dids: DidRepo
    # None: one on the users' database (what a composition root that predates
    # restrictions gets).
    restrictions: RestrictionRepo | None = None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    ha1: dict[str, tuple[str, str]]
    users_by_extension: dict[str, UserRecord]
    users_by_name: dict[str, UserRecord]
    account_owner: dict[str, str | None]
    dids: dict[str, str]
    trunks: dict[str, TrunkRecord]
    credentials: dict[str, TrunkCredentials]
    restrictions: dict[str, RestrictionProfile]
    restriction_of: dict[str, str]  # username -> profile name, for assigned users only


class Directory:
    def __init__(self, repos: Repos) -> None:
        self._repos = repos
        self._restrictions = repos.restrictions or RestrictionRepo(repos.users.sessions)
        self._snap: _Snapshot | None = None
        self._loaded: int | None = None  # the generation the snapshot was read at

    def reload(self) -> None:
        """Read the tables again; safe in a worker thread (the swap is one assignment)."""
        generation = self._generation()
        self._snap = self._load()
        self._loaded = generation

    def reload_if_changed(self) -> bool:
        """Reload only if the tables changed since the last load (the database
        bumps a generation number on every change, migration 0008): what the
        server polls every few seconds, so that a site with thousands of users
        does not read them all again each time. Whether it reloaded."""
        generation = self._generation()
        if generation is not None and self._snap is not None and generation == self._loaded:
            return False
        # Read before loading: a change made during the load moves the number
        # again and is picked up by the next poll.
        self._snap = self._load()
        self._loaded = generation
        return True

    def _generation(self) -> int | None:
        try:
            return directory_generation(self._repos.users.sessions)
        except LookupError:
            return None  # no counter: every poll reloads

    def _fresh(self) -> _Snapshot:
        snap = self._snap
        if snap is None:
            snap = self._snap = self._load()
        return snap

    def _load(self) -> _Snapshot:
        repos = self._repos
        users = repos.users.list_users()
        trunks = {t.name: t for t in repos.trunks.list_trunks()}
        credentials = {}
        for trunk in trunks.values():
            if trunk.has_credentials:
                found = repos.trunks.credentials(trunk)
                if found is not None:
                    credentials[trunk.name] = found
        # Two small queries: the profiles are parsed here, once per reload, not
        # for every call.
        restrictions, restriction_of = self._restrictions.snapshot()
        return _Snapshot(
            ha1=repos.accounts.all_ha1(),
            users_by_extension={u.extension: u for u in users},
            users_by_name={u.username: u for u in users},
            account_owner={a.username: a.owner for a in repos.accounts.list_accounts()},
            dids={d.number: d.user for d in repos.dids.list_dids()},
            trunks=trunks,
            credentials=credentials,
            restrictions=restrictions,
            restriction_of=restriction_of,
        )

    # ---- digest ----------------------------------------------------------------

    def ha1(self, account: str, algorithm: Algorithm) -> str | None:
        pair = self._fresh().ha1.get(account)
        if pair is None:
            return None
        return pair[0] if algorithm.base is Algorithm.MD5 else pair[1]

    # ---- the call engine's DirectoryView ------------------------------------------

    def user_by_number(self, number: str) -> UserView | None:
        snap = self._fresh()
        user = snap.users_by_extension.get(number)
        if user is None and number in snap.dids:
            user = snap.users_by_name.get(snap.dids[number])
        return None if user is None else _view(user)

    def trunks(self) -> list[TrunkView]:
        return [
            TrunkView(t.name, t.prefix, t.outside_number) for t in self._fresh().trunks.values()
        ]

    def restriction_for(self, username: str) -> RestrictionProfile:
        """The user's profile; `default` for users without one (rule T11)."""
        snap = self._fresh()
        name = snap.restriction_of.get(username, DEFAULT_PROFILE.name)
        found = snap.restrictions.get(name) or snap.restrictions.get(DEFAULT_PROFILE.name)
        # The built-in default if the table lost its row: never unrestricted.
        return found or DEFAULT_PROFILE

    # ---- users and their phones (locations, the portal) ---------------------------------

    def usernames(self) -> list[str]:
        return list(self._fresh().users_by_name)

    def user(self, username: str) -> UserRecord | None:
        return self._fresh().users_by_name.get(username)

    def user_view(self, username: str) -> UserView | None:
        user = self._fresh().users_by_name.get(username)
        return None if user is None else _view(user)

    def base_account(self, username: str) -> str | None:
        """The user's own phone account: the one named by their extension (what
        `teleoffice user add` creates), else any account they own."""
        snap = self._fresh()
        user = snap.users_by_name.get(username)
        if user is None:
            return None
        if snap.account_owner.get(user.extension) == username:
            return user.extension
        owned = sorted(a for a, owner in snap.account_owner.items() if owner == username)
        return owned[0] if owned else None

    def account_owner(self, account: str) -> str | None:
        return self._fresh().account_owner.get(account)

    def has_account(self, account: str) -> bool:
        return account in self._fresh().account_owner

    # ---- the SIP service -------------------------------------------------------------

    def account_identity(self, account: str) -> tuple[Party, str] | None:
        snap = self._fresh()
        owner = snap.account_owner.get(account)
        user = snap.users_by_name.get(owner) if owner else None
        if user is None:
            return None
        return Party(user.extension, user.display_name or None), user.username

    def trunk_at(self, source: Address) -> str | None:
        """The trunk a request comes from: the same host and port as configured."""
        for trunk in self._fresh().trunks.values():
            if trunk.host == source.host and trunk.port == source.port:
                return trunk.name
        return None

    def registering_trunks(self) -> list[RegisteringTrunk]:
        """Trunks configured to register with their provider."""
        snap = self._fresh()
        out = []
        for trunk in snap.trunks.values():
            if not trunk.register or not trunk.username:
                continue
            creds = snap.credentials.get(trunk.name)
            out.append(
                RegisteringTrunk(
                    name=trunk.name,
                    host=trunk.host,
                    port=trunk.port,
                    transport=trunk.transport,
                    username=trunk.username,
                    expires=trunk.register_expires,
                    ha1_for=creds.ha1_for if creds else None,
                )
            )
        return out

    def trunk_peer(self, name: str) -> TrunkPeer | None:
        snap = self._fresh()
        trunk = snap.trunks.get(name)
        if trunk is None:
            return None
        creds = snap.credentials.get(name)
        return TrunkPeer(
            name=trunk.name,
            host=trunk.host,
            port=trunk.port,
            transport=trunk.transport.upper(),
            use_pai=trunk.use_pai,
            authorize=_authorizer(creds) if creds is not None else None,
        )


def _view(user: UserRecord) -> UserView:
    return UserView(
        user.username,
        user.extension,
        user.display_name or None,
        user.no_answer_timeout,
        forward_always=user.forward_always,
        forward_busy=user.forward_busy,
        forward_no_answer=user.forward_no_answer,
        dnd=user.dnd,
        call_waiting=user.call_waiting,
        voicemail=user.voicemail_enabled,
    )


def _authorizer(creds: TrunkCredentials) -> Callable[[str, str, str], str | None]:
    def authorize(challenge: str, method: str, uri: str) -> str | None:
        return build_authorization_from_ha1(
            challenge=challenge,
            method=method,
            uri=uri,
            username=creds.username,
            ha1_for=creds.ha1_for,
        )

    return authorize
