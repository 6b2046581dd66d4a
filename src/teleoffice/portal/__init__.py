"""The web portal's REST API under /api and its live events WebSocket.

`install_portal(app, context)` adds it to the HTTP application; the
`PortalContext` carries the repositories, the event hub and the state snapshot
the composition root provides.
"""

from teleoffice.portal.app import create_portal_router, install_portal
from teleoffice.portal.deps import PortalContext
from teleoffice.portal.hub import EventHub
from teleoffice.portal.ratelimit import LoginLimiter, LoginLimits

__all__ = [
    "EventHub",
    "LoginLimiter",
    "LoginLimits",
    "PortalContext",
    "create_portal_router",
    "install_portal",
]
