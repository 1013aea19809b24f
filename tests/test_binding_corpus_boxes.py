"""Legitimate signatures are never refused by the bridge's update check: every corpus
document that intake accepts, signed by the real pyHanko pipeline invisibly and with a
box on page 1, passes verify_signing_input (a review found box signatures on documents
with cross-reference streams refused: pyHanko packs some new objects in an object
stream there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.errors import GatewayError
from gateway.intake import inspect_pdf
from gateway.pades import SignatureParameters
from tests.test_binding import _capture, _check

XREF_STREAM_DOCUMENTS = [
    "boxes-negative-mediabox-ur3-js.pdf",
    "javascript-document-level.pdf",
    "signed-twice-pades.pdf",
]


@pytest.mark.parametrize("name", XREF_STREAM_DOCUMENTS)
def test_a_box_signature_on_an_xref_stream_document_is_accepted(name, corpus: Path):
    document = (corpus / "pdf" / name).read_bytes()
    inspect_pdf(document, max_bytes=50_000_000)  # intake accepts it
    params = SignatureParameters(reason="R", page=1, box=(50, 60, 250, 130))
    made = _capture(document, params)
    assert _check(made, document, json.loads(params.canonical_json())) == made.digest


def test_every_accepted_corpus_document_passes_invisible_and_boxed(corpus: Path):
    checked = 0
    for path in sorted((corpus / "pdf").glob("*.pdf")):
        document = path.read_bytes()
        try:
            report = inspect_pdf(document, max_bytes=50_000_000)
        except GatewayError:
            continue  # refused at intake: never reaches the bridge
        if report.certification == "fill_forms":
            continue  # signed only into an empty field or invisibly (test_intake_wild)
        for params in (
            SignatureParameters(),
            SignatureParameters(reason="R", page=1, box=(20, 20, 120, 60)),
        ):
            made = _capture(document, params)
            assert _check(made, document, json.loads(params.canonical_json())) == made.digest, (
                path.name
            )
            checked += 1
    assert checked >= 30
