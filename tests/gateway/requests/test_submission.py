"""Submission as a use case (:class:`gateway.requests.submission.Submissions`), without
HTTP, at a fixed clock (tests/usecases.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.errors import DocumentNotPdf, IdempotencyConflict, SignerUnknown
from gateway.requests.document_store import DocumentStore
from hsm_bridge.pades import SignatureParameters
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.usecases import START, World, make_world


@pytest.fixture
def world(tmp_path) -> World:
    return make_world(tmp_path)


def _submit(world: World, document: bytes, *, key: str | None = None, signer: str = "leader"):
    return world.submissions.submit(
        world.client,
        document,
        signer,
        SignatureParameters(reason="Phê duyệt"),
        idempotency_key=key,
        client_address=None,
    )


def test_a_submission_is_stored_at_the_clocks_time_with_its_deadline(world):
    document = sample_pdf(["Công văn"])
    created = _submit(world, document)
    assert created.created
    request = created.request
    assert request.status == "pending_approval"
    assert request.created_at == START
    assert request.expires_at == START + dt.timedelta(seconds=world.settings.request_ttl_seconds)
    assert request.credential_id == world.credential.id
    assert world.store.read(request.id, DocumentStore.ORIGINAL) == document
    assert world.audit(request.id) == [("request.submitted", START)]


def test_the_same_idempotency_key_answers_the_same_request_and_refuses_another_body(world):
    document = sample_pdf(["Công văn"])
    first = _submit(world, document, key="eoffice-42")
    world.clock.advance(30)
    again = _submit(world, document, key="eoffice-42")
    assert not again.created and again.request.id == first.request.id
    with pytest.raises(IdempotencyConflict):
        _submit(world, sample_pdf(["Công văn khác"]), key="eoffice-42")


def test_refusals_come_before_anything_is_stored(world):
    with pytest.raises(DocumentNotPdf):
        _submit(world, b"this is a letter, not a PDF")
    with pytest.raises(SignerUnknown):
        _submit(world, sample_pdf(["Công văn"]), signer="nobody")
    assert list(world.settings.documents_dir.iterdir()) == []
