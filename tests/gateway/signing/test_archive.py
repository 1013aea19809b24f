"""The archive keeps signed documents verifiable across their TSA's end: time moves
forward by injection to shortly before the demo TSA's certificate ends, ``renew`` adds
the validation data of the last timestamp and a document timestamp from the archive's
TSA (the demo's second TSA, certified for longer), and a verifier after the first TSA's
certificate ended still validates the renewed document as B-LTA, where the document as
signed no longer validates (the control). The demo PKI's TSAs answer for real."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.requests.document_store import DocumentStore
from gateway.signing.archive import Archive, last_timestamp
from gateway.signing.levels import signature_levels
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.commands import cli
from tests.factories import make_organisation
from tests.ltv import lta_passes_at
from tests.official import both_steps, request_status, submit_official

BOX = "330,380,530,450"


@pytest.fixture
def archived(server, db, box) -> tuple[str, bytes]:
    """An official document signed through the gateway: (the seal step's id, the
    finished document)."""
    org = make_organisation(db, box)
    document = sample_pdf(["QUYẾT ĐỊNH lưu trữ"])
    created = submit_official(server, org, document, page="1", box=BOX)
    assert created.status_code == 201, created.text
    _, finished = both_steps(server, org, created.json()["id"], document)
    seal_id = request_status(server, created.json()["id"])["workflow"]["steps"][1]["request_id"]
    return seal_id, finished


def _anchors(installation) -> list[bytes]:
    pem = installation.effective_trust_anchors_file.read_bytes()
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem)]


def test_a_renewed_document_outlives_its_tsa(installation, db, server, archived):
    seal_id, finished = archived
    store = DocumentStore(installation.documents_dir)
    anchors = _anchors(installation)
    first = last_timestamp(finished)
    assert first is not None and first.authority == "Demo Time-Stamping Authority"
    after_end = first.authority_not_after + dt.timedelta(days=30)
    # the control: as signed, a verifier after the TSA certificate's end cannot validate
    assert lta_passes_at(finished, anchors, first.time + dt.timedelta(days=1)) == [True, True]
    assert lta_passes_at(finished, anchors, after_end) == [False, False]

    today = Archive(installation, db, store)
    assert today.renew([seal_id]) == []  # not due: its TSA certificate ends in years
    late = Archive(
        installation, db, store, clock=lambda: first.authority_not_after - dt.timedelta(days=100)
    )
    (due,) = late.verify([seal_id])
    assert due.due and "renew before" in due.attention[0]
    (renewed_entry,) = late.renew([seal_id])
    renewed = store.read_signed(seal_id)
    assert renewed.startswith(finished) and len(renewed) > len(finished)
    assert renewed_entry.last.authority == "Demo Time-Stamping Authority 2"
    assert not renewed_entry.due and renewed_entry.attention == []
    assert [level for _, level in signature_levels(renewed, anchors)] == ["B-LTA", "B-LTA"]
    assert lta_passes_at(renewed, anchors, after_end) == [True, True]
    assert late.renew([seal_id]) == []  # once is enough
    # what the document system downloads is the renewed document
    with server.client() as http:
        assert http.get(f"/api/v1/signing-requests/{seal_id}/signed-document").content == renewed


def test_the_archive_commands_report_and_refuse_in_words(installation, archived):
    seal_id, _ = archived
    checked = cli(installation, "archive", "verify", seal_id)
    assert checked.returncode == 0, checked.stderr
    assert seal_id in checked.stdout and "[B-LTA, B-LTA]" in checked.stdout
    assert "Demo Time-Stamping Authority" in checked.stdout and checked.stdout.strip().endswith(
        "ok"
    )
    nothing = cli(installation, "archive", "renew", seal_id)
    assert nothing.returncode == 0 and "0 document(s) renewed" in nothing.stdout
    unknown = cli(installation, "archive", "renew", "no-such-request")
    assert unknown.returncode == 1 and "not archived" in unknown.stderr
