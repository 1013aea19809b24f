"""Refusals of what a submission or a decision asks, not of the document."""

from __future__ import annotations

from gateway.errors.base import SubmissionRefused

__all__ = [
    "BatchTooLarge",
    "CursorInvalid",
    "IdempotencyConflict",
    "OrganisationNoCredential",
    "OrganisationNoSeal",
    "OrganisationUnknown",
    "ParameterInvalid",
    "SignerDisabled",
    "SignerNoCredential",
    "SignerNotLeader",
    "SignerUnknown",
]


class SignerUnknown(SubmissionRefused):
    """The submission names a user this installation does not have."""

    code = "signer_unknown"
    status = 422
    title = "Unknown signer"


class SignerDisabled(SubmissionRefused):
    """The submission names a user whose account an administrator disabled: nothing
    new is addressed to them."""

    code = "signer_disabled"
    status = 422
    title = "The signer's account is disabled"


class SignerNoCredential(SubmissionRefused):
    """The signer has no registered credential that is not revoked."""

    code = "signer_no_credential"
    status = 422
    title = "The signer has no signing credential"


class ParameterInvalid(SubmissionRefused):
    """A parameter of the call is malformed or contradicts another; the detail says which
    and why."""

    code = "parameter_invalid"
    status = 422
    title = "A parameter is invalid"


class OrganisationUnknown(SubmissionRefused):
    """The workflow names an organisation this installation does not have."""

    code = "organisation_unknown"
    status = 422
    title = "Unknown organisation"


class OrganisationNoCredential(SubmissionRefused):
    """The sealing organisation's key is not registered, is revoked, or has no keeper."""

    code = "organisation_no_credential"
    status = 422
    title = "The organisation has no signing credential kept by one of its clerks"


class OrganisationNoSeal(SubmissionRefused):
    """The sealing organisation has no seal image to draw."""

    code = "organisation_no_seal"
    status = 422
    title = "The organisation has no seal image"


class SignerNotLeader(SubmissionRefused):
    """The first signer of an official document is not a leader of the sealing
    organisation."""

    code = "signer_not_leader"
    status = 422
    title = "An official document is signed first by a leader of the organisation that seals it"


class IdempotencyConflict(SubmissionRefused):
    """The same Idempotency-Key came with another body."""

    code = "idempotency_conflict"
    status = 409
    title = "The Idempotency-Key was used with another request"


class BatchTooLarge(SubmissionRefused):
    """More requests in one decision than ``batch_max_requests``."""

    code = "batch_too_large"
    status = 422
    title = "Too many requests in one batch"


class CursorInvalid(SubmissionRefused):
    """A list's ``cursor`` is not one this gateway gave this caller for this list
    (altered, truncated, or another client's): start again without a cursor."""

    code = "cursor_invalid"
    status = 422
    title = "The paging cursor is invalid"
