"""A platform authenticator in Python (WebAuthn Level 3, "none" attestation, ES256), for
the bridge's passkey checks without a browser: it answers registration and assertion
challenges as a browser with a passkey would, and lets a test set what an attacker or an
unusual authenticator would (the backup flags, user verification, another key under the
same credential id)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm_bridge.sam.passkeys import PASSKEY_ENROLMENT_CONTEXT

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cose_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """The P-256 key as a COSE_Key (EC2, ES256)."""
    numbers = key.public_numbers()
    return cbor2.dumps(
        {
            1: 2,
            3: -7,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
    )


@dataclass
class SoftPasskey:
    """One passkey: its credential id and private key, its counter, its backup flags."""

    origin: str = "http://localhost"
    rp_id: str = "localhost"
    synced: bool = False
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    sign_count: int = 0

    @property
    def spki(self) -> bytes:
        """The public key, DER SubjectPublicKeyInfo (what ``getPublicKey()`` gives)."""
        return self.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    def _flags(self, user_verified: bool) -> int:
        flags = UP | (UV if user_verified else 0)
        return flags | (BE | BS if self.synced else 0)

    def _client_data(self, kind: str, challenge: bytes) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": b64url(challenge),
                "origin": self.origin,
                "crossOrigin": False,
            }
        ).encode()

    def register(
        self, options: dict, *, public_key: ec.EllipticCurvePublicKey | None = None
    ) -> dict:
        """The ``navigator.credentials.create`` answer (JSON) to ``options``;
        ``public_key``: what a relay would put in the attested data instead of ours."""
        challenge = base64.urlsafe_b64decode(options["challenge"] + "==")
        attested = (
            bytes(16)
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + cose_key(public_key or self.key.public_key())
        )
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([self._flags(True) | AT])
            + self.sign_count.to_bytes(4, "big")
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(self._client_data("webauthn.create", challenge)),
                "attestationObject": b64url(attestation),
            },
        }

    def enrolment_proof(self, code: str, *, spki: bytes | None = None) -> tuple[str, bytes]:
        """(code id, proof) as the app computes them for this passkey (or for ``spki``)."""
        code_id, secret = code.split(".")
        subject = len(self.credential_id).to_bytes(2, "big") + self.credential_id
        message = PASSKEY_ENROLMENT_CONTEXT + subject + (spki or self.spki)
        return code_id, hmac.new(secret.encode(), message, hashlib.sha256).digest()

    def assert_statement(self, statement: bytes, *, user_verified: bool = True) -> dict:
        """The ``navigator.credentials.get`` answer (JSON) with the statement's SHA-256
        as the challenge."""
        self.sign_count += 1
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([self._flags(user_verified)])
            + self.sign_count.to_bytes(4, "big")
        )
        client_data = self._client_data("webauthn.get", hashlib.sha256(statement).digest())
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
        }
