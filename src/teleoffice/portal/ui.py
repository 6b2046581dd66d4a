"""The browser portal: static files at `/` and `/static`, and security headers.

The UI is plain HTML, CSS and ES modules in `portal/static/` (no build step, no
CDN); its only back end is the REST API and the events WebSocket. This module
serves those files and puts the security headers on every HTTP response of the
application, the API's included:

- a Content-Security-Policy that allows scripts, styles and connections from
  this origin only (no inline scripts or styles, no `eval`), media from here
  and `blob:`, and no framing (clickjacking);
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
  `X-Frame-Options: DENY` for browsers that predate `frame-ancestors`.

Routes: `GET /` is the shell page (`index.html`); `/static/...` the assets.
They are separate routes, not a catch-all mount at `/`, so that routers added
to the application later (the telephony routes) are never shadowed.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR: Final = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "media-src 'self' blob:",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class SecurityHeaders:
    """ASGI middleware: `headers` on every HTTP response (WebSockets untouched).

    A header the application already set is left as it is, so a route may
    choose a stricter value of its own.
    """

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Assets(StaticFiles):
    """Static files that the browser revalidates (ETag) on every load, so a
    new version of the portal is picked up without stale modules mixing in."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_ui(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Serve the portal's pages from `app` and add the security headers."""
    app.add_middleware(SecurityHeaders)
    _headers_on_server_errors(app)
    index = static_dir / "index.html"

    @app.get("/", include_in_schema=False)
    def portal_page() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", _Assets(directory=static_dir), name="static")


def _headers_on_server_errors(app: FastAPI) -> None:
    """A 500 is answered by Starlette's ServerErrorMiddleware, which sits
    outside every middleware added with `add_middleware`: it gets the headers
    from the handler it calls instead (the portal's, or a bare 500)."""
    previous = app.exception_handlers.get(Exception)

    async def with_headers(request: Request, exc: Exception) -> Response:
        if previous is not None:
            answer = previous(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        else:
            response = PlainTextResponse("Internal Server Error", status_code=500)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.add_exception_handler(Exception, with_headers)
