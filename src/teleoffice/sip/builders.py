"""Small pure helpers that build SIP identifiers, requests and responses.

Everything that creates a message (the transaction layer's own ACKs, the UA
core, the registrar, the B2BUA) goes through these helpers, so the rules of
RFC 3261 about which header fields a response echoes (section 8.2.6) or what an
ACK and a CANCEL must copy (sections 17.1.1.3 and 9.1) live in one place.

Randomness is injected (`rand`, defaulting to `os.urandom`) so tests can make
branches and tags predictable without patching anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from teleoffice.sip.errors import LocalProtocolError, ParseError
from teleoffice.sip.headers import MAX_CSEQ, CSeq, NameAddr, Via
from teleoffice.sip.message import Headers, Request, Response
from teleoffice.sip.uri import Uri

Random = Callable[[int], bytes]

# RFC 3261 section 8.1.1.7: a branch that starts with this cookie promises to be
# unique across space and time, which is what lets section 17 match
# transactions by branch alone.
MAGIC_COOKIE = "z9hG4bK"

DEFAULT_MAX_FORWARDS = 70  # RFC 3261 section 8.1.1.6

# Reason phrases: every code of RFC 3261 section 21, plus those of the extensions
# teleoffice speaks (the RFC named on each line).  The phrase is only a hint for
# humans; peers act on the code.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",  # RFC 6228
    200: "OK",
    202: "Accepted",  # RFC 3265 (kept by RFC 6665 for REFER)
    204: "No Notification",  # RFC 5839
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",  # RFC 3903
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",  # RFC 4412
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",  # RFC 4028
    423: "Interval Too Brief",
    429: "Provide Referrer Identity",  # RFC 3892
    433: "Anonymity Disallowed",  # RFC 5079
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",  # RFC 6665
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",  # RFC 3329
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",  # RFC 3312
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

# For a code with no entry above, a phrase naming its class (RFC 3261 section 21:
# an unknown code is treated as the x00 code of its class anyway).
_CLASS_PHRASES = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(status: int) -> str:
    """The standard reason phrase for `status`."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return _CLASS_PHRASES.get(status // 100, "Unknown")


def new_branch(rand: Random = os.urandom) -> str:
    """A fresh Via branch: the magic cookie and 96 random bits."""
    return MAGIC_COOKIE + rand(12).hex()


def new_tag(rand: Random = os.urandom) -> str:
    """A From or To tag: 64 random bits (RFC 3261 section 19.3 asks for at least 32)."""
    return rand(8).hex()


def new_call_id(host: str, rand: Random = os.urandom) -> str:
    """A Call-ID: 128 random bits, then `@host` (RFC 3261 section 8.1.1.4)."""
    return f"{rand(16).hex()}@{host}"


