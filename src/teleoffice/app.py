"""The composition root: the one place that builds teleoffice's parts and wires them.

Nothing else creates long-lived objects or reads settings; every part receives what
it needs as arguments, so tests can build any slice of the system on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from teleoffice.calls.engine import CallEngine, CallLimits, CallRecord, Party, PhoneTarget
from teleoffice.calls.locations import LocationKind
from teleoffice.calls.presence import PresenceState
from teleoffice.calls.registrar import (
    Binding,
    CommandKind,
    Registrar,
    RegistrarLimits,
    StoreCommand,
)
from teleoffice.calls.voicemail_menu import MenuSettings
from teleoffice.config import ConfigError, Settings, load_or_create_secret
from teleoffice.http.app import create_http_app
from teleoffice.media.engine import MediaEngine
from teleoffice.media.prompts import PromptLibrary
from teleoffice.media.tones import ToneSet
from teleoffice.portal import EventHub, PortalContext
from teleoffice.portal.admin_live import LiveSources, attach_live
from teleoffice.portal.request_limit import RequestLimits, RequestRateLimit
from teleoffice.portal.telephony import create_telephony_router
from teleoffice.server.b2bua import B2bua
from teleoffice.server.directory import Directory, Repos
from teleoffice.server.guard import AuthGuard, GuardLimits
from teleoffice.server.metrics import build_registry
from teleoffice.server.overload import LoadMonitor, OverloadLimits
from teleoffice.server.presence_service import PresenceService
from teleoffice.server.presence_sip import PresenceLimits, PresenceProviders, device_key
from teleoffice.server.runner import SipRunner
from teleoffice.server.sip_service import SipService
from teleoffice.server.subscriptions import SubscriptionLimits
from teleoffice.server.telephony import Telephony, TelephonyRepos
from teleoffice.server.trunk_registration import TrunkRegistrations
from teleoffice.server.voicemail_calls import VoicemailCalls
from teleoffice.server.voicemail_session import VoicemailSettings
from teleoffice.sip.digest import Algorithm, DigestServer
from teleoffice.sip.transaction import Address, TransactionLayer
from teleoffice.store import repos as store
from teleoffice.store.db import make_engine, session_factory, upgrade
from teleoffice.store.locations import LocationRepo
from teleoffice.store.presence import PresenceRepo
from teleoffice.store.repos import (
    AccountRepo,
    CallLogRepo,
    DidRepo,
    RegistrationRepo,
    RestrictionRepo,
    StoredBinding,
    TrunkRepo,
    UserRepo,
)
from teleoffice.store.telecommuter import TelecommuterRepo
from teleoffice.store.tokens import TokenRepo
from teleoffice.store.voicemail import VoicemailStore
from teleoffice.transport.tls import TlsError, client_context, server_context

log = logging.getLogger("teleoffice")

# How soon users, trunks and DIDs changed with the CLI reach a running server.
DIRECTORY_REFRESH_SECONDS = 2.0
# Voicemail caches the CLI may have changed are re-read this often.
VOICEMAIL_CACHE_SECONDS = 30.0
# Expired portal logins are deleted this often (they are refused anyway).
TOKEN_PURGE_SECONDS = 3600.0


def to_stored(binding: Binding) -> StoredBinding:
    return StoredBinding(**dataclasses.asdict(binding))


def from_stored(stored: StoredBinding) -> Binding:
    return Binding(**dataclasses.asdict(stored))


def persist_commands(repo: RegistrationRepo) -> Callable[[list[StoreCommand]], None]:
    """Write a batch of registrar commands in one transaction.

    Only the last command per binding matters, so a phone that re-registered
    several times within one batch costs one row write.
    """

    def persist(commands: list[StoreCommand]) -> None:
        last: dict[tuple[str, str], StoreCommand] = {}
        for command in commands:
            last[(command.binding.account, command.binding.uri)] = command
        saves = [to_stored(c.binding) for c in last.values() if c.kind is CommandKind.SAVE]
        deletes = [key for key, c in last.items() if c.kind is CommandKind.DELETE]
        repo.apply(saves=saves, deletes=deletes)

    return persist


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def to_log_entry(record: CallRecord) -> store.CallRecord:
    return store.CallRecord(
        call_id=record.call_id,
        direction=store.CallDirection(record.direction.value),
        caller_number=record.caller.number,
        caller_name=record.caller.name,
        callee_number=record.dialled,
        callee_name=record.callee.name,
        started_at=datetime.fromtimestamp(record.started_at, UTC),
        route=record.route,
        trunk=record.trunk,
        caller_user=record.caller_user,
        callee_user=record.callee_user,
        ringing_at=_when(record.ringing_at),
        answered_at=_when(record.answered_at),
        ended_at=_when(record.ended_at),
        outcome=store.CallOutcome(record.outcome) if record.outcome else None,
        status=record.status,
        ended_by=store.EndedBy(record.ended_by) if record.ended_by else None,
    )


def log_calls(repo: CallLogRepo) -> Callable[[list[CallRecord]], None]:
    """Write call snapshots to the call log; only each call's latest matters."""

    def write(records: list[CallRecord]) -> None:
        latest = {r.call_id: r for r in records}
        repo.record_all([to_log_entry(record) for record in latest.values()])

    return write


