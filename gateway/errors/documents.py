"""Intake's refusals: the document is refused before anything is stored or anyone notified."""

from __future__ import annotations

from gateway.errors.base import DocumentRefused

__all__ = [
    "DocumentCertifiedFieldRequired",
    "DocumentCertifiedNoChanges",
    "DocumentCertifiedNoEmptyField",
    "DocumentEmpty",
    "DocumentEncrypted",
    "DocumentLocked",
    "DocumentNotPdf",
    "DocumentTooComplex",
    "DocumentTooLarge",
    "DocumentTruncated",
    "DocumentUnreadable",
    "DocumentUnsignable",
    "DocumentXfa",
    "SignerBlockNotFound",
]


class DocumentNotPdf(DocumentRefused):
    """The upload has no ``%PDF-`` header in its first 1024 bytes."""

    code = "document_not_pdf"
    status = 415
    title = "The document is not a PDF"


class DocumentTooLarge(DocumentRefused):
    """The upload is larger than ``max_document_bytes``."""

    code = "document_too_large"
    status = 413
    title = "The document is too large"


class DocumentTruncated(DocumentRefused):
    """No ``%%EOF`` marker near the end: the file is incomplete."""

    code = "document_truncated"
    status = 422
    title = "The PDF is truncated"


class DocumentUnreadable(DocumentRefused):
    """pyHanko, the parser of record, cannot read the file or its page tree."""

    code = "document_unreadable"
    status = 422
    title = "The PDF cannot be read"


class DocumentEncrypted(DocumentRefused):
    """The document has a security handler; the decrypted file must be submitted."""

    code = "document_encrypted"
    status = 422
    title = "The PDF is encrypted"


class DocumentCertifiedNoChanges(DocumentRefused):
    """The author's certification (DocMDP P=1), or an earlier signature's lock with P=1,
    forbids any change (ISO 32000-1 §12.8.2.2)."""

    code = "document_certified_no_changes"
    status = 422
    title = "The PDF is certified with no changes allowed"


class DocumentCertifiedFieldRequired(DocumentRefused):
    """A document certified for form filling and signing (P=2) gets no new visible field;
    several empty fields are there and none was named."""

    code = "document_certified_field_required"
    status = 422
    title = (
        "The author's certification allows a signature only in one of the document's "
        "empty signature fields: name it (field_name)"
    )


class DocumentCertifiedNoEmptyField(DocumentRefused):
    """A visible signature was asked for on a P=2 document without an empty signature
    field."""

    code = "document_certified_no_empty_field"
    status = 422
    title = (
        "The author's certification allows no visible new signature field, and the "
        "document has no empty one"
    )


class DocumentLocked(DocumentRefused):
    """An earlier signature's field lock covers every field a new signature would create
    (Action /All or /Exclude)."""

    code = "document_locked"
    status = 422
    title = "An earlier signature locks every field a new signature would need"


class SignerBlockNotFound(DocumentRefused):
    """``placement=auto`` found no line with the signer's name under a title line on the
    last page."""

    code = "signer_block_not_found"
    status = 422
    title = (
        "Automatic placement found no signer block (title line, then the signer's name) "
        "on the last page"
    )


class DocumentXfa(DocumentRefused):
    """A dynamic XFA form: the signer would see a placeholder page, not the form."""

    code = "document_xfa_unsupported"
    status = 422
    title = "Dynamic XFA forms cannot be signed"


class DocumentEmpty(DocumentRefused):
    """The page tree holds no page."""

    code = "document_empty"
    status = 422
    title = "The PDF has no pages"


class DocumentTooComplex(DocumentRefused):
    """The document asks more than the installation's limits allow a reader to spend
    on it (pages, decompressed data per stream or per page, image pixels, nesting), or
    reading it took longer or more memory than a worker may use
    (:mod:`gateway.requests.sandbox`)."""

    code = "document_too_complex"
    status = 422
    title = "The PDF needs more than the allowed memory or time to read"


class DocumentUnsignable(DocumentRefused):
    """The signature cannot be added to this document: building it (as the bridge will,
    with a stand-in signature value) failed at submission, so no approval is spent on
    it."""

    code = "document_unsignable"
    status = 422
    title = "A signature cannot be added to this PDF"
