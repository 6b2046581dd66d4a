"""TLS contexts for SIP and the portal, and the self-signed certificate of `--demo`.

The contexts start from Python's `ssl.create_default_context`, which already
follows current practice (OpenSSL security level 2, forward-secret AEAD
ciphers, no compression, no renegotiation); the only thing set on top is the
floor of TLS 1.2, which RFC 8996 and RFC 7525 section 3.1.1 ask for and which
SIP phones of the last decade all reach.

A server certificate for phones must name the address they connect to, since
a phone checks it against the registrar's host (RFC 5922 section 7.2):
`self_signed` puts every host it is given in the subjectAltName, IP literals as
IP addresses.  The demo's certificate is its own trust anchor: phones (and
browsers) must be told to trust that file, which is why it is printed.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEMO_CERT_NAME",
    "DEMO_KEY_NAME",
    "TlsError",
    "certificate_hosts",
    "client_context",
    "ensure_self_signed",
    "self_signed",
    "server_context",
]

DEMO_CERT_NAME = "teleoffice-demo.crt"
DEMO_KEY_NAME = "teleoffice-demo.key"
# Long enough for a demo, short enough to be accepted by clients that cap the
# validity of server certificates (825 days for Apple's, for one).
VALIDITY_DAYS = 825
# A generated certificate is replaced this long before it expires.
RENEW_BEFORE = datetime.timedelta(days=30)
# RSA rather than an elliptic curve: every SIP phone's TLS stack knows RSA.
RSA_BITS = 2048


class TlsError(ValueError):
    """A certificate or key cannot be used; the message says which file and why."""


def server_context(cert_file: Path, key_file: Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context with our certificate chain and key.

    `key_file` None means the key is in `cert_file` too.  Clients are not asked
    for certificates: phones authenticate with SIP digest inside the tunnel.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    except FileNotFoundError as exc:
        raise TlsError(f"TLS certificate or key file not found: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        where = f"{cert_file}" + (f" with key {key_file}" if key_file else "")
        raise TlsError(f"cannot use TLS certificate {where}: {exc}") from None
    return context


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies peers against the system's trust
    store, or against `cafile` alone when given (a private CA, a pinned
    self-signed certificate)."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def certificate_hosts(*hosts: str) -> list[str]:
    """The names a certificate should carry for `hosts`: each host (wildcard bind
    addresses left out), plus localhost and the loopback addresses, once each."""
    names: list[str] = []
    for given in (*hosts, "localhost", "127.0.0.1", "::1"):
        host = _canonical(given.strip("[]"))
        if not host:
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).is_unspecified:
                continue
        if host not in names:
            names.append(host)
    return names


def self_signed(
    hosts: Sequence[str], *, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """A new self-signed certificate for `hosts` and its key, both PEM.

    The certificate is its own CA (basicConstraints CA with path length 0 and
    keyCertSign), so that it can be installed as a trust anchor in a phone or
    given as a CA file, and it has the key identifiers strict verifiers want.
    """
    if not hosts:
        raise ValueError("a certificate needs at least one host")
    now = now or datetime.datetime.now(datetime.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "teleoffice demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64]),
        ]
    )
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def ensure_self_signed(
    folder: Path, hosts: Sequence[str], *, now: datetime.datetime | None = None
) -> tuple[Path, Path]:
    """The demo certificate and key in `folder`, made when missing, expiring
    within RENEW_BEFORE, or not naming every host in `hosts`.

    The key is written with mode 0600 and both files appear atomically (written
    aside, then renamed), so a crash never leaves half a key behind.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    cert_path, key_path = folder / DEMO_CERT_NAME, folder / DEMO_KEY_NAME
    if _still_good(cert_path, key_path, hosts, now):
        return cert_path, key_path
    folder.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = self_signed(hosts, now=now)
    # The key first: a certificate is never on disk without its key.
    _write_atomically(key_path, key_pem, mode=0o600)
    _write_atomically(cert_path, cert_pem, mode=0o644)
    return cert_path, key_path


def _still_good(
    cert_path: Path, key_path: Path, hosts: Sequence[str], now: datetime.datetime
) -> bool:
    if not key_path.is_file():
        return False
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    if certificate.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    covered = {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    covered |= {dns.lower() for dns in names.value.get_values_for_type(x509.DNSName)}
    return all(str(_canonical(host)) in covered for host in hosts)


def _canonical(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
