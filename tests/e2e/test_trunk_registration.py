"""teleoffice registers a trunk with its provider (sipp as the provider's registrar)."""

from __future__ import annotations

import pytest

from teleoffice.bench.processes import free_port, wait_until
from tests.e2e.calls_kit import CallLab, received
from tests.e2e.harness import parse_message

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_trunk_registers_with_digest_and_shows_it(lab: CallLab) -> None:
    trunk_port = free_port()
    server = lab.server(
        setup=[
            [
                "trunk", "add", "prov",
                "--host", "127.0.0.1", "--port", str(trunk_port), "--prefix", "9",
                "--username", "acct", "--password", "secret", "--realm", "provider.test",
                "--register", "--register-expires", "120",
            ]
        ]
    )  # fmt: skip
    registrar = lab.sipp("trunk_registrar", server, port=trunk_port, timeout=20).start()
    result = registrar.wait(20)
    # sipp's verifyauth accepted the digest computed from the stored HA1 alone.
    assert result.returncode == 0, result.describe()
    first, second = (parse_message(t.encode()) for t in received(result, "REGISTER "))
    assert first.header("authorization") is None
    assert first.header("call-id") == second.header("call-id")
    assert 'username="acct"' in (second.header("authorization") or "")
    contact = second.header("contact") or ""
    assert f":{server.sip_port}" in contact, contact

    def registered() -> bool:
        return bool(server.health().get("trunks", {}).get("prov") == "registered")

    assert wait_until(registered, 10), server.health()
