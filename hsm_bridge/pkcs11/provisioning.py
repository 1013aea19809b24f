"""Creating keys on a token: C_GenerateKeyPair and storing the certificate beside the key.

Used by installation set-up (the demo tokens) and by an administrator enrolling a new
credential. The private key is generated inside the token, sensitive and never
extractable; only the public key leaves it.
"""

from __future__ import annotations

import enum
from typing import Any

from asn1crypto.core import Integer
from asn1crypto.keys import RSAPublicKey
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key
from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

__all__ = ["KeySpec", "generate_key_pair", "store_certificate"]

_PRIVATE_TEMPLATE = {
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
}


class KeySpec(enum.StrEnum):
    """Key types the bridge can generate: RSA-2048, EC on P-256 (secp256r1) or P-384
    (secp384r1)."""

    RSA_2048 = "rsa2048"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"

    @property
    def curve(self) -> str | None:
        """The named curve of an EC spec, None for RSA."""
        return {KeySpec.EC_P256: "secp256r1", KeySpec.EC_P384: "secp384r1"}.get(self)


def generate_key_pair(
    session: Any,
    spec: KeySpec,
    key_id: bytes,
    label: str,
    *,
    always_authenticate: bool = False,
) -> CertificatePublicKeyTypes:
    """Generate a key pair on the token of ``session`` (C_GenerateKeyPair) with CKA_ID
    ``key_id`` and CKA_LABEL ``label``; return the public key as a ``cryptography``
    object (for the CA to certify). The private key is CKA_SENSITIVE and not
    CKA_EXTRACTABLE; with ``always_authenticate`` it also demands the PIN for each
    signature (CKA_ALWAYS_AUTHENTICATE)."""
    private_template = dict(_PRIVATE_TEMPLATE)
    if always_authenticate:
        private_template[Attribute.ALWAYS_AUTHENTICATE] = True
    if spec is KeySpec.RSA_2048:
        public, _ = session.generate_keypair(
            KeyType.RSA,
            2048,
            id=key_id,
            label=label,
            store=True,
            private_template=private_template,
        )
        parsed = RSAPublicKey.load(encode_rsa_public_key(public))
        return RSAPublicNumbers(
            parsed["public_exponent"].native, parsed["modulus"].native
        ).public_key()
    if spec.curve is None:
        raise ValueError(f"{spec} names no curve")
    params = session.create_domain_parameters(
        KeyType.EC,
        {Attribute.EC_PARAMS: encode_named_curve_parameters(spec.curve)},
        local=True,
    )
    public, _ = params.generate_keypair(
        id=key_id, label=label, store=True, private_template=private_template
    )
    loaded = load_der_public_key(encode_ec_public_key(public))
    assert isinstance(loaded, ec.EllipticCurvePublicKey)  # the token made an EC key pair
    return loaded


def store_certificate(
    session: Any, certificate: x509.Certificate, key_id: bytes, label: str
) -> None:
    """Store ``certificate`` on the token as a CKO_CERTIFICATE (CKC_X_509) object with
    the same CKA_ID as its key, so that credentials are matched by CKA_ID."""
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.ID: key_id,
            Attribute.LABEL: label,
            Attribute.SUBJECT: certificate.subject.public_bytes(),
            Attribute.ISSUER: certificate.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: Integer(certificate.serial_number).dump(),
            Attribute.VALUE: certificate.public_bytes(Encoding.DER),
        }
    )
