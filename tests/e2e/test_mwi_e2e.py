"""Message waiting indication through sipp (RFC 3842 over RFC 6665).

A phone SUBSCRIBEs to message-summary with digest credentials, gets the 200 and the
first NOTIFY (the mailbox state: no messages on a fresh server), unsubscribes inside
the dialog and gets the final NOTIFY. Every test runs its own server (users alice
201/secret201 and bob 202/secret202); the NOTIFYs are read from sipp's message trace
with the harness's own small parser.
"""

from __future__ import annotations

from typing import Literal

import pytest

from teleoffice.bench.processes import LOOPBACK
from tests.e2e.harness import Server, SipMessage, Sipp, SippResult, options

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ACCOUNT = ("201", "secret201")


def statuses(result: SippResult) -> list[int]:
    return [r.status for r in result.responses]


def notifies(result: SippResult) -> list[SipMessage]:
    return [
        t.message
        for t in result.trace
        if t.direction == "received" and t.message.start_line.startswith("NOTIFY ")
    ]


def body_lines(message: SipMessage) -> list[str]:
    text = message.body.decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def cseq_of(message: SipMessage) -> int:
    return int((message.header("cseq") or "0").split()[0])


def tag_of(value: str | None) -> str | None:
    if value is None:
        return None
    for param in value.split(";")[1:]:
        name, _, tag = param.partition("=")
        if name.strip().lower() == "tag":
            return tag.strip()
    return None


def subscribe(
    sipp: Sipp, expires: int | str, transport: Literal["udp", "tcp"] = "udp"
) -> tuple[SippResult, SipMessage, SipMessage, SipMessage]:
    """Run the scenario; the 200 to the SUBSCRIBE and the two NOTIFYs."""
    result = sipp.run(
        "mwi_subscribe", auth=ACCOUNT, keys={"expires": str(expires)}, transport=transport
    )
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [401, 200, 200], result.describe()
    ok = result.responses[1]
    first, final = notifies(result)
    return result, ok, first, final


ALLOW_EVENTS = "message-summary, presence, dialog"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_subscribe_notify_and_unsubscribe(
    server: Server, sipp: Sipp, transport: Literal["udp", "tcp"]
) -> None:
    result, ok, first, final = subscribe(sipp, 600, transport)

    assert ok.header("expires") == "600", ok.text()
    assert ok.header("contact"), ok.text()

    # The first NOTIFY: in the dialog of the 200, the active state, the body.
    assert first.header("call-id") == ok.header("call-id"), first.text()
    assert tag_of(first.header("from")) == tag_of(ok.header("to")), first.text()
    assert first.header("event") == "message-summary", first.text()
    state = (first.header("subscription-state") or "").replace(" ", "")
    assert state.startswith("active;expires="), first.text()
    assert 0 < int(state.split("=", 1)[1]) <= 600, first.text()
    assert first.header("content-type") == "application/simple-message-summary", first.text()
    # A fresh server: nobody has messages yet.
    assert body_lines(first) == [
        "Messages-Waiting: no",
        f"Message-Account: sip:201@{LOOPBACK}",
        "Voice-Message: 0/0",
    ], first.text()

    # The final NOTIFY after Expires: 0.
    assert (final.header("subscription-state") or "").replace(" ", "") == (
        "terminated;reason=timeout"
    ), final.text()
    assert final.header("event") == "message-summary", final.text()
    assert cseq_of(final) > cseq_of(first), final.text()
    assert result.successful == 1, result.describe()


def test_a_huge_expires_is_shortened_to_the_maximum(server: Server, sipp: Sipp) -> None:
    _, ok, first, _ = subscribe(sipp, 2**32 - 1)
    assert ok.header("expires") == "3600", ok.text()
    assert (first.header("subscription-state") or "").replace(" ", "") == ("active;expires=3600"), (
        first.text()
    )


# Packages teleoffice does not serve (registration state, conferences); presence
# and dialog are served since the presence work (see test_presence_e2e.py).
@pytest.mark.parametrize("event", ["reg", "conference"])
def test_an_unknown_event_package_gets_489_before_any_challenge(
    server: Server, sipp: Sipp, event: str
) -> None:
    result = sipp.run("mwi_bad_event", keys={"event": event})
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [489], result.describe()
    assert result.last_response.header("allow-events") == ALLOW_EVENTS


def test_the_server_advertises_the_event_package(server: Server, sipp: Sipp) -> None:
    answer = options(server.sip_port)
    assert answer is not None
    assert answer.status == 200, answer.text()
    assert "SUBSCRIBE" in (answer.header("allow") or ""), answer.text()
    assert answer.header("allow-events") == ALLOW_EVENTS, answer.text()
