"""Invariant 6: an expired, not yet valid or revoked certificate is never used."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.errors import CertificateNotValid, CertificateRevoked
from gateway.signing.certificates import check_usable

NOW = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)


def _certificate(not_before: dt.datetime, not_after: dt.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Văn An")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


VALID = _certificate(NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1))


def test_valid_path_passes():
    check_usable([VALID, VALID], revoked_at=None, now=NOW)
    check_usable([VALID], revoked_at=NOW + dt.timedelta(minutes=1), now=NOW)  # revoked later


@pytest.mark.parametrize(
    "certificate",
    [
        _certificate(NOW - dt.timedelta(days=30), NOW - dt.timedelta(seconds=1)),  # expired
        _certificate(NOW + dt.timedelta(seconds=1), NOW + dt.timedelta(days=30)),  # not yet
    ],
)
def test_out_of_validity_is_refused(certificate):
    with pytest.raises(CertificateNotValid):
        check_usable([certificate], revoked_at=None, now=NOW)
    with pytest.raises(CertificateNotValid):
        check_usable([VALID, certificate], revoked_at=None, now=NOW)  # an expired CA too


def test_revoked_is_refused_from_the_revocation_instant():
    with pytest.raises(CertificateRevoked):
        check_usable([VALID], revoked_at=NOW, now=NOW)
