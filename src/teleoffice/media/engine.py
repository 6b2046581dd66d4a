"""The media engine: where call code gets media sessions from.

`MediaEngine` owns the RTP port range of one media address and the sessions
using it.  The call code only creates sessions, releases them and reads their
ports; that small surface is what an external relay (rtpengine, driven over its
ng protocol) will implement later for larger sites.

`ports_in_use` and `active_sessions` exist for leak checks: once every call has
ended both must be back to zero.
"""

from __future__ import annotations

from teleoffice.media.ports import PortPool
from teleoffice.media.session import MediaSession

__all__ = ["MediaEngine"]


class MediaEngine:
    """Media sessions on `host` with RTP ports from `port_low` to `port_high`."""

    def __init__(self, host: str, port_low: int, port_high: int) -> None:
        self.host = host
        self._pool = PortPool(port_low, port_high)
        self._sessions: set[MediaSession] = set()

    async def create_session(self) -> MediaSession:
        """A session with both sides bound; raises `NoPortsAvailable` when full."""
        session = await MediaSession.open(self._pool, self.host, on_close=self._forget)
        self._sessions.add(session)
        return session

    def release(self, session: MediaSession) -> None:
        """Close a session and give its ports back (idempotent)."""
        session.close()

    def _forget(self, session: MediaSession) -> None:
        self._sessions.discard(session)

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    @property
    def ports_in_use(self) -> int:
        """RTP ports held (each also reserves the RTCP port above it)."""
        return self._pool.in_use

    @property
    def capacity(self) -> int:
        """How many sessions fit in the port range at most."""
        return self._pool.capacity // 2

    def close(self) -> None:
        """Close every session (at shutdown)."""
        for session in list(self._sessions):
            session.close()
