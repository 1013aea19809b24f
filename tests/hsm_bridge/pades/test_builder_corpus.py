"""The bridge's builder on real documents: every corpus document that intake accepts is
signed by :func:`hsm_bridge.pades.build_signed_pdf` invisibly and with a box on page 1,
and pyHanko's validator finds one more signature, intact and valid over the whole file,
after which earlier signatures see nothing but a signature added. (Before the bridge
built the signatures, a review found box signatures on cross-reference-stream documents
refused by the bridge's check of the web tier's update.)"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import ValidationContext

from gateway.errors import GatewayError
from gateway.requests.intake import inspect_pdf
from hsm_bridge.pades import SignatureParameters, build_signed_pdf
from tests.pdf_builders import SoftwareKey, software_key

XREF_STREAM_DOCUMENTS = [
    "boxes-negative-mediabox-ur3-js.pdf",
    "javascript-document-level.pdf",
    "signed-twice-pades.pdf",
]
INVISIBLE = SignatureParameters()
BOXED = SignatureParameters(reason="R", page=1, box=(20, 20, 120, 60))


@pytest.fixture(scope="module")
def key() -> SoftwareKey:
    return software_key()


def _signed_and_checked(document: bytes, params: SignatureParameters, key: SoftwareKey) -> None:
    signed = build_signed_pdf(
        document,
        params,
        key.identity,
        image=None,
        signing_time=dt.datetime.now(dt.UTC),
        sign_digest=key.sign_digest,
    )
    assert signed.startswith(document)
    signatures = PdfFileReader(io.BytesIO(signed), strict=False).embedded_signatures
    ours = signatures[-1]
    context = ValidationContext(trust_roots=[ours.signer_cert], allow_fetching=False)
    status = validate_pdf_signature(ours, context)
    assert status.intact and status.valid and status.trusted, status
    assert status.coverage.name == "ENTIRE_FILE"
    before = PdfFileReader(io.BytesIO(document), strict=False).embedded_signatures
    for was, now in zip(before, signatures[:-1], strict=True):
        # what the earlier signature sees now is at worst a form filled (our signature),
        # or what it saw already (a document altered after it was signed)
        worst = max(_level(was), ModificationLevel.FORM_FILLING)
        assert _level(now) <= worst, (was.field_name, _level(was), _level(now))


def _level(signature: EmbeddedPdfSignature) -> ModificationLevel:
    found = validate_pdf_signature(signature, skip_diff=False).modification_level
    return found if found is not None else ModificationLevel.NONE


@pytest.mark.parametrize("name", XREF_STREAM_DOCUMENTS)
def test_a_box_signature_on_an_xref_stream_document(name, corpus: Path, key):
    document = (corpus / "pdf" / name).read_bytes()
    inspect_pdf(document, max_bytes=50_000_000)  # intake accepts it
    _signed_and_checked(
        document, SignatureParameters(reason="R", page=1, box=(50, 60, 250, 130)), key
    )


def test_every_accepted_corpus_document_is_signed_invisibly_and_boxed(corpus: Path, key):
    checked = 0
    for path in sorted((corpus / "pdf").glob("*.pdf")):
        document = path.read_bytes()
        try:
            report = inspect_pdf(document, max_bytes=50_000_000)
        except GatewayError:
            continue  # refused at intake: never reaches the bridge
        for params in (INVISIBLE, BOXED):
            if params.box is not None and report.certification == "fill_forms":
                continue  # a P=2 document takes a signature only in its own field
            try:
                _signed_and_checked(document, params, key)
            except Exception as exc:
                raise AssertionError(f"{path.name} {params}: {exc!r}") from exc
            checked += 1
    assert checked >= 30
