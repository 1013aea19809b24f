"""``POST /api/v1/validations`` over HTTP against the running gateway: an official
document the gateway signed (the leader at B-LT, the seal at B-LTA) is reported
signature by signature and timestamp by timestamp, as JSON and as a printable report in
Vietnamese and English; every real-world corpus document that carries signatures gets a
report (never a 5xx), with an earlier signature that no longer covers the whole file
reported as exactly that, and a broken one as broken."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields

from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import approve, submit
from tests.factories import make_organisation, make_signer
from tests.official import both_steps, submit_official

BOX = "330,380,530,450"


def _validate(server, document: bytes, **params: str):
    with server.client() as http:
        return http.post(
            "/api/v1/validations",
            params=params,
            files={"document": ("document.pdf", document, "application/pdf")},
        )


@pytest.fixture(scope="module")
def official(server, db, box) -> bytes:
    org = make_organisation(db, box)
    document = sample_pdf(["QUYẾT ĐỊNH", "Về việc ban hành quy chế"])
    created = submit_official(server, org, document, page="1", box=BOX)
    assert created.status_code == 201, created.text
    _, finished = both_steps(server, org, created.json()["id"], document)
    return finished


def test_an_official_document_is_reported_signature_by_signature(server, official):
    answer = _validate(server, official)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    kinds = [(s["kind"], s["pades_level"]) for s in report["signatures"]]
    assert kinds == [("signature", "B-LTA"), ("signature", "B-LTA"), ("timestamp", None)]
    leader, seal, stamp = report["signatures"]
    assert "Nguyễn Văn An" in leader["signer"] and "Demo Issuing CA" in leader["issuer"]
    # the leader's signature no longer covers the whole file: the seal came after it
    assert not leader["covers_whole_file"] and leader["modifications_after"] == "FORM_FILLING"
    assert seal["modifications_after"] == "LTA_UPDATES" and seal["docmdp_ok"] is not False
    for signature in (leader, seal):
        assert signature["intact"] and signature["valid"] and signature["trusted"]
        assert signature["status_now"] == "valid" and signature["status_at_signing"] == "valid"
        assert signature["timestamp_time"] and "Time-Stamping" in signature["timestamp_authority"]
        assert signature["problems"] == []
    assert stamp["status_now"] == "valid" and "Time-Stamping" in stamp["signer"]
    assert report["document_sha256"] and report["trust_anchors"]


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("vi", ["Báo cáo kiểm tra chữ ký số", "Hợp lệ", "Dấu thời gian văn bản", "B-LTA"]),
        ("en", ["Digital signature validation report", "Valid", "Document timestamp"]),
    ],
)
def test_the_report_prints_in_vietnamese_and_english(server, official, lang, words):
    answer = _validate(server, official, format="html", lang=lang)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    for word in words:
        assert word in page, word
    assert "<script" not in page and not re.search(r"(src|href)=\"https?://", page)


def test_a_document_without_signatures_and_garbage_get_clear_answers(server):
    plain = _validate(server, sample_pdf(["Không ký"]))
    assert plain.status_code == 200 and plain.json()["signatures"] == []
    garbage = _validate(server, b"%PDF-1.7\nnot a pdf at all")
    assert garbage.status_code == 422, garbage.text
    assert garbage.json()["code"] == "document_unreadable" and garbage.json()["detail"]


def _carries_signatures(data: bytes) -> bool:
    return b"/ByteRange" in data


def test_every_corpus_document_with_signatures_gets_a_report(server, corpus: Path):
    reports = {}
    for path in sorted((corpus / "pdf").glob("*.pdf")):
        data = path.read_bytes()
        if not _carries_signatures(data):
            continue
        answer = _validate(server, data)
        assert answer.status_code < 500, (path.name, answer.text)
        if answer.status_code == 200:
            reports[path.name] = answer.json()["signatures"]
    assert len(reports) >= 6, sorted(reports)
    first, second = reports["signed-twice-pades.pdf"]
    assert not first["covers_whole_file"] and first["modifications_after"] == "FORM_FILLING"
    assert first["intact"] and first["valid"] and second["covers_whole_file"]
    # changed afterwards in ways no signature policy allows (pdfsig: digest mismatch)
    (changed,) = reports["signed-approval-digest-mismatch.pdf"]
    assert not changed["covers_whole_file"] and changed["modifications_after"] == "OTHER"
    assert "changes_not_allowed" in changed["problems"]
    # a certification signature whose signed bytes no longer match
    (broken,) = reports["pdfa2b-certified-p2-invalid-sig.pdf"]
    assert not broken["intact"] and "bytes_changed" in broken["problems"]
    for name, signatures in reports.items():
        for signature in signatures:
            assert signature["kind"] in ("signature", "timestamp"), name
            # none of these was issued under the demo root: nobody vouches for them here
            assert signature["status_now"] == "failed" and "not_trusted" in signature["problems"]


def test_a_signer_checks_their_own_signed_documents_only(server, db, box):
    owner, other = make_signer(db, box), make_signer(db, box)
    document = sample_pdf(["Công văn kiểm tra"])
    request_id = submit(server, document, owner.username).json()["id"]
    with server.tablet(owner.username, owner.password) as tablet:
        early = tablet.get(f"/mobile/v1/signing-requests/{request_id}/validation")
        assert early.status_code == 409 and early.json()["code"] == "request_not_signed"
        assert approve(tablet, request_id, owner.otp(), document).json()["status"] == "signed"
        report = tablet.get(f"/mobile/v1/signing-requests/{request_id}/validation").json()
    (ours,) = report["signatures"]
    assert ours["status_now"] == "valid" and ours["pades_level"] == "B-LT"
    with server.tablet(other.username, other.password) as tablet:
        foreign = tablet.get(f"/mobile/v1/signing-requests/{request_id}/validation")
        assert foreign.status_code == 404


def _overlay(signed: bytes) -> bytes:
    """What anyone can append without a key: an unsigned signature field over the top
    of page 1 whose appearance paints another decision (a review's reproduction)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    fields.append_signature_field(
        writer, fields.SigFieldSpec("Approved", box=(60, 700, 560, 800), on_page=0)
    )
    font = writer.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
            }
        )
    )
    appearance = generic.StreamObject(
        {
            pdf_name("/Type"): pdf_name("/XObject"),
            pdf_name("/Subtype"): pdf_name("/Form"),
            pdf_name("/BBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 500, 100)]
            ),
            pdf_name("/Resources"): generic.DictionaryObject(
                {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})}
            ),
        },
        stream_data=b"1 1 1 rg 0 0 500 100 re f 0 0 0 rg BT /F1 12 Tf 12 84 Td"
        b" (QUYET DINH: chi 9.000.000.000 VND) Tj ET",
    )
    for ref in writer.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field["/T"] == "Approved":
            field[pdf_name("/AP")] = generic.DictionaryObject(
                {pdf_name("/N"): writer.add_object(appearance)}
            )
            writer.update_container(field)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_field_painted_in_after_signing_is_reported_not_valid(server, official):
    """The signatures stay intact and pyHanko calls the change form filling; what no
    signature covers is still a change after signing, and the report says so."""
    answer = _validate(server, _overlay(official))
    assert answer.status_code == 200, answer.text
    leader, seal, _ = answer.json()["signatures"]
    for signature in (leader, seal):
        assert signature["intact"] and signature["unsigned_changes"] == ["Approved"]
        assert signature["status_now"] == "failed"
        assert "changed_after_signing" in signature["problems"]
    page = _validate(server, _overlay(official), format="html", lang="vi").text
    assert "Approved" in page and "mà không có chữ ký nào" in page


def test_a_document_with_more_signatures_than_a_report_covers_is_refused_at_once(server, official):
    """Thirty-one fields pointing at one signature: each would be validated in turn
    (time that grows with every field): refused before any is."""
    writer = IncrementalPdfFileWriter(io.BytesIO(official), strict=False)
    form = writer.root["/AcroForm"]
    value = form["/Fields"][0].get_object().raw_get("/V")
    for number in range(31):
        field = generic.DictionaryObject(
            {
                pdf_name("/FT"): pdf_name("/Sig"),
                pdf_name("/T"): generic.TextStringObject(f"S{number}"),
                pdf_name("/V"): value,
            }
        )
        form["/Fields"].append(writer.add_object(field))
    writer.update_container(form)
    out = io.BytesIO()
    writer.write(out)
    answer = _validate(server, out.getvalue())
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "document_too_complex"
    assert "at most 30" in answer.json()["detail"]
