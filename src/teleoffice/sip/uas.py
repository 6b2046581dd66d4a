"""UAS request checks of RFC 3261 section 8.2, done before any method-specific logic.

`check_request` returns the error response the UAS core must send, or None when the
request may go on to its handler.  The order follows section 8.2: method,
header inspection (URI scheme, Require), then content (Content-Type, Accept).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from teleoffice.sip.builders import make_response
from teleoffice.sip.errors import ParseError
from teleoffice.sip.message import Request, Response
from teleoffice.sip.uri import SipUri

# Methods defined by RFC 3261 and the extensions teleoffice knows of.  A method in
# this set that a server does not handle gets 405 with Allow; anything else is not
# recognised at all and gets 501 (RFC 3261 sections 8.2.1 and 21.5.2).
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UasPolicy:
    """What this UAS accepts; the defaults are teleoffice's."""

    allowed_methods: Collection[str]
    # Only what is really implemented: Path is stored with each binding (RFC 3327).
    supported: Collection[str] = ("path",)
    accepted_bodies: Collection[str] = ("application/sdp",)
    # Bodies teleoffice can produce in answers, checked against Accept for the
    # methods whose answers carry one.
    answer_bodies: dict[str, str] = field(default_factory=lambda: {"INVITE": "application/sdp"})

    @property
    def allow_header(self) -> str:
        return ", ".join(sorted(self.allowed_methods))


def check_request(request: Request, policy: UasPolicy) -> Response | None:
    make = make_response
    method = request.method
    if method not in policy.allowed_methods:
        if method in KNOWN_METHODS:
            return make(request, 405, headers=[("Allow", policy.allow_header)])
        return make(request, 501, headers=[("Allow", policy.allow_header)])

    # Section 8.2.2.1: a Request-URI scheme we do not understand is a 416.
    if not isinstance(request.uri, SipUri):
        return make(request, 416)

    # Section 8.2.2.3: Require with option tags we do not support gets 420 listing
    # them.  ACK and CANCEL are exempt (their Require is ignored).
    if method not in ("ACK", "CANCEL"):
        unsupported = [
            tag
            for tag in request.token_list("Require")
            if tag.lower() not in {s.lower() for s in policy.supported}
        ]
        if unsupported:
            return make(request, 420, headers=[("Unsupported", ", ".join(unsupported))])

    # Section 8.2.3: a body we cannot process, unless it is marked optional.  A
    # request inside a dialog is relayed to the far end, which decides what it
    # accepts (INFO with application/dtmf-relay, say), so only requests that
    # start something are checked here.
    in_dialog = "tag=" in (request.headers.get("To") or "")
    if request.body and method not in ("ACK", "CANCEL", "BYE") and not in_dialog:
        try:
            ctype = request.content_type
        except ParseError:
            return make(request, 400, reason="Bad Content-Type")
        disposition = (request.headers.get("Content-Disposition") or "").lower()
        optional = "handling=optional" in disposition.replace(" ", "")
        mime = ctype.mime if ctype is not None else "application/sdp"
        if not optional and not _acceptable_body(mime, request, policy):
            return make(
                request,
                415,
                headers=[
                    ("Accept", ", ".join(policy.accepted_bodies)),
                    ("Accept-Encoding", "identity"),
                ],
            )
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", ""):
            return make(request, 415, headers=[("Accept-Encoding", "identity")])

    # Section 8.2.3 / 21.4.7: the answer would carry a body type the caller does not accept.
    answer_type = policy.answer_bodies.get(method)
    accepts = request.headers.get_all("Accept")
    if answer_type is not None and accepts and not _accepted(answer_type, accepts):
        return make(request, 406, headers=[("Accept", answer_type)])
    return None


def _acceptable_body(mime: str, request: Request, policy: UasPolicy) -> bool:
    if mime in policy.accepted_bodies:
        return True
    # A multipart body is fine when one of its parts is something we accept; the
    # handler picks the part out (RFC 5621).
    if mime.startswith("multipart/"):
        lowered = request.body.lower()
        return any(f"content-type: {t}".encode() in lowered for t in policy.accepted_bodies)
    return False


def _accepted(mime: str, accepts: list[str]) -> bool:
    major = mime.split("/", 1)[0]
    for item in accepts:
        media = item.split(";", 1)[0].strip().lower()
        if media in (mime, f"{major}/*", "*/*"):
            return True
    return False
