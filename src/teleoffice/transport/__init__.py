"""Moving SIP bytes over sockets (asyncio): UDP and TCP now, TLS and WebSocket later."""

from teleoffice.transport.sip_transport import SipTransport

__all__ = ["SipTransport"]
