"""FastAPI application factory.

Operational endpoints, `/healthz` for liveness checks and `/metrics` in the
Prometheus text format, and, when a `PortalContext` is given, the portal's REST
API and events WebSocket under /api. The metrics registry is passed in (no
module-level default registry), so tests and several servers in one process
never share state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from teleoffice import __version__
from teleoffice.portal import PortalContext, install_portal
from teleoffice.portal.app import OPENAPI_TAGS
from teleoffice.portal.ui import install_ui

DESCRIPTION = """\
teleoffice PBX.

**Portal API** (under `/api`, JSON). Log in with `POST /api/login`; send the
returned token as `Authorization: Bearer <token>` (browsers get an HttpOnly
session cookie instead; a write authenticated by that cookie must also send
`X-Teleoffice-CSRF: 1` from the same site). Every endpoint but `/api/login`,
`/healthz`, `/metrics` and the browser portal's pages (`/`, `/static/...`) needs
a login; `/api/admin/...` needs an administrator.

Errors are `{"error": {"code": ..., "message": ...}}` with a fitting status:
401 not logged in, 403 forbidden, 404 not found, 409 state conflict, 422 bad
input (nothing was changed), 429 too many login attempts or requests (see
Retry-After), 503 the PBX is at its total call limit.

**Live events**: WebSocket `/api/events` with the token as `?token=` or the
cookie. The first message is `{"type": "hello", "user", "state"}`; events
follow as JSON objects with a `type`. The server pings (`{"type": "ping"}`)
and expects a message back within two ping intervals. Close codes: 4401 not
logged in or session ended, 4408 no answer to pings, 4409 too many connections
for this user, 4429 fell behind (too many unread events; reconnect for a fresh
state).
"""


def create_http_app(
    *,
    registry: CollectorRegistry,
    status: Callable[[], dict[str, Any]],
    portal: PortalContext | None = None,
) -> FastAPI:
    app = FastAPI(
        title="teleoffice",
        version=__version__,
        description=DESCRIPTION if portal is not None else "teleoffice PBX: operational endpoints.",
        openapi_tags=[
            *(OPENAPI_TAGS if portal is not None else []),
            {"name": "operations", "description": "Health and metrics."},
        ],
    )

    @app.get(
        "/healthz", summary="Liveness and a short status of the SIP service", tags=["operations"]
    )
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, **status()})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response, tags=["operations"])
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    if portal is not None:
        install_portal(app, portal)
        install_ui(app)
    return app
