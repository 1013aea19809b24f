"""``POST /api/v1/validations``: a validation report of any PDF, for the document system
and for anyone it serves: each signature and document timestamp, judged offline with the
installation's trust anchors (:mod:`gateway.signing.reports`), as JSON or as a printable
HTML page in Vietnamese or English. The document is read in a document worker under its
limits and is not kept."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from gateway.db.models import IntegrationClient
from gateway.errors import DocumentTooLarge
from gateway.integration.api import Context, client_with_scope
from gateway.signing.report_html import report_html
from gateway.signing.reports import report_json
from hsm_bridge.pades.chain import load_ca_file

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["integration"])

ValidatingClient = Annotated[IntegrationClient, Depends(client_with_scope("validations"))]


@router.post(
    "/validations",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
async def validate_document(
    context: Context,
    client: ValidatingClient,
    document: Annotated[UploadFile, File(description="the PDF to validate")],
    format: Annotated[Literal["json", "html"], Query(description="json or html")] = "json",
    lang: Annotated[Literal["vi", "en"], Query(description="the HTML report's language")] = "vi",
) -> Response:
    """A report per signature and document timestamp (``kind``): signer, issuer and
    serial, claimed and timestamped times, integrity, trust, coverage and what later
    revisions changed, the DocMDP verdict, the PAdES level reached, the status when
    signed and now, and the AdES long-term indication. ``format=html`` gives the same as
    a printable page (``lang=vi`` or ``en``). Offline: only the installation's trust
    anchors and what the document embeds; nothing is fetched."""
    limit = context.settings.max_document_bytes
    data = await document.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(f"the limit is {limit} bytes")
    anchors = load_ca_file(context.settings.effective_trust_anchors_file)
    report = await run_in_threadpool(
        context.sandbox.validation_report, data, list(anchors), context.clock()
    )
    if format == "html":
        return Response(report_html(report, lang), media_type="text/html; charset=utf-8")
    return Response(report_json(report), media_type="application/json")
