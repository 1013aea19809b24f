"""Whose certificate it is: a name the certificate gives is the user's name when it is
written the same, or, where one of the two is written without diacritics (as some CAs
issue them), the same once they are dropped; never when two names written with
diacritics differ by one (Vietnamese names differ by their tones)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.admin.enrolment import _check_holder, same_holder_name
from gateway.errors import CertificateHolderMismatch


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("Nguyễn Văn An", "Nguyễn  Văn   An", True),
        ("Nguyễn Văn An", "NGUYỄN VĂN AN", True),
        ("NGUYEN VAN AN", "Nguyễn Văn An", True),
        ("Đỗ Văn Hùng", "DO VAN HUNG", True),
        ("Trần Văn Hưng", "Trần Văn Hùng", False),
        ("Lê Thị Hạ", "Lê Thị Hà", False),
        ("Nguyễn Văn Аn", "Nguyễn Văn An", False),  # a Cyrillic А
        ("Nguyễn Văn An", "Nguyễn Văn Anh", False),
    ],
)
def test_names_are_compared_as_vietnamese_names_are_written(first, second, same):
    assert same_holder_name(first, second) is same


def _certificate(common_name: str, organisation: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


def test_a_persons_certificate_is_no_organisations_seal():
    """The leader's certificate names the organisation as its O: it is still the
    leader's, not the organisation's."""
    leaders = _certificate("Nguyễn Văn An", "Sở Tài chính tỉnh Hà Nam")
    with pytest.raises(CertificateHolderMismatch) as refused:
        _check_holder(leaders, "Sở Tài chính tỉnh Hà Nam", None)
    assert "Nguyễn Văn An" in refused.value.detail
    seal = _certificate("Sở Tài chính tỉnh Hà Nam", "Sở Tài chính tỉnh Hà Nam")
    assert _check_holder(seal, "Sở Tài chính tỉnh Hà Nam", None) is None
    assert _check_holder(leaders, "Sở Tài chính tỉnh Hà Nam", "Nguyễn Văn An") == ("Nguyễn Văn An")
