"""Helpers for the official-document tests (docs/vn-signature-format.md): submitting over
the integration API, approving as a person on a tablet, both steps of a workflow, the
administration commands of a handover, and reading the rendered page."""

from __future__ import annotations

import io
from pathlib import Path

import pypdfium2
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from sqlalchemy import select

from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.conftest import approve

SCALE = 2  # pixels per point in the renderings
# the leader's and the seal's boxes in the templates (points)
LEADER = (330, 90, 530, 160)
SEAL = (300, 74, 402, 176)


def submit_fields(server, document: bytes, **fields: str):
    with server.client() as http:
        return http.post(
            "/api/v1/signing-requests",
            files={"document": ("document.pdf", document, "application/pdf")},
            data=fields,
        )


def request_status(server, request_id: str) -> dict:
    with server.client() as http:
        answer = http.get(f"/api/v1/signing-requests/{request_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def signed_document(server, request_id: str) -> bytes:
    with server.client() as http:
        answer = http.get(f"/api/v1/signing-requests/{request_id}/signed-document")
    assert answer.status_code == 200, answer.text
    return answer.content


def approve_as(server, person, request_id: str, document: bytes) -> dict:
    with server.tablet(person.username, person.password) as tablet:
        decision = approve(tablet, request_id, person.otp(), document)
    assert decision.status_code == 200, decision.text
    return decision.json()


def reject_as(server, person, request_id: str, reason: str) -> None:
    with server.tablet(person.username, person.password) as tablet:
        refused = tablet.post(
            f"/mobile/v1/signing-requests/{request_id}/rejection",
            json={"otp": person.otp(), "reason": reason},
        )
    assert refused.status_code == 200, refused.text


def submit_official(server, org, document: bytes, **extra: str):
    """Submit ``document`` as an official document of ``org``, its leader first."""
    fields = {
        "signer": org.leader.username,
        "workflow": "official_document",
        "organisation": org.name,
    }
    return submit_fields(server, document, **(fields | extra))


def both_steps(server, org, step1_id: str, document: bytes) -> tuple[bytes, bytes]:
    """The leader approves step 1, the clerk step 2 on its output: (the leader's
    output, the finished document)."""
    assert approve_as(server, org.leader, step1_id, document)["status"] == "signed"
    after_leader = signed_document(server, step1_id)
    step2_id = request_status(server, step1_id)["workflow"]["steps"][1]["request_id"]
    assert approve_as(server, org.clerk, step2_id, after_leader)["status"] == "signed"
    return after_leader, signed_document(server, step2_id)


def second_clerk(db, box, org):
    """Another clerk of ``org`` (no key of the organisation)."""
    from gateway.db.models import User
    from tests.factories import make_signer

    person = make_signer(db, box, like="clerk1")
    with db.transaction() as session:
        clerk = session.get(User, person.user_id)
        clerk.role = "clerk"
        clerk.organisation_id = session.get(User, org.clerk.user_id).organisation_id
    return person


def both_signatures_hold(signed: bytes, trust_anchor: str) -> None:
    leader, seal = validate_with_pyhanko(signed, Path(trust_anchor))
    # the leader's signature: intact, and what came after it (the seal filling its
    # field) is what pyHanko's difference analysis allows
    assert leader.intact and leader.valid and leader.trusted, leader
    assert leader.modification_level == "FORM_FILLING" and leader.docmdp_ok is not False, leader
    assert seal.ok and seal.covers_document, seal
    assert "Sở Tài chính tỉnh Hà Nam" in seal.signer  # the organisation's certificate
    assert pdfsig_verdicts(signed) == ["Signature is Valid.", "Signature is Valid."]


def hand_over(installation, org, to, permission: str):
    """``organisations handover ORG --to TO --permission PERMISSION``."""

    return cli(
        installation,
        "organisations",
        "handover",
        org.name,
        "--to",
        to.username,
        "--permission",
        permission,
    )


def register_seal_key(installation, db, org, username: str):
    """``credentials register USERNAME --organisation ORG`` for ``org``'s key."""
    from gateway.db.models import Credential

    with db.transaction() as session:
        seal = session.get(Credential, org.credential_id)
        serial, key_id = seal.token_serial, seal.key_id
    return cli(
        installation,
        "credentials",
        "register",
        username,
        "--token",
        serial,
        "--key-id",
        key_id,
        "--organisation",
        org.name,
    )


def nonces_of(session, user_id: str) -> list:
    from gateway.db.models import ApprovalNonce

    return list(session.scalars(select(ApprovalNonce).where(ApprovalNonce.user_id == user_id)))


def render_page(pdf: bytes, page: int = 0) -> Image.Image:
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    document.init_forms()
    try:
        return document[page].render(scale=SCALE, may_draw_forms=True).to_pil().convert("RGB")
    finally:
        document.close()


def pixels(image: Image.Image, colour: str) -> list[tuple[float, float]]:
    """(x, y) in points from the page's bottom-left corner of the blue ink or the red
    seal (strict colours: the fringes pdfium's subpixel text leaves are not ink)."""
    found = []
    for i, (r, g, b) in enumerate(image.get_flattened_data()):
        blue = b > 150 and r < 60 and g < 60
        red = r > 180 and g < 60 and b < 70
        if blue if colour == "blue" else red:
            x, y = i % image.width, i // image.width
            found.append((x / SCALE, (image.height - y) / SCALE))
    return found


def dark_points(image: Image.Image) -> list[tuple[float, float]]:
    found = []
    for i, (r, g, b) in enumerate(image.get_flattened_data()):
        if r < 80 and g < 80 and b < 80:
            found.append(((i % image.width) / SCALE, (image.height - i // image.width) / SCALE))
    return found


def inside(points, box, slack: float = 1.0) -> bool:
    x1, y1, x2, y2 = box
    return all(x1 - slack <= x <= x2 + slack and y1 - slack <= y <= y2 + slack for x, y in points)


def seal_template(*, lock=None, seal_box=SEAL, seal_flags=None, seal_sv=None) -> bytes:
    """A template with the leader's empty field Sig1 and the seal's Sig2."""
    from pyhanko.sign import fields

    writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf(["QUYẾT ĐỊNH"])), strict=False)
    fields.append_signature_field(
        writer, fields.SigFieldSpec("Sig1", on_page=0, box=LEADER, field_mdp_spec=lock)
    )
    fields.append_signature_field(
        writer, fields.SigFieldSpec("Sig2", on_page=0, box=seal_box, seed_value_dict=seal_sv)
    )
    if seal_flags is not None:
        for ref in writer.root["/AcroForm"]["/Fields"]:
            if ref.get_object()["/T"] == "Sig2":
                ref.get_object()["/F"] = generic.NumberObject(seal_flags)
                writer.mark_update(ref)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def seed_value():
    from pyhanko.sign.fields import SigSeedSubFilter, SigSeedValFlags, SigSeedValueSpec

    return SigSeedValueSpec(
        flags=SigSeedValFlags.SUBFILTER, subfilters=[SigSeedSubFilter.ADOBE_PKCS7_DETACHED]
    )


def lock_all():
    from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec

    return FieldMDPSpec(FieldMDPAction.ALL)
