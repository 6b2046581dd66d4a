"""The portal's REST API and events WebSocket, as one router for the HTTP app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, HTTPException, Request
from starlette.responses import Response as StarletteResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from teleoffice.portal import (
    admin,
    admin_live,
    admin_trunks,
    admin_voicemail,
    auth,
    events,
    me,
    presence,
    voicemail,
)
from teleoffice.portal.deps import PortalContext, attach_context
from teleoffice.portal.errors import error_response, install_error_handlers

log = logging.getLogger("teleoffice.portal")

# Request bodies of the API are small JSON documents; refuse anything larger
# before it is read into memory.
MAX_BODY_BYTES = 64 * 1024

OPENAPI_TAGS = [
    {"name": "auth", "description": "Logging in and out."},
    {"name": "me", "description": "The current user's own account, settings and calls."},
    {
        "name": "voicemail",
        "description": "The current user's mailbox: messages and their audio, PIN, greeting.",
    },
    {
        "name": "presence",
        "description": "Presence and status messages: my own, whom I block, and everyone's.",
    },
    {
        "name": "admin",
        "description": "Administrators: users, permissions, restriction profiles, voicemail "
        "settings, trunks, phones and their registrations, and the live system.",
    },
]


def create_portal_router() -> APIRouter:
    """Every route of the portal API under /api, the WebSocket included."""
    router = APIRouter()
    for module in (
        auth,
        me,
        voicemail,
        presence,
        admin,
        admin_voicemail,
        admin_trunks,
        admin_live,
        events,
    ):
        router.include_router(module.router)
    return router


class BodyLimit:
    """ASGI middleware: 413 for request bodies over `limit` bytes under /api."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            # A chunked body declares no length: count it as it comes. FastAPI
            # lets an HTTPException from reading the body through as it is.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "too_large", f"request body over {self.limit} bytes")
        await response(scope, receive, send)


# Writes under these paths change what the PBX routes by (users, forwards,
# restrictions, permissions).
_DIRECTORY_PATHS = ("/api/admin/", "/api/me/settings")


def install_portal(app: FastAPI, context: PortalContext) -> None:
    """Serve the portal from `app`: routes, error shape, body limit, context."""
    attach_context(app.state, context)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(create_portal_router())

    @app.middleware("http")
    async def refresh_directory(
        request: Request, call_next: Callable[[Request], Awaitable[StarletteResponse]]
    ) -> StarletteResponse:
        # The SIP side reads a snapshot of the directory, refreshed every few
        # seconds; a change made here is applied before the answer goes back,
        # so a user allowed telecommuter mode a moment ago can start it at once.
        response = await call_next(request)
        if (
            request.method not in ("GET", "HEAD", "OPTIONS")
            and response.status_code < 300
            and request.url.path.startswith(_DIRECTORY_PATHS)
        ):
            try:
                await asyncio.to_thread(context.directory_changed)
            except Exception:
                log.exception("could not refresh the directory after %s", request.url.path)
        return response
