"""An outside review's attacks on the running gateway, over HTTP, each answered with a
clear 4xx before anything is stored or approved, and the service still serving
(docs/operations.md, "Limits"):

- a decompression bomb (one 1 GiB content stream listed eight times, 1 MB on disk)
  took the server from 173 MB to 2.2 GB;
- a page tree that declares 5 pages and holds 2 gave 500s at submission and preview;
- a field name with a NUL was accepted and failed after approval;
- a PAdES-LTA document's intact document timestamp was reported as an invalid
  signature;
- unreadable files were explained with Python class names.
"""

from __future__ import annotations

import httpx
import pytest

from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import submit
from tests.pdf_builders import content_bomb, document_timestamped, raw_pdf, raw_stream


def _alive(server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "ok"}


def test_a_decompression_bomb_is_refused_and_the_server_keeps_serving(server, signer):
    answer = submit(server, content_bomb(1 << 30, listed=8), signer.username)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "document_too_complex"
    assert "decompresses to more than" in problem["detail"]
    _alive(server)


def _lying_page_tree() -> bytes:
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 5 0 R >>"
    return raw_pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 5 >>",
            3: page,
            4: page,
            5: raw_stream(b"BT /F1 12 Tf 72 720 Td (page) Tj ET"),
        }
    )


@pytest.mark.parametrize(
    "fields", [{"page": "3", "box": "10,10,200,80"}, {"page": "2", "box": "10,10,200,80"}, {}]
)
def test_a_page_tree_that_lies_about_its_count_is_refused_in_words(server, signer, fields):
    answer = submit(server, _lying_page_tree(), signer.username, **fields)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "document_unreadable"
    assert "says 5 pages but holds 2" in problem["detail"]


def test_control_characters_in_a_field_name_are_refused_at_submission(server, signer):
    for member in ("field_name", "reason", "location"):
        answer = submit(server, sample_pdf(["x"]), signer.username, **{member: "Sig\x001"})
        assert answer.status_code == 422 and answer.json()["code"] == "parameter_invalid"
        assert member in answer.json()["detail"]


def test_an_intact_document_timestamp_is_not_an_invalid_signature(server, signer):
    stamped = document_timestamped(sample_pdf(["Có dấu thời gian"]))
    answer = submit(server, stamped, signer.username)
    assert answer.status_code == 201, answer.text
    assert "existing_signature_invalid" not in answer.json()["warnings"]
    # the same timestamp with a byte of the covered document changed is still caught
    tampered = bytearray(stamped)
    tampered[tampered.index(b"/MediaBox") + 1] ^= 0x01
    answer = submit(server, bytes(tampered), signer.username)
    assert answer.status_code == 201, answer.text
    assert "existing_signature_invalid" in answer.json()["warnings"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("damaged-xref-keyword-missing.pdf", "damaged"),
        ("damaged-broken-objstream.pdf", "page list"),
        ("truncated-cairo.pdf", "incomplete"),
        ("not-a-pdf-text.pdf", "PDF"),
    ],
)
def test_unreadable_files_are_explained_in_words(server, signer, corpus, name, words):
    answer = submit(server, (corpus / "pdf" / name).read_bytes(), signer.username)
    assert 400 <= answer.status_code < 500, answer.text
    detail = answer.json()["detail"]
    assert words in detail
    for python_word in ("Error", "Exception", "(ValueError)", "PdfReadError", "KeyError"):
        assert python_word not in detail, detail
