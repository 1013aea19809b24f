"""Putting a signer's key on a token, for the administrator on the host that holds it:
generate a key pair inside the token and a PKCS#10 request for the CA, then store the
certificate the CA returns beside the key. Works on the tokens of any PKCS#11 module
(found by serial number), through the same session pools, timeouts and error mapping
as signing."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pkcs11 import Attribute

from hsm_bridge.errors import TokenNotPresent
from hsm_bridge.pkcs11.csr import build_request
from hsm_bridge.pkcs11.keygen import (
    check_mechanisms,
    find_key_for,
    new_key_id,
    store_issued_certificate,
)
from hsm_bridge.pkcs11.provisioning import KeySpec, generate_key_pair
from hsm_bridge.pkcs11.signing import find_private_key
from hsm_bridge.pkcs11.tokens import TokenLimits, TokenPool, token_serial_text

__all__ = ["KEYGEN_LIMITS", "ImportedCertificate", "KeyRequest", "TokenKeys"]

# One operation at a time; a USB token may take a minute to make an RSA key.
KEYGEN_LIMITS = TokenLimits(max_sessions=1, timeout_seconds=180.0)


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A key pair just generated on token ``token_serial`` under CKA_ID ``key_id``, and
    its PKCS#10 request (``csr_der``, DER) for the CA."""

    token_serial: str
    key_id: bytes
    algorithm: KeySpec
    csr_der: bytes

    def pem(self) -> str:
        """The request as PEM (``-----BEGIN CERTIFICATE REQUEST-----``, RFC 7468 §7)."""
        body = "\n".join(textwrap.wrap(base64.b64encode(self.csr_der).decode("ascii"), 64))
        return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"


@dataclass(frozen=True, slots=True)
class ImportedCertificate:
    """Where a certificate went: the key pair's CKA_ID on ``token_serial``; ``stored``
    is False when the token held that very certificate already."""

    token_serial: str
    key_id: bytes
    stored: bool


class TokenKeys:
    """Key generation and certificate import on the tokens of the PKCS#11 modules at
    ``module_paths`` (shared libraries). ``pin_for`` gives a token's stored user PIN or
    raises :class:`~hsm_bridge.errors.PinRequired`; a ``pin`` given to a method is
    used for that one operation instead (then logged out, never kept)."""

    def __init__(self, module_paths: Sequence[str], pin_for: Callable[[str], str]) -> None:
        self._pools = [TokenPool(path, pin_for, limits=KEYGEN_LIMITS) for path in module_paths]

    def _token(self, serial: str) -> tuple[TokenPool, Any]:
        """The pool whose module holds token ``serial`` and the python-pkcs11 token."""
        for pool in self._pools:
            for token in pool.tokens():
                if token_serial_text(token) == serial:
                    return pool, token
        raise TokenNotPresent(f"no PKCS#11 module shows a token with serial {serial}")

    def generate_request(
        self,
        serial: str,
        spec: KeySpec,
        subject: x509.Name,
        label_prefix: str,
        *,
        pin: str | None = None,
    ) -> KeyRequest:
        """Generate a ``spec`` key pair inside token ``serial`` (C_GenerateKeyPair:
        private key sensitive, never extractable, a fresh CKA_ID, CKA_LABEL
        ``label_prefix`` and the CKA_ID's first 8 hex digits: unique on the token)
        and a PKCS#10 request naming ``subject``, signed on the token and verified.
        The token's mechanisms are checked first; if the request fails, the new key
        pair is destroyed again.

        Raises ``mechanism_unsupported``, ``token_not_present``, ``pin_incorrect``,
        ``pin_locked``, ``token_full``, ``certificate_request_invalid``..."""
        pool, token = self._token(serial)
        check_mechanisms(token, spec)

        def work(session: Any) -> tuple[bytes, bytes]:
            key_id = new_key_id(session)
            label = f"{label_prefix}-{key_id.hex()[:8]}"
            public_key = generate_key_pair(session, spec, key_id, label)
            try:
                return key_id, build_request(session, key_id, public_key, subject)
            except BaseException:
                for obj in session.get_objects({Attribute.ID: key_id}):
                    obj.destroy()
                raise

        key_id, der = pool.run(serial, "generate", work, pin=pin)
        return KeyRequest(serial, key_id, spec, der)

    def import_certificate(
        self, serial: str, certificate: x509.Certificate, *, pin: str | None = None
    ) -> ImportedCertificate:
        """Find the key pair on token ``serial`` whose public key ``certificate``
        certifies and store the certificate beside it (same CKA_ID, the key's
        CKA_LABEL); idempotent.

        Raises ``no_matching_key`` (the certificate is another key's),
        ``credential_not_found`` (ambiguous, or the key has another certificate),
        ``token_not_present``, ``pin_incorrect``, ``token_full``..."""
        pool, _ = self._token(serial)

        def work(session: Any) -> ImportedCertificate:
            key_id = find_key_for(session, certificate)
            label = str(find_private_key(session, key_id).label)
            stored = store_issued_certificate(session, certificate, key_id, label)
            return ImportedCertificate(serial, key_id, stored)

        result: ImportedCertificate = pool.run(serial, "import_certificate", work, pin=pin)
        return result
