"""What the portal's handlers depend on: the context, the caller, the admin.

Handlers declare what they need with the `Annotated` aliases at the end
(`ContextDep`, `CurrentUser`, `AdminUser`, `CurrentSession`); FastAPI resolves
them per request. The `PortalContext` is put on the application's state by
`install_portal`, so several applications (tests) never share one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import Depends
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from teleoffice.portal.errors import forbidden, unauthenticated
from teleoffice.portal.hub import EventHub
from teleoffice.portal.ratelimit import LoginLimiter
from teleoffice.store.repos import CallLogRepo, RestrictionRepo, UserRecord, UserRepo
from teleoffice.store.telecommuter import TelecommuterRepo
from teleoffice.store.tokens import TokenRepo
from teleoffice.store.voicemail import VoicemailStore

if TYPE_CHECKING:
    # portal.presence imports this module for its dependencies.
    from teleoffice.portal.presence import PresenceService

SESSION_COOKIE: Final = "teleoffice_session"
# The browser sends the cookie only to the API (and its WebSocket).
COOKIE_PATH: Final = "/api"
DEFAULT_TOKEN_TTL: Final = 12 * 3600.0
DEFAULT_PING_INTERVAL: Final = 25.0
_STATE_KEY: Final = "portal"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# What the browser portal sends with every cookie-authenticated write (CSRF).
CSRF_HEADER: Final = "X-Teleoffice-CSRF"
CSRF_VALUE: Final = "1"

# The live state a WebSocket client receives first (calls, telecommuter mode,
# presence...): built by the composition root, which knows the engines. It may
# be a coroutine function; it runs on the event loop, so it must not block.
Snapshot = Callable[[str], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


def _empty_snapshot(username: str) -> Mapping[str, Any]:
    return {}


def _nothing() -> None:
    return None


def _nothing_for(username: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class PortalContext:
    """Everything the portal works with, built once by the composition root."""

    users: UserRepo
    tokens: TokenRepo
    telecommuter: TelecommuterRepo
    restrictions: RestrictionRepo
    call_log: CallLogRepo
    hub: EventHub
    snapshot: Snapshot = _empty_snapshot
    token_ttl: float = DEFAULT_TOKEN_TTL  # seconds a login lasts
    clock: Callable[[], float] = time.time  # unix time, replaced in tests
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    ping_interval: float = DEFAULT_PING_INTERVAL  # WebSocket keepalive, seconds
    # Called (in a worker thread) after a write that changes routing: the
    # composition root reloads the SIP side's directory snapshot.
    directory_changed: Callable[[], None] = _nothing
    # None: this server keeps no mailboxes, and the voicemail routes answer 503.
    voicemail: VoicemailStore | None = None
    # Called (in a worker thread) after the portal changed a user's mailbox:
    # the composition root sends message-waiting NOTIFYs (RFC 3842).
    voicemail_changed: Callable[[str], None] = _nothing_for
    # None: this server keeps no presence, and the presence routes answer 503.
    presence: PresenceService | None = None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


def attach_context(state: Any, context: PortalContext) -> None:
    setattr(state, _STATE_KEY, context)


def get_context(connection: HTTPConnection) -> PortalContext:
    context = getattr(connection.app.state, _STATE_KEY, None)
    if not isinstance(context, PortalContext):
        raise RuntimeError("the portal is not installed on this application")
    return context


ContextDep = Annotated[PortalContext, Depends(get_context)]


@dataclass(frozen=True, slots=True)
class PortalSession:
    """The authenticated caller of a request, and how they proved it."""

    user: UserRecord
    token: str
    via_cookie: bool


bearer_scheme = HTTPBearer(
    auto_error=False, description="The token from `POST /api/login`, as a Bearer token."
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The HttpOnly session cookie `POST /api/login` sets for browsers.",
)


def same_origin(connection: HTTPConnection) -> bool:
    """False when a browser says the request comes from another site.

    The session cookie is SameSite=Strict, which already keeps it off
    cross-site requests in current browsers; this is the second lock for
    cookie-authenticated writes and WebSocket handshakes (cross-site WebSocket
    hijacking). Requests without an Origin header are not from a browser's
    cross-site context.
    """
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = connection.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower() != ""


def resolve_user(context: PortalContext, token: str) -> UserRecord | None:
    """The user a token belongs to, if it is current; touches the store."""
    username = context.tokens.resolve(token, context.now())
    return None if username is None else context.users.find(username)


def current_session(
    connection: HTTPConnection,
    context: ContextDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> PortalSession:
    """The caller, from `Authorization: Bearer` or else the session cookie;
    401 without a valid, unexpired token."""
    if bearer is not None:
        token, via_cookie = bearer.credentials, False
    elif cookie:
        token, via_cookie = cookie, True
    else:
        raise unauthenticated()
    method = connection.scope.get("method", "GET")
    if via_cookie and method not in _SAFE_METHODS:
        if not same_origin(connection):
            raise forbidden("cross-site request refused", code="cross_site")
        if connection.headers.get(CSRF_HEADER) != CSRF_VALUE:
            # A custom header cannot be sent cross-site without a CORS
            # preflight, which this server never grants: only our own pages
            # (static/js/api.js) send it.  Bearer-token clients need nothing.
            raise forbidden(f"cookie sessions must send {CSRF_HEADER}: {CSRF_VALUE}", code="csrf")
    user = resolve_user(context, token)
    if user is None:
        raise unauthenticated("the session is invalid or has expired; log in again")
    return PortalSession(user=user, token=token, via_cookie=via_cookie)


CurrentSession = Annotated[PortalSession, Depends(current_session)]


def current_user(session: CurrentSession) -> UserRecord:
    return session.user


CurrentUser = Annotated[UserRecord, Depends(current_user)]


def admin_user(user: CurrentUser) -> UserRecord:
    """The caller, if they are an administrator; 403 otherwise."""
    if not user.is_admin:
        raise forbidden("this needs an administrator")
    return user


AdminUser = Annotated[UserRecord, Depends(admin_user)]
