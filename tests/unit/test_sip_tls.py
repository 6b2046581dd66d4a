"""SIP over TLS: the transport over real loopback TLS connections with a generated
certificate, the TLS settings, and the certificate `serve --demo` makes."""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
import stat
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509

from teleoffice.cli import _demo_tls
from teleoffice.config import ConfigError, load_settings
from teleoffice.sip.transaction import Address
from teleoffice.transport import SipTransport
from teleoffice.transport.tls import (
    DEMO_CERT_NAME,
    DEMO_KEY_NAME,
    TlsError,
    certificate_hosts,
    client_context,
    ensure_self_signed,
    self_signed,
    server_context,
)

HOST = "127.0.0.1"
WAIT = 5.0


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_self_signed(tmp_path_factory.mktemp("tls"), certificate_hosts(HOST))


def message(n: int) -> bytes:
    return (
        f"OPTIONS sip:201@pbx.example SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK-{n}\r\n"
        f"Call-ID: {n}@test\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(test(), 20.0)

    asyncio.run(bounded())


class Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()

    def __call__(self, data: bytes, source: Address) -> None:
        self.queue.put_nowait((data, source))

    async def get(self) -> tuple[bytes, Address]:
        return await asyncio.wait_for(self.queue.get(), WAIT)


async def tls_transport(
    inbox: Inbox, cert: tuple[Path, Path], *, client: ssl.SSLContext | None = None
) -> SipTransport:
    transport = SipTransport(HOST, 0, inbox)
    transport.enable_tls(0, server_context(*cert), client)
    await transport.start()
    return transport


async def connect(
    port: int, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(HOST, port, ssl=context, server_hostname=HOST), WAIT
    )


def test_tls_listener_delivers_messages_and_answers_on_the_same_connection(
    cert: tuple[Path, Path],
) -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await tls_transport(inbox, cert)
        try:
            assert transport.tls_port not in (None, 0, transport.port)
            assert transport.tls_port is not None
            reader, writer = await connect(transport.tls_port, client_context(cert[0]))
            tls = writer.get_extra_info("ssl_object")
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            local_port = writer.get_extra_info("sockname")[1]
            # Two messages in one write, then one split over two writes.
            writer.write(message(1) + message(2)[:30])
            writer.write(message(2)[30:])
            source = Address("TLS", HOST, local_port)
            assert await inbox.get() == (message(1), source)
            assert await inbox.get() == (message(2), source)
            # The answer goes back over this connection (RFC 3261 section 18.2.2).
            transport.send(message(3), source)
            assert await asyncio.wait_for(reader.readexactly(len(message(3))), WAIT) == message(3)
            # RFC 5626 keepalive inside the tunnel.
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
            assert (transport.tls_connection_count, transport.tcp_connection_count) == (1, 1)
            # TCP on the SIP port is another flow, reported as such.
            tcp_reader, tcp_writer = await asyncio.open_connection(HOST, transport.port)
            tcp_writer.write(message(4))
            data, tcp_source = await inbox.get()
            assert (data, tcp_source.transport) == (message(4), "TCP")
            assert tcp_source.port == tcp_writer.get_extra_info("sockname")[1]
            assert transport.tls_connection_count == 1
            writer.close()
            tcp_writer.close()
            del tcp_reader
        finally:
            await transport.stop()

    run(body)


def test_old_protocol_versions_and_plaintext_are_refused(cert: tuple[Path, Path]) -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await tls_transport(inbox, cert)
        assert transport.tls_port is not None
        try:
            old = client_context(cert[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is, rightly
                old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                old.maximum_version = ssl.TLSVersion.TLSv1_1
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await connect(transport.tls_port, old)
            # SIP in the clear to the TLS port never reaches the SIP layer.
            reader, writer = await asyncio.open_connection(HOST, transport.tls_port)
            writer.write(message(1) * 3)
            try:
                # The server ends the connection (at most after a TLS alert).
                leftover = await asyncio.wait_for(reader.read(), WAIT)
            except ConnectionResetError:
                leftover = b""
            assert b"SIP/2.0" not in leftover
            writer.close()
            await asyncio.sleep(0.1)
            assert inbox.queue.empty()
            # The listener still works.
            _, good = await connect(transport.tls_port, client_context(cert[0]))
            good.write(message(2))
            data, source = await inbox.get()
            assert (data, source.transport) == (message(2), "TLS")
            good.close()
        finally:
            await transport.stop()

    run(body)


def test_send_opens_a_verified_tls_connection_and_reuses_it(cert: tuple[Path, Path]) -> None:
    async def body() -> None:
        inbox_a, inbox_b = Inbox(), Inbox()
        a = await tls_transport(inbox_a, cert, client=client_context(cert[0]))
        b = await tls_transport(inbox_b, cert)
        assert b.tls_port is not None
        try:
            dest = Address("TLS", HOST, b.tls_port)
            a.send(message(1), dest)
            a.send(message(2), dest)
            data, source = await inbox_b.get()
            assert (data, source.transport) == (message(1), "TLS")
            assert (await inbox_b.get())[0] == message(2)
            # B answers to where the message came from: A's connection, which A
            # knows under the address it opened it to.
            b.send(message(3), source)
            assert await inbox_a.get() == (message(3), dest)
            a.send(message(4), dest)
            assert (await inbox_b.get())[0] == message(4)
            assert a.tls_connection_count == b.tls_connection_count == 1
        finally:
            await a.stop()
            await b.stop()

    run(body)


def test_a_peer_whose_certificate_we_cannot_verify_gets_nothing(
    cert: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Another self-signed certificate: not the one A trusts.
    stranger = ensure_self_signed(tmp_path, certificate_hosts(HOST))

    async def body() -> None:
        inbox_a, inbox_b = Inbox(), Inbox()
        a = await tls_transport(inbox_a, cert, client=client_context(cert[0]))
        b = await tls_transport(inbox_b, stranger)
        assert b.tls_port is not None
        try:
            a.send(message(1), Address("TLS", HOST, b.tls_port))

            async def failed() -> None:
                while not any(  # noqa: ASYNC110 - polling the captured log
                    "TLS connection to" in r.getMessage() for r in caplog.records
                ):
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(failed(), WAIT)
            assert inbox_b.queue.empty()
            assert a.tls_connection_count == 0
        finally:
            await a.stop()
            await b.stop()

    with caplog.at_level(logging.WARNING, logger="teleoffice.transport"):
        run(body)


def test_without_tls_nothing_goes_out_over_tls(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        transport = SipTransport(HOST, 0, Inbox())
        await transport.start()
        try:
            assert transport.tls_port is None
            transport.send(message(1), Address("TLS", HOST, 5061))
            assert transport.tcp_connection_count == 0
        finally:
            await transport.stop()

    with caplog.at_level(logging.WARNING, logger="teleoffice.transport"):
        run(body)
    assert any("TLS is off" in r.getMessage() for r in caplog.records)


def test_enable_tls_checks_its_arguments(cert: tuple[Path, Path]) -> None:
    transport = SipTransport(HOST, 0, Inbox())
    with pytest.raises(ValueError, match="out of range"):
        transport.enable_tls(70000, server_context(*cert))

    async def body() -> None:
        await transport.start()
        try:
            with pytest.raises(RuntimeError, match="before start"):
                transport.enable_tls(0, server_context(*cert))
        finally:
            await transport.stop()

    run(body)


# --- certificates ------------------------------------------------------------------------


def test_demo_certificate_is_made_once_and_names_every_host(tmp_path: Path) -> None:
    hosts = certificate_hosts("pbx.example", "0.0.0.0", "127.0.0.1")
    assert hosts == ["pbx.example", "127.0.0.1", "localhost", "::1"]
    cert_path, key_path = ensure_self_signed(tmp_path, hosts)
    assert (cert_path.name, key_path.name) == (DEMO_CERT_NAME, DEMO_KEY_NAME)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["pbx.example", "localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    pem = cert_path.read_bytes()
    # Reused as it is ...
    assert ensure_self_signed(tmp_path, hosts) == (cert_path, key_path)
    assert cert_path.read_bytes() == pem
    # ... but made again for a new host, or when it is about to expire.
    ensure_self_signed(tmp_path, [*hosts, "10.1.2.3"])
    assert cert_path.read_bytes() != pem
    pem = cert_path.read_bytes()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=820)
    ensure_self_signed(tmp_path, hosts, now=later)
    assert cert_path.read_bytes() != pem
    # The pair loads as a server certificate.
    server_context(cert_path, key_path)
    with pytest.raises(ValueError, match="at least one host"):
        self_signed([])


def test_unusable_certificate_files_are_reported_by_name(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    with pytest.raises(TlsError, match="not found"):
        server_context(tmp_path / "missing.crt", tmp_path / "missing.key")
    other_cert, other_key = ensure_self_signed(tmp_path / "other", ["127.0.0.1"])
    with pytest.raises(TlsError, match=str(cert[0])):
        server_context(cert[0], other_key)  # a key that does not match
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(TlsError, match=r"garbage\.pem"):
        server_context(garbage)
    assert other_cert.exists()


# --- settings ----------------------------------------------------------------------------


def test_tls_settings(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    base = {"data_dir": tmp_path}
    assert load_settings(**base).sip_tls_port == 5061
    assert load_settings(**base, sip_port=5070).sip_tls_port == 5071
    assert load_settings(**base, sip_port=0).sip_tls_port == 0
    assert load_settings(**base, sip_port=65535, http_port=8080).sip_tls_port == 0
    assert load_settings(**base, sip_tls_port=5999).sip_tls_port == 5999
    plain = load_settings(**base)
    assert plain.tls_cert_file is None
    assert not plain.portal_tls
    with_cert = load_settings(**base, tls_cert_file=cert[0], tls_key_file=cert[1])
    assert with_cert.portal_tls
    assert not load_settings(**base, tls_cert_file=cert[0], http_tls=False).portal_tls
    with pytest.raises(ConfigError, match="tls_key_file is set but tls_cert_file is not"):
        load_settings(**base, tls_key_file=cert[1])
    with pytest.raises(ConfigError, match="http_tls needs a certificate"):
        load_settings(**base, http_tls=True)
    with pytest.raises(ConfigError, match="sip_tls_port and sip_port are both 5070"):
        load_settings(**base, tls_cert_file=cert[0], sip_port=5070, sip_tls_port=5070)
    with pytest.raises(ConfigError, match="both want TCP port 8443"):
        load_settings(**base, tls_cert_file=cert[0], sip_tls_port=8443, http_port=8443)
    with pytest.raises(ConfigError, match="sip_tls_port"):
        load_settings(**base, sip_tls_port=70000)


def test_tls_settings_from_the_environment(
    tmp_path: Path, cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEOFFICE_SIP_TLS_PORT", "6061")
    monkeypatch.setenv("TELEOFFICE_TLS_CERT_FILE", str(cert[0]))
    monkeypatch.setenv("TELEOFFICE_HTTP_TLS", "false")
    settings = load_settings(data_dir=tmp_path)
    assert (settings.sip_tls_port, settings.tls_cert_file) == (6061, cert[0])
    assert not settings.portal_tls


def test_demo_makes_a_certificate_for_sip_only(
    tmp_path: Path, cert: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(data_dir=tmp_path, sip_host="127.0.0.1", sip_port=5070)
    demo = _demo_tls(settings)
    assert demo.tls_cert_file == tmp_path / "tls" / DEMO_CERT_NAME
    assert demo.tls_key_file == tmp_path / "tls" / DEMO_KEY_NAME
    assert not demo.portal_tls  # browsers would only warn about it
    server_context(demo.tls_cert_file, demo.tls_key_file)
    printed = capsys.readouterr().out
    assert "SIP over TLS on port 5071" in printed
    assert str(demo.tls_cert_file) in printed
    # A configured certificate is left alone.
    configured = load_settings(data_dir=tmp_path, tls_cert_file=cert[0], tls_key_file=cert[1])
    assert _demo_tls(configured) is configured
