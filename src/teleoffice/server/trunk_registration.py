"""Keeping teleoffice registered with the providers of trunks marked `--register`.

Sans-IO: one `RegistrationClient` per trunk, driven through the shared
transaction layer.  `sync` compares the clients with the configured trunks (it
is cheap and called now and then, so `trunk set --register` takes effect
without a restart); `stop_all` un-registers everything on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from teleoffice.sip.builders import new_call_id
from teleoffice.sip.digest import Algorithm
from teleoffice.sip.headers import NameAddr
from teleoffice.sip.message import Request, Response
from teleoffice.sip.registration_client import RegistrationClient, RegistrationState
from teleoffice.sip.transaction import Address, TransactionLayer, TxKey
from teleoffice.sip.uri import SipUri

log = logging.getLogger("teleoffice.trunks")

SYNC_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class RegisteringTrunk:
    """A trunk that wants a registration, as configured."""

    name: str
    host: str
    port: int
    transport: str
    username: str
    expires: int
    ha1_for: Callable[[str, Algorithm], str | None] | None


class TrunkRegistrations:
    def __init__(
        self,
        *,
        transactions: TransactionLayer,
        local: Address,
        configured: Callable[[], list[RegisteringTrunk]],
    ) -> None:
        self.tx = transactions
        self.local = local
        self.configured = configured
        self._clients: dict[str, tuple[RegisteringTrunk, RegistrationClient]] = {}
        self._keys: dict[TxKey, str] = {}
        self._next_sync = float("-inf")

    def states(self) -> dict[str, RegistrationState]:
        return {name: client.state for name, (_, client) in self._clients.items()}

    def owns(self, key: TxKey) -> bool:
        return key in self._keys

    def next_timer(self) -> float | None:
        times = [t for _, c in self._clients.values() if (t := c.next_timer()) is not None]
        times.append(self._next_sync)
        return min(times)

    def handle_timers(self, now: float) -> None:
        if now >= self._next_sync:
            self._next_sync = now + SYNC_INTERVAL
            self.sync(now)
        for name, (trunk, client) in list(self._clients.items()):
            due = client.next_timer()
            if due is not None and due <= now:
                self._send(name, trunk, client.on_timer(now), now)

    def sync(self, now: float) -> None:
        wanted = {t.name: t for t in self.configured()}
        for name in list(self._clients):
            trunk, client = self._clients[name]
            if wanted.get(name) != trunk:
                # Removed, or changed: un-register the old binding first.
                self._send(name, trunk, client.stop(now), now)
                del self._clients[name]
        for name, trunk in wanted.items():
            if name not in self._clients:
                client = self._client_for(trunk)
                self._clients[name] = (trunk, client)
                self._send(name, trunk, client.start(now), now)

    def stop_all(self, now: float) -> None:
        for name, (trunk, client) in list(self._clients.items()):
            self._send(name, trunk, client.stop(now), now)
        self._clients.clear()

    def response(self, key: TxKey, response: Response, now: float) -> None:
        name = self._keys.get(key)
        entry = self._clients.get(name) if name else None
        if response.status >= 200:
            self._keys.pop(key, None)
        if entry is None:
            return
        trunk, client = entry
        self._send(trunk.name, trunk, client.on_response(response, now), now)
        if client.state is RegistrationState.REGISTERED and response.status < 300:
            log.info("trunk %s registered until %s", trunk.name, client.registered_until)

    def timeout(self, key: TxKey, now: float) -> None:
        name = self._keys.pop(key, None)
        entry = self._clients.get(name) if name else None
        if entry is not None:
            entry[1].on_timeout(now)

    def terminated(self, key: TxKey) -> None:
        self._keys.pop(key, None)

    def _client_for(self, trunk: RegisteringTrunk) -> RegistrationClient:
        transport = trunk.transport.upper()
        params = (("transport", transport.lower()),) if transport != "UDP" else ()
        return RegistrationClient(
            aor=SipUri(host=trunk.host, user=trunk.username),
            registrar=Address(transport, trunk.host, trunk.port),
            contact=NameAddr(
                SipUri(
                    host=self.local.host, port=self.local.port, user=trunk.username, params=params
                )
            ),
            via_host=self.local.host,
            via_port=self.local.port,
            transport=transport,
            expires=trunk.expires,
            username=trunk.username,
            ha1_for=trunk.ha1_for,
            call_id=new_call_id(self.local.host),
        )

    def _send(
        self, name: str, trunk: RegisteringTrunk, request: Request | None, now: float
    ) -> None:
        if request is None:
            return
        destination = Address(trunk.transport.upper(), trunk.host, trunk.port)
        key = self.tx.send_request(request, destination, now)
        self._keys[key] = name
