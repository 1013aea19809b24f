"""Official documents on inputs from the wild and on what a document system may get
wrong, found by a review: certified documents, rotated pages, a text field that takes
the seal's name, a signer who is not the organisation's leader, odd attachment text.
Each is refused before anyone is notified, or signed correctly."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import MDPPerm

from gateway.demo_images import demo_seal_png
from gateway.sample_pdf import sample_pdf
from tests.factories import make_organisation
from tests.pdf_builders import certified, page_with_geometry, signer_block_pdf, with_empty_field
from tests.test_official_document import _both_steps, _official, _render, _submit


def test_certified_documents_get_no_new_field_from_a_workflow(server, db, box):
    """DocMDP P=2 allows signing into the author's empty fields only: an attachment's
    line, a leader's box found automatically and the seal's new field are all new
    fields, refused at submission with the certification's codes."""
    org = make_organisation(db, box)
    bare = certified(sample_pdf(["PHỤ LỤC"]), MDPPerm.FILL_FORMS)
    answer = _submit(
        server, bare, workflow="organisation_only", organisation=org.name, document_number="15/QĐ"
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "document_certified_no_empty_field"
    block = certified(signer_block_pdf("GIÁM ĐỐC", org.leader_name), MDPPerm.FILL_FORMS)
    answer = _official(server, org, block, placement="auto")
    assert answer.status_code == 422
    assert answer.json()["code"] == "document_certified_no_empty_field"
    one_field = certified(with_empty_field(sample_pdf(["PHỤ LỤC"]), "ChuKy"), MDPPerm.FILL_FORMS)
    answer = _submit(
        server,
        one_field,
        workflow="organisation_only",
        organisation=org.name,
        document_number="15/QĐ",
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "document_certified_field_required"


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_the_seal_reads_upright_on_a_rotated_page(server, db, box, rotate):
    org = make_organisation(db, box)
    document = page_with_geometry(rotate)
    step1 = _official(server, org, document, page="1", box="200,100,400,170").json()
    seal_box = step1["parameters"]["empty_fields"][0]["box"]
    page = _render(_both_steps(server, org, step1["id"], document)[1])
    x1, y1, x2, y2 = seal_box
    shown = page.crop(
        (int(x1 * 2), int(page.height - y2 * 2), int(x2 * 2), int(page.height - y1 * 2))
    )
    shown = shown.convert("L").resize((64, 64))
    png = Image.open(io.BytesIO(demo_seal_png())).convert("RGBA")
    white = Image.new("RGBA", png.size, (255, 255, 255, 255))
    white.alpha_composite(png)
    reference = white.convert("L").resize((64, 64))
    # how far the rendered seal is from the upload turned by each quarter: upright wins
    distance = {
        angle: sum(
            abs(a - b)
            for a, b in zip(
                shown.get_flattened_data(),
                reference.rotate(angle).get_flattened_data(),
                strict=True,
            )
        )
        for angle in (0, 90, 180, 270)
    }
    assert min(distance, key=distance.__getitem__) == 0, distance


def test_a_text_field_with_the_seals_name_gets_it_another_name(server, db, box):
    org = make_organisation(db, box)
    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf(["QUYẾT ĐỊNH"])), strict=False)
    text_field = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/FT"): generic.pdf_name("/Tx"),
                generic.pdf_name("/T"): generic.pdf_string("OrganisationSeal"),
            }
        )
    )
    writer.root["/AcroForm"] = generic.DictionaryObject(
        {generic.pdf_name("/Fields"): generic.ArrayObject([text_field])}
    )
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    document = out.getvalue()
    step1 = _official(server, org, document, page="1", box="300,90,500,160").json()
    assert step1["parameters"]["next_field_name"] == "OrganisationSeal1"
    _both_steps(server, org, step1["id"], document)


def test_only_a_leader_of_the_sealing_organisation_signs_first(server, db, box):
    org, other = make_organisation(db, box), make_organisation(db, box)
    document = sample_pdf(["QUYẾT ĐỊNH"])
    placed = {"page": "1", "box": "300,90,500,160"}
    # the keeper clerk cannot make both signatures
    answer = _submit(
        server,
        document,
        signer=org.clerk.username,
        workflow="official_document",
        organisation=org.name,
        **placed,
    )
    assert answer.status_code == 422 and answer.json()["code"] == "signer_not_leader"
    # nor does one organisation seal another's leader's document
    answer = _official(server, other, document, organisation=org.name, **placed)
    assert answer.status_code == 422 and answer.json()["code"] == "signer_not_leader"


@pytest.mark.parametrize(
    "fields",
    [
        {"workflow": "organisation_only", "document_number": "   "},
        {"workflow": "organisation_only", "copy_type": "Sao y\nSao lục\nTrích sao"},
    ],
)
def test_attachment_text_is_one_printable_line(server, db, box, fields):
    org = make_organisation(db, box)
    answer = _submit(server, sample_pdf(["PHỤ LỤC"]), organisation=org.name, **fields)
    assert answer.status_code == 422 and answer.json()["code"] == "parameter_invalid", answer.text


def test_a_box_too_small_to_see_is_refused(server, signer):
    answer = _submit(
        server, sample_pdf(["CÔNG VĂN"]), signer=signer.username, page="1", box="0,0,1,1"
    )
    assert answer.status_code == 422 and "at least 12 points" in answer.json()["detail"]
