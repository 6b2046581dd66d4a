"""Registration through sipp: digest challenge, bindings, refusals (RFC 3261 section 10).

Every test runs its own server (users alice 201/secret201 and bob 202/secret202) and
drives it with the scenarios under scenarios/, over UDP unless said otherwise.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Literal

import pytest

from teleoffice.bench.processes import LOOPBACK, wait_until
from tests.e2e.harness import (
    Server,
    SipMessage,
    Sipp,
    SippResult,
    contact_bindings,
    parse_challenge,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ACCOUNT = ("201", "secret201")


def contact_pattern(port: int, user: str = "201") -> re.Pattern[str]:
    """The contact URI a scenario registers from `port`, with nothing after the port."""
    return re.compile(rf"sip:{user}@{re.escape(LOOPBACK)}:{port}(?![0-9])")


def our_binding(response: SipMessage, port: int) -> dict[str, int | None]:
    pattern = contact_pattern(port)
    return {u: e for u, e in contact_bindings(response).items() if pattern.match(u)}


def listed(server: Server, port: int) -> list[str]:
    pattern = contact_pattern(port)
    return [line for line in server.registrations() if pattern.search(line)]


def statuses(result: SippResult) -> list[int]:
    return [r.status for r in result.responses]


def assert_no_binding(server: Server) -> None:
    # Give the server's batched database writes (every 0.2 s) time to happen.
    time.sleep(0.5)
    assert server.health()["registrations"] == 0
    assert server.registrations() == []


def register(
    sipp: Sipp, expires: int = 3600, transport: Literal["udp", "tcp"] = "udp"
) -> SippResult:
    result = sipp.run("register", auth=ACCOUNT, keys={"expires": str(expires)}, transport=transport)
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [401, 200], result.describe()
    return result


def test_register_with_digest_lists_the_binding(server: Server, sipp: Sipp) -> None:
    result = register(sipp, 3600)

    challenge = result.responses[0]
    params = parse_challenge(challenge.header_all("www-authenticate")[0])
    assert params.get("realm"), challenge.text()
    assert params.get("nonce"), challenge.text()
    ok = result.last_response
    ours = our_binding(ok, sipp.port)
    assert len(ours) == 1, f"200 does not list {sipp.contact_uri}:\n{ok.text()}"
    (expires,) = ours.values()
    assert expires is not None, f"no expires parameter on the Contact:\n{ok.text()}"
    assert 0 < expires <= 3600, ok.text()

    assert wait_until(lambda: server.health()["registrations"] == 1, 3), server.health()
    assert wait_until(lambda: len(listed(server, sipp.port)) == 1, 5), server.registrations()
    (line,) = listed(server, sipp.port)
    assert "201" in line.split()[0], line


def test_wrong_password_gets_a_fresh_challenge_and_no_binding(server: Server, sipp: Sipp) -> None:
    result = sipp.run("register_denied", auth=("201", "not-the-password"))
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [401, 401], result.describe()
    final = result.last_response
    params = parse_challenge(final.header_all("www-authenticate")[0])
    assert params.get("nonce"), final.text()
    # stale=true would invite the phone to retry the same wrong password forever.
    assert params.get("stale", "false").lower() != "true", final.text()
    assert_no_binding(server)


def _shape(response: SipMessage) -> tuple[object, ...]:
    """What a response reveals apart from per-request values (tags, nonces, ids)."""
    challenges = [parse_challenge(v) for v in response.header_all("www-authenticate")]
    return (
        response.status,
        response.reason,
        sorted({name.lower() for name, _ in response.headers}),
        [sorted((k, v) for k, v in c.items() if k not in {"nonce", "opaque"}) for c in challenges],
        response.body,
    )


def test_unknown_user_is_answered_like_a_wrong_password(
    server: Server, sipp: Sipp, tmp_path: Path
) -> None:
    wrong = sipp.run("register_denied", service="201", auth=("201", "not-the-password"))
    unknown = Sipp(server.sip_port, tmp_path / "sipp-unknown").run(
        "register_denied", service="999", auth=("999", "not-the-password")
    )
    assert wrong.returncode == 0, wrong.describe()
    assert unknown.returncode == 0, unknown.describe()
    assert statuses(unknown) == statuses(wrong) == [401, 401]
    for known_reply, unknown_reply in zip(wrong.responses, unknown.responses, strict=True):
        assert _shape(known_reply) == _shape(unknown_reply), (
            f"known account, wrong password:\n{known_reply.text()}\n"
            f"unknown account:\n{unknown_reply.text()}"
        )
    assert_no_binding(server)


def test_expires_zero_removes_the_binding(server: Server, sipp: Sipp) -> None:
    register(sipp, 3600)
    assert wait_until(lambda: server.health()["registrations"] == 1, 3), server.health()
    assert wait_until(lambda: len(listed(server, sipp.port)) == 1, 5), server.registrations()

    result = sipp.run("unregister", auth=ACCOUNT, keys={"expires": "0"})
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [401, 200], result.describe()
    assert our_binding(result.last_response, sipp.port) == {}, result.last_response.text()
    assert wait_until(lambda: server.health()["registrations"] == 0, 3), server.health()
    assert wait_until(lambda: server.registrations() == [], 5), server.registrations()


def test_register_over_tcp(server: Server, sipp: Sipp) -> None:
    result = register(sipp, 3600, transport="tcp")
    assert len(our_binding(result.last_response, sipp.port)) == 1, result.last_response.text()
    assert wait_until(lambda: server.health()["registrations"] == 1, 3), server.health()
    assert wait_until(lambda: len(listed(server, sipp.port)) == 1, 5), server.registrations()
    (line,) = listed(server, sipp.port)
    assert "tcp" in line.lower(), line


def test_query_register_lists_current_bindings(server: Server, sipp: Sipp, tmp_path: Path) -> None:
    other = Sipp(server.sip_port, tmp_path / "sipp-other")
    register(sipp, 3600)
    register(other, 1800)
    assert wait_until(lambda: server.health()["registrations"] == 2, 3), server.health()

    result = sipp.run("register_query", auth=ACCOUNT)
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [401, 200], result.describe()
    ok = result.last_response
    first, second = our_binding(ok, sipp.port), our_binding(ok, other.port)
    assert len(first) == 1, ok.text()
    assert len(second) == 1, ok.text()
    (first_expires,), (second_expires,) = first.values(), second.values()
    assert first_expires is not None, ok.text()
    assert 1800 < first_expires <= 3600, ok.text()
    assert second_expires is not None, ok.text()
    assert 0 < second_expires <= 1800, ok.text()
    # A query changes nothing.
    assert server.health()["registrations"] == 2


def test_interval_too_brief_gets_423_with_min_expires(server: Server, sipp: Sipp) -> None:
    result = sipp.run("register_too_brief", auth=ACCOUNT, keys={"expires": "10"})
    assert result.returncode == 0, result.describe()
    assert statuses(result) == [401, 423], result.describe()
    assert result.last_response.header("min-expires") == "60", result.last_response.text()
    assert_no_binding(server)
