"""The SIP service end to end in memory: bytes in, bytes out, a fake clock."""

from __future__ import annotations

import pytest

from teleoffice.calls.registrar import CommandKind, RegistrarLimits
from teleoffice.sip.digest import build_authorization
from teleoffice.sip.message import parse_message
from teleoffice.sip.transaction import Address
from tests.conformance.rfc4475 import EXPECTED_STATUS, load
from tests.unit.sipkit import exchange, make_service, register, register_bytes

NOW = 1_000_000.0


def options(branch: str = "z9hG4bKo1", extra: str = "") -> bytes:
    return (
        f"OPTIONS sip:201@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch={branch}\r\n"
        f"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:201@127.0.0.1>\r\nCall-ID: {branch}\r\n"
        f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def test_options_answered_with_capabilities() -> None:
    service = make_service()
    [answer] = exchange(service, options(), NOW)
    assert answer.status == 200
    assert {"INVITE", "REGISTER", "OPTIONS", "ACK", "CANCEL", "BYE"} <= set(
        answer.token_list("Allow")
    )
    assert answer.headers.get("Accept") == "application/sdp"
    assert answer.to.tag is not None


def test_retransmitted_request_gets_the_same_answer_without_new_work() -> None:
    service = make_service()
    [first] = exchange(service, register_bytes(call_id="r"), NOW)
    [again] = exchange(service, register_bytes(call_id="r").replace(b"z9hG4bK", b"z9hG4bK", 1), NOW)
    assert first.status == again.status == 401
    # A true retransmission (same branch) is absorbed by the transaction layer.
    data = options("z9hG4bKsame")
    [a] = exchange(service, data, NOW)
    # Timers run in between (regression: responses were stamped with time 0, so
    # the transaction ended at the next tick and the copy was handled afresh).
    service.handle_timers(NOW + 0.5)
    [b] = exchange(service, data, NOW + 1.0)
    assert a.to.tag == b.to.tag
    assert service.transactions.transaction_count() == 3
    service.handle_timers(NOW + 40)
    assert service.transactions.transaction_count() == 0


def test_register_with_digest_stores_binding_and_lists_it() -> None:
    service = make_service()
    ok = register(service, NOW, expires=600)
    assert ok.status == 200
    [contact] = ok.contacts
    assert str(contact.uri) == "sip:201@127.0.0.1:5062"
    assert contact.param("expires") == "600"
    [binding] = service.registrar.lookup("201", NOW)
    assert binding.source == Address("UDP", "127.0.0.1", 5062)
    [command] = service.take_commands()
    assert command.kind is CommandKind.SAVE


def test_wrong_password_and_unknown_user_get_the_same_answer() -> None:
    service = make_service()
    wrong = exchange(service, register_bytes(), NOW)[0]

    def attempt(user: str, password: str) -> tuple[int, list[str]]:
        [challenge] = exchange(service, register_bytes(user), NOW)
        auth = build_authorization(
            challenge=challenge.headers.get_all("WWW-Authenticate")[0],
            method="REGISTER",
            uri="sip:127.0.0.1",
            username=user,
            password=password,
        )
        [answer] = exchange(service, register_bytes(user, authorization=auth), NOW)
        names = sorted(
            n for n, _ in answer.headers if n not in ("Via", "From", "To", "Call-ID", "CSeq")
        )
        return answer.status, names

    assert wrong.status == 401
    assert attempt("201", "not-it") == attempt("999", "whatever")
    assert attempt("201", "not-it")[0] == 401
    assert service.registrar.count() == 0
    assert service.counters.auth_failures == 3


def test_stale_nonce_gets_stale_challenge() -> None:
    service = make_service()
    [challenge] = exchange(service, register_bytes(), NOW)
    auth = build_authorization(
        challenge=challenge.headers.get_all("WWW-Authenticate")[0],
        method="REGISTER",
        uri="sip:127.0.0.1",
        username="201",
        password="secret201",
    )
    [answer] = exchange(service, register_bytes(authorization=auth), NOW + 301)
    assert answer.status == 401
    assert "stale=true" in answer.headers.get_all("WWW-Authenticate")[0]


def test_cannot_register_someone_elses_account() -> None:
    service = make_service({"201": "a", "202": "b"})
    response = register(service, NOW, user="202", password="b", extra="")
    assert response.status == 200
    # Authenticated as 201 but asking for 202's address of record.
    [challenge] = exchange(service, register_bytes("201"), NOW)
    auth = build_authorization(
        challenge=challenge.headers.get_all("WWW-Authenticate")[0],
        method="REGISTER",
        uri="sip:127.0.0.1",
        username="201",
        password="a",
    )
    data = register_bytes("201", authorization=auth).replace(b"To: <sip:201@", b"To: <sip:202@")
    [answer] = exchange(service, data, NOW)
    assert answer.status == 403


def test_min_expires_and_max_expires() -> None:
    service = make_service(limits=RegistrarLimits(min_expires=60, max_expires=3600))
    too_short = register(service, NOW, expires=10)
    assert too_short.status == 423
    assert too_short.headers.get("Min-Expires") == "60"
    assert service.registrar.count() == 0
    capped = register(service, NOW, expires=99999)
    assert capped.contacts[0].param("expires") == "3600"


def test_query_wildcard_and_expiry() -> None:
    service = make_service()
    register(service, NOW, contact="<sip:201@127.0.0.1:5062>", expires=120, call_id="a")
    register(service, NOW, contact="<sip:201@127.0.0.1:5064>;q=0.5", expires=600, call_id="b")
    query = register(service, NOW, contact=None, call_id="c")
    assert query.status == 200
    assert len(query.contacts) == 2
    # Expiry removes the short binding on time, with a DELETE for the store.
    service.take_commands()
    service.handle_timers(NOW + 121)
    assert [b.uri for b in service.registrar.lookup("201", NOW + 121)] == ["sip:201@127.0.0.1:5064"]
    assert [c.kind for c in service.take_commands()] == [CommandKind.DELETE]
    # Wildcard needs Expires: 0 and removes everything.
    bad = register(service, NOW + 122, contact="*", expires=10, call_id="d")
    assert bad.status == 400
    cleared = register(service, NOW + 122, contact="*", expires=0, call_id="d")
    assert cleared.status == 200
    assert cleared.contacts == []
    assert service.registrar.count() == 0


def test_cseq_must_grow_within_a_call_id() -> None:
    service = make_service()
    assert register(service, NOW, call_id="same", cseq=5).status == 200
    assert register(service, NOW, call_id="same", cseq=5).status == 400
    assert register(service, NOW, call_id="same", cseq=7).status == 200


def test_unregister_one_contact() -> None:
    service = make_service()
    register(service, NOW, expires=600)
    gone = register(service, NOW, contact="<sip:201@127.0.0.1:5062>;expires=0")
    assert gone.status == 200
    assert gone.contacts == []
    assert service.registrar.count() == 0


def test_too_many_contacts_changes_nothing() -> None:
    service = make_service(limits=RegistrarLimits(max_contacts=2))
    register(service, NOW, contact="<sip:201@h1>, <sip:201@h2>", call_id="x")
    refused = register(service, NOW, contact="<sip:201@h3>", call_id="y")
    assert refused.status == 403
    assert sorted(b.uri for b in service.registrar.lookup("201", NOW)) == [
        "sip:201@h1",
        "sip:201@h2",
    ]


def test_contact_parameters_kept_faithfully() -> None:
    service = make_service()
    contact = '<sip:201@127.0.0.1:5062;transport=tcp;ob>;+sip.instance="<urn:uuid:abc>";reg-id=1'
    ok = register(service, NOW, contact=contact, expires=300)
    [listed] = ok.contacts
    assert listed.uri == parse_message(register_bytes(contact=contact)).contacts[0].uri
    assert listed.param("+sip.instance") == '"<urn:uuid:abc>"'
    [binding] = service.registrar.lookup("201", NOW)
    assert binding.instance_id == "<urn:uuid:abc>;reg-id=1"
    # The same instance registering from a new address replaces its old binding.
    moved = contact.replace("5062", "5070")
    ok = register(service, NOW, contact=moved, expires=300, call_id="other")
    assert [str(c.uri) for c in ok.contacts] == ["sip:201@127.0.0.1:5070;transport=tcp;ob"]


def test_unauthenticated_invite_is_challenged_whatever_the_number() -> None:
    service = make_service()
    invite = options().replace(b"OPTIONS", b"INVITE")
    [known] = exchange(service, invite, NOW)
    unknown = invite.replace(b"INVITE sip:201@", b"INVITE sip:999@")
    [other] = exchange(service, unknown.replace(b"z9hG4bKo1", b"z9hG4bKo2"), NOW)
    assert known.status == other.status == 401


def test_require_unknown_extension_gets_420() -> None:
    service = make_service()
    [answer] = exchange(service, options(extra="Require: foo, path\r\n"), NOW)
    assert answer.status == 420
    assert answer.headers.get("Unsupported") == "foo"


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_rfc4475_answers(name: str) -> None:
    service = make_service()
    source = Address("UDP", "127.0.0.1", 40000)
    service.receive(load(name), source, NOW)
    statuses = []
    for raw, destination in service.outgoing():
        assert b"Traceback" not in raw
        # Read the status line only: a 400 echoes the sender's broken headers.
        assert raw.startswith(b"SIP/2.0 ")
        statuses.append(int(raw[8:11]))
        # Answers only ever go back to the sender's address, never a broadcast.
        assert destination.host == "127.0.0.1"
    expected = EXPECTED_STATUS[name]
    assert statuses == ([] if expected is None else [expected])
    assert service.registrar.count() == 0
    # Whatever it was, the service still answers.
    service.receive(options("z9hG4bKafter"), source, NOW)
    assert [parse_message(r).status for r, _ in service.outgoing()] == [200]  # type: ignore[union-attr]


def test_a_refreshed_binding_outlives_its_first_expiry() -> None:
    service = make_service()
    register(service, NOW, expires=120, call_id="r", cseq=1)
    register(service, NOW + 60, expires=600, call_id="r", cseq=2)
    assert service.next_timer() is not None
    service.handle_timers(NOW + 121)
    assert service.registrar.count() == 1
    assert service.take_commands()[-1].kind is CommandKind.SAVE
    service.handle_timers(NOW + 661)
    assert service.registrar.count() == 0
    assert service.registrar.next_expiry() is None
