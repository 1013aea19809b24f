"""Documents as they arrive from word processors and earlier signing tools, each built
by the test: certified by their author (no changes; or form filling and signing, where
a signature may go only into an existing empty field), an empty field with a Vietnamese
(UTF-16) name, a document already signed by someone else, and a hybrid-reference file
as Word writes it. Each goes through intake, approval with TOTP and the bridge over
HTTP; every signature is then checked with pyHanko (difference analysis included) and
poppler's pdfsig."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import ModificationLevel

from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import approve, submit
from tests.pdf_builders import (
    certified,
    hybrid_xref_pdf,
    signed_by_someone_else,
    with_empty_field,
)

DOCUMENT = ["QUYẾT ĐỊNH", "Về việc phê duyệt kế hoạch năm 2027"]


def _sign_over_http(server, signer, document: bytes, **fields: str) -> tuple[dict, bytes]:
    answer = submit(server, document, signer.username, **fields)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    with server.tablet(signer.username, signer.password) as tablet:
        decision = approve(tablet, created["id"], signer.otp(), document)
    assert decision.status_code == 200, decision.text
    assert decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{created['id']}/signed-document").content
    assert signed.startswith(document)
    return created, signed


def _ours_valid(signed: bytes, trust_anchor: str) -> None:
    ours = validate_with_pyhanko(signed, Path(trust_anchor))[-1]
    assert ours.intact and ours.valid and ours.trusted and ours.covers_document, ours
    verdicts = pdfsig_verdicts(signed)
    assert verdicts and all(v == "Signature is Valid." for v in verdicts), verdicts


def _earlier_untouched(signed: bytes, field_name: str) -> None:
    """The earlier signature still covers its revision unchanged, and pyHanko's
    difference analysis finds only what a later signature may add."""
    reader = PdfFileReader(io.BytesIO(signed))
    earlier = next(s for s in reader.embedded_signatures if s.field_name == field_name)
    status = validate_pdf_signature(earlier)
    assert status.intact and status.valid, status
    assert status.modification_level in (
        ModificationLevel.LTA_UPDATES,
        ModificationLevel.FORM_FILLING,
    ), status.modification_level
    assert status.docmdp_ok is not False, status


def test_a_document_certified_with_no_changes_is_refused_at_intake(server, signer):
    document = certified(sample_pdf(DOCUMENT), MDPPerm.NO_CHANGES)
    answer = submit(server, document, signer.username)
    assert answer.status_code == 422
    assert answer.json()["code"] == "document_certified_no_changes"


def test_a_certified_form_is_signed_into_its_one_empty_field(server, signer, demo_credentials):
    document = certified(with_empty_field(sample_pdf(DOCUMENT), "Lãnh đạo ký"), MDPPerm.FILL_FORMS)
    # a new field would break the certification: refused at intake, before anyone is told
    refused = submit(server, document, signer.username, page="1", box="50,50,250,120")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "document_certified_field_required"
    other = submit(server, document, signer.username, field_name="Không có")
    assert other.json()["code"] == "document_certified_field_required"
    # unnamed: the one empty field is chosen at intake, so the signer approves it
    created, signed = _sign_over_http(server, signer, document)
    assert created["parameters"]["field_name"] == "Lãnh đạo ký"
    _ours_valid(signed, demo_credentials["trust_anchor"])
    _earlier_untouched(signed, "Certification")
    names = [s.field_name for s in PdfFileReader(io.BytesIO(signed)).embedded_signatures]
    assert names == ["Certification", "Lãnh đạo ký"]


def test_a_certified_form_without_an_empty_field_gets_an_invisible_signature_only(
    server, signer, demo_credentials
):
    document = certified(sample_pdf(DOCUMENT), MDPPerm.FILL_FORMS)
    visible = submit(server, document, signer.username, page="1", box="50,50,250,120")
    assert visible.status_code == 422
    assert visible.json()["code"] == "document_certified_no_empty_field"
    created, signed = _sign_over_http(server, signer, document)
    assert created["parameters"]["box"] is None
    _ours_valid(signed, demo_credentials["trust_anchor"])
    _earlier_untouched(signed, "Certification")


def test_an_empty_field_with_a_utf16_name_is_signed_by_that_name(server, signer, demo_credentials):
    name = "Chữ ký Giám đốc Sở Tài chính"
    document = with_empty_field(sample_pdf(DOCUMENT), name)
    # PDF stores the name as UTF-16BE with a byte order mark (here as octal escapes)
    assert b"/T (\\376\\377" in document
    placed = submit(server, document, signer.username, field_name=name, page="1", box="1,1,9,9")
    assert placed.status_code == 422 and placed.json()["code"] == "parameter_invalid"
    _, signed = _sign_over_http(server, signer, document, field_name=name)
    _ours_valid(signed, demo_credentials["trust_anchor"])
    (ours,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert ours.field_name == name
    # the widget kept its place and got an appearance in the field's box
    widget = ours.sig_field
    assert [round(float(v)) for v in widget["/Rect"]] == [300, 80, 520, 180]
    assert "/AP" in widget


def test_a_document_signed_by_someone_else_keeps_their_signature(server, signer, demo_credentials):
    document = signed_by_someone_else(sample_pdf(DOCUMENT))
    _, signed = _sign_over_http(server, signer, document, reason="Đồng ý")
    _ours_valid(signed, demo_credentials["trust_anchor"])
    _earlier_untouched(signed, "ChuKyKhac")
    assert len(pdfsig_verdicts(signed)) == 2


def test_a_hybrid_reference_file_is_signed_so_that_every_reader_sees_the_signature(
    server, signer, demo_credentials
):
    document = hybrid_xref_pdf()
    _, signed = _sign_over_http(server, signer, document)
    _ours_valid(signed, demo_credentials["trust_anchor"])
    update = signed[len(document) :]
    # The update is a classic table chained by /Prev to the hybrid one, not a
    # cross-reference stream: a reader that ignores /XRefStm still finds the signature.
    assert b"\nxref\n" in update and b"/XRef " not in update
    previous = int(re.findall(rb"startxref\s+(\d+)", document)[-1])
    assert re.search(rb"/Prev %d\b" % previous, update)
    # What a PDF 1.4 reader sees: the classic tables only. The new signature dictionary
    # is among the objects the update's table lists.
    table = update[update.index(b"\nxref\n") + 6 : update.index(b"trailer")]
    listed = _classic_entries(table)
    reader = PdfFileReader(io.BytesIO(signed))
    (ours,) = reader.embedded_signatures
    fields_array = reader.root["/AcroForm"].raw_get("/Fields")
    field_refs = [ref for ref in fields_array if ref.get_object().get("/T") == ours.field_name]
    assert len(field_refs) == 1
    assert {
        1,  # the catalog, which now has /AcroForm
        field_refs[0].idnum,  # the signature field (also the widget)
        ours.sig_field.raw_get("/V").idnum,  # the signature dictionary
    } <= listed


def _classic_entries(table: bytes) -> set[int]:
    """Object numbers marked in use ("n") in a classic cross-reference table."""
    numbers: set[int] = set()
    lines = table.split(b"\n")
    index = 0
    while index < len(lines):
        parts = lines[index].split()
        index += 1
        if len(parts) != 2:
            continue
        first, count = int(parts[0]), int(parts[1])
        for k in range(count):
            if lines[index + k].split()[-1] == b"n":
                numbers.add(first + k)
        index += count
    return numbers


@pytest.fixture
def signer(db, box):
    from tests.factories import make_signer

    return make_signer(db, box)
