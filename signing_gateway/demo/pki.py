"""The demo's PKI, with live services: a root CA, an issuing CA, an OCSP responder, CRLs
and an RFC 3161 time-stamping authority, declared for certomancer (the test PKI
pyHanko's own tests use) and served by its animator on loopback
(:mod:`signing_gateway.demo.pki_service`). Certificates for keys generated inside the
demo's tokens are issued here, with the AIA (OCSP, CA issuers) and CRL distribution
point URLs of those services. Demo installations and tests only; real deployments use
the certificates their CA issued.

Everything lives in one folder: ``certomancer.yml`` (the architecture, rewritten when a
certificate is issued or revoked), ``keys/`` (the CAs', responder's and TSAs' private
keys, and the public keys of the tokens' keys), ``root-ca.pem`` and ``issuing-ca.pem``.
CA keys are RSA, so that certomancer, which derives certificates from the declaration
each time it loads it, derives the same bytes every time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from asn1crypto import x509 as asn1_x509
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, PKIArchitecture
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

__all__ = ["ARCH", "DemoPki", "HolderName", "REVOCATION_REASONS"]

ARCH = "demo"
CONFIG_FILE = "certomancer.yml"
# RFC 5280 §5.3.1 reasons, as certomancer (asn1crypto) names them
REVOCATION_REASONS = (
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "certificate_hold",
    "privilege_withdrawn",
)
_LOCK = threading.Lock()
# libyaml's safe loader and dumper where PyYAML was built with it (much faster)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True, slots=True)
class HolderName:
    """A certificate holder: full name (Vietnamese, with diacritics), title,
    organisation, province."""

    common_name: str
    title: str
    organisation: str
    locality: str = "Hà Nội"

    def entity(self) -> dict[str, str]:
        """The subject DN as certomancer declares it (UTF8String values)."""
        return {
            "country-name": "VN",
            "locality-name": self.locality,
            "organization-name": self.organisation,
            "title": self.title,
            "common-name": self.common_name,
        }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class DemoPki:
    """The demo PKI in ``folder``, whose services answer at ``service_url`` (e.g.
    ``http://127.0.0.1:8079``; it is written into every certificate issued)."""

    def __init__(self, folder: Path, service_url: str | None = None) -> None:
        self.folder = folder
        self.config_path = folder / CONFIG_FILE
        self.root_path = folder / "root-ca.pem"
        self.issuing_path = folder / "issuing-ca.pem"
        self._service_url = service_url

    # ---- creation ----------------------------------------------------------------------

    def ensure(self, now: dt.datetime, *, tsa_years: int = 3) -> None:
        """Create the CAs, the OCSP responder and the TSAs unless they exist (never
        overwrites). ``tsa_years``: the first TSA certificate's life (a second TSA,
        ``tsa2``, has a longer one: the archive's renewals move to it)."""
        if self.config_path.exists():
            return
        if self._service_url is None:
            raise ValueError("a new demo PKI needs the address of its services")
        keys = self.folder / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        for label in ("root", "interm", "interm-ocsp", "tsa", "tsa2"):
            _write_rsa_key(keys / f"{label}.key.pem")
        # each demo PKI names its CAs apart: two installations' CAs are never confused
        self._save(_architecture(self._service_url, now, tsa_years, secrets.token_hex(3)))
        architecture = self._architecture()
        for label, path in (("root", self.root_path), ("interm", self.issuing_path)):
            der = architecture.get_cert(CertLabel(label)).dump()
            path.write_bytes(_pem(der))

    def chain_der(self) -> list[bytes]:
        """DER of the issuing CA then the root CA."""
        return [
            x509.load_pem_x509_certificate(p.read_bytes()).public_bytes(serialization.Encoding.DER)
            for p in (self.issuing_path, self.root_path)
        ]

    @property
    def service_url(self) -> str:
        """Where the services answer (as written in the certificates)."""
        return str(self._load()["external-url-prefix"])

    def tsa_url(self, label: str = "tsa") -> str:
        """The RFC 3161 endpoint of TSA ``label`` (``tsa`` or ``tsa2``)."""
        return f"{self.service_url}/{ARCH}/tsa/{label}"

    # ---- certificates -------------------------------------------------------------------

    def certify(
        self,
        public_key: CertificatePublicKeyTypes,
        holder: HolderName,
        now: dt.datetime,
        *,
        days: int = 730,
    ) -> x509.Certificate:
        """Issue an end-entity signing certificate (digitalSignature + nonRepudiation,
        emailProtection/documentSigning EKU, OCSP and CRL URLs of the demo services)
        for ``public_key``."""
        with self._exclusive():
            config = self._load()
            arch = config["pki-architectures"][ARCH]
            serial = 1 + max(
                (int(spec["serial"]) for spec in arch["certs"].values() if "serial" in spec),
                default=999,
            )
            label = f"signer-{serial}"
            (self.folder / "keys" / f"{label}.pub.pem").write_bytes(
                public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            config["keysets"][ARCH]["keys"][label] = {
                "path": f"{label}.pub.pem",
                "public-only": True,
            }
            arch["entities"][label] = holder.entity()
            arch["certs"][label] = _signer_spec(label, serial, now, days)
            self._save(config)
            der = self._architecture(config).get_cert(CertLabel(label)).dump()
        return x509.load_der_x509_certificate(der)

    def revoke(self, serial: int, reason: str, at: dt.datetime) -> str:
        """Revoke the certificate with ``serial`` from ``at`` for ``reason`` (one of
        :data:`REVOCATION_REASONS`): the OCSP responder says so at once, the next CRL
        lists it. Its subject's common name; KeyError when this CA issued no such
        certificate, ValueError for an unknown reason."""
        if reason not in REVOCATION_REASONS:
            raise ValueError(f"the reason is one of {', '.join(REVOCATION_REASONS)}")
        with self._exclusive():
            config = self._load()
            arch = config["pki-architectures"][ARCH]
            label = next(
                (k for k, spec in arch["certs"].items() if spec.get("serial") == serial), None
            )
            if label is None or not label.startswith("signer-"):
                raise KeyError(serial)
            arch["certs"][label]["revocation"] = {
                "revoked-since": _iso(at),
                "reason": reason,
            }
            self._save(config)
            return str(arch["entities"][label]["common-name"])

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This PKI's declaration for one writer at a time, in this process (a thread
        lock) and across processes (an advisory lock on ``.lock`` in the folder)."""
        with _LOCK, (self.folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- certomancer ----------------------------------------------------------------------

    def architecture(self) -> PKIArchitecture:
        """The architecture as declared now (for the animator)."""
        with _LOCK:
            return self._architecture()

    def _architecture(self, declared: dict[str, Any] | None = None) -> PKIArchitecture:
        # keys are loaded when a certificate needs them (an RSA key takes tens of ms)
        config = CertomancerConfig(
            declared or self._load(), key_search_dir=str(self.folder), lazy_load_keys=True
        )
        return config.get_pki_arch(ArchLabel(ARCH))

    def _load(self) -> dict[str, Any]:
        text = self.config_path.read_text("utf-8")
        loaded: dict[str, Any] = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - safe loader
        return loaded

    def _save(self, config: dict[str, Any]) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        text = yaml.dump(config, Dumper=_YAML_DUMPER, allow_unicode=True, sort_keys=False)
        tmp.write_text(text, "utf-8")
        os.replace(tmp, self.config_path)


def _write_rsa_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _ca_entity(common_name: str, tag: str) -> dict[str, str]:
    return {
        "country-name": "VN",
        "organization-name": f"Signing Gateway Demo PKI {tag}",
        "common-name": common_name,
    }


def _validity(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    return {"valid-from": _iso(start), "valid-to": _iso(end)}


def _signer_spec(label: str, serial: int, now: dt.datetime, days: int) -> dict[str, Any]:
    return {
        "subject": label,
        "subject-key": label,
        "issuer": "interm",
        "authority-key": "interm",
        "serial": serial,
        "validity": _validity(now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)),
        "profiles": ["digsig-commitment"],
        "extensions": [
            {"id": "basic_constraints", "critical": True, "value": {"ca": False}},
            {
                "id": "extended_key_usage",
                "value": ["email_protection", "1.3.6.1.4.1.311.10.3.12"],
            },
        ],
    }


def _architecture(service_url: str, now: dt.datetime, tsa_years: int, tag: str) -> dict[str, Any]:
    """The certomancer declaration of the demo PKI: root and issuing CA, the issuing
    CA's OCSP responder, both CAs' CRLs (daily), two TSAs certified by the root."""
    day = dt.timedelta(days=1)
    year = dt.timedelta(days=365)

    def tsa(key: str, years: int) -> dict[str, Any]:
        return {
            "subject": key,
            "subject-key": key,
            "issuer": "root",
            "validity": _validity(now - day, now + years * year),
            "extensions": [
                {
                    "id": "key_usage",
                    "critical": True,
                    "smart-value": {"schema": "key-usage", "params": ["digital_signature"]},
                },
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
                {
                    "id": "crl_distribution_points",
                    "smart-value": {
                        "schema": "crl-dist-url",
                        "params": {"crl-repo-names": ["root"]},
                    },
                },
            ],
        }

    return {
        "external-url-prefix": service_url,
        "keysets": {
            ARCH: {
                "path-prefix": "keys",
                "keys": {
                    label: {"path": f"{label}.key.pem"}
                    for label in ("root", "interm", "interm-ocsp", "tsa", "tsa2")
                },
            }
        },
        "pki-architectures": {
            ARCH: {
                "keyset": ARCH,
                "entities": {
                    "root": _ca_entity("Demo Root CA", tag),
                    "interm": _ca_entity("Demo Issuing CA", tag),
                    "interm-ocsp": _ca_entity("Demo OCSP Responder", tag),
                    "tsa": _ca_entity("Demo Time-Stamping Authority", tag),
                    "tsa2": _ca_entity("Demo Time-Stamping Authority 2", tag),
                },
                "certs": {
                    "root": {
                        "subject": "root",
                        "subject-key": "root",
                        "issuer": "root",
                        "authority-key": "root",
                        "validity": _validity(now - day, now + 20 * year),
                        "profiles": [{"id": "simple-ca", "params": {"crl-repo": "root"}}],
                    },
                    "interm": {
                        "issuer": "root",
                        "validity": _validity(now - day, now + 10 * year),
                        "profiles": [
                            {
                                "id": "simple-ca",
                                "params": {
                                    "max-path-len": 0,
                                    "crl-repo": "interm",
                                    "ocsp-service": "interm",
                                },
                            }
                        ],
                    },
                    "interm-ocsp": {
                        "issuer": "interm",
                        "validity": _validity(now - day, now + 10 * year),
                        "profiles": ["ocsp-responder"],
                    },
                    "tsa": tsa("tsa", tsa_years),
                    "tsa2": tsa("tsa2", 12),
                },
                "services": {
                    "ocsp": {
                        "interm": {
                            "for-issuer": "interm",
                            "responder-cert": "interm-ocsp",
                            "signing-key": "interm-ocsp",
                        }
                    },
                    "crl-repo": {
                        "root": {
                            "for-issuer": "root",
                            "signing-key": "root",
                            "simulated-update-schedule": "P1D",
                        },
                        "interm": {
                            "for-issuer": "interm",
                            "signing-key": "interm",
                            "simulated-update-schedule": "P1D",
                        },
                    },
                    "cert-repo": {
                        "root": {"for-issuer": "root", "publish-issued-certs": True},
                        "interm": {"for-issuer": "interm", "publish-issued-certs": False},
                    },
                    "time-stamping": {
                        "tsa": {"signing-key": "tsa", "signing-cert": "tsa"},
                        "tsa2": {"signing-key": "tsa2", "signing-cert": "tsa2"},
                    },
                },
            }
        },
    }


def certificate_serial(der: bytes) -> int:
    """The serial number of a DER certificate."""
    return int(asn1_x509.Certificate.load(der).serial_number)
