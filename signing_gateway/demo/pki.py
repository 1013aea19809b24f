"""A demo PKI made with ``cryptography``: a root CA and an issuing CA that certify public
keys generated inside tokens. Demo installations only; real deployments use the
certificates their CA issued to each token."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DemoPki", "HolderName"]


@dataclass(frozen=True, slots=True)
class HolderName:
    """A certificate holder: full name (Vietnamese, with diacritics), title,
    organisation, province."""

    common_name: str
    title: str
    organisation: str
    locality: str = "Hà Nội"

    def to_x509(self) -> x509.Name:
        """The subject DN (RFC 5280; UTF8String values)."""
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, self.locality),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organisation),
                x509.NameAttribute(NameOID.TITLE, self.title),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name),
            ]
        )


def _ca_name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Signing Gateway Demo PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    years: int,
    path_len: int,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(issuer_key, hashes.SHA256())
    )


class DemoPki:
    """Root CA + issuing CA kept as PEM files in ``folder`` (created once, then loaded)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root_path = folder / "root-ca.pem"
        self.issuing_path = folder / "issuing-ca.pem"
        self._issuing_key_path = folder / "issuing-ca.key"

    def ensure(self, now: dt.datetime) -> None:
        """Create both CAs unless they exist (never overwrites)."""
        if self.issuing_path.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _ca_name("Demo Root CA")
        root = _ca_certificate(root_name, root_key, root_name, root_key, now, 20, 1)
        issuing_key = ec.generate_private_key(ec.SECP256R1())
        issuing = _ca_certificate(
            _ca_name("Demo Issuing CA"), issuing_key, root_name, root_key, now, 10, 0
        )
        self.root_path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
        self.issuing_path.write_bytes(issuing.public_bytes(serialization.Encoding.PEM))
        self._issuing_key_path.write_bytes(
            issuing_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self._issuing_key_path.chmod(0o600)

    def chain_der(self) -> list[bytes]:
        """DER of the issuing CA then the root CA."""
        return [
            x509.load_pem_x509_certificate(p.read_bytes()).public_bytes(serialization.Encoding.DER)
            for p in (self.issuing_path, self.root_path)
        ]

    def certify(
        self,
        public_key: CertificatePublicKeyTypes,
        holder: HolderName,
        now: dt.datetime,
        *,
        days: int = 730,
    ) -> x509.Certificate:
        """Issue an end-entity signing certificate (digitalSignature + nonRepudiation,
        emailProtection/documentSigning EKU) for ``public_key``."""
        issuing = x509.load_pem_x509_certificate(self.issuing_path.read_bytes())
        key = serialization.load_pem_private_key(self._issuing_key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return (
            x509.CertificateBuilder()
            .subject_name(holder.to_x509())
            .issuer_name(issuing.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        ExtendedKeyUsageOID.EMAIL_PROTECTION,
                        x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False
            )
            .sign(key, hashes.SHA256())
        )
