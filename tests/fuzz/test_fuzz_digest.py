"""Fuzzing digest authentication headers (RFC 3261 section 22, RFC 7616, RFC 8760).

Both directions take hostile input: the server reads Authorization values
from anyone who can send a packet, and the trunk client reads
WWW-Authenticate challenges from a provider (or whoever spoofs one). The
properties, within the per-example deadline:

- `parse_auth_params` returns or raises `DigestError`;
- `DigestServer.verify` never raises and gives one of the outcomes;
- `choose_challenge`, `build_authorization` and `build_authorization_from_ha1`
  return or raise `DigestError` (the B2BUA and the trunk registration catch
  that and only that), and what they build parses again and carries the
  challenge's realm and nonce back unchanged.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from teleoffice.sip.digest import (
    Algorithm,
    AuthOutcome,
    DigestError,
    DigestServer,
    build_authorization,
    build_authorization_from_ha1,
    choose_challenge,
    compute_ha1,
    parse_auth_params,
)
from tests.fuzz.mutate import fuzzing, text_mutants

REALM = "teleoffice"
SECRET = b"fuzzing-secret-0123456789abcdef"
NOW = 1_900_000_000.0
USER, PASSWORD = "201", "s3cret"
URI = "sip:pbx.example"
ALGORITHMS = (Algorithm.SHA256, Algorithm.MD5, Algorithm.MD5_SESS, Algorithm.SHA256_SESS)


def fresh_server() -> DigestServer:
    """A server whose nonces are the same each time, so the seeds stay valid."""
    return DigestServer(REALM, SECRET, algorithms=ALGORITHMS, random_bytes=lambda n: b"\x5a" * n)


def lookup(username: str, family: Algorithm) -> str | None:
    return compute_ha1(USER, REALM, PASSWORD, family) if username == USER else None


def _answers() -> list[str]:
    challenges = fresh_server().challenge(NOW)
    nonce = parse_auth_params(challenges[0])[1]["nonce"]
    # RFC 2069 style, without qop: older phones still answer like this.
    no_qop = f'Digest realm="{REALM}", nonce="{nonce}", algorithm=MD5'
    auth_int = f'Digest realm="{REALM}", nonce="{nonce}", qop="auth-int", algorithm=SHA-256'
    values = [
        build_authorization(
            challenge=challenge, method="REGISTER", uri=URI, username=USER, password=PASSWORD
        )
        for challenge in [*challenges, no_qop, auth_int]
    ]
    return [*values, *challenges]


# What phones and providers send: our own challenges and the answers to them,
# and the shapes other stacks write (unquoted values, odd spacing, extra
# parameters, other schemes, several challenges in one value).
SEEDS = [
    *_answers(),
    'Digest username="201",realm="teleoffice",nonce="abc",uri="sip:pbx.example",'
    'response="0123456789abcdef0123456789abcdef",algorithm=MD5',
    "Digest username=201, realm=teleoffice, nonce=abc, uri=sip:pbx.example, "
    "response=0123456789abcdef0123456789abcdef, cnonce=xyz, nc=1, qop=auth",
    'Digest realm="sip.provider.example", domain="sip:provider.example", '
    'nonce="Yy1hYmMxMjM=", opaque="", stale=FALSE, algorithm=MD5, qop="auth,auth-int"',
    'Digest realm="a\\"b\\\\c", nonce="n", algorithm="SHA-256-sess", qop="auth"',
    "Basic YWxpY2U6c2VjcmV0",
    'Bearer realm="x", error="invalid_token"',
    'NTLM, Digest realm="r", nonce="n"',
]
DIGEST_TOKENS = (
    b'"',
    b"\\",
    b"\\\x01",
    b"\\\t",
    b",",
    b",,",
    b"=",
    b" = ",
    b"Digest ",
    b"realm=",
    b'nonce=""',
    b"qop=",
    b"nc=",
    b"nc=ffffffff",
    b"algorithm=",
    b"algorithm=SHA-512",
    b"cnonce=",
    b"opaque=",
    b"username=",
    b"response=",
    b"uri=",
    b"\t",
    b"\r\n ",
)


@fuzzing(scale=2)
@given(text_mutants(SEEDS, DIGEST_TOKENS, max_steps=4), st.binary(max_size=32))
def test_server_side_never_raises(value: str, body: bytes) -> None:
    try:
        scheme, params = parse_auth_params(value)
    except DigestError:
        pass
    else:
        assert scheme
        assert all(name == name.lower() for name in params)
    server = fresh_server()
    server.challenge(NOW)  # the nonce of the seeds is now known to this server
    for now in (NOW, NOW + 1000.0):  # fresh, then stale
        for method in ("REGISTER", "INVITE"):
            result = server.verify(
                method=method, header_value=value, lookup=lookup, now=now, body=body
            )
            assert isinstance(result.outcome, AuthOutcome)
            if result.ok:
                assert result.username == USER


def _check_built(value: str, challenge: str) -> None:
    """Our Authorization value parses and echoes the challenge's realm and nonce."""
    scheme, params = parse_auth_params(value)
    asked = parse_auth_params(challenge)[1]
    assert scheme == "Digest"
    assert params["realm"] == asked["realm"]
    assert params["nonce"] == asked["nonce"]
    assert params["uri"] == URI


@fuzzing(scale=2)
@given(st.lists(text_mutants(SEEDS, DIGEST_TOKENS, max_steps=4), min_size=1, max_size=3))
def test_client_side_returns_or_raises_digest_error(challenges: list[str]) -> None:
    try:
        chosen = choose_challenge(challenges)
    except DigestError:
        chosen = challenges[0]  # a caller may also answer the first one as it is
    try:
        value = build_authorization(
            challenge=chosen, method="INVITE", uri=URI, username=USER, password=PASSWORD
        )
    except DigestError:
        pass
    else:
        _check_built(value, chosen)
    try:
        value = build_authorization_from_ha1(
            challenge=chosen,
            method="INVITE",
            uri=URI,
            username=USER,
            ha1_for=lambda realm, family: compute_ha1(USER, realm, PASSWORD, family),
        )
    except DigestError:
        pass
    else:
        _check_built(value, chosen)
