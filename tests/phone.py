"""A signer's device at the bridge's level: its own P-256 key, enrolled with an
enrolment code, signing approval, revocation and enrolment-code statements."""

from __future__ import annotations

import base64
import os
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm_bridge.clock import utcnow
from hsm_bridge.pades import parameters_sha256
from hsm_bridge.sam.authorization import AuthorizationItem, DeviceFactor
from hsm_bridge.sam.code_envelope import open_code
from hsm_bridge.sam.signers import EnrolmentCode, SignerRegistry, enrolment_proof
from hsm_bridge.sam.statement import (
    ApprovalStatement,
    Decision,
    EnrolmentCodeStatement,
    RevocationStatement,
    Statement,
    StatementDocument,
)


class Phone:
    """A signer's device: a P-256 key that never leaves it."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public_der = self.key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        self.device_id = ""
        self.recipient = ""
        self._code_key = ec.generate_private_key(ec.SECP256R1())

    def enrol(self, registry: SignerRegistry, code_text: str) -> None:
        code_id, _, secret = code_text.partition(".")
        device = registry.enrol_device(
            code_id, self.public_der, enrolment_proof(secret, self.public_der), now=utcnow()
        )
        self.device_id = device.device_id

    def _sign(self, statement: Statement) -> bytes:
        return self.key.sign(statement.canonical_bytes(), ec.ECDSA(hashes.SHA256()))

    def approve(
        self, signer: str, items: list[AuthorizationItem], *, nonce: str = "", ttl: int = 120
    ) -> DeviceFactor:
        """Sign the statement of what the phone showed: ``items``."""
        nonce = nonce or base64.urlsafe_b64encode(os.urandom(32)).decode()
        expires_at = int(time.time()) + ttl
        statement = ApprovalStatement(
            signer=signer,
            device=self.device_id,
            decision=Decision.APPROVE,
            nonce=nonce,
            expires_at=expires_at,
            documents=tuple(
                StatementDocument(
                    i.request_id,
                    i.document_sha256,
                    parameters_sha256(i.parameters),
                    i.certificate_sha256,
                    i.mechanism.value,
                )
                for i in items
            ),
        )
        return DeviceFactor(self.device_id, nonce, expires_at, self._sign(statement))

    def revoke(self, signer: str, device_id: str) -> DeviceFactor:
        """Sign the revocation of ``device_id`` (this device or another of the signer)."""
        nonce = base64.urlsafe_b64encode(os.urandom(32)).decode()
        expires_at = int(time.time()) + 60
        statement = RevocationStatement(signer, self.device_id, device_id, nonce, expires_at)
        return DeviceFactor(self.device_id, nonce, expires_at, self._sign(statement))

    def issue_code(self, signer: str) -> DeviceFactor:
        """Sign the request for a code that enrols another device of ``signer``, sealed
        to a new one-time key of this phone (:attr:`recipient`, base64url point)."""
        nonce = base64.urlsafe_b64encode(os.urandom(32)).decode()
        expires_at = int(time.time()) + 60
        self._code_key = ec.generate_private_key(ec.SECP256R1())
        point = self._code_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        self.recipient = base64.urlsafe_b64encode(point).rstrip(b"=").decode()
        statement = EnrolmentCodeStatement(
            signer, self.device_id, nonce, expires_at, self.recipient
        )
        return DeviceFactor(self.device_id, nonce, expires_at, self._sign(statement))

    def read_code(self, issued: EnrolmentCode, nonce: str) -> str:
        """The code's text (``code_id.secret``) from the bridge's sealed answer to the
        request with ``nonce``."""
        return open_code(self._code_key, base64.urlsafe_b64decode(issued.sealed), nonce)
