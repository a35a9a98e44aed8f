"""Development certificates for the broker's TLS listener: a small CA and a server certificate.

Production sites bring certificates from their own CA (put ``ca.crt``, ``server.crt`` and
``server.key`` in the TLS folder); these are for trials and tests. Running the generator again
keeps what exists: the CA is never replaced (clients trust it), and the server certificate is
reissued only when it is missing, names a different set of hosts, or expires within 30 days.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.files import private_dir, write_private
from plantmodel.errors import ValidationError

log = logging.getLogger(__name__)

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients such as Apple's accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    def missing(self) -> list[Path]:
        """What the broker needs and is not there (the CA's key is not needed to serve)."""
        return [p for p in (self.ca_cert, self.server_cert, self.server_key) if not p.is_file()]


@dataclass(frozen=True, slots=True)
class CertsResult:
    ca_created: bool
    server_issued: bool
    reason: str  # why the server certificate was (re)issued or kept


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Au Bon Beurre telemetry (development)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """Host names and IP addresses clients use to reach the broker, deduplicated, order kept."""
    clean: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if any(c.isspace() for c in name) or "/" in name or len(name) > 253:
            raise ValidationError(f"not a host name or IP address: {raw!r}")
        with contextlib.suppress(ValueError):  # one spelling: what the certificate will hold
            name = str(ipaddress.ip_address(name))
        if name not in clean:
            clean.append(name)
    if not clean:
        raise ValidationError("give at least one host name or IP address for the server certificate")
    return tuple(clean)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(files: TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not files.ca_cert.exists() and not files.ca_key.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ValidationError(f"{exc.filename} is missing while its pair exists; restore it, or remove "
                              f"{files.directory} to start a new CA (every client must then trust the new "
                              "one)") from None
    except ValueError as exc:
        raise ValidationError(f"cannot read the CA in {files.directory}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValidationError(f"{files.ca_key} is not an EC key written by `python -m broker certs`")
    return cert, key


def _server_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))}


def _why_issue(files: TlsFiles, names: tuple[str, ...], ca: x509.Certificate, now: dt.datetime) -> str:
    """Why the server certificate must be (re)issued; "" to keep it."""
    if not files.server_cert.exists() or not files.server_key.exists():
        return "none yet"
    try:
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    except ValueError:
        return "the existing one is unreadable"
    if cert.issuer != ca.subject:
        return "the existing one was not issued by this CA"
    if cert.not_valid_after_utc - RENEW_BEFORE < now:
        return f"the existing one expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    if _server_names(cert) != set(names):
        return f"host names changed (were {', '.join(sorted(_server_names(cert)))})"
    return ""


def generate(files: TlsFiles, names: Sequence[str] = DEFAULT_NAMES, *, force: bool = False,
             now: dt.datetime | None = None) -> CertsResult:
    """Create the CA if there is none, and (re)issue the server certificate for ``names`` when
    needed (always with ``force``). Keys are EC P-256, written 0600."""
    names = check_names(names)
    now = now or dt.datetime.now(dt.UTC)
    private_dir(files.directory)
    loaded = _load_ca(files)
    ca_created = loaded is None
    if loaded is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Au Bon Beurre telemetry development CA"))
            .issuer_name(_name("Au Bon Beurre telemetry development CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_private(files.ca_key, _pem_key(ca_key), 0o600)
        write_private(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    else:
        ca_cert, ca_key = loaded
    reason = "forced" if force else _why_issue(files, names, ca_cert, now)
    if not reason:
        return CertsResult(ca_created, False, "kept: valid, same host names")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(files.server_key, _pem_key(key), 0o600)
    write_private(files.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return CertsResult(ca_created, True, reason)
