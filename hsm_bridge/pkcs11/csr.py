"""PKCS#10 certification requests (RFC 2986) signed on the token by the key they are
for: the request is built with asn1crypto, its CertificationRequestInfo hashed with
SHA-256 here and signed with the private key through the bridge's own signing path
(CKM_RSA_PKCS over DigestInfo, or CKM_ECDSA with the raw r||s DER-encoded), and checked
with ``cryptography`` before anyone sees it."""

from __future__ import annotations

import hashlib
from typing import Any

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from asn1crypto.core import Null
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import CertificateRequestInvalid, MechanismUnsupported
from hsm_bridge.pkcs11.keygen import spki_der
from hsm_bridge.pkcs11.signing import sign_digest

__all__ = ["build_request"]


def build_request(session: Any, key_id: bytes, public_key: Any, subject: x509.Name) -> bytes:
    """The DER CertificationRequest for ``public_key`` (a ``cryptography`` RSA or EC
    public key, the token's key with CKA_ID ``key_id``) naming ``subject``, with no
    attributes, signed on the token: sha256WithRSAEncryption (parameters NULL, RFC 4055)
    or ecdsa-with-SHA256 (no parameters, RFC 5758).

    Raises :class:`MechanismUnsupported` for another key type,
    :class:`CertificateRequestInvalid` when the signature does not verify with
    ``public_key``, and the token's errors."""
    if isinstance(public_key, rsa.RSAPublicKey):
        mechanism, algorithm = SignatureMechanism.RSA_PKCS_SHA256, "sha256_rsa"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        mechanism, algorithm = SignatureMechanism.ECDSA_SHA256, "sha256_ecdsa"
    else:
        raise MechanismUnsupported("only RSA and EC keys can make a certificate request")
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(subject.public_bytes()),
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki_der(public_key)),
            "attributes": [],
        }
    )
    signature = sign_digest(session, key_id, hashlib.sha256(info.dump()).digest(), mechanism)
    signature_algorithm: dict[str, Any] = {"algorithm": algorithm}
    if algorithm == "sha256_rsa":
        signature_algorithm["parameters"] = Null()
    der: bytes = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": signature_algorithm,
            "signature": signature,
        }
    ).dump()
    _check(der, public_key)
    return der


def _check(der: bytes, public_key: Any) -> None:
    """Raise CertificateRequestInvalid unless the request verifies and names
    ``public_key``."""
    try:
        request = x509.load_der_x509_csr(der)
        valid = request.is_signature_valid and spki_der(request.public_key()) == spki_der(
            public_key
        )
    except ValueError as exc:
        raise CertificateRequestInvalid("the token's request cannot be read back") from exc
    if not valid:
        raise CertificateRequestInvalid(
            "the request signed on the token does not verify with its public key"
        )
