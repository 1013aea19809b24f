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

from signing_gateway.demo.images import demo_seal_png
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.factories import make_organisation
from tests.official import (
    both_steps,
    lock_all,
    render_page,
    seal_template,
    seed_value,
    submit_fields,
    submit_official,
)
from tests.pdf_builders import certified, page_with_geometry, signer_block_pdf, with_empty_field


def test_certified_documents_get_no_new_field_from_a_workflow(server, db, box):
    """DocMDP P=2 allows signing into the author's empty fields only: an attachment's
    line, a leader's box found automatically and the seal's new field are all new
    fields, refused at submission with the certification's codes."""
    org = make_organisation(db, box)
    bare = certified(sample_pdf(["PHỤ LỤC"]), MDPPerm.FILL_FORMS)
    answer = submit_fields(
        server, bare, workflow="organisation_only", organisation=org.name, document_number="15/QĐ"
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "document_certified_no_empty_field"
    block = certified(signer_block_pdf("GIÁM ĐỐC", org.leader_name), MDPPerm.FILL_FORMS)
    answer = submit_official(server, org, block, placement="auto")
    assert answer.status_code == 422
    assert answer.json()["code"] == "document_certified_no_empty_field"
    one_field = certified(with_empty_field(sample_pdf(["PHỤ LỤC"]), "ChuKy"), MDPPerm.FILL_FORMS)
    answer = submit_fields(
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
    step1 = submit_official(server, org, document, page="1", box="200,100,400,170").json()
    seal_box = step1["parameters"]["empty_fields"][0]["box"]
    page = render_page(both_steps(server, org, step1["id"], document)[1])
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
    step1 = submit_official(server, org, document, page="1", box="300,90,500,160").json()
    assert step1["parameters"]["next_field_name"] == "OrganisationSeal1"
    both_steps(server, org, step1["id"], document)


def test_only_a_leader_of_the_sealing_organisation_signs_first(server, db, box):
    org, other = make_organisation(db, box), make_organisation(db, box)
    document = sample_pdf(["QUYẾT ĐỊNH"])
    placed = {"page": "1", "box": "300,90,500,160"}
    # the keeper clerk cannot make both signatures
    answer = submit_fields(
        server,
        document,
        signer=org.clerk.username,
        workflow="official_document",
        organisation=org.name,
        **placed,
    )
    assert answer.status_code == 422 and answer.json()["code"] == "signer_not_leader"
    # nor does one organisation seal another's leader's document
    answer = submit_official(server, other, document, organisation=org.name, **placed)
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
    answer = submit_fields(server, sample_pdf(["PHỤ LỤC"]), organisation=org.name, **fields)
    assert answer.status_code == 422 and answer.json()["code"] == "parameter_invalid", answer.text


def test_a_box_too_small_to_see_is_refused(server, signer):
    answer = submit_fields(
        server, sample_pdf(["CÔNG VĂN"]), signer=signer.username, page="1", box="0,0,1,1"
    )
    assert answer.status_code == 422 and "at least 12 points" in answer.json()["detail"]


# A second review's cases: templates whose own fields would bind, hide or shrink a
# signature, seals that do not fit the page, certified documents of every level.


@pytest.mark.parametrize(
    ("template", "words"),
    [
        # the leader's signature would lock the seal's field: the seal would break it
        ({"lock": "all"}, "lock"),
        # a seal nobody sees
        ({"seal_flags": 2}, "shows on no page"),
        ({"seal_flags": 32}, "shows on no page"),
        ({"seal_box": (300, 74, 302, 76)}, "at least 12 points"),
        # constraints our seal cannot honour: it would fail after the leader signed
        ({"seal_sv": "subfilter"}, "seed value"),
    ],
)
def test_template_fields_that_would_bind_or_hide_a_signature_are_refused(
    server, db, box, template, words
):
    org = make_organisation(db, box)
    options = dict(template)
    if options.get("lock") == "all":
        options["lock"] = lock_all()
    if options.get("seal_sv") == "subfilter":
        options["seal_sv"] = seed_value()
    answer = submit_official(
        server, org, seal_template(**options), field_name="Sig1", seal_field_name="Sig2"
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "parameter_invalid" and words in answer.json()["detail"]


def test_a_seal_that_does_not_fit_the_page_is_refused(server, db, box):
    org = make_organisation(db, box, seal_mm=60.0)  # 170 points across
    document = page_with_geometry(0, media=(0, 0, 150, 150), crop=None)
    answer = submit_official(server, org, document, page="1", box="20,20,140,80")
    assert answer.status_code == 422, answer.text
    assert "OrganisationSeal" in answer.json()["detail"]


@pytest.mark.parametrize("permission", [MDPPerm.FILL_FORMS, MDPPerm.ANNOTATE])
def test_no_certification_level_lets_a_workflow_add_a_field(server, db, box, permission):
    org = make_organisation(db, box)
    document = certified(sample_pdf(["QUYẾT ĐỊNH"]), permission)
    answer = submit_official(server, org, document, page="1", box="330,90,530,160")
    assert answer.status_code == 422
    assert answer.json()["code"] == "document_certified_no_empty_field"


def test_a_field_an_earlier_signature_locked_is_not_filled(server, db, box, signer):
    """An earlier signature whose field lock covers the empty field: filling it would
    break that signature, so the request is refused before anyone is notified."""
    from pyhanko.sign import signers as pyhanko_signers
    from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, SigFieldSpec

    from tests.pdf_builders import someone_else

    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf(["HỢP ĐỒNG"])), strict=False)
    from pyhanko.sign import fields

    fields.append_signature_field(
        writer,
        SigFieldSpec(
            "BenA",
            on_page=0,
            box=(50, 50, 200, 100),
            field_mdp_spec=FieldMDPSpec(FieldMDPAction.INCLUDE, fields=["BenB"]),
        ),
    )
    fields.append_signature_field(writer, SigFieldSpec("BenB", on_page=0, box=(300, 50, 450, 100)))
    out = io.BytesIO()
    writer.write(out)
    document = pyhanko_signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(out.getvalue()), strict=False),
        pyhanko_signers.PdfSignatureMetadata(field_name="BenA"),
        signer=someone_else(),
    ).getvalue()
    answer = submit_fields(server, document, signer=signer.username, field_name="BenB")
    assert answer.status_code == 422, answer.text
    assert "locked by an earlier signature" in answer.json()["detail"]
