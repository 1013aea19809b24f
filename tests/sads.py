"""SADs for bridge-level tests, minted with the bridge's own key exactly as its signature
activation module mints them after a signer's approval (the approval itself is tested
in tests/hsm_bridge/sam/test_authorization.py and through the whole gateway elsewhere)."""

from __future__ import annotations

import datetime as dt
import hashlib

from hsm_bridge import CredentialRef, SignRequest
from hsm_bridge.clock import utcnow
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.pades import SignatureParameters
from hsm_bridge.sam.activation import ActivationIssuer


def sad_for(
    issuer: ActivationIssuer,
    ref: CredentialRef,
    mechanism: SignatureMechanism,
    document: bytes,
    certificate_der: bytes,
    params: SignatureParameters | None = None,
    *,
    subject: str = "test-request",
    authorization: str = "test-authorization",
    now: dt.datetime | None = None,
    ttl_seconds: int = 120,
) -> str:
    """A SAD for signing ``document`` with ``params`` (invisible by default)."""
    return issuer.issue(
        ref,
        mechanism=mechanism.value,
        document_sha256=hashlib.sha256(document).hexdigest(),
        certificate_sha256=hashlib.sha256(certificate_der).hexdigest(),
        parameters=(params or SignatureParameters()).as_json_object(),
        authorization=authorization,
        subject=subject,
        now=utcnow() if now is None else now,
        ttl_seconds=ttl_seconds,
    )


def request_for(
    issuer: ActivationIssuer,
    ref: CredentialRef,
    mechanism: SignatureMechanism,
    document: bytes,
    certificate_der: bytes,
    params: SignatureParameters | None = None,
    *,
    images: dict[str, bytes] | None = None,
    **kwargs: object,
) -> SignRequest:
    """A :class:`SignRequest` for ``document`` under a fresh SAD."""
    sad = sad_for(issuer, ref, mechanism, document, certificate_der, params, **kwargs)  # type: ignore[arg-type]
    return SignRequest(ref, mechanism, sad, document, images or {})
