"""Errors of the SIP core.

Following h11, an error says *who* broke the protocol: the peer (a message we
received is malformed or out of place) or the local side (our own code asked for
something the protocol does not allow).  A remote error carries the status code
a UAS should answer with, when an answer can be addressed at all.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error the SIP core raises on purpose."""


class RemoteProtocolError(SipError):
    """The peer sent something the protocol does not allow."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ParseError(RemoteProtocolError):
    """A message, header field or URI could not be parsed.

    `status` is the response a UAS sends when it can (400 for bad syntax, 505 for a
    version it does not speak, 416 for a URI scheme it does not know).
    """


class LocalProtocolError(SipError):
    """Our own code tried something the protocol does not allow (a bug on our side)."""
