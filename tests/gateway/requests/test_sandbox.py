"""Document workers (gateway/requests/sandbox.py): a job that needs more memory than a
worker may use, or more time than a job may take, ends that worker, not the service;
the caller gets document_too_complex, and the next job runs in a fresh worker."""

from __future__ import annotations

import pytest

from gateway.errors import DocumentTooComplex
from gateway.requests.sandbox import DocumentSandbox, SandboxLimits
from pdf_structure.limits import DocumentLimits
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.pdf_builders import content_bomb, pages_in_object_stream


@pytest.fixture
def sandbox():
    pool = DocumentSandbox(SandboxLimits(workers=1, memory_bytes=700 << 20, seconds=20))
    yield pool
    pool.close()


def test_pdfium_past_the_memory_limit_ends_its_worker_not_the_service(sandbox):
    """A bomb that reached PDFium (the renderer is asked directly, past intake)."""
    bomb = content_bomb(1 << 30)
    with pytest.raises(DocumentTooComplex) as lost:
        sandbox.render_page(bomb, 1, 300, 2000)
    assert "700 MiB" in lost.value.detail
    png = sandbox.render_page(sample_pdf(["Vẫn hoạt động"]), 1, 300, 2000)
    assert png.startswith(b"\x89PNG")


def test_a_job_past_the_time_limit_ends_its_worker():
    hurried = DocumentSandbox(SandboxLimits(workers=1, seconds=0.2))
    try:
        with pytest.raises(DocumentTooComplex) as lost:
            hurried.inspect(
                pages_in_object_stream(20_000), 50 << 20, DocumentLimits(max_pages=50_000)
            )
        assert lost.value.detail == "reading the document took longer than 0.2 s"
        report = hurried.inspect(sample_pdf(["Tiếp tục"]), 50 << 20, DocumentLimits())
        assert report.page_count == 1
    finally:
        hurried.close()
