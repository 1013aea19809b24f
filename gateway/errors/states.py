"""The request (or the gateway) is not in a state that allows the call."""

from __future__ import annotations

from gateway.errors.base import RequestStateError

__all__ = [
    "DocumentChanged",
    "DocumentWorkersBusy",
    "RequestExpired",
    "RequestNotPending",
    "RequestNotSigned",
    "SubmissionConflict",
]


class SubmissionConflict(RequestStateError):
    """The signer's credential or organisation changed while the submission was being
    checked; the same submission may be sent again."""

    code = "submission_conflict"
    status = 409
    title = "The signer's set-up changed during submission"
    retryable = True


class DocumentWorkersBusy(RequestStateError):
    """Every document worker stayed busy for the whole wait; try again shortly."""

    code = "document_workers_busy"
    status = 503
    title = "The gateway is busy reading other documents"
    retryable = True


class RequestNotPending(RequestStateError):
    """The request was decided, cancelled or is being signed."""

    code = "request_not_pending"
    status = 409
    title = "The request is not pending approval"


class RequestExpired(RequestStateError):
    """The request's time to be approved ran out."""

    code = "request_expired"
    status = 409
    title = "The request has expired"


class RequestNotSigned(RequestStateError):
    """The signed document was asked for before the request was signed."""

    code = "request_not_signed"
    status = 409
    title = "The request is not signed"


class DocumentChanged(RequestStateError):
    """The hash the signer sent is not the stored document's, or the stored document,
    parameters or image changed after approval: nothing is signed."""

    code = "document_changed"
    status = 409
    title = "The document hash does not match the document to be signed"
