"""PAdES signatures built by the bridge itself (docs/design.md invariant 1): the parameters a
signer approves (:mod:`.parameters`), how the visible signature looks (:mod:`.appearance`,
:mod:`.fonts`) and the pyHanko pipeline that builds the signed PDF (:mod:`.builder`)."""

from hsm_bridge.pades.appearance import IMAGE_MARGIN, SEAL_MARGIN, VIETNAM_TIME
from hsm_bridge.pades.builder import (
    SignerIdentity,
    build_signed_pdf,
    check_images,
    placeholder_signature,
)
from hsm_bridge.pades.parameters import (
    EmptyField,
    PadesLevel,
    SignatureParameters,
    parameters_sha256,
)

__all__ = [
    "IMAGE_MARGIN",
    "SEAL_MARGIN",
    "VIETNAM_TIME",
    "EmptyField",
    "PadesLevel",
    "SignatureParameters",
    "SignerIdentity",
    "build_signed_pdf",
    "check_images",
    "parameters_sha256",
    "placeholder_signature",
]
