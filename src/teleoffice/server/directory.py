"""An in-memory view of the accounts and users the SIP service consults per request.

A REGISTER or INVITE must not wait for the database: the service reads this
cache, which reloads the (small) tables at most every `refresh` seconds when it is
used.  Changes made with the CLI, another process, therefore reach a running
server within `refresh` seconds.
"""

from __future__ import annotations

from collections.abc import Callable

from teleoffice.sip.digest import Algorithm
from teleoffice.store.repos import AccountRepo, UserRepo

REFRESH_SECONDS = 2.0


class Directory:
    def __init__(
        self,
        *,
        users: UserRepo,
        accounts: AccountRepo,
        clock: Callable[[], float],
        refresh: float = REFRESH_SECONDS,
    ) -> None:
        self._users = users
        self._accounts = accounts
        self._clock = clock
        self._refresh = refresh
        self._loaded_at = float("-inf")
        self._ha1: dict[str, tuple[str, str]] = {}
        self._extensions: set[str] = set()

    def _fresh(self) -> None:
        now = self._clock()
        if now - self._loaded_at < self._refresh:
            return
        self._ha1 = self._accounts.all_ha1()
        self._extensions = {user.extension for user in self._users.list_users()}
        self._loaded_at = now

    def ha1(self, account: str, algorithm: Algorithm) -> str | None:
        self._fresh()
        pair = self._ha1.get(account)
        if pair is None:
            return None
        return pair[0] if algorithm.base is Algorithm.MD5 else pair[1]

    def extension_exists(self, extension: str) -> bool:
        self._fresh()
        return extension in self._extensions
