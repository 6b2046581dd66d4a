"""Digest authentication: RFC vectors, server/client round trips and hostile input."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.sip import digest
from teleoffice.sip.digest import (
    MAX_HEADER_LENGTH,
    Algorithm,
    AuthOutcome,
    AuthResult,
    DigestError,
    DigestServer,
    build_authorization,
    choose_challenge,
    compute_ha1,
    parse_auth_params,
)

REALM = "office.example.com"
SECRET = b"unit-test-secret-0123456789abcdef"
T0 = 1_000_000.0
URI = "sip:office.example.com"
PASSWORDS = {"alice": "wonderland", "bob": "builder"}

Lookup = Callable[[str, Algorithm], str | None]


def make_lookup(calls: list[tuple[str, Algorithm]] | None = None) -> Lookup:
    """A store of HA1s per hash family, as the real account store keeps them."""
    table = {
        (user, family): compute_ha1(user, REALM, password, family)
        for user, password in PASSWORDS.items()
        for family in (Algorithm.MD5, Algorithm.SHA256)
    }

    def lookup(username: str, algorithm: Algorithm) -> str | None:
        if calls is not None:
            calls.append((username, algorithm))
        return table.get((username, algorithm))

    return lookup


def make_server(**kwargs: object) -> DigestServer:
    return DigestServer(REALM, SECRET, **kwargs)  # type: ignore[arg-type]


def answer(
    challenge: str,
    *,
    username: str = "alice",
    password: str | None = None,
    method: str = "REGISTER",
    nc: int = 1,
    body: bytes = b"",
) -> str:
    return build_authorization(
        challenge=challenge,
        method=method,
        uri=URI,
        username=username,
        password=PASSWORDS.get(username, "x") if password is None else password,
        nc=nc,
        body=body,
    )


def verify(
    server: DigestServer,
    header: str,
    *,
    now: float = T0,
    method: str = "REGISTER",
    body: bytes = b"",
    lookup: Lookup | None = None,
) -> AuthResult:
    return server.verify(
        method=method,
        header_value=header,
        lookup=lookup or make_lookup(),
        now=now,
        body=body,
    )


def with_param(header: str, name: str, value: str) -> str:
    """`header` with parameter `name` replaced by the (already quoted) `value`."""
    scheme, params = parse_auth_params(header)
    bare = {"algorithm", "qop", "nc", "stale"}
    parts = [
        f"{key}={val}" if key in bare else f'{key}="{val}"'
        for key, val in params.items()
        if key != name
    ]
    parts.append(f"{name}={value}")
    return scheme + " " + ", ".join(parts)


# --- RFC test vectors ---------------------------------------------------------


def test_rfc2617_section_3_5_example() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = build_authorization(
        challenge=challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    scheme, params = parse_auth_params(header)
    assert scheme == "Digest"
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["qop"] == "auth"
    assert params["nc"] == "00000001"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert params["uri"] == "/dir/index.html"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_example(algorithm: str, expected: str) -> None:
    challenge = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    header = build_authorization(
        challenge=challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    _, params = parse_auth_params(header)
    assert params["response"] == expected
    assert params["algorithm"] == algorithm


def test_compute_ha1_per_family() -> None:
    md5 = hashlib.md5(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    sha = hashlib.sha256(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    assert compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == md5
    assert compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", Algorithm.SHA256) == sha
    # The -sess variants store the same value as their family.
    assert compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", Algorithm.MD5_SESS) == md5
    assert (
        compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", Algorithm.SHA256_SESS) == sha
    )


def test_algorithm_parsing_is_case_insensitive() -> None:
    assert Algorithm.parse("md5") is Algorithm.MD5
    assert Algorithm.parse("Md5-SeSs") is Algorithm.MD5_SESS
    assert Algorithm.parse("sha-256") is Algorithm.SHA256
    assert Algorithm("SHA-256-SESS") is Algorithm.SHA256_SESS
    assert Algorithm.SHA256_SESS.base is Algorithm.SHA256
    assert Algorithm.MD5_SESS.is_session
    assert not Algorithm.SHA256.is_session
    with pytest.raises(DigestError):
        Algorithm.parse("SHA-512-256")


# --- parse_auth_params ----------------------------------------------------------


def test_parse_auth_params_basic() -> None:
    scheme, params = parse_auth_params(
        'Digest realm="x", nonce="y", qop="auth,auth-int", algorithm=SHA-256, nc=00000001'
    )
    assert scheme == "Digest"
    assert params == {
        "realm": "x",
        "nonce": "y",
        "qop": "auth,auth-int",
        "algorithm": "SHA-256",
        "nc": "00000001",
    }


def test_parse_auth_params_escapes_lws_and_case() -> None:
    scheme, params = parse_auth_params(
        ' digest  Realm = "a \\"quoted\\" \\\\ realm" ,NONCE="n,=x" ,\t,  uri = "sip:a@b;x=y", '
        "Stale=TRUE,"
    )
    assert scheme == "digest"
    assert params == {
        "realm": 'a "quoted" \\ realm',
        "nonce": "n,=x",
        "uri": "sip:a@b;x=y",
        "stale": "TRUE",
    }


def test_parse_auth_params_scheme_only_and_non_ascii() -> None:
    assert parse_auth_params("Digest") == ("Digest", {})
    assert parse_auth_params('Digest username="Jäsøn"')[1] == {"username": "Jäsøn"}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        '"Digest" realm="x"',
        'Digest,realm="x"',
        'Digest realm="x", realm="y"',
        'Digest realm="x", REALM="y"',
        'Digest realm="x',
        'Digest realm="x\\',
        'Digest realm="a\nb"',
        "Digest realm",
        "Digest realm=",
        "Digest realm=, nonce=x",
        'Digest realm="x" nonce="y"',
        'Digest realm="x"; nonce="y"',
        'Digest =x, realm="y"',
        'Digest realm="x", nonce=a"b"',
        "Digest " + "a=b, " * 1000,
        'Digest realm="' + "x" * MAX_HEADER_LENGTH + '"',
    ],
)
def test_parse_auth_params_rejects(value: str) -> None:
    with pytest.raises(DigestError):
        parse_auth_params(value)


# --- server and client together -------------------------------------------------


def test_challenge_values() -> None:
    server = make_server(algorithms=(Algorithm.MD5, Algorithm.SHA256))
    values = server.challenge(T0)
    assert len(values) == 2
    parsed = [parse_auth_params(v) for v in values]
    assert [p["algorithm"] for _, p in parsed] == ["SHA-256", "MD5"]  # RFC 8760 order
    for scheme, params in parsed:
        assert scheme == "Digest"
        assert params["realm"] == REALM
        assert params["qop"] == "auth"
        assert params["opaque"]
        assert "stale" not in params
    assert parsed[0][1]["nonce"] == parsed[1][1]["nonce"]
    stale = [parse_auth_params(v)[1] for v in server.challenge(T0, stale=True)]
    assert all(p["stale"] == "true" for p in stale)
    assert stale[0]["nonce"] != parsed[0][1]["nonce"]


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("qop", ["auth", "auth-int", None])
def test_round_trip(algorithm: Algorithm, qop: str | None) -> None:
    server = make_server(algorithms=(algorithm,))
    (challenge,) = server.challenge(T0)
    if qop is None:
        challenge = challenge.replace(', qop="auth"', "")
    else:
        challenge = challenge.replace('qop="auth"', f'qop="{qop}"')
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    header = answer(challenge, method="INVITE", body=body)
    assert (qop is None) == ("qop" not in parse_auth_params(header)[1])
    result = verify(server, header, now=T0 + 1, method="INVITE", body=body)
    assert result == AuthResult(AuthOutcome.OK, "alice", URI, algorithm)
    assert result.ok


def test_auth_int_covers_the_body() -> None:
    server = make_server()
    challenge = server.challenge(T0)[0].replace('qop="auth"', 'qop="auth-int"')
    header = answer(challenge, method="MESSAGE", body=b"hello")
    assert verify(server, header, method="MESSAGE", body=b"hellO").outcome is AuthOutcome.FAILED
    assert verify(server, header, method="MESSAGE", body=b"hello").outcome is AuthOutcome.OK


def test_method_is_covered() -> None:
    server = make_server()
    header = answer(server.challenge(T0)[0], method="REGISTER")
    assert verify(server, header, method="INVITE").outcome is AuthOutcome.FAILED


def test_successive_counts_and_replay() -> None:
    server = make_server()
    challenge = server.challenge(T0)[0]
    for nc in (1, 2, 5):
        assert verify(server, answer(challenge, nc=nc)).outcome is AuthOutcome.OK
    for nc in (5, 3, 1):  # the same count again, or an older one, is a replay
        assert verify(server, answer(challenge, nc=nc)).outcome is AuthOutcome.FAILED
    assert verify(server, answer(challenge, nc=6)).outcome is AuthOutcome.OK


def test_without_qop_a_nonce_is_good_once() -> None:
    server = make_server()
    challenge = server.challenge(T0)[0].replace(', qop="auth"', "")
    header = answer(challenge)
    assert verify(server, header).outcome is AuthOutcome.OK
    assert verify(server, header).outcome is AuthOutcome.FAILED
    with_qop = answer(challenge.replace("opaque", 'qop="auth", opaque'), nc=7)
    assert verify(server, with_qop).outcome is AuthOutcome.FAILED


def test_stale_nonce() -> None:
    server = make_server(nonce_ttl=30.0)
    challenge = server.challenge(T0)[0]
    assert verify(server, answer(challenge), now=T0 + 30).outcome is AuthOutcome.OK
    late = verify(server, answer(challenge, nc=2), now=T0 + 31)
    assert late.outcome is AuthOutcome.STALE
    assert late.username == "alice"
    # Staleness is only revealed to someone who knows the password.
    wrong = answer(challenge, nc=3, password="guess")
    assert verify(server, wrong, now=T0 + 31).outcome is AuthOutcome.FAILED
    # A clock that went backwards also makes the nonce stale, not valid.
    assert verify(server, answer(challenge, nc=4), now=T0 - 5).outcome is AuthOutcome.STALE


def test_nonce_of_a_restarted_server_is_stale() -> None:
    challenge = make_server().challenge(T0)[0]
    restarted = make_server()  # same secret, empty replay table
    assert verify(restarted, answer(challenge)).outcome is AuthOutcome.STALE


def test_forged_nonce() -> None:
    server = make_server()
    challenge = server.challenge(T0)[0]
    nonce = parse_auth_params(challenge)[1]["nonce"]
    calls: list[tuple[str, Algorithm]] = []
    lookup = make_lookup(calls)
    # One character changed: the time or the random part no longer matches its MAC.
    flipped = ("B" if nonce[0] == "A" else "A") + nonce[1:]
    forged = [
        flipped,
        nonce[:-1] + ("B" if nonce[-1] == "A" else "A"),
        "A" * len(nonce),
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        parse_auth_params(DigestServer(REALM, b"other secret").challenge(T0)[0])[1]["nonce"],
        parse_auth_params(DigestServer("other.realm", SECRET).challenge(T0)[0])[1]["nonce"],
    ]
    for bad in forged:
        header = answer(challenge.replace(nonce, bad))
        result = verify(server, header, lookup=lookup)
        assert result.outcome is AuthOutcome.FAILED, bad
    assert calls == []  # rejected before any account lookup


def test_altered_opaque() -> None:
    server = make_server()
    challenge = server.challenge(T0)[0]
    header = answer(challenge)
    assert verify(server, with_param(header, "opaque", '"0000"')).outcome is AuthOutcome.FAILED
    # A client that drops opaque is still accepted (the nonce carries the state).
    _, params = parse_auth_params(header)
    without = header.replace(f', opaque="{params["opaque"]}"', "")
    assert "opaque" not in parse_auth_params(without)[1]
    assert verify(server, without).outcome is AuthOutcome.OK


def test_nonce_is_bound_to_its_first_user() -> None:
    server = make_server()
    challenge = server.challenge(T0)[0]
    assert verify(server, answer(challenge, username="alice")).outcome is AuthOutcome.OK
    stolen = verify(server, answer(challenge, username="bob"))
    assert stolen == AuthResult(AuthOutcome.FAILED, "bob", URI)
    assert verify(server, answer(challenge, username="alice", nc=2)).outcome is AuthOutcome.OK
    fresh = server.challenge(T0)[0]
    assert verify(server, answer(fresh, username="bob")).outcome is AuthOutcome.OK


def test_failed_attempts_do_not_claim_the_nonce() -> None:
    server = make_server()
    challenge = server.challenge(T0)[0]
    wrong = answer(challenge, username="bob", password="nope", nc=9)
    assert verify(server, wrong).outcome is AuthOutcome.FAILED
    assert verify(server, answer(challenge, username="alice")).outcome is AuthOutcome.OK


def test_unknown_user_is_indistinguishable_from_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hashes = itertools.count()
    real = digest._hex_digest

    def counting(algorithm: Algorithm, data: bytes) -> str:
        next(hashes)
        return real(algorithm, data)

    server = make_server()
    monkeypatch.setattr(digest, "_hex_digest", counting)

    def attempt(username: str, algorithm: Algorithm) -> tuple[AuthResult, int, list[object]]:
        challenge = next(
            c for c in server.challenge(T0) if parse_auth_params(c)[1]["algorithm"] == algorithm
        )
        header = answer(challenge, username=username, password="not-the-password")
        calls: list[tuple[str, Algorithm]] = []
        lookup = make_lookup(calls)
        before = next(hashes)
        result = verify(server, header, lookup=lookup)
        return result, next(hashes) - before, list(calls)

    for algorithm in (Algorithm.SHA256, Algorithm.MD5):
        known, known_work, known_calls = attempt("alice", algorithm)
        unknown, unknown_work, unknown_calls = attempt("mallory", algorithm)
        assert known.outcome is unknown.outcome is AuthOutcome.FAILED
        assert known == AuthResult(AuthOutcome.FAILED, "alice", URI)
        assert unknown == AuthResult(AuthOutcome.FAILED, "mallory", URI)
        assert known_calls == [("alice", algorithm)]
        assert unknown_calls == [("mallory", algorithm)]
        assert unknown_work == known_work > 1  # the unknown path hashes as much


def test_session_algorithms_look_up_their_family() -> None:
    server = make_server(algorithms=(Algorithm.SHA256_SESS, Algorithm.MD5_SESS))
    calls: list[tuple[str, Algorithm]] = []
    for index in (0, 1):  # one nonce per attempt: the challenges share theirs
        challenge = server.challenge(T0)[index]
        assert verify(server, answer(challenge), lookup=make_lookup(calls)).ok
    assert calls == [("alice", Algorithm.SHA256), ("alice", Algorithm.MD5)]


def test_algorithm_not_offered() -> None:
    server = make_server(algorithms=(Algorithm.SHA256,))
    challenge = server.challenge(T0)[0]
    md5 = answer(challenge.replace("SHA-256", "MD5"))
    assert verify(server, md5).outcome is AuthOutcome.FAILED
    unknown = with_param(answer(challenge), "algorithm", "SHA-512")
    assert verify(server, unknown).outcome is AuthOutcome.FAILED
    # No algorithm parameter means MD5 (RFC 2617 section 3.2.1).
    bare = answer(challenge.replace(", algorithm=SHA-256", "").replace("SHA-256", "MD5"))
    assert "MD5" in bare
    assert verify(server, bare.replace(", algorithm=MD5", "")).outcome is AuthOutcome.FAILED
    both = make_server()
    both_challenge = both.challenge(T0)[1]
    assert "algorithm=MD5" in both_challenge
    header = answer(both_challenge).replace(", algorithm=MD5", "")
    assert verify(both, header).outcome is AuthOutcome.OK


def test_wrong_realm() -> None:
    server = make_server()
    header = answer(server.challenge(T0)[0])
    for realm in ("elsewhere.example.com", REALM.upper()):
        result = verify(server, with_param(header, "realm", f'"{realm}"'))
        assert result == AuthResult(AuthOutcome.NO_CREDENTIALS)


@pytest.mark.parametrize(
    "value",
    [
        'NewAuth realm="office.example.com", opaque-data=here',
        "NoOneKnowsThisScheme opaque-data=here",  # RFC 4475 test regaut01
        "Basic YWxpY2U6d29uZGVybGFuZA==",
        "Bearer abc.def.ghi",
    ],
)
def test_other_schemes_mean_no_credentials(value: str) -> None:
    result = verify(make_server(), value)
    assert result == AuthResult(AuthOutcome.NO_CREDENTIALS)


def test_malformed_credentials() -> None:
    server = make_server()
    good = answer(server.challenge(T0)[0])
    _, params = parse_auth_params(good)
    broken = [
        "",
        "   ",
        '"Digest"',
        good + ', realm="again"',
        good[: good.index('", algorithm=')],  # cut inside the response value
        good.replace('", ', '" ', 1),
        with_param(good, "response", '"not hex"'),
        with_param(good, "response", '""'),
        with_param(good, "nc", "xyz"),
        with_param(good, "nc", "123456789"),
        with_param(good, "cnonce", '""'),
        good + ", " + "x" * MAX_HEADER_LENGTH,
    ]
    broken += [
        "Digest " + ", ".join(f'{k}="{v}"' for k, v in params.items() if k != missing)
        for missing in ("username", "realm", "nonce", "uri", "response")
    ]
    for value in broken:
        assert verify(server, value).outcome is AuthOutcome.MALFORMED, value
    assert verify(server, with_param(good, "qop", "auth-conf")).outcome is AuthOutcome.FAILED


def test_nonce_table_is_bounded() -> None:
    server = make_server(max_nonces=3)
    challenges = [server.challenge(T0 + i)[0] for i in range(5)]
    assert server.active_nonces == 3
    assert verify(server, answer(challenges[0]), now=T0 + 5).outcome is AuthOutcome.STALE
    assert verify(server, answer(challenges[4]), now=T0 + 5).outcome is AuthOutcome.OK


def test_expired_nonces_are_forgotten() -> None:
    server = make_server(nonce_ttl=10.0)
    for i in range(4):
        server.challenge(T0 + i)
    assert server.active_nonces == 4
    server.challenge(T0 + 12.5)  # the first three are now older than the TTL
    assert server.active_nonces == 2


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="secret"):
        DigestServer(REALM, b"")
    with pytest.raises(ValueError, match="nonce_ttl"):
        DigestServer(REALM, SECRET, nonce_ttl=0)
    with pytest.raises(ValueError, match="max_nonces"):
        DigestServer(REALM, SECRET, max_nonces=0)
    with pytest.raises(ValueError, match="algorithm"):
        DigestServer(REALM, SECRET, algorithms=())
    with pytest.raises(ValueError, match="control"):
        DigestServer("bad\r\nrealm", SECRET)


def test_realm_with_quotes_round_trips() -> None:
    realm = 'the "odd" \\ realm'
    server = DigestServer(realm, SECRET)
    challenge = server.challenge(T0)[0]
    assert parse_auth_params(challenge)[1]["realm"] == realm
    header = build_authorization(
        challenge=challenge, method="REGISTER", uri=URI, username="carol", password="pw"
    )
    ha1 = compute_ha1("carol", realm, "pw", Algorithm.SHA256)
    result = server.verify(
        method="REGISTER",
        header_value=header,
        lookup=lambda user, family: ha1 if (user, family) == ("carol", Algorithm.SHA256) else None,
        now=T0,
    )
    assert result.ok


# --- client only ----------------------------------------------------------------


def test_choose_challenge_prefers_the_strongest() -> None:
    md5 = 'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"'
    sha = 'Digest realm="r", nonce="n2", algorithm=sha-256, qop="auth"'
    sha_sess = 'Digest realm="r", nonce="n3", algorithm=SHA-256-sess, qop="auth"'
    plain = 'Digest realm="r", nonce="n4"'
    assert choose_challenge([md5, sha]) == sha
    assert choose_challenge([sha, md5]) == sha
    assert choose_challenge([sha_sess, md5, sha]) == sha
    assert choose_challenge([plain, md5]) == plain  # equal strength: first listed
    skipped = [
        'Basic realm="r"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256',
        'Digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r"',
        'Digest realm="r", nonce="unterminated',
    ]
    assert choose_challenge([*skipped, md5]) == md5
    with pytest.raises(DigestError):
        choose_challenge(skipped)
    with pytest.raises(DigestError):
        choose_challenge([])


def test_build_authorization_format() -> None:
    header = build_authorization(
        challenge='Digest realm="r", nonce="n", qop="auth-int,auth", opaque="o"',
        method="INVITE",
        uri="sip:bob@example.com",
        username='we"ird',
        password="pw",
        nc=0x1F,
        cnonce="c",
    )
    _, params = parse_auth_params(header)
    assert params["username"] == 'we"ird'
    assert params["qop"] == "auth"
    assert params["nc"] == "0000001f"
    assert params["cnonce"] == "c"
    assert params["opaque"] == "o"
    assert params["algorithm"] == "MD5"
    assert "qop=auth," in header  # bare token, as RFC 7616 section 3.4 writes it

    no_qop = build_authorization(
        challenge='Digest realm="r", nonce="n"',
        method="INVITE",
        uri="sip:bob@example.com",
        username="u",
        password="pw",
        random_bytes=lambda n: b"\x01" * n,
    )
    _, params = parse_auth_params(no_qop)
    assert {"qop", "nc", "cnonce", "opaque"}.isdisjoint(params)

    sess = build_authorization(
        challenge='Digest realm="r", nonce="n", algorithm=MD5-sess',
        method="INVITE",
        uri="sip:bob@example.com",
        username="u",
        password="pw",
        random_bytes=lambda n: b"\x01" * n,
    )
    assert parse_auth_params(sess)[1]["cnonce"] == "01" * 16


@pytest.mark.parametrize(
    "challenge",
    [
        'Basic realm="r"',
        'Digest nonce="n"',
        'Digest realm="r"',
        'Digest realm="r", nonce="n", algorithm=SHA-512',
        'Digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r", nonce="n',
    ],
)
def test_build_authorization_rejects_bad_challenges(challenge: str) -> None:
    with pytest.raises(DigestError):
        build_authorization(
            challenge=challenge, method="INVITE", uri="sip:x", username="u", password="p"
        )


def test_build_authorization_rejects_bad_arguments() -> None:
    challenge = 'Digest realm="r", nonce="n", qop="auth"'
    for nc in (0, 1 << 32):
        with pytest.raises(ValueError, match="nc"):
            build_authorization(
                challenge=challenge, method="X", uri="sip:x", username="u", password="p", nc=nc
            )
    with pytest.raises(ValueError, match="control"):
        build_authorization(
            challenge=challenge, method="X", uri="sip:x\r\nVia: evil", username="u", password="p"
        )


# --- hostile input ----------------------------------------------------------------

_HEADERISH = st.text(
    alphabet=st.sampled_from(list('Digest realm="nonce,=\\ \t\r\nauth-int,qop=nc=0x"é')),
    max_size=200,
)
_FAST = settings(max_examples=150, deadline=None, database=None)


@_FAST
@given(st.one_of(st.text(max_size=300), _HEADERISH))
def test_parse_auth_params_raises_only_digest_error(value: str) -> None:
    try:
        scheme, params = parse_auth_params(value)
    except DigestError:
        return
    assert scheme
    assert all(name == name.lower() for name in params)


_SERVER = make_server(max_nonces=64)
_CHALLENGE = _SERVER.challenge(T0)[0]
_GOOD = answer(_CHALLENGE)


def test_verify_survives_lone_surrogates() -> None:
    header = with_param(_GOOD, "username", '"\ud800"')
    header = with_param(header, "opaque", '"\udfff"')
    assert verify(_SERVER, header).outcome is AuthOutcome.FAILED
    with pytest.raises(DigestError):
        parse_auth_params("Digest x=\ud800")  # bare values are ASCII only


@_FAST
@given(
    st.one_of(
        st.text(max_size=300),
        _HEADERISH,
        st.text(max_size=300).map(lambda s: "Digest " + s),
        # A valid answer with a slice replaced by arbitrary text.
        st.tuples(st.integers(0, len(_GOOD)), st.integers(0, 40), st.text(max_size=20)).map(
            lambda t: _GOOD[: t[0]] + t[2] + _GOOD[t[0] + t[1] :]
        ),
    ),
    st.binary(max_size=40),
)
def test_verify_never_raises(value: str, body: bytes) -> None:
    result = _SERVER.verify(
        method="REGISTER", header_value=value, lookup=make_lookup(), now=T0, body=body
    )
    assert isinstance(result.outcome, AuthOutcome)


# --- client from stored HA1 ---------------------------------------------------------


def ha1_table(username: str, realm: str, password: str) -> Callable[[str, Algorithm], str | None]:
    """An `ha1_for` that knows one realm, as a stored trunk's credentials do."""

    def ha1_for(asked_realm: str, family: Algorithm) -> str | None:
        assert family in (Algorithm.MD5, Algorithm.SHA256), "only base families are asked"
        if asked_realm != realm:
            return None
        return compute_ha1(username, realm, password, family)

    return ha1_for


