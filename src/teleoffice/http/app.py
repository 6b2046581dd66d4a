"""FastAPI application factory.

Only operational endpoints for now: `/healthz` for liveness checks and `/metrics`
in the Prometheus text format.  The metrics registry is passed in (no module-level
default registry), so tests and several servers in one process never share state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from teleoffice import __version__


def create_http_app(
    *, registry: CollectorRegistry, status: Callable[[], dict[str, Any]]
) -> FastAPI:
    app = FastAPI(
        title="teleoffice",
        version=__version__,
        description="teleoffice PBX: operational endpoints (the portal API comes later).",
    )

    @app.get("/healthz", summary="Liveness and a short status of the SIP service")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, **status()})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
