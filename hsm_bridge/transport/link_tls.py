"""TLS credentials for the link between the gateway and a bridge service.

:func:`create_link_credentials` makes a private CA used for this one link, issues with
it a server certificate for the bridge and a client certificate for the gateway, and
then throws the CA's private key away: no other certificate can ever chain to that CA,
so a bridge that trusts it accepts exactly the gateway's client certificate. Renewal is
running it again (both sides get new files). Keys are EC P-256, certificates X.509 v3
(RFC 5280) with the serverAuth / clientAuth extended key usages (RFC 5280 §4.2.1.12).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LinkFiles", "create_link_credentials", "link_files"]


@dataclass(frozen=True, slots=True)
class LinkFiles:
    """PEM files of one link, all in one folder: ``ca.pem`` (trust anchor for both
    sides), ``bridge.pem``/``bridge.key`` (the bridge's server credential),
    ``gateway.pem``/``gateway.key`` (the gateway's client credential)."""

    ca: Path
    bridge_certificate: Path
    bridge_key: Path
    gateway_certificate: Path
    gateway_key: Path


def link_files(folder: Path) -> LinkFiles:
    """The paths of the link files in ``folder`` (they may not exist yet)."""
    return LinkFiles(
        ca=folder / "ca.pem",
        bridge_certificate=folder / "bridge.pem",
        bridge_key=folder / "bridge.key",
        gateway_certificate=folder / "gateway.pem",
        gateway_key=folder / "gateway.key",
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, *, private: bool) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_link_credentials(
    folder: Path, bridge_hosts: list[str], *, now: dt.datetime, days: int = 825
) -> LinkFiles:
    """Create the link's CA and the two certificates in ``folder`` (owner-only keys).

    ``bridge_hosts``: DNS names or IP addresses the gateway uses to reach the bridge
    (subjectAltName of the server certificate). Existing files are replaced.
    """
    if not bridge_hosts:
        raise ValueError("name at least one host of the bridge")
    folder.mkdir(parents=True, exist_ok=True)
    files = link_files(folder)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    not_after = now + dt.timedelta(days=days)
    ca = _link_ca(ca_key, now, not_after)
    sans: list[x509.GeneralName] = []
    for host in bridge_hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))

    def leaf(
        common_name: str, usage: x509.ObjectIdentifier, alt: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        return _leaf(ca, ca_key, common_name, usage, alt, now, not_after)

    server, server_key = leaf(f"bridge {bridge_hosts[0]}", ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client, client_key = leaf("signing gateway", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pem = serialization.Encoding.PEM
    _write(files.ca, ca.public_bytes(pem), private=False)
    _write(files.bridge_certificate, server.public_bytes(pem), private=False)
    _write(files.bridge_key, _key_pem(server_key), private=True)
    _write(files.gateway_certificate, client.public_bytes(pem), private=False)
    _write(files.gateway_key, _key_pem(client_key), private=True)
    # The CA key is never written anywhere: no other certificate can chain to this CA.
    return files


def _link_ca(
    ca_key: ec.EllipticCurvePrivateKey, now: dt.datetime, not_after: dt.datetime
) -> x509.Certificate:
    """The link's self-signed CA certificate: it certifies the two leaves, nothing else
    (path length 0)."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name("signing gateway bridge link CA"))
        .issuer_name(_name("signing gateway bridge link CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .sign(ca_key, hashes.SHA256())
    )


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    alt: list[x509.GeneralName],
    now: dt.datetime,
    not_after: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new P-256 key and its certificate from the link CA for one extended key usage
    (server or client authentication), with ``alt`` as subjectAltName when given."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key
