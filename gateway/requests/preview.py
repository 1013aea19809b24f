"""The preview of a signature's place and look: the approved document with the signature
the bridge will build, drawn by the bridge's own builder.

A document worker runs :func:`hsm_bridge.pades.build_signed_pdf` with the request's
approved parameters, the credential's certificate and chain and the approved image,
exactly as the bridge will, but with :func:`~hsm_bridge.pades.placeholder_signature`
instead of a token: the page the tablet shows is the page the bridge will sign, except for the time
written in a text appearance (the preview's, not the signing's).
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session

from gateway.db.models import Credential, Organisation, SigningRequest, User
from gateway.errors import DocumentChanged
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.pades import SignatureParameters, SignerIdentity

__all__ = ["SignatureStep", "identity_of", "preview_step", "signature_image"]

# a signature to build: its parameters, the signer as the bridge names them, its image
SignatureStep = tuple[SignatureParameters, SignerIdentity, bytes | None]


def identity_of(credential: Credential, mechanism: str) -> SignerIdentity:
    """The signer as the bridge will name them: the credential's certificate (DER, as
    registered from the token) and its chain (from the registration's PEM)."""
    chain = (
        tuple(
            c.public_bytes(Encoding.DER)
            for c in x509.load_pem_x509_certificates(credential.chain_pem.encode())
        )
        if credential.chain_pem.strip()
        else ()
    )
    return SignerIdentity(credential.certificate_der, chain, SignatureMechanism(mechanism))


def signature_image(
    session: Session, request: SigningRequest, credential: Credential
) -> bytes | None:
    """The image a visible signature of ``request`` draws: the organisation's seal when
    its credential signs, else the signer's handwritten signature (PNG bytes)."""
    if credential.organisation_id is not None:
        organisation = session.get(Organisation, credential.organisation_id)
        return organisation.seal_image if organisation is not None else None
    owner = session.get(User, request.signer_id)
    return owner.signature_image if owner is not None else None


def preview_step(session: Session, request: SigningRequest) -> SignatureStep:
    """What the bridge will build ``request``'s signature with: its approved parameters,
    the credential's certificate and chain, and the approved image (a document worker
    builds it with a stand-in signature value:
    :func:`gateway.requests.sandbox_tasks.build_preview`). Raises DocumentChanged when
    the stored image is no longer the approved one."""
    params = SignatureParameters.from_json(request.parameters)
    credential = session.get(Credential, request.credential_id)
    assert credential is not None
    image = signature_image(session, request, credential)
    if params.image_sha256 is not None and (
        image is None or hashlib.sha256(image).hexdigest() != params.image_sha256
    ):
        raise DocumentChanged("the signature image changed after submission")
    return params, identity_of(credential, request.mechanism), image