def _check_status(status: int) -> None:
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"status {status} is not a SIP status code")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to `request` per RFC 3261 section 8.2.6.

    Via (every value, in order), From, Call-ID and CSeq are copied verbatim, so
    the response finds its way back and the client transaction matches it.  To
    is copied too; when it has no tag yet, one is added (`to_tag`, or a fresh
    one), because the tag is what identifies the UAS side of a dialog.  A 100
    Trying gets no tag unless one is asked for (section 8.2.6.2: it comes from
    the transaction, not from the UA, and creates no dialog), and it echoes any
    Timestamp (section 8.2.6.1).  A To that already has a tag keeps it: an
    in-dialog request names our own tag, and a response must not invent another.
    """
    _check_status(status)
    out = Headers()
    for via in request.headers.get_all("Via"):
        out.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is None:
            raise LocalProtocolError(f"cannot answer a request without {name}")
        out.add(name, _tagged_to(request, value, status, to_tag) if name == "To" else value)
    if status == 100:
        timestamp = request.headers.get("Timestamp")
        if timestamp is not None:
            out.add("Timestamp", timestamp)
    for name, value in headers:
        out.add(name, value)
    if content_type is not None:
        out.set("Content-Type", content_type)
    return Response(status, reason if reason is not None else reason_phrase(status), out, body)


def _tagged_to(request: Request, raw: str, status: int, to_tag: str | None) -> str:
    try:
        existing = request.to.tag
    except ParseError:
        existing = None
    if existing is not None:
        return raw
    if to_tag is None:
        if status == 100:
            return raw
        to_tag = new_tag()
    # Appending keeps the peer's spelling of the URI; in both name-addr and
    # addr-spec form a trailing ";tag=" is a header parameter (section 20).
    return f"{raw};tag={to_tag}"


def make_request(
    method: str,
    uri: Uri,
    *,
    from_: NameAddr,
    to: NameAddr,
    call_id: str,
    cseq: int,
    via: Via,
    contact: NameAddr | None = None,
    max_forwards: int = DEFAULT_MAX_FORWARDS,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """A request with the mandatory header fields of RFC 3261 section 8.1.1.

    `via` is the one Via this element adds (its branch makes the transaction);
    Route, Authorization and anything else go in `headers`, in order.
    """
    if not 0 <= cseq <= MAX_CSEQ:
        raise LocalProtocolError(f"CSeq number {cseq} out of range")
    if via.branch is None:
        raise LocalProtocolError("the Via of a new request needs a branch")
    out = Headers(
        [
            ("Via", str(via)),
            ("Max-Forwards", str(max_forwards)),
            ("From", str(from_)),
            ("To", str(to)),
            ("Call-ID", call_id),
            ("CSeq", str(CSeq(cseq, method))),
        ]
    )
    if contact is not None:
        out.add("Contact", str(contact))
    for name, value in headers:
        out.add(name, value)
    if content_type is not None:
        out.set("Content-Type", content_type)
    return Request(method, uri, out, body)


def _copy_identity(request: Request, method: str, to_value: str) -> Request:
    """The part ACK (non-2xx) and CANCEL share: both belong to the INVITE's
    transaction, so they copy its Request-URI, top Via (same branch), From,
    Call-ID, CSeq number and Route set."""
    vias = request.headers.get_all("Via")
    if not vias:
        raise LocalProtocolError(f"cannot build {method} for a request without Via")
    out = Headers([("Via", vias[0])])
    out.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
    from_value = request.headers.get("From")
    call_id = request.headers.get("Call-ID")
    if from_value is None or call_id is None:
        raise LocalProtocolError(f"cannot build {method} for a request without From/Call-ID")
    out.add("From", from_value)
    out.add("To", to_value)
    out.add("Call-ID", call_id)
    out.add("CSeq", str(CSeq(request.cseq.seq, method)))
    for route in request.headers.get_all("Route"):
        out.add("Route", route)
    return Request(method, request.uri, out)


def make_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """The ACK an INVITE client transaction sends for a 3xx-6xx (RFC 3261 section
    17.1.1.3): same branch as the INVITE, so it reaches the same server
    transaction, and the To of the response, whose tag the server added."""
    if invite.method != "INVITE" or not 300 <= response.status <= 699:
        raise LocalProtocolError("an ACK of this kind answers a 3xx-6xx to an INVITE")
    to_value = response.headers.get("To")
    if to_value is None:
        raise LocalProtocolError("the response has no To header field")
    return _copy_identity(invite, "ACK", to_value)


def make_cancel(invite: Request) -> Request:
    """A CANCEL for `invite` (RFC 3261 section 9.1).

    It copies the INVITE's To unchanged (no tag from any response: the CANCEL
    targets the transaction, not a dialog) and its top Via, so the server
    matches it to the INVITE server transaction (section 9.2).
    """
    if invite.method != "INVITE":
        raise LocalProtocolError("only an INVITE can be cancelled")
    to_value = invite.headers.get("To")
    if to_value is None:
        raise LocalProtocolError("the INVITE has no To header field")
    return _copy_identity(invite, "CANCEL", to_value)
