"""Registering trunks with their provider, in memory against a digest-checking registrar."""

from __future__ import annotations

from teleoffice.server.trunk_registration import RegisteringTrunk, TrunkRegistrations
from teleoffice.sip.builders import make_response
from teleoffice.sip.digest import Algorithm, AuthOutcome, DigestServer, compute_ha1
from teleoffice.sip.message import Request, parse_message
from teleoffice.sip.registration_client import RegistrationState
from teleoffice.sip.transaction import (
    Address,
    ResponseReceived,
    TransactionLayer,
)

PROVIDER = Address("UDP", "127.0.0.1", 5090)
LOCAL = Address("UDP", "127.0.0.1", 5060)


def ha1_for(realm: str, family: Algorithm) -> str | None:
    return compute_ha1("acct", "prov.test", "secret", family) if realm == "prov.test" else None


def test_registers_answers_the_challenge_refreshes_and_unregisters() -> None:
    trunks = [RegisteringTrunk("prov", "127.0.0.1", 5090, "udp", "acct", 120, ha1_for)]
    tx = TransactionLayer()
    regs = TrunkRegistrations(transactions=tx, local=LOCAL, configured=lambda: list(trunks))
    provider = DigestServer("prov.test", b"p" * 32, algorithms=[Algorithm.MD5])
    now = 1000.0

    def provider_turn() -> list[Request]:
        """The provider answers every REGISTER: challenge, then 200 if the digest holds."""
        seen = []
        for raw, dest in tx.outgoing():
            assert dest == PROVIDER
            request = parse_message(raw)
            assert isinstance(request, Request)
            seen.append(request)
            header = request.headers.get("Authorization")
            if header is None:
                challenge = provider.challenge(now)
                response = make_response(
                    request, 401, headers=[("WWW-Authenticate", c) for c in challenge]
                )
            else:
                result = provider.verify(
                    method="REGISTER",
                    header_value=header,
                    lookup=lambda user, alg: ha1_for("prov.test", alg) if user == "acct" else None,
                    now=now,
                )
                assert result.outcome is AuthOutcome.OK
                expires = request.headers.get("Expires") or "120"
                response = make_response(
                    request, 200, headers=[("Contact", f"{request.contacts[0]};expires={expires}")]
                )
            for event in tx.receive(parse_message(response.to_bytes()), PROVIDER, now):
                if isinstance(event, ResponseReceived):
                    regs.response(event.key, event.response, now)
        return seen

    regs.handle_timers(now)
    first = provider_turn()
    second = provider_turn()
    assert [r.method for r in first + second] == ["REGISTER", "REGISTER"]
    assert str(first[0].uri) == "sip:127.0.0.1"
    assert str(first[0].to.uri) == "sip:acct@127.0.0.1"
    assert second[0].call_id == first[0].call_id
    assert second[0].cseq.seq == first[0].cseq.seq + 1
    assert regs.states() == {"prov": RegistrationState.REGISTERED}

    # A refresh comes before the registration runs out (at 80 % of 120 s).
    now += 97
    regs.handle_timers(now)
    refreshed = provider_turn() + provider_turn()
    assert [r.method for r in refreshed] == ["REGISTER", "REGISTER"]
    assert regs.states() == {"prov": RegistrationState.REGISTERED}

    # Dropping --register un-registers (Expires: 0) at the next sync.
    trunks.clear()
    now += 11
    regs.handle_timers(now)
    [unregister] = provider_turn()
    assert (
        unregister.headers.get("Expires") == "0" or unregister.contacts[0].param("expires") == "0"
    )
    assert regs.states() == {}
