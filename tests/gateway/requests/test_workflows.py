"""Official documents (docs/vn-signature-format.md): the leader signs, then the clerk
who keeps the organisation's token seals the leader's output; the seal's field is made
by the leader's update, so the seal only fills it. Checked as a reader sees the result:
pyHanko's difference analysis and poppler's pdfsig on both signatures, and the rendered
page (blue in the leader's box, the red seal at its real size over the left third of
the leader's image)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from pathlib import Path

from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from gateway.admin.organisations import POINTS_PER_MM, image_rect
from gateway.db.models import AuditEntry
from gateway.requests.placement import text_lines
from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from hsm_bridge.pades import IMAGE_MARGIN
from signing_gateway.demo.images import demo_signature_png
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.device_app import DeviceApp
from tests.factories import enrolment_code, make_organisation
from tests.official import (
    approve_as,
    both_signatures_hold,
    both_steps,
    dark_points,
    hand_over,
    inside,
    nonces_of,
    pixels,
    register_seal_key,
    reject_as,
    render_page,
    request_status,
    second_clerk,
    signed_document,
    submit_fields,
    submit_official,
)
from tests.pdf_builders import signer_block_pdf
from tests.pdf_reading import appearance_text


def test_the_leader_signs_then_the_clerk_seals_over_the_left_third(
    server, db, box, demo_credentials, installation
):
    org = make_organisation(db, box)
    document = signer_block_pdf("GIÁM ĐỐC SỞ TÀI CHÍNH", org.leader_name)
    lines = {line.text: line.box for line in text_lines(document, 0)}
    title, name = lines["GIÁM ĐỐC SỞ TÀI CHÍNH"], lines[org.leader_name]
    # the clerk's tablet is enrolled: it gets the push for step 2
    clerk_app = DeviceApp(server.base_url, org.clerk.username)
    assert clerk_app.enrol(enrolment_code(db, org.clerk.username)).status_code == 201

    answer = submit_fields(
        server,
        document,
        signer=org.leader.username,
        workflow="official_document",
        organisation=org.name,
        placement="auto",
        reason="Ban hành quyết định",
        location="Hà Nam",
    )
    assert answer.status_code == 201, answer.text
    step1 = answer.json()
    assert step1["step"] == 1
    assert step1["workflow"]["name"] == "official_document"
    assert step1["workflow"]["status"] == "pending"
    assert [s["signed_by"] for s in step1["workflow"]["steps"]] == ["leader"]
    # what the leader approves names the seal's empty field: real size, 36 mm
    leader_box = step1["parameters"]["box"]
    assert name[3] <= leader_box[1] < leader_box[3] <= title[1]
    (seal_field,) = step1["parameters"]["empty_fields"]
    sx1, sy1, sx2, sy2 = seal_field["box"]
    assert abs((sx2 - sx1) - 36 * POINTS_PER_MM) < 0.05 and abs((sy2 - sy1) - (sx2 - sx1)) < 0.05

    assert approve_as(server, org.leader, step1["id"], document)["status"] == "signed"
    after_leader = signed_document(server, step1["id"])
    seen = request_status(server, step1["id"])["workflow"]
    assert seen["status"] == "pending"
    assert [(s["signed_by"], s["status"]) for s in seen["steps"]] == [
        ("leader", "signed"),
        ("organisation", "pending_approval"),
    ]
    step2_id = seen["steps"][1]["request_id"]

    # the clerk: a push, a pending item, the leader's output to look at
    deadline = time.monotonic() + 10
    while f"new signing request {step2_id}" not in server.log_path.read_text("utf-8", "replace"):
        assert time.monotonic() < deadline, "no push for the clerk"
        time.sleep(0.1)
    with server.tablet(org.clerk.username, org.clerk.password) as tablet:
        pending = tablet.get("/mobile/v1/signing-requests", params={"status": "pending_approval"})
        assert [(r["id"], r["step"]) for r in pending.json()] == [(step2_id, 2)]
        shown = tablet.get(f"/mobile/v1/signing-requests/{step2_id}/document").content
    assert shown == after_leader
    # the leader does not see the seal's step, let alone approve it
    with server.tablet(org.leader.username, org.leader.password) as tablet:
        assert tablet.get(f"/mobile/v1/signing-requests/{step2_id}").status_code == 404

    assert approve_as(server, org.clerk, step2_id, shown)["status"] == "signed"
    final = request_status(server, step1["id"])["workflow"]
    assert final["status"] == "signed"
    signed = signed_document(server, step2_id)
    assert signed.startswith(after_leader) and after_leader.startswith(document)
    both_signatures_hold(signed, demo_credentials["trust_anchor"])

    # the look: blue inside the leader's box, red at the seal's box, over the left third
    page = render_page(signed)
    blue, red = pixels(page, "blue"), pixels(page, "red")
    assert len(blue) > 300 and inside(blue, leader_box)
    assert len(red) > 1000 and inside(red, seal_field["box"])
    reds_x = [x for x, _ in red]
    reds_y = [y for _, y in red]
    assert max(reds_x) - min(reds_x) > 0.95 * (sx2 - sx1)  # drawn at its real size
    assert max(reds_y) - min(reds_y) > 0.95 * (sy2 - sy1)
    with Image.open(io.BytesIO(demo_signature_png())) as png:
        drawn = image_rect(tuple(leader_box), png.width / png.height, IMAGE_MARGIN)
    third = drawn[0] + (drawn[2] - drawn[0]) / 3
    assert abs(max(reds_x) - third) < 2  # the seal ends one third into the image
    overlap = [p for p in red if drawn[0] <= p[0] <= third and drawn[1] <= p[1] <= drawn[3]]
    assert len(overlap) > 100
    assert not any(x > third + 2 for x, _ in red)
    # the leader's output showed no seal yet
    assert pixels(render_page(after_leader), "red") == []

    with db.transaction() as session:
        uses = session.scalars(
            select(AuditEntry).where(AuditEntry.request_id == step2_id).order_by(AuditEntry.id)
        ).all()
    actions = [(entry.action, entry.actor) for entry in uses]
    assert ("request.step_created", "system") in actions
    assert ("request.approved", f"user:{org.clerk.username}") in actions
    assert ("request.signed", "system") in actions


def test_a_real_document_goes_through_both_steps(server, db, box, demo_credentials, corpus):
    org = make_organisation(db, box, seal_mm=40.0)
    document = (corpus / "pdf" / "vn-word-text-hybrid-xref.pdf").read_bytes()
    answer = submit_official(server, org, document, page="4", box="330,380,530,450")
    assert answer.status_code == 201, answer.text
    _, signed = both_steps(server, org, answer.json()["id"], document)
    both_signatures_hold(signed, demo_credentials["trust_anchor"])
    page = render_page(signed, 3)
    assert inside(pixels(page, "blue"), (330, 380, 530, 450))
    assert len(pixels(page, "red")) > 1000


def test_a_rejection_at_either_step_ends_the_workflow(server, db, box):
    org = make_organisation(db, box)
    document = sample_pdf(["QUYẾT ĐỊNH", "Về việc điều động cán bộ"])
    placed = {"page": "1", "box": "330,90,530,160"}
    first = submit_official(server, org, document, **placed).json()
    reject_as(server, org.leader, first["id"], "chưa đúng thể thức")
    seen = request_status(server, first["id"])["workflow"]
    assert seen["status"] == "rejected" and len(seen["steps"]) == 1  # no seal is asked for

    org = make_organisation(db, box)  # a fresh leader: one TOTP code per step
    second = submit_official(server, org, document, **placed).json()
    assert approve_as(server, org.leader, second["id"], document)["status"] == "signed"
    step2_id = request_status(server, second["id"])["workflow"]["steps"][1]["request_id"]
    reject_as(server, org.clerk, step2_id, "thiếu phụ lục")
    seen = request_status(server, second["id"])["workflow"]
    assert seen["status"] == "rejected"
    assert [s["status"] for s in seen["steps"]] == ["signed", "rejected"]


def test_an_attachment_is_signed_by_the_organisation_alone_at_the_top_right(
    server, db, box, demo_credentials
):
    org = make_organisation(db, box)
    document = sample_pdf(["PHỤ LỤC", "Danh mục kèm theo Quyết định số 15/QĐ-STC"])
    answer = submit_fields(
        server,
        document,
        workflow="organisation_only",
        organisation=org.name,
        document_number="15/QĐ-STC",
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["workflow"]["steps"][0]["signed_by"] == "organisation"
    assert created["parameters"]["stamp_text"] == "15/QĐ-STC"
    x1, y1, x2, y2 = created["parameters"]["box"]
    assert x2 > 595 - 50 and y2 > 842 - 30  # the top right of an A4 page
    with server.tablet(org.clerk.username, org.clerk.password) as tablet:
        pending = tablet.get("/mobile/v1/signing-requests", params={"status": "pending_approval"})
        assert [r["id"] for r in pending.json()] == [created["id"]]
    assert approve_as(server, org.clerk, created["id"], document)["status"] == "signed"
    signed = signed_document(server, created["id"])
    (seal,) = validate_with_pyhanko(signed, Path(demo_credentials["trust_anchor"]))
    assert seal.ok and "Sở Tài chính tỉnh Hà Nam" in seal.signer, seal
    assert pdfsig_verdicts(signed) == ["Signature is Valid."]
    page = render_page(signed)
    assert pixels(page, "red") == [] and pixels(page, "blue") == []  # no image
    text = appearance_text(signed)
    assert "15/QĐ-STC" in text, text
    # 10 pt Liberation Serif (metric-compatible with Times New Roman), an embedded subset
    (ours,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    appearance = ours.sig_field["/AP"]["/N"]
    fonts = appearance["/Resources"]["/Font"]
    (font,) = (fonts[key] for key in fonts)
    assert re.match(r"/[A-Z]{6}\+LiberationSerif\b", str(font["/BaseFont"])), font
    assert b" 10 Tf" in appearance.data
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", text), text
    dark = dark_points(page)
    assert dark and inside(dark, (x1, y1, x2, y2), slack=0.5) is False  # the page's own text
    assert [p for p in dark if p[1] > y1 and p[0] > x1]  # and the line at the top right


def test_a_copy_names_its_type_and_the_copying_organisation(server, db, box):
    org = make_organisation(db, box)
    document = sample_pdf(["QUYẾT ĐỊNH", "Bản sao"])
    created = submit_fields(
        server, document, workflow="organisation_only", organisation=org.name, copy_type="Sao y"
    ).json()
    assert created["parameters"]["stamp_text"] == f"Sao y\n{org.display_name}"
    assert approve_as(server, org.clerk, created["id"], document)["status"] == "signed"
    text = appearance_text(signed_document(server, created["id"]))
    assert "Sao y" in text and org.display_name in text, text


def test_workflow_requests_that_cannot_be_meant_are_refused(server, db, box, installation):
    org = make_organisation(db, box)
    document = sample_pdf(["CÔNG VĂN"])
    leader = org.leader.username
    cases = [
        ({"signer": leader, "workflow": "official_document"}, "parameter_invalid"),
        (
            {"signer": leader, "workflow": "official_document", "seal_field_name": "Sig1"},
            "parameter_invalid",
        ),
        (
            {"signer": leader, "workflow": "official_document", "organisation": "nope"}
            | {"page": "1", "box": "300,90,500,160"},
            "organisation_unknown",
        ),
        (
            {"workflow": "organisation_only", "organisation": org.name, "signer": leader}
            | {"document_number": "1/QĐ"},
            "parameter_invalid",
        ),
        (
            {"workflow": "organisation_only", "organisation": org.name}
            | {"document_number": "1/QĐ", "copy_type": "Sao y"},
            "parameter_invalid",
        ),
        (
            {"workflow": "organisation_only", "organisation": org.name}
            | {"document_number": "1/QĐ", "page": "1", "box": "1,1,50,50"},
            "parameter_invalid",
        ),
        ({"workflow": "something_else", "signer": leader}, "parameter_invalid"),
        ({"signer": leader, "organisation": org.name}, "parameter_invalid"),
        (
            {"signer": leader, "workflow": "official_document", "field_name": "Sig1"}
            | {"seal_field_name": "Sig1"},
            "parameter_invalid",
        ),
        (
            {"signer": leader, "workflow": "official_document", "field_name": "Sig1"}
            | {"seal_field_name": "Sig2"},
            "parameter_invalid",  # the document has no such fields
        ),
        ({}, "parameter_invalid"),
    ]
    for fields, code in cases:
        answer = submit_fields(server, document, **fields)
        assert answer.status_code == 422, (fields, answer.text)
        assert answer.json()["code"] == code, (fields, answer.text)


def test_the_organisations_key_is_kept_by_one_of_its_clerks_only(server, db, box, installation):
    from gateway.db.models import Credential, Organisation, User

    org = make_organisation(db, box)
    # a leader is no keeper: registering the seal's key for them is refused
    refused = register_seal_key(installation, db, org, org.leader.username)
    assert refused.returncode == 1 and "clerk" in refused.stderr, refused.stderr
    with db.transaction() as session:
        seal = session.get(Credential, org.credential_id)
    # a plain request for the clerk uses the clerk's own key, never the seal
    document = sample_pdf(["CÔNG VĂN"])
    plain = submit_fields(server, document, signer=org.clerk.username).json()
    with db.transaction() as session:
        assert plain["certificate_sha256"] != seal.certificate_sha256
        # a keeper who leaves the organisation takes the seal with nobody
        clerk = session.get(User, org.clerk.user_id)
        clerk.organisation_id = None
        assert session.scalar(select(Organisation).where(Organisation.name == org.name))
    orphan = submit_fields(
        server, document, workflow="organisation_only", organisation=org.name, copy_type="Sao y"
    )
    assert orphan.status_code == 422 and orphan.json()["code"] == "organisation_no_credential"


def test_organisations_are_set_up_from_the_command_line(installation, tmp_path, db):
    from gateway.db.models import Organisation
    from signing_gateway.demo.images import demo_seal_png

    suffix = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:6]
    name = f"ubnd-{suffix}"
    added = cli(installation, "organisations", "add", name, "--display-name", "UBND xã Thử")
    assert added.returncode == 0, added.stderr
    (tmp_path / "dau.png").write_bytes(demo_seal_png())
    too_big = cli(
        installation,
        "organisations",
        "seal",
        name,
        str(tmp_path / "dau.png"),
        "--diameter-mm",
        "90",
    )
    assert too_big.returncode == 1 and "diameter" in too_big.stderr
    kept = cli(
        installation,
        "organisations",
        "seal",
        name,
        str(tmp_path / "dau.png"),
        "--diameter-mm",
        "34",
    )
    assert kept.returncode == 0, kept.stderr
    clerk = cli(
        installation,
        "users",
        "add",
        f"vt-{suffix}",
        "--display-name",
        "Văn thư",
        "--role",
        "clerk",
        "--organisation",
        name,
    )
    assert clerk.returncode == 0, clerk.stderr
    listed = cli(installation, "organisations", "list")
    assert f"{name}\tUBND xã Thử\t34 mm\tkept by: no credential" in listed.stdout
    with db.transaction() as session:
        unit = session.scalar(select(Organisation).where(Organisation.name == name))
        assert unit.seal_diameter_mm == 34.0 and unit.seal_image == demo_seal_png()


def test_a_handover_moves_the_seal_and_its_pending_requests_to_the_new_clerk(
    server, db, box, installation
):
    from gateway.db.models import Credential
    from hsm_bridge.credentials import CredentialRef
    from tests.factories import bridge_registry, make_signer

    org = make_organisation(db, box)
    document = sample_pdf(["PHỤ LỤC"])
    waiting = submit_fields(
        server, document, workflow="organisation_only", organisation=org.name, copy_type="Sao y"
    ).json()
    outsider = make_signer(db, box, like="clerk1")
    refused = hand_over(installation, org, outsider, "Quyết định số 7/QĐ-STC")
    assert refused.returncode == 1 and "not a clerk" in refused.stderr  # not one of its own
    successor = second_clerk(db, box, org)
    tablet_app = DeviceApp(server.base_url, successor.username)
    assert tablet_app.enrol(enrolment_code(db, successor.username)).status_code == 201
    with db.transaction() as session:
        seal = session.get(Credential, org.credential_id)
        ref = str(CredentialRef(seal.token_serial, bytes.fromhex(seal.key_id)))
        nonces_before = len(nonces_of(session, successor.user_id))
    handed = hand_over(installation, org, successor, "Quyết định số 7/QĐ-STC ngày 01/12/2026")
    assert handed.returncode == 0, handed.stderr
    assert "1 pending request(s)" in handed.stdout
    with db.transaction() as session:
        # the push to the new keeper's tablet carried a fresh nonce for its answer
        assert len(nonces_of(session, successor.user_id)) == nonces_before + 1
    assert ref in bridge_registry().credentials_of(successor.username)
    assert ref not in bridge_registry().credentials_of(org.clerk.username)
    with server.tablet(org.clerk.username, org.clerk.password) as tablet:
        assert tablet.get(f"/mobile/v1/signing-requests/{waiting['id']}").status_code == 404
    assert approve_as(server, successor, waiting["id"], document)["status"] == "signed"
    shown = cli(installation, "audit", "show", "--action", "organisation.hand", "--last", "1")
    assert shown.returncode == 0, shown.stderr
    (line,) = shown.stdout.splitlines()
    detail = json.loads(line)["detail"]
    assert detail["permission"] == "Quyết định số 7/QĐ-STC ngày 01/12/2026"
    assert detail["readdressed"] == [waiting["id"]]
    assert detail["from"] == [org.clerk.username] and detail["to"] == successor.username


def test_a_template_with_both_fields_is_signed_into_them(server, db, box, demo_credentials, corpus):
    org = make_organisation(db, box)
    document = (corpus / "pdf" / "form-two-empty-sigfields.pdf").read_bytes()
    answer = submit_official(server, org, document, field_name="Sig1", seal_field_name="Sig2")
    assert answer.status_code == 201, answer.text
    step1 = answer.json()
    assert step1["parameters"]["next_field_name"] == "Sig2"
    assert "empty_fields" not in step1["parameters"]  # both fields are the document's
    _, signed = both_steps(server, org, step1["id"], document)
    leader, seal = validate_with_pyhanko(signed, Path(demo_credentials["trust_anchor"]))
    assert (leader.field_name, seal.field_name) == ("Sig1", "Sig2")
    assert leader.intact and leader.valid and leader.modification_level == "FORM_FILLING"
    assert seal.ok and seal.covers_document
    assert pdfsig_verdicts(signed) == ["Signature is Valid.", "Signature is Valid."]


def test_the_seal_is_placed_against_the_leaders_own_empty_field(
    server, db, box, demo_credentials, corpus
):
    org = make_organisation(db, box)
    document = (corpus / "pdf" / "form-empty-sigfield.pdf").read_bytes()
    answer = submit_official(server, org, document, field_name="Sig1")
    assert answer.status_code == 201, answer.text
    params = answer.json()["parameters"]
    (seal,) = params["empty_fields"]
    assert params["next_field_name"] == seal["name"] != "Sig1"
    _, signed = both_steps(server, org, answer.json()["id"], document)
    leader, sealed = validate_with_pyhanko(signed, Path(demo_credentials["trust_anchor"]))
    assert leader.field_name == "Sig1" and leader.modification_level == "FORM_FILLING"
    assert leader.intact and leader.valid and sealed.ok
    assert pdfsig_verdicts(signed) == ["Signature is Valid.", "Signature is Valid."]
    page = render_page(signed)
    assert inside(pixels(page, "red"), seal["box"]) and pixels(page, "blue")


def test_the_token_has_one_keeper_at_a_time(db, box, installation):

    org = make_organisation(db, box)
    second = second_clerk(db, box, org)
    refused = register_seal_key(installation, db, org, second.username)
    assert refused.returncode == 1 and "organisations handover" in refused.stderr, refused.stderr