class _EmbeddedHttpServer(uvicorn.Server):
    """uvicorn sharing our event loop: signals stay with `serve`, which tells it
    when to stop, instead of uvicorn taking SIGINT and SIGTERM for itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Application:
    """Everything one teleoffice process runs, built from settings."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        upgrade(settings.db_url)
        self.engine = make_engine(settings.db_url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.registrations = RegistrationRepo(self.sessions)
        now = clock()
        self.registrations.purge_expired(now)
        bindings = [from_stored(b) for b in self.registrations.load_all()]
        self.registrar = Registrar(
            RegistrarLimits(
                min_expires=settings.min_expires,
                max_expires=settings.max_expires,
                default_expires=settings.default_expires,
                max_contacts=settings.max_contacts_per_account,
            ),
            bindings,
        )
        self.directory = Directory(
            Repos(
                users=UserRepo(self.sessions, realm=settings.realm),
                accounts=AccountRepo(self.sessions),
                trunks=TrunkRepo(self.sessions),
                dids=DidRepo(self.sessions),
            ),
        )
        self.directory.reload()
        self.call_log = CallLogRepo(self.sessions)
        # Calls do not survive a restart: whatever was open is marked as such.
        self.call_log.close_unfinished(datetime.fromtimestamp(now, UTC))
        self.digest = DigestServer(
            settings.realm,
            load_or_create_secret(settings),
            nonce_ttl=settings.nonce_ttl,
            algorithms=[Algorithm(name) for name in settings.digest_algorithms],
        )
        self.transactions = TransactionLayer(linger=settings.sip_transaction_linger)
        registrar = self.registrar

        def contacts(extension: str, at: float) -> list[PhoneTarget]:
            return [
                PhoneTarget(b.account, b.uri, b.transport, b.source_host, b.source_port)
                for b in registrar.lookup(extension, at)
            ]

        # The engine asks where users are; the book lives in `telephony`, built
        # right after the B2BUA it drives (hence the late-bound lambdas).
        self.calls = CallEngine(
            self.directory,
            contacts,
            locate=lambda user: self.telephony.location_of(user.username),
            voicemail_number=settings.voicemail_number,
            has_mailbox=self._has_mailbox,
            limits=CallLimits(
                max_calls=settings.max_calls,
                max_calls_per_user=settings.max_calls_per_user,
                max_outside_calls_per_user=settings.max_outside_calls_per_user,
            ),
            allow_trunk_to_trunk=settings.allow_trunk_to_trunk,
        )
        self.b2bua = B2bua(
            engine=self.calls,
            transactions=self.transactions,
            local=Address("UDP", settings.sip_host, settings.sip_port),
            domain=settings.domain,
            media_host=settings.media_host,
            trunks=self.directory.trunk_peer,
            session_interval=settings.session_interval,
            tones=ToneSet.named(settings.tone_set),
            on_record=lambda record: self.telephony.on_record(record),  # noqa: PLW0108 - late
        )
        self.telephony = Telephony(
            engine=self.calls,
            b2bua=self.b2bua,
            directory=self.directory,
            repos=TelephonyRepos(
                locations=LocationRepo(self.sessions),
                telecommuter=TelecommuterRepo(self.sessions),
            ),
            clock=clock,
            poke=lambda: self.sip.poke(),  # noqa: PLW0108 - self.sip comes later
            portal_timeout=settings.telecommuter_portal_timeout,
            account_changed=self._account_changed,
            calls_changed=lambda user, calls: self.presence.calls_changed(user, calls),  # noqa: PLW0108 - late
            dialogs_changed=self._dialogs_changed,
            domain=settings.domain,
        )
        self.telephony.load()
        self.hub = EventHub(max_per_user=settings.max_portal_connections_per_user)
        self.presence = PresenceService(
            repo=PresenceRepo(self.sessions),
            users=UserRepo(self.sessions, realm=settings.realm),
            directory=self.directory,
            publish=self.hub.publish,
            clock=clock,
        )
        self.presence.load()
        self._online: dict[str, int] = {}
        self.voicemail_store = VoicemailStore(self.sessions, settings.voicemail_folder)
        # A crash may have left half a message or a file without its row.
        self.voicemail_store.recover()
        self.voicemail = VoicemailCalls(
            store=self.voicemail_store,
            prompts=PromptLibrary(settings.prompt_dir, settings.data_dir / "prompt-cache"),
            directory=self.directory,
            settings=VoicemailSettings(
                menu=MenuSettings(max_message_seconds=settings.voicemail_max_seconds),
                silence_seconds=settings.voicemail_silence_seconds,
            ),
            tones=ToneSet.named(settings.tone_set),
            publish=self.hub.publish,
            notify=self._mailbox_changed,
        )
        self.voicemail.load()
        self.trunk_registrations = TrunkRegistrations(
            transactions=self.transactions,
            local=Address("UDP", settings.sip_host, settings.sip_port),
            configured=self.directory.registering_trunks,
        )
        subscription_limits = SubscriptionLimits(
            max_per_account=settings.max_subscriptions_per_account,
            max_total=settings.max_subscriptions,
        )
        self.service = SipService(
            registrar=self.registrar,
            digest=self.digest,
            ha1_lookup=self.directory.ha1,
            account_identity=self._account_identity,
            trunk_at=self.directory.trunk_at,
            b2bua=self.b2bua,
            transactions=self.transactions,
            trunk_registrations=self.trunk_registrations,
            counts=self.voicemail.counts,
            unsolicited=self._unsolicited_mwi,
            mwi_limits=subscription_limits,
            presence=PresenceProviders(
                model=self.presence.book,
                dialogs_of=self.telephony.dialogs_of,
                may_watch=lambda target, watcher: not self.presence.is_blocked(target, watcher),
                on_change=self.presence.publication,
                on_publication=lambda username: self._count_sources(
                    username, self.hub.online_users(), time.time()
                ),
                on_registration=self._registration_changed,
                limits=PresenceLimits(presence=subscription_limits, dialog=subscription_limits),
            ),
            guard=AuthGuard(
                GuardLimits(
                    source_limit=settings.auth_fail_limit,
                    account_limit=settings.auth_account_fail_limit,
                    window=settings.auth_fail_window,
                    block_time=settings.auth_block_time,
                    max_tracked=settings.auth_guard_max_tracked,
                )
            ),
            overload=LoadMonitor(
                OverloadLimits(
                    lag_high=settings.overload_lag_high,
                    lag_low=settings.overload_lag_low,
                    busy_high=settings.overload_busy_high,
                    busy_low=settings.overload_busy_low,
                    max_transactions=settings.overload_max_transactions,
                    retry_after=settings.overload_retry_after,
                    retry_after_max=max(60, settings.overload_retry_after),
                ),
                transactions=self.transactions.transaction_count,
                random=random.random,
            ),
        )
        self.media = MediaEngine(settings.media_host, settings.rtp_port_min, settings.rtp_port_max)
        self.sip = SipRunner(
            self.service,
            host=settings.sip_host,
            port=settings.sip_port,
            persist=persist_commands(self.registrations),
            media=self.media,
            log_calls=log_calls(self.call_log),
            max_message_size=settings.max_message_size,
            tcp_idle_timeout=settings.tcp_idle_timeout,
            clock=clock,
            on_feature=self.telephony.run_feature,
            on_local=self.voicemail.start,
        )
        if settings.tls_cert_file is not None:
            # SIP over TLS (RFC 3261 section 26.2) on a port of its own.  The
            # certificate is loaded now, so a bad file stops the start with a
            # message instead of failing the first handshake.
            try:
                tls_context = server_context(settings.tls_cert_file, settings.tls_key_file)
            except TlsError as exc:
                raise ConfigError(str(exc)) from None
            self.sip.transport.enable_tls(settings.sip_tls_port or 0, tls_context, client_context())
        self.presence.notify = self._presence_changed
        self.metrics = build_registry(self.sip)
        self.telephony.publish = self.hub.publish
        users = UserRepo(self.sessions, realm=settings.realm)
        self.portal = PortalContext(
            users=users,
            tokens=TokenRepo(self.sessions),
            telecommuter=TelecommuterRepo(self.sessions),
            restrictions=RestrictionRepo(self.sessions),
            call_log=self.call_log,
            hub=self.hub,
            snapshot=self.telephony.snapshot,
            token_ttl=settings.portal_token_ttl,
            clock=clock,
            directory_changed=self.directory.reload,
            voicemail=self.voicemail_store,
            voicemail_changed=self.voicemail.changed_from_thread,
            presence=self.presence,
        )
        self.http = create_http_app(registry=self.metrics, status=self.status, portal=self.portal)
        # Outermost: a request over the rate is refused before any other work.
        self.http.add_middleware(
            RequestRateLimit,
            limits=RequestLimits(rate=settings.api_rate_limit, burst=settings.api_rate_burst),
        )
        self.http.include_router(create_telephony_router(self.telephony))
        # The administrators' view of the running PBX (read on the loop's thread).
        attach_live(
            self.http,
            LiveSources(
                bindings=self.registrar.lookup,
                calls=self.telephony.live_calls,
                telecommuters=self.telephony.telecommuters,
                occupant=self.telephony.occupant,
                trunk_states=lambda: {
                    name: state.value for name, state in self.trunk_registrations.states().items()
                },
                clock=clock,
            ),
        )

    def _count_sources(self, name: str, online: set[str], now: float) -> None:
        """How `name` can be reached besides their publications: a portal open,
        a registered phone, a telecommuter line (tells the presence book when
        that changed)."""
        location = self.telephony.location_of(name)
        # A registered phone that also PUBLISHes speaks for itself through its
        # publication (its "closed" must be able to show): only the others
        # count as a way to reach the user.
        publishing = {p.device for p in self.presence.book.publications(name)}
        reachable = location.kind is LocationKind.TELECOMMUTER or (
            location.account is not None
            and any(
                device_key(b.source_host, b.source_port) not in publishing
                for b in self.registrar.lookup(location.account, now)
            )
        )
        sources = (name in online) + int(reachable)
        if self._online.get(name, 0) != sources:
            self._online[name] = sources
            self.presence.online_changed(name, sources)

    def _registration_changed(self, account: str) -> None:
        occupant = self.telephony.occupant(account)
        if occupant is not None:
            self._count_sources(occupant, self.hub.online_users(), time.time())

    async def _presence_housekeeping(self, online: set[str]) -> None:
        """Every few seconds: publications that expired, who can be reached (a
        portal open, a registered phone, a telecommuter line), and do not
        disturb switched in the settings or the CLI (the chosen state follows)."""
        presence = self.presence
        presence.tick()
        now = time.time()
        for name in self.directory.usernames():
            self._count_sources(name, online, now)
            user = self.directory.user(name)
            chosen = presence.book.chosen(name)
            chosen_dnd = chosen is not None and chosen.state is PresenceState.DND
            if user is not None and user.dnd != chosen_dnd:
                await presence.routing_dnd_changed(name, user.dnd)

    def _has_mailbox(self, username: str) -> bool:
        user = self.directory.user(username)
        return user is not None and user.voicemail_enabled

    def _mailbox_changed(self, username: str) -> None:
        self.service.mwi.changed(username, time.time())
        self.sip.poke()

    def _account_changed(self, account: str) -> None:
        now = time.time()
        self.service.mwi.account_changed(account, now)
        if self.service.presence is not None:
            self.service.presence.account_changed(account, now)
        self.sip.poke()

    def _dialogs_changed(self, username: str) -> None:
        if self.service.presence is not None:
            self.service.presence.dialogs_changed(username, time.time())
            # (Sent with the SIP output of the call change that caused it.)

    def _presence_changed(self, username: str) -> None:
        if self.service.presence is not None:
            now = time.time()
            self.service.presence.changed(username, now)
            self.service.presence.watchers_changed(username, now)
            self.sip.poke()

    def _unsolicited_mwi(self, account: str) -> bool:
        occupant = self.telephony.occupant(account)
        return occupant is not None and self.voicemail.unsolicited(occupant)

    def _account_identity(self, account: str) -> tuple[Party, str | None] | None:
        """Who a phone calls as: the user logged in on it (hot desking, T10)."""
        if self.directory.account_owner(account) is None:
            return None  # an account nobody owns, which `user add` never makes
        occupant = self.telephony.occupant(account)
        user = self.directory.user(occupant) if occupant else None
        if user is None:
            return Party(account), None
        return Party(user.extension, user.display_name or None), user.username

    async def _reload_directory(self) -> None:
        purged_at = loaded_at = time.time()
        while True:
            await asyncio.sleep(DIRECTORY_REFRESH_SECONDS)
            try:
                await asyncio.to_thread(self.directory.reload_if_changed)
            except Exception:
                log.exception("could not reload the directory")
                continue
            online = self.hub.online_users()
            await self.telephony.housekeeping(online)
            await self._presence_housekeeping(online)
            now = time.time()
            if now - loaded_at > VOICEMAIL_CACHE_SECONDS:
                # Mailbox settings changed with the CLI (unsolicited message waiting).
                loaded_at = now
                try:
                    await asyncio.to_thread(self.voicemail.load)
                except Exception:
                    log.exception("could not reload the voicemail caches")
            if now - purged_at > TOKEN_PURGE_SECONDS:
                purged_at = now
                try:
                    await asyncio.to_thread(
                        self.portal.tokens.purge_expired, datetime.fromtimestamp(now, UTC)
                    )
                except Exception:
                    log.exception("could not purge expired portal sessions")

    def status(self) -> dict[str, Any]:
        return {
            "sip": {
                "host": self.settings.sip_host,
                "port": self.sip.port,
                "tls_port": self.sip.transport.tls_port,
            },
            "registrations": self.registrar.count(),
            "transactions": self.service.transactions.transaction_count(),
            "calls": self.calls.active_count(),
            "call_legs": self.b2bua.leg_count(),
            "dialogs": len(self.b2bua.dialogs),
            "media_sessions": self.media.active_sessions,
            "media_ports": self.media.ports_in_use,
            "trunks": {
                name: state.value for name, state in self.trunk_registrations.states().items()
            },
            "tcp_connections": self.sip.transport.tcp_connection_count,
            "overload": {
                "overloaded": self.service.overload.overloaded,
                "shed": dict(self.service.overload.counters.shed),
                "loop_lag": round(self.service.overload.lag, 4),
                "loop_busy": round(self.service.overload.busy, 3),
            },
        }

    async def run(self, stop: asyncio.Event) -> None:
        self.voicemail.attach(asyncio.get_running_loop())
        await self.sip.start()
        prompts = self.voicemail.prompts
        if prompts is not None:
            # Synthesising missing prompts takes a few seconds: in the
            # background, and each prompt is also made on first use.
            self._prompt_task: asyncio.Task[int] = asyncio.create_task(
                asyncio.to_thread(prompts.prepare)
            )
        # With port 0 the system chose the port: Via and Contact must carry it.
        local = Address("UDP", self.settings.sip_host, self.sip.port)
        self.b2bua.local = local
        self.trunk_registrations.local = local
        self.b2bua.tls_port = self.sip.transport.tls_port
        https = self.settings.portal_tls and self.settings.tls_cert_file is not None
        config = uvicorn.Config(
            self.http,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_level="warning",
            lifespan="off",
            # The portal over HTTPS with the SIP certificate; Python's own defaults
            # for the rest (TLS 1.2 at least, forward-secret AEAD ciphers).
            ssl_certfile=self.settings.tls_cert_file if https else None,
            ssl_keyfile=self.settings.tls_key_file if https else None,
            ssl_ciphers=None,
        )
        http_server = _EmbeddedHttpServer(config)
        http_task = asyncio.create_task(http_server.serve())
        reload_task = asyncio.create_task(self._reload_directory())
        tls_port = self.sip.transport.tls_port
        log.info(
            "teleoffice listening: SIP udp+tcp %s:%d%s, %s %s:%d",
            self.settings.sip_host,
            self.sip.port,
            "" if tls_port is None else f", SIP tls {self.settings.sip_host}:{tls_port}",
            "HTTPS" if https else "HTTP",
            self.settings.http_host,
            self.settings.http_port,
        )
        try:
            await stop.wait()
        finally:
            reload_task.cancel()
            http_server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(http_task, timeout=5)
            await self.sip.stop()
            self.engine.dispose()
            log.info("teleoffice stopped")


def serve(settings: Settings, *, demo: bool) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        runner: Callable[..., Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    del demo  # the CLI seeded the demo directory before calling us

    async def main() -> None:
        app = Application(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await app.run(stop)

    runner(main())
    return 0