def test_rfc2617_example_through_stored_ha1() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = digest.build_authorization_from_ha1(
        challenge=challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        ha1_for=ha1_table("Mufasa", "testrealm@host.com", "Circle Of Life"),
        cnonce="0a4f113b",
    )
    assert parse_auth_params(header)[1]["response"] == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_through_stored_ha1(algorithm: str, expected: str) -> None:
    challenge = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    header = digest.build_authorization_from_ha1(
        challenge=challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        ha1_for=ha1_table("Mufasa", "http-auth@example.org", "Circle of Life"),
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert parse_auth_params(header)[1]["response"] == expected


@pytest.mark.parametrize(
    "challenge",
    [
        'Digest realm="r", nonce="n", qop="auth", opaque="o"',
        'Digest realm="r", nonce="n", qop="auth-int"',
        'Digest realm="r", nonce="n"',
        'Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess',
        'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256',
        'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256-sess',
    ],
)
def test_stored_ha1_and_password_give_the_same_credentials(challenge: str) -> None:
    common: dict[str, object] = {
        "challenge": challenge,
        "method": "REGISTER",
        "uri": "sip:provider.example",
        "username": "trunk1",
        "nc": 3,
        "cnonce": "fixed-cnonce",
        "body": b"v=0\r\n",
    }
    from_password = build_authorization(password="pw", **common)  # type: ignore[arg-type]
    from_ha1 = digest.build_authorization_from_ha1(
        ha1_for=ha1_table("trunk1", "r", "pw"),
        **common,  # type: ignore[arg-type]
    )
    assert from_ha1 == from_password


def test_stored_ha1_is_accepted_by_the_server() -> None:
    server = make_server()
    for index in (0, 1):  # SHA-256, then MD5; a fresh nonce each, as they share one
        challenge = server.challenge(T0)[index]
        header = digest.build_authorization_from_ha1(
            challenge=challenge,
            method="REGISTER",
            uri=URI,
            username="alice",
            ha1_for=ha1_table("alice", REALM, PASSWORDS["alice"]),
        )
        assert verify(server, header).ok


def test_stored_ha1_for_another_realm_is_a_clear_error() -> None:
    with pytest.raises(DigestError, match=r"realm 'other\.example'.*no credentials"):
        digest.build_authorization_from_ha1(
            challenge='Digest realm="other.example", nonce="n", qop="auth"',
            method="REGISTER",
            uri="sip:x",
            username="u",
            ha1_for=ha1_table("u", "provider.example", "pw"),
        )


def test_stored_ha1_checks_arguments_before_the_lookup() -> None:
    asked: list[tuple[str, Algorithm]] = []

    def ha1_for(realm: str, family: Algorithm) -> str | None:
        asked.append((realm, family))
        return "0" * 32

    with pytest.raises(ValueError, match="nc"):
        digest.build_authorization_from_ha1(
            challenge='Digest realm="r", nonce="n", qop="auth"',
            method="X",
            uri="sip:x",
            username="u",
            ha1_for=ha1_for,
            nc=0,
        )
    with pytest.raises(DigestError):
        digest.build_authorization_from_ha1(
            challenge='Basic realm="r"', method="X", uri="sip:x", username="u", ha1_for=ha1_for
        )
    assert asked == []
    digest.build_authorization_from_ha1(
        challenge='Digest realm="r", nonce="n", algorithm=SHA-256-sess',
        method="X",
        uri="sip:x",
        username="u",
        ha1_for=ha1_for,
    )
    assert asked == [("r", Algorithm.SHA256)]
