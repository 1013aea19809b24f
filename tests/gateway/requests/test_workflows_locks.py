"""Official documents against what earlier signatures and templates impose (a third
review's cases): page trees that never end, field locks of signatures already made (in
the field's /Lock or only in the signature's /Reference), template fields hidden by
optional content or with two widgets, nested UTF-16 template names."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, SigFieldSpec

from gateway.errors import DocumentUnreadable
from gateway.requests.intake import inspect_pdf
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import submit
from tests.factories import make_organisation
from tests.official import both_steps, pixels, render_page, seal_template, submit_official
from tests.pdf_builders import raw_pdf, someone_else

_CONTENT = b"BT /F1 14 Tf 80 700 Td (Quyet dinh) Tj ET"
_PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
    b" /Resources << /Font << /F1 5 0 R >> >> %s >>"
)
_BASE = {
    4: b"<< /Length %d >>\nstream\n" % len(_CONTENT) + _CONTENT + b"\nendstream",
    5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
}


def test_a_page_tree_that_never_ends_is_unreadable():
    """A /Pages node whose kid leads back to it: refused at once, not walked forever."""
    objects = dict(_BASE)
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 1 >>"
    objects[3] = _PAGE % b""
    objects[6] = b"<< /Type /Pages /Kids [2 0 R] /Count 0 /Parent 2 0 R >>"
    with pytest.raises(DocumentUnreadable):
        inspect_pdf(raw_pdf(objects), max_bytes=10**8)


def _locked_all(action: FieldMDPAction = FieldMDPAction.ALL) -> bytes:
    """A contract signed by someone else whose signature field locks all fields
    (Acrobat's 'lock all fields'), or all but its own (/Exclude [BenA])."""
    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf(["HỢP ĐỒNG"])), strict=False)
    fields.append_signature_field(
        writer,
        SigFieldSpec(
            "BenA",
            on_page=0,
            box=(50, 50, 200, 100),
            field_mdp_spec=FieldMDPSpec(
                action, fields=["BenA"] if action == FieldMDPAction.EXCLUDE else None
            ),
        ),
    )
    out = io.BytesIO()
    writer.write(out)
    return signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(out.getvalue()), strict=False),
        signers.PdfSignatureMetadata(field_name="BenA"),
        signer=someone_else(),
    ).getvalue()


@pytest.mark.parametrize("action", [FieldMDPAction.ALL, FieldMDPAction.EXCLUDE])
@pytest.mark.parametrize("visible", [True, False])
def test_a_lock_on_every_field_refuses_a_new_signature_field(server, signer, action, visible):
    """An earlier signature locking all fields (or all but its own) also covers any
    field a new signature creates: refused before anyone is notified."""
    placed = {"page": "1", "box": "300,300,500,380"} if visible else {}
    answer = submit(server, _locked_all(action), signer.username, **placed)
    assert answer.status_code == 422 and answer.json()["code"] == "document_locked", answer.text


def test_an_official_document_on_a_locked_contract_is_refused(server, db, box):
    org = make_organisation(db, box)
    answer = submit_official(server, org, _locked_all(), page="1", box="330,90,530,160")
    assert answer.status_code == 422 and answer.json()["code"] == "document_locked", answer.text


def test_a_lock_read_only_from_the_signatures_reference_counts(server, signer, monkeypatch):
    """pyHanko validates a field lock from the signature's /Reference (FieldMDP); one
    written there alone, with no /Lock in the field, still keeps BenB from being filled."""
    from pyhanko.sign.signers import pdf_signer

    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf(["HỢP ĐỒNG"])), strict=False)
    fields.append_signature_field(writer, SigFieldSpec("BenA", on_page=0, box=(50, 50, 200, 100)))
    fields.append_signature_field(writer, SigFieldSpec("BenB", on_page=0, box=(300, 50, 450, 100)))
    out = io.BytesIO()
    writer.write(out)
    original = pdf_signer.PdfSigningSession._apply_locking_rules

    def with_reference_lock(self):
        setup = original(self)
        return pdf_signer.SigMDPSetup(
            certify=setup.certify,
            field_lock=FieldMDPSpec(FieldMDPAction.INCLUDE, fields=["BenB"]),
            docmdp_perms=setup.docmdp_perms,
            md_algorithm=setup.md_algorithm,
        )

    with monkeypatch.context() as patch:
        patch.setattr(pdf_signer.PdfSigningSession, "_apply_locking_rules", with_reference_lock)
        document = signers.sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(out.getvalue()), strict=False),
            signers.PdfSignatureMetadata(field_name="BenA"),
            signer=someone_else(),
        ).getvalue()
    assert b"/FieldMDP" in document and b"/Lock" not in document
    answer = submit(server, document, signer.username, field_name="BenB")
    assert answer.status_code == 422, answer.text
    assert "locked by an earlier signature" in answer.json()["detail"]


