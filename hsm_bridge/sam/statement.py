"""The approval statement a signer's device signs, and its verification.

A device answers a signing request (or a batch of them) by signing, with its own P-256
key (Secure Enclave / Android Keystore), the canonical bytes of an approval statement:
the signer, the device, the decision (``approve`` or ``reject``), the server's nonce, an
expiry, and per request its id, the SHA-256 of the exact document shown and the SHA-256
of the signature parameters (field, level, reason, appearance), the SHA-256 of the
certificate that will sign and the mechanism. The verifier rebuilds
the statement from its *own* stored values, never from copies the client sends, so a
signature over anything else does not verify.

Canonical bytes: RFC 8785 (JSON Canonicalization Scheme) of the statement object, with
the requests sorted by id. Signature: ECDSA P-256 with SHA-256 (FIPS 186-4), DER
``ECDSA-Sig-Value`` (RFC 3279 §2.2.3), as Android Keystore and the Secure Enclave
(``SecKeyCreateSignature`` with ``ecdsaSignatureMessageX962SHA256``) produce it.

It lives in :mod:`hsm_bridge` because the bridge, which decides whether a digest may be
signed, must be able to verify it too (EN 419 241's signature activation module).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import rfc8785
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

__all__ = [
    "ApprovalStatement",
    "Decision",
    "EnrolmentCodeStatement",
    "Statement",
    "StatementDocument",
    "StatementSignatureInvalid",
    "RevocationStatement",
    "load_device_public_key",
    "verify_statement_signature",
]

STATEMENT_VERSION = 2


class Decision(enum.StrEnum):
    """What the signer decided."""

    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class StatementDocument:
    """One request in a statement: its id; three lowercase SHA-256 hex digests (64
    characters each): of the original document bytes, of the canonical signature
    parameters and of the signing certificate (DER); and the signature mechanism
    (a :class:`~hsm_bridge.credentials.SignatureMechanism` value)."""

    request_id: str
    document_sha256: str
    parameters_sha256: str
    certificate_sha256: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class ApprovalStatement:
    """What a device signs. ``signer``: the username; ``device``: the device id;
    ``nonce``: the server's nonce (base64url text); ``expires_at``: POSIX seconds after
    which the answer is void."""

    signer: str
    device: str
    decision: Decision
    nonce: str
    expires_at: int
    documents: tuple[StatementDocument, ...]

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON (UTF-8) of the statement: the bytes that are signed."""
        return rfc8785.dumps(
            {
                "v": STATEMENT_VERSION,
                "type": "signing-decision",
                "signer": self.signer,
                "device": self.device,
                "decision": self.decision.value,
                "nonce": self.nonce,
                "expires_at": self.expires_at,
                "requests": [
                    {
                        "id": d.request_id,
                        "document_sha256": d.document_sha256,
                        "parameters_sha256": d.parameters_sha256,
                        "certificate_sha256": d.certificate_sha256,
                        "mechanism": d.mechanism,
                    }
                    for d in sorted(self.documents, key=lambda d: d.request_id)
                ],
            }
        )


@dataclass(frozen=True, slots=True)
class RevocationStatement:
    """What a signer's device signs to revoke one of the signer's devices (a lost
    tablet, from another one): ``signer``; ``device``, the id of the device that signs;
    ``revoke``, the id of the device to revoke (it may be the same); the server's
    ``nonce`` and ``expires_at`` (POSIX seconds)."""

    signer: str
    device: str
    revoke: str
    nonce: str
    expires_at: int

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON (UTF-8) of the statement: the bytes that are signed."""
        return rfc8785.dumps(
            {
                "v": 1,
                "type": "device-revocation",
                "signer": self.signer,
                "device": self.device,
                "revoke": self.revoke,
                "nonce": self.nonce,
                "expires_at": self.expires_at,
            }
        )


@dataclass(frozen=True, slots=True)
class EnrolmentCodeStatement:
    """What a signer's enrolled device signs to have the bridge issue a one-time code
    for enrolling another device of the signer (a second tablet): ``signer``;
    ``device``, the id of the device that signs; the server's ``nonce`` and
    ``expires_at`` (POSIX seconds); ``recipient``, the app's one-time HPKE public key
    (base64url of the 65-byte uncompressed P-256 point) to which the bridge seals the
    code (:mod:`hsm_bridge.sam.code_envelope`), so the web tier that relays it cannot
    read it."""

    signer: str
    device: str
    nonce: str
    expires_at: int
    recipient: str

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON (UTF-8) of the statement: the bytes that are signed."""
        return rfc8785.dumps(
            {
                "v": 2,
                "type": "enrolment-code",
                "signer": self.signer,
                "device": self.device,
                "nonce": self.nonce,
                "expires_at": self.expires_at,
                "recipient": self.recipient,
            }
        )


# Every statement a device signs: each names its own type, so a signature over one kind
# is never one over another.
Statement = ApprovalStatement | RevocationStatement | EnrolmentCodeStatement


class StatementSignatureInvalid(Exception):
    """The device signature does not verify over the statement (or the key is not a
    P-256 public key). Deliberately says nothing about which part differed."""


def load_device_public_key(spki_der: bytes) -> ec.EllipticCurvePublicKey:
    """Parse a device key: DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of a P-256
    (secp256r1) key. Raises :class:`StatementSignatureInvalid` for anything else."""
    try:
        key = load_der_public_key(spki_der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise StatementSignatureInvalid("not a DER public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise StatementSignatureInvalid("device keys are P-256")
    return key


def verify_statement_signature(
    statement: Statement,
    public_key_der: bytes,
    signature_der: bytes,
) -> None:
    """Verify ``signature_der`` (DER ECDSA-Sig-Value) by the device key
    ``public_key_der`` (DER SPKI, P-256) over :meth:`ApprovalStatement.canonical_bytes`.
    Returns nothing; raises :class:`StatementSignatureInvalid`."""
    key = load_device_public_key(public_key_der)
    try:
        key.verify(signature_der, statement.canonical_bytes(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise StatementSignatureInvalid("the device signature does not verify") from exc
