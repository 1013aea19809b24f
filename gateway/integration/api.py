"""Integration API for document systems (e-Office): submit, list, poll, fetch, cancel.

Authentication: ``Authorization: Bearer <api key>``; the key is looked up by its SHA-256.
A client sees only its own requests (docs/design.md invariant 7).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.security import HTTPBearer
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from gateway.admin.clients import api_key_hash
from gateway.context import GatewayContext, context_of
from gateway.db.models import IntegrationClient, SigningRequest
from gateway.errors import (
    CertificateRefused,
    CursorInvalid,
    DocumentRefused,
    DocumentTooLarge,
    DocumentWorkersBusy,
    IdempotencyConflict,
    ParameterInvalid,
    RequestExpired,
    RequestNotPending,
    RequestNotSigned,
    ScopeMissing,
    SubmissionConflict,
    SubmissionRefused,
    Unauthenticated,
)
from gateway.problems import raises
from gateway.requests.listing import DEFAULT_LIMIT, MAX_LIMIT, RequestQuery, list_for_client
from gateway.requests.schemas import SigningRequestView
from gateway.requests.states import RequestStatus
from gateway.requests.submission import WorkflowOrder
from hsm_bridge.pades import SignatureParameters

__all__ = [
    "API_KEY",
    "Client",
    "Context",
    "ReadClient",
    "SigningRequestPage",
    "client_with_scope",
    "current_client",
    "router",
]

# the OpenAPI security scheme (and Swagger UI's Authorize button) of every /api/v1 route;
# it checks nothing itself (auto_error=False): current_client does, with our problems
API_KEY = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="The integration client's API key: `Authorization: Bearer <api key>`.",
)

router = APIRouter(prefix="/api/v1", tags=["integration"], dependencies=[Depends(API_KEY)])

Context = Annotated[GatewayContext, Depends(context_of)]


def current_client(request: Request, context: Context) -> IntegrationClient:
    """The live integration client named by the bearer API key; Unauthenticated
    otherwise (no key, an unknown key, or a revoked client's: the same answer)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("send Authorization: Bearer <api key>")
    digest = api_key_hash(key.strip())
    with context.db.transaction() as session:
        client = session.scalar(
            select(IntegrationClient).where(IntegrationClient.api_key_sha256 == digest)
        )
    if client is None or client.revoked_at is not None:
        raise Unauthenticated("unknown API key")
    return client


Client = Annotated[IntegrationClient, Depends(current_client)]


def client_with_scope(scope: str) -> Callable[..., IntegrationClient]:
    """A FastAPI dependency: the live client of :func:`current_client`, whose key was
    given ``scope`` (``requests:submit``, ``requests:read`` or ``validations``);
    ScopeMissing (403) otherwise."""

    def scoped(client: Client) -> IntegrationClient:
        if scope not in (client.scopes or "").split():
            raise ScopeMissing(f"this API key was not given the scope {scope}")
        return client

    return scoped


SubmitClient = Annotated[IntegrationClient, Depends(client_with_scope("requests:submit"))]
ReadClient = Annotated[IntegrationClient, Depends(client_with_scope("requests:read"))]


def _parse_box(box: str | None, page: int | None) -> tuple[float, float, float, float] | None:
    if box is None and page is None:
        return None
    if box is None or page is None:
        raise ParameterInvalid("page and box go together")
    try:
        x1, y1, x2, y2 = (float(v) for v in box.split(","))
    except ValueError as exc:
        raise ParameterInvalid("box must be x1,y1,x2,y2 in PDF points") from exc
    if not all(math.isfinite(v) and abs(v) < 14_400 for v in (x1, y1, x2, y2)):
        raise ParameterInvalid("box coordinates must be finite PDF points within 14400")
    if not (x1 < x2 and y1 < y2):
        raise ParameterInvalid("box must have x1 < x2 and y1 < y2")
    return (x1, y1, x2, y2)


@router.post(
    "/signing-requests",
    status_code=201,
    response_model=SigningRequestView,
    responses=raises(
        DocumentRefused,
        SubmissionRefused,
        CertificateRefused,
        IdempotencyConflict,
        SubmissionConflict,
        DocumentWorkersBusy,
    ),
)
async def submit(
    request: Request,
    response: Response,
    context: Context,
    client: SubmitClient,
    document: Annotated[UploadFile, File(description="the PDF to sign")],
    signer: Annotated[str | None, Form(min_length=1, max_length=64)] = None,
    title: Annotated[str | None, Form(min_length=1, max_length=300)] = None,
    reason: Annotated[str | None, Form(max_length=500)] = None,
    location: Annotated[str | None, Form(max_length=200)] = None,
    contact_info: Annotated[str | None, Form(max_length=200)] = None,
    field_name: Annotated[str | None, Form(max_length=100)] = None,
    pades_level: Annotated[Literal["B-B", "B-T", "B-LT", "B-LTA"] | None, Form()] = None,
    page: Annotated[int | None, Form(ge=1)] = None,
    box: Annotated[str | None, Form()] = None,
    placement: Annotated[Literal["auto"] | None, Form()] = None,
    callback_url: Annotated[str | None, Form(max_length=2000)] = None,
    workflow: Annotated[Literal["official_document", "organisation_only"] | None, Form()] = None,
    organisation: Annotated[str | None, Form(min_length=1, max_length=64)] = None,
    document_number: Annotated[str | None, Form(min_length=1, max_length=100)] = None,
    copy_type: Annotated[str | None, Form(min_length=1, max_length=100)] = None,
    seal_field_name: Annotated[str | None, Form(min_length=1, max_length=100)] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> SigningRequestView:
    """Submit a PDF for ``signer`` (``title``: what the signer's list calls it, also in
    callbacks and the download's file name). 201 with the new request; 200 with the earlier one
    when the Idempotency-Key and body repeat an earlier submission. ``placement=auto``
    puts a visible signature in the signer block on the last page (instead of ``page``
    and ``box``).

    ``pades_level``: B-B, B-T (a signature timestamp), B-LT (and the chain's validation
    data in the document), B-LTA (and a document timestamp over it all); by default the
    installation's (``default_pades_level``: B-LT where a TSA is configured, else B-B).

    ``workflow=official_document``: the leader ``signer`` signs first (visibly: page
    and box, or placement=auto), then the clerk of ``organisation`` (default: the
    leader's) seals, at B-LTA when the leader's level is B-LT or above; the answer's
    ``workflow`` lists the steps. On a document with an empty field for each, name
    them: ``field_name`` (the leader's) and ``seal_field_name``.
    ``workflow=organisation_only`` (no ``signer``): the ``organisation`` alone signs an
    attachment (``document_number``) or a copy (``copy_type``) at the top right of
    page 1."""
    limit = context.settings.max_document_bytes
    data = await document.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(f"the limit is {limit} bytes")
    if workflow is None and any((organisation, document_number, copy_type, seal_field_name)):
        raise ParameterInvalid(
            "organisation, document_number, copy_type and seal_field_name go with a workflow"
        )
    params = SignatureParameters(
        reason=reason,
        location=location,
        contact_info=contact_info,
        field_name=field_name,
        pades_level=pades_level or context.settings.effective_pades_level,
        page=page,
        box=_parse_box(box, page),
    )
    result = await run_in_threadpool(
        context.submissions.submit,
        client,
        data,
        signer,
        params,
        idempotency_key=idempotency_key,
        client_address=request.client.host if request.client else None,
        callback_url=callback_url,
        placement=placement,
        workflow=(
            WorkflowOrder(workflow, organisation, document_number, copy_type, seal_field_name)
            if workflow is not None
            else None
        ),
        title=title,
    )
    if not result.created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/signing-requests/{result.request.id}"
    return _view(context, result.request)


def _view(context: GatewayContext, request: SigningRequest) -> SigningRequestView:
    return SigningRequestView.of(request, context.submissions.workflow_view(request))


class SigningRequestPage(BaseModel):
    """A page of the client's requests, newest first; ``next_cursor`` fetches the
    next page (``cursor=``), null on the last."""

    items: list[SigningRequestView]
    next_cursor: str | None = None


Moment = Annotated[AwareDatetime | None, Query(description="RFC 3339, with its offset")]


@router.get("/signing-requests", response_model=SigningRequestPage, responses=raises(CursorInvalid))
def list_requests(
    context: Context,
    client: ReadClient,
    status: Annotated[
        list[RequestStatus] | None, Query(description="any of these statuses (repeatable)")
    ] = None,
    workflow: Annotated[Literal["official_document", "organisation_only"] | None, Query()] = None,
    created_after: Moment = None,
    created_before: Moment = None,
    updated_after: Moment = None,
    updated_before: Moment = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> SigningRequestPage:
    """The client's own requests, newest first (by creation, then id), a page at a
    time: pass the answer's ``next_cursor`` as ``cursor`` for the next page, with the
    same filters. ``*_after`` includes its time, ``*_before`` excludes it. A request
    submitted while paging is not seen (it is newer than the first page), and none is
    seen twice. 422 ``cursor_invalid`` for a cursor that was altered or given to
    another client."""
    query = RequestQuery(
        statuses=tuple(status or ()),
        workflow=workflow,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        limit=limit,
    )
    page = list_for_client(context.db, context.box, client.id, query, cursor, now=context.clock())
    return SigningRequestPage(
        items=[_view(context, request) for request in page.items], next_cursor=page.next_cursor
    )


@router.get("/signing-requests/{request_id}", response_model=SigningRequestView)
def status(request_id: str, context: Context, client: ReadClient) -> SigningRequestView:
    """The request's status; once signed, ``signed_document_sha256`` too; for a step of
    a workflow, the workflow and its steps."""
    return _view(context, context.submissions.get_for_client(client, request_id))


@router.get(
    "/signing-requests/{request_id}/signed-document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **raises(RequestNotSigned)},
)
def signed_document(request_id: str, context: Context, client: ReadClient) -> Response:
    """The signed PDF; 409 ``request_not_signed`` while it is not signed."""
    data = context.submissions.signed_document_for_client(client, request_id)
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{request_id}-signed.pdf"'},
    )


@router.delete(
    "/signing-requests/{request_id}",
    response_model=SigningRequestView,
    responses=raises(RequestNotPending, RequestExpired),
)
def cancel(
    request_id: str, request: Request, context: Context, client: SubmitClient
) -> SigningRequestView:
    """Cancel a pending request; 409 ``request_not_pending`` otherwise."""
    return _view(
        context,
        context.submissions.cancel(
            client, request_id, client_address=request.client.host if request.client else None
        ),
    )
