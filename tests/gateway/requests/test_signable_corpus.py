"""If submission accepts a document, signing it succeeds: every real-world document of
the corpus, in every placement mode (invisible, a box on the first and on the last page,
each empty signature field it has, automatic placement in a signer block, and an
official document's leader then seal), goes through the production path (intake,
placement, workflow rules, the signability check, in document workers; then approval
and the signing pipeline), and what is accepted is signed, never ``failed``, with
signatures pyHanko validates. (Before, a document whose XMP metadata pyHanko could not
refresh was accepted, approved, and failed after the approval was spent.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import func, select

from gateway.db.models import SigningRequest
from gateway.errors import DocumentUnsignable, GatewayError
from gateway.requests.workflow_rules import WorkflowOrder
from hsm_bridge.pades import SignatureParameters
from hsm_bridge.sam.authorization import TotpFactor
from tests.pdf_builders import raw_pdf, raw_stream, signer_block_pdf
from tests.usecases import GOOD_OTP, World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("world"))


def _modes(report) -> list[tuple[str, SignatureParameters, dict]]:
    """The placement modes a document offers, given intake's report of it."""
    last = report.page_count
    modes = [
        ("invisible", SignatureParameters(reason="Phê duyệt"), {}),
        ("box on page 1", SignatureParameters(page=1, box=(40, 40, 190, 100)), {}),
    ]
    if last > 1:
        modes.append(
            ("box on the last page", SignatureParameters(page=last, box=(300, 40, 500, 110)), {})
        )
    for name in report.empty_signature_fields[:2]:
        modes.append((f"field {name}", SignatureParameters(field_name=name), {}))
    modes.append(
        (
            "official document",
            SignatureParameters(page=last, box=(330, 120, 530, 190)),
            {"workflow": WorkflowOrder("official_document", "stc")},
        )
    )
    return modes


def _sign(world: World, document: bytes, params: SignatureParameters, options: dict) -> list[bytes]:
    """Submit, then approve the leader's step and, for an official document, the clerk's
    seal: the signed outputs. Raises the submission's refusal."""
    first = world.submit(document=document, params=params, **options)
    steps = [(world.leader, first)]
    outputs = []
    while steps:
        signer, request = steps.pop(0)
        done = world.service.approve(
            signer, request.id, request.document_sha256, TotpFactor(GOOD_OTP), client_address=None
        )
        assert done.status == "signed", (done.status, done.failure_code)
        outputs.append(world.store.read_signed(request.id))
        view = world.submissions.workflow_view(done)
        if view is not None and len(outputs) < len(view.steps):
            steps.append((world.clerk, world.request(view.steps[len(outputs)].request_id)))
    return outputs


def _valid(signed: bytes, count: int) -> None:
    signatures = PdfFileReader(io.BytesIO(signed), strict=False).embedded_signatures
    for ours in signatures[-count:]:
        context = ValidationContext(trust_roots=[ours.signer_cert], allow_fetching=False)
        status = validate_pdf_signature(ours, context)
        assert status.intact and status.valid and status.trusted, status


def test_every_accepted_corpus_document_is_signed_in_every_placement_mode(world, corpus: Path):
    accepted = refused = 0
    for path in sorted((corpus / "pdf").glob("*.pdf")):
        document = path.read_bytes()
        try:
            report = world.submissions.sandbox.inspect(
                document, world.settings.max_document_bytes, world.settings.document_limits
            )
        except GatewayError:
            continue  # refused at intake
        for mode, params, options in _modes(report):
            try:
                outputs = _sign(world, document, params, options)
            except GatewayError:
                refused += 1  # refused at submission (a lock, a certification, no room)
                continue
            except Exception as exc:
                raise AssertionError(f"{path.name}, {mode}: {exc!r}") from exc
            _valid(outputs[-1], len(outputs))
            accepted += 1
    assert accepted >= 60 and refused >= 1, (accepted, refused)


def test_automatic_placement_in_a_signer_block_is_signed(world):
    document = signer_block_pdf("GIÁM ĐỐC", world.leader.display_name)
    (signed,) = _sign(
        world, document, SignatureParameters(reason="Ban hành"), {"placement": "auto"}
    )
    _valid(signed, 1)


def test_a_document_whose_metadata_cannot_be_updated_is_refused_before_approval(world):
    broken_xmp = (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b"<rdf:RDF"
    )
    document = raw_pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /Metadata 5 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            4: raw_stream(b"BT /F1 12 Tf 72 720 Td (x) Tj ET"),
            5: raw_stream(broken_xmp, b"/Type /Metadata /Subtype /XML "),
        }
    )
    stored = _request_count(world)
    with pytest.raises(DocumentUnsignable) as refused:
        world.submit(document=document)
    assert "XMP" in refused.value.detail
    assert _request_count(world) == stored  # nothing to approve, nobody notified


def _request_count(world: World) -> int:
    with world.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(SigningRequest)) or 0
