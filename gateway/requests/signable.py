"""What a submission will be signed with, step by step, so that it can be built at
submission (:func:`gateway.requests.sandbox_tasks.check_signable`) before anyone
approves it: a signer's approval is never spent on a document that was knowable at
submission to be unsignable."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.admin.organisations import organisation_credential
from gateway.db.models import Credential, Organisation, User
from gateway.requests.preview import SignatureStep, identity_of
from gateway.requests.workflow_rules import SignerChoice, WorkflowOrder
from gateway.requests.workflow_steps import OFFICIAL_DOCUMENT
from gateway.requests.workflows import seal_step_parameters
from hsm_bridge.pades import SignatureParameters

__all__ = ["signature_steps"]


def signature_steps(
    session: Session, workflow: WorkflowOrder | None, choice: SignerChoice
) -> list[SignatureStep]:
    """The signatures a submission will get, in order, each as (parameters, the signer's
    identity as the bridge will name it, the image it draws): the signer's; for an
    official document also the organisation's seal after it, into the field the first
    creates. Raises the organisation's refusals (no credential, no seal)."""
    first = (
        choice.params,
        identity_of(choice.credential, choice.credential.mechanism),
        _image(choice.params, choice.signer, choice.credential, session),
    )
    if workflow is None or workflow.name != OFFICIAL_DOCUMENT or choice.organisation is None:
        return [first]
    organisation = choice.organisation
    credential, _ = organisation_credential(session, organisation, need_seal=True)
    assert organisation.seal_image is not None
    seal = seal_step_parameters(choice.params, organisation.seal_image)
    return [first, (seal, identity_of(credential, credential.mechanism), organisation.seal_image)]


def _image(
    params: SignatureParameters, signer: User, credential: Credential, session: Session
) -> bytes | None:
    """The image the signature draws: the organisation's seal when its credential signs,
    else the signer's handwritten signature; none when the parameters name none."""
    if params.image_sha256 is None:
        return None
    if credential.organisation_id is not None:
        organisation = session.get(Organisation, credential.organisation_id)
        return organisation.seal_image if organisation is not None else None
    return signer.signature_image
