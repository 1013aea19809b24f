"""What the tablet app does with its device key, written independently of the server's
code: it generates a P-256 key (on a phone it would live in the Secure Enclave or the
Android Keystore), enrols with a one-time enrolment code, and signs the canonical
approval statement it builds itself from what it was shown.

The statement's canonical form is built here with the standard library
(``json.dumps`` with sorted keys and no spaces, which is RFC 8785 for these values:
ASCII strings and integers), not with ``hsm_bridge.sam.statement``, so that a drift between
the two is caught."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


@dataclass
class DeviceApp:
    """One device of one signer."""

    base_url: str
    username: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    device_id: str = ""

    def public_key_b64(self) -> str:
        der = self.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()

    def enrol(
        self, enrolment_code: str, push_token: str = "fcm-registration-token"
    ) -> httpx.Response:
        """POST /mobile/v1/devices without a session: the code's id, and the code's
        secret used only as the key of an HMAC over the device's public key (the
        secret never leaves the device). Written here from the API description, not
        with ``hsm_bridge.sam.signers``."""
        code_id, _, secret = enrolment_code.partition(".")
        public_der = base64.b64decode(self.public_key_b64())
        proof = hmac.new(
            secret.encode("ascii"),
            b"signing-gateway/device-enrolment/1\x00" + public_der,
            hashlib.sha256,
        ).digest()
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            answer = http.post(
                "/mobile/v1/devices",
                json={
                    "enrolment_code_id": code_id,
                    "enrolment_proof": base64.b64encode(proof).decode(),
                    "public_key": self.public_key_b64(),
                    "push_token": push_token,
                    "platform": "ios",
                    "name": "iPad của lãnh đạo",
                },
            )
        if answer.status_code == 201:
            self.device_id = answer.json()["id"]
        return answer

    def statement(
        self, decision: str, nonce: str, expires_at: int, requests: list[dict[str, str]]
    ) -> bytes:
        """The canonical statement over ``requests`` (dicts with ``id``,
        ``document_sha256``, ``parameters_sha256``, ``certificate_sha256``,
        ``mechanism``, as the request's JSON shows them)."""
        body = {
            "v": 2,
            "type": "signing-decision",
            "signer": self.username,
            "device": self.device_id,
            "decision": decision,
            "nonce": nonce,
            "expires_at": expires_at,
            "requests": sorted(
                (
                    {
                        "id": r["id"],
                        "document_sha256": r["document_sha256"],
                        "parameters_sha256": r["parameters_sha256"],
                        "certificate_sha256": r["certificate_sha256"],
                        "mechanism": r["mechanism"],
                    }
                    for r in requests
                ),
                key=lambda r: r["id"],
            ),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def answer(
        self,
        decision: str,
        nonce: str,
        requests: list[dict[str, str]],
        *,
        expires_in: int = 120,
        device_id: str | None = None,
    ) -> dict[str, object]:
        """The ``device_approval`` object for a decision on ``requests``."""
        expires_at = int(time.time()) + expires_in
        signature = self.key.sign(
            self.statement(decision, nonce, expires_at, requests), ec.ECDSA(hashes.SHA256())
        )
        return {
            "device_id": device_id or self.device_id,
            "nonce": nonce,
            "expires_at": expires_at,
            "signature": base64.b64encode(signature).decode(),
        }

    def revocation(self, nonce: str, device_id: str, *, expires_in: int = 120) -> dict[str, object]:
        """The ``device_approval`` object revoking ``device_id`` (this device or another of
        the signer's): the canonical ``device-revocation`` statement, signed."""
        expires_at = int(time.time()) + expires_in
        body = {
            "v": 1,
            "type": "device-revocation",
            "signer": self.username,
            "device": self.device_id,
            "revoke": device_id,
            "nonce": nonce,
            "expires_at": expires_at,
        }
        statement = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        signature = self.key.sign(statement, ec.ECDSA(hashes.SHA256()))
        return {
            "device_id": self.device_id,
            "nonce": nonce,
            "expires_at": expires_at,
            "signature": base64.b64encode(signature).decode(),
        }


def sealed_pin(tablet: httpx.Client, request_id: str, pin: str, nonce: str) -> dict[str, str]:
    """What the app sends as ``pin_envelope``: the token PIN sealed with HPKE (RFC 9180,
    DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode) to the key the
    gateway names for the request, ``info`` = the advertised prefix then the approval's
    nonce. Written from the API description (cryptography's HPKE, not
    ``hsm_bridge.sam.pin_envelope``)."""
    from cryptography.hazmat.primitives import hpke

    answer = tablet.get(f"/mobile/v1/signing-requests/{request_id}/pin-key")
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["suite"] == "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"
    point = base64.b64decode(view["public_key"])
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    info = base64.b64decode(view["info_prefix"]) + nonce.encode()
    suite = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
    return {"sealed": base64.b64encode(suite.encrypt(pin.encode(), key, info=info)).decode()}