def _hide_behind_layer(document: bytes, name: str) -> bytes:
    """``document`` with the widget of signature field ``name`` put in an optional
    content group that is OFF (ISO 32000-1 §8.11: the annotation is not drawn)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(document), strict=False)
    layer = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/OCG"),
                generic.pdf_name("/Name"): generic.pdf_string("Layer"),
            }
        )
    )
    writer.root["/OCProperties"] = generic.DictionaryObject(
        {
            generic.pdf_name("/OCGs"): generic.ArrayObject([layer]),
            generic.pdf_name("/D"): generic.DictionaryObject(
                {generic.pdf_name("/OFF"): generic.ArrayObject([layer])}
            ),
        }
    )
    writer.update_root()
    for ref in writer.root["/AcroForm"]["/Fields"]:
        if ref.get_object()["/T"] == name:
            ref.get_object()["/OC"] = layer
            writer.mark_update(ref)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_template_seal_field_in_a_layer_is_refused(server, db, box):
    """Optional content some viewers turn off hides a widget as well as its flags do."""
    org = make_organisation(db, box)
    document = _hide_behind_layer(seal_template(), "Sig2")
    answer = submit_official(server, org, document, field_name="Sig1", seal_field_name="Sig2")
    assert answer.status_code == 422 and "shows on no page" in answer.json()["detail"]


def _two_widget_template(which: str) -> bytes:
    """Leader's field Sig1 and seal field Sig2; ``which`` of them has two widgets (both
    visible, on page 1 and page 2): pyHanko cannot sign a field with two widgets."""
    objects = dict(_BASE)
    objects[1] = (
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [10 0 R 20 0 R] /SigFlags 3 >> >>"
    )
    objects[2] = b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 >>"
    objects[3] = _PAGE % b"/Annots [11 0 R 21 0 R]"
    objects[6] = _PAGE % b"/Annots [12 0 R]"
    first, second = (10, 20) if which == "leader" else (20, 10)
    objects[first] = b"<< /FT /Sig /T (%s) /Kids [11 0 R 12 0 R] >>" % (
        b"Sig1" if first == 10 else b"Sig2"
    )
    objects[11] = b"<< /Type /Annot /Subtype /Widget /Parent %d 0 R /Rect %s /P 3 0 R /F 4 >>" % (
        first,
        b"[330 90 530 160]" if which == "leader" else b"[300 74 402 176]",
    )
    objects[12] = (
        b"<< /Type /Annot /Subtype /Widget /Parent %d 0 R /Rect [300 80 500 150] /P 6 0 R"
        b" /F 4 >>" % first
    )
    objects[second] = b"<< /FT /Sig /T (%s) /Kids [21 0 R] >>" % (
        b"Sig1" if second == 10 else b"Sig2"
    )
    objects[21] = b"<< /Type /Annot /Subtype /Widget /Parent %d 0 R /Rect %s /P 3 0 R /F 4 >>" % (
        second,
        b"[330 90 530 160]" if which != "leader" else b"[300 74 402 176]",
    )
    return raw_pdf(objects)


@pytest.mark.parametrize("which", ["leader", "seal"])
def test_a_template_field_with_two_widgets_is_refused(server, db, box, which):
    """pyHanko signs a field with exactly one widget: refused at submission, not after
    an approval."""
    org = make_organisation(db, box)
    document = _two_widget_template(which)
    answer = submit_official(server, org, document, field_name="Sig1", seal_field_name="Sig2")
    assert answer.status_code == 422 and "several widgets" in answer.json()["detail"]


def test_nested_utf16_template_fields_are_signed(server, db, box):
    org = make_organisation(db, box)
    objects = dict(_BASE)
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [10 0 R] /SigFlags 3 >> >>"
    objects[2] = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
    objects[3] = _PAGE % b"/Annots [11 0 R 13 0 R]"
    objects[10] = b"<< /T (Ky) /Kids [11 0 R 12 0 R] >>"
    objects[11] = (
        b"<< /FT /Sig /T <FEFF004C00E3006E0068> /Parent 10 0 R /Type /Annot /Subtype /Widget"
        b" /Rect [330 90 530 160] /P 3 0 R /F 4 >>"
    )
    objects[12] = b"<< /FT /Sig /T (Dau) /Parent 10 0 R /Kids [13 0 R] >>"
    objects[13] = (
        b"<< /Type /Annot /Subtype /Widget /Parent 12 0 R /Rect [300 74 402 176] /P 3 0 R /F 4 >>"
    )
    document = raw_pdf(objects)
    answer = submit_official(server, org, document, field_name="Ky.Lãnh", seal_field_name="Ky.Dau")
    assert answer.status_code == 201, answer.text
    _, signed = both_steps(server, org, answer.json()["id"], document)
    page = render_page(signed)
    assert pixels(page, "red") and pixels(page, "blue")
