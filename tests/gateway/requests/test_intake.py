"""Intake on every corpus file: what the MANIFEST says must be refused is refused with a
stable code; what must be signed is accepted, with warnings where the signer must be
told something first."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.requests.intake import inspect_pdf
from signing_gateway.demo.sample_pdf import sample_pdf

LIMIT = 50 * 1024 * 1024
REFUSALS = {
    "form-xfa-dynamic.pdf": "document_xfa_unsupported",
    "certified-docmdp-p1.pdf": "document_certified_no_changes",
    "not-a-pdf-text.pdf": "document_not_pdf",
    "truncated-cairo.pdf": "document_truncated",
    "damaged-xref-offsets-wrong.pdf": "document_unreadable",
    "damaged-xref-keyword-missing.pdf": "document_unreadable",
    "damaged-broken-objstream.pdf": "document_unreadable",
}
WARNINGS = {
    "pdfa2b-certified-p2-invalid-sig.pdf": "existing_signature_invalid",
    "signed-approval-digest-mismatch.pdf": "existing_signature_invalid",
    "boxes-negative-mediabox-ur3-js.pdf": "document_usage_rights",
    "javascript-document-level.pdf": "document_javascript",
}


def test_every_corpus_file_gets_its_expected_outcome(corpus, manifest):
    assert len(manifest) >= 30
    for name, row in manifest.items():
        data = (corpus / "pdf" / name).read_bytes()
        expected = row["expected"]
        if expected in ("refuse-with-clear-error", "sign-after-password"):
            with pytest.raises(GatewayError) as caught:
                inspect_pdf(data, max_bytes=LIMIT)
            code = (
                "document_encrypted"
                if name.startswith(("encrypted-", "certified-docmdp-p1-encrypted"))
                else REFUSALS[name]
            )
            assert caught.value.code == code, name
            assert 400 <= caught.value.status < 500
        else:
            report = inspect_pdf(data, max_bytes=LIMIT)
            assert report.page_count >= 1, name
            if name in WARNINGS:
                assert WARNINGS[name] in report.warnings, (name, report.warnings)
            if expected == "sign":
                assert "existing_signature_invalid" not in report.warnings, name


def test_size_limit_and_generated_sample():
    sample = sample_pdf(["hello"])
    assert inspect_pdf(sample, max_bytes=LIMIT).page_count == 1
    with pytest.raises(GatewayError) as caught:
        inspect_pdf(sample, max_bytes=100)
    assert caught.value.code == "document_too_large"
    with pytest.raises(GatewayError) as caught:
        inspect_pdf(sample[: len(sample) // 2], max_bytes=LIMIT)
    assert caught.value.code in ("document_truncated", "document_unreadable")
