"""The workflow rules of a submission (:mod:`gateway.requests.workflows`): which
combinations of workflow, signer and placement can be meant, who signs with which
credential, and what an official document's first step or an organisation's attachment
signature adds to the parameters (the seal's empty field, the attachment's line). Every
function raises the refusal the document system gets at once."""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass, replace

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.admin.organisations import (
    image_rect,
    organisation_credential,
    organisation_named,
    seal_box,
)
from gateway.db.models import Credential, Organisation, User
from gateway.errors import (
    ParameterInvalid,
    SignerDisabled,
    SignerNoCredential,
    SignerNotLeader,
    SignerUnknown,
)
from gateway.requests.intake import DocumentReport
from gateway.requests.placement import top_right_box
from gateway.requests.placement_policy import check_box
from gateway.requests.workflow_steps import OFFICIAL_DOCUMENT, ORGANISATION_ONLY, WORKFLOWS
from hsm_bridge.pades import IMAGE_MARGIN, EmptyField, SignatureParameters
from hsm_bridge.pades.fonts import missing_glyphs

__all__ = [
    "SignerChoice",
    "WorkflowOrder",
    "check_texts",
    "check_workflow_order",
    "choose_signer",
    "official_document_fields",
]


@dataclass(frozen=True, slots=True)
class WorkflowOrder:
    """What the document system asked of a workflow (:mod:`gateway.requests.workflows`): its
    ``name``; the ``organisation`` (short name) that seals (for an official document,
    the leader's own by default); for ``organisation_only``, the attachment's
    ``document_number`` (number and symbol, e.g. "15/QĐ-STC") or the ``copy_type`` of a
    copy (e.g. "Sao y"); for an official document whose leader signs into an existing
    empty field, the existing empty field for the seal (``seal_field_name``)."""

    name: str
    organisation: str | None = None
    document_number: str | None = None
    copy_type: str | None = None
    seal_field_name: str | None = None


@dataclass(frozen=True, slots=True)
class SignerChoice:
    """Who signs a submission with which credential, for which organisation (None for a
    plain request), and the parameters the workflow made of the requested ones."""

    signer: User
    credential: Credential
    organisation: Organisation | None
    params: SignatureParameters


def choose_signer(
    session: Session,
    workflow: WorkflowOrder | None,
    signer_username: str | None,
    params: SignatureParameters,
    report: DocumentReport,
) -> SignerChoice:
    """The signer and credential: an organisation-only signature's keeper clerk with the
    organisation's key (and its attachment line), else the named signer with their own.
    Raises SignerUnknown, SignerDisabled, SignerNoCredential, OrganisationUnknown,
    OrganisationNoCredential, OrganisationNoSeal, ParameterInvalid."""
    if workflow is not None and workflow.name == ORGANISATION_ONLY:
        organisation = _organisation(session, workflow, None)
        credential, signer = organisation_credential(session, organisation, need_seal=False)
        params = _attachment_line(params, workflow, organisation, report)
        return SignerChoice(signer, credential, organisation, params)
    signer, credential = _personal(session, signer_username)
    return SignerChoice(signer, credential, None, params)


def official_document_fields(
    session: Session, workflow: WorkflowOrder, choice: SignerChoice, report: DocumentReport
) -> SignerChoice:
    """An official document's first step: the leader must lead the sealing
    organisation; the leader's field and the seal's (an existing one, or one created
    empty at the seal's place) are checked and named in the parameters. Raises
    SignerNotLeader, ParameterInvalid and the organisation's refusals."""
    signer, params = choice.signer, choice.params
    organisation = _organisation(session, workflow, signer)
    if signer.role != "leader" or signer.organisation_id != organisation.id:
        raise SignerNotLeader(f"{signer.username!r} is not a leader of {organisation.name!r}")
    if params.field_name is not None:
        _check_workflow_field(params.field_name, report, "the leader")
    if workflow.seal_field_name is not None:
        _check_workflow_field(workflow.seal_field_name, report, "the seal")
    params = (
        _seal_field(params, report, signer, organisation)
        if workflow.seal_field_name is None
        else _existing_seal_field(params, report, workflow.seal_field_name)
    )
    return replace(choice, organisation=organisation, params=params)


def check_texts(
    params: SignatureParameters, workflow: WorkflowOrder | None, title: str | None = None
) -> None:
    """Every text the submission gives (reason, location, contact, field names, the
    attachment's number, the copy's type) is printable: no control character (a NUL in a
    field name was accepted, and failed only after the signer approved). Raises
    ParameterInvalid naming the member."""
    texts = {
        "title": title,
        "reason": params.reason,
        "location": params.location,
        "contact_info": params.contact_info,
        "field_name": params.field_name,
    }
    if workflow is not None:
        texts |= {
            "organisation": workflow.organisation,
            "document_number": workflow.document_number,
            "copy_type": workflow.copy_type,
            "seal_field_name": workflow.seal_field_name,
        }
    for member, text in texts.items():
        if text is not None and any(_is_control(c) for c in text):
            raise ParameterInvalid(f"{member} must not contain control characters")


# Bidirectional embeddings, overrides and isolates (Unicode TR 9): they reorder what the
# signer reads ("5.000.000" shown, another text stored), so a title has none.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_control(character: str) -> bool:
    """A C0/C1 control, a lone surrogate or a bidirectional control."""
    return unicodedata.category(character) in ("Cc", "Cs") or character in _BIDI_CONTROLS


def check_workflow_order(
    workflow: WorkflowOrder | None,
    signer_username: str | None,
    params: SignatureParameters,
    placement: str | None,
) -> None:
    """Refuse combinations that cannot be meant (ParameterInvalid), before any work."""
    if workflow is None:
        if not signer_username:
            raise ParameterInvalid("name the signer")
        return
    if workflow.name not in WORKFLOWS:
        raise ParameterInvalid(f"workflow must be one of {', '.join(WORKFLOWS)}")
    if workflow.name == ORGANISATION_ONLY:
        if workflow.seal_field_name:
            raise ParameterInvalid("seal_field_name is for official_document")
        if signer_username:
            raise ParameterInvalid(
                "organisation_only is signed by the organisation's clerk: name the"
                " organisation, not a signer"
            )
        if not workflow.organisation:
            raise ParameterInvalid("organisation_only needs the organisation")
        if placement or params.page or params.box or params.field_name:
            raise ParameterInvalid(
                "organisation_only signs at the top right of page 1: give no placement"
            )
        if bool(workflow.document_number) == bool(workflow.copy_type):
            raise ParameterInvalid(
                "give document_number (an attachment or appendix) or copy_type (a copy)"
            )
        for text in (workflow.document_number, workflow.copy_type):
            if text is not None and (not text.strip() or not text.isprintable()):
                raise ParameterInvalid(
                    "document_number and copy_type are one line of printable text"
                )
        return
    if not signer_username:
        raise ParameterInvalid("official_document needs the leader as signer")
    if workflow.document_number or workflow.copy_type:
        raise ParameterInvalid("document_number and copy_type are for organisation_only")
    if workflow.seal_field_name is not None and params.field_name is None:
        raise ParameterInvalid(
            "seal_field_name goes with the leader's empty field (field_name): name both"
            " fields of the document, or give the leader's place only and the seal is"
            " placed against it"
        )
    if params.field_name is not None and params.field_name == workflow.seal_field_name:
        raise ParameterInvalid("the leader and the seal need two different fields")
    if placement != "auto" and params.box is None and params.field_name is None:
        raise ParameterInvalid(
            "official_document needs the leader's visible signature: page and box,"
            " placement=auto, or an empty field (field_name)"
        )


def _personal(session: Session, username: str | None) -> tuple[User, Credential]:
    """The signer ``username`` and their newest active personal credential (never an
    organisation's). Raises SignerUnknown, SignerDisabled, SignerNoCredential."""
    signer = session.scalar(select(User).where(User.username == username))
    if signer is None:
        raise SignerUnknown(f"no signer named {username!r}")
    if signer.disabled_at is not None:
        raise SignerDisabled(f"the account of {username!r} is disabled")
    credential = session.scalar(
        select(Credential)
        .where(
            Credential.user_id == signer.id,
            Credential.organisation_id.is_(None),
            Credential.revoked_at.is_(None),
        )
        .order_by(Credential.created_at.desc())
    )
    if credential is None:
        raise SignerNoCredential(f"{username!r} has no active credential")
    return signer, credential


def _organisation(session: Session, workflow: WorkflowOrder, leader: User | None) -> Organisation:
    """The organisation the workflow names, else the leader's own; checked able to sign
    (an official document's also to seal) now, before anyone is notified."""
    organisation: Organisation | None
    if workflow.organisation:
        organisation = organisation_named(session, workflow.organisation)
    elif leader is not None and leader.organisation_id is not None:
        organisation = session.get(Organisation, leader.organisation_id)
        assert organisation is not None
    else:
        raise ParameterInvalid("the leader belongs to no organisation: name one (organisation)")
    organisation_credential(session, organisation, need_seal=workflow.name == OFFICIAL_DOCUMENT)
    return organisation


def _attachment_line(
    params: SignatureParameters,
    workflow: WorkflowOrder,
    organisation: Organisation,
    report: DocumentReport,
) -> SignatureParameters:
    """The organisation-only signature: its text (the attachment's number and symbol,
    or the copy's type and the copying organisation; the signing time is added when it
    is drawn) at the top right of page 1 as displayed."""
    lines = [
        unicodedata.normalize("NFC", line)
        for line in (
            [workflow.document_number.strip()]
            if workflow.document_number
            else [str(workflow.copy_type).strip(), organisation.display_name]
        )
    ]
    missing = missing_glyphs("".join(lines))
    if missing:
        # the reader would see the text without them: not what the clerk approved
        raise ParameterInvalid(
            "the appearance font cannot draw " + ", ".join(repr(c) for c in missing)
        )
    box = top_right_box(lines, report.page_sizes[0])
    return replace(params, page=1, box=box, stamp_text="\n".join(lines))


def _seal_field(
    params: SignatureParameters,
    report: DocumentReport,
    leader: User,
    organisation: Organisation,
) -> SignatureParameters:
    """``params`` of the leader's signature with the organisation's seal field added
    (created empty by the leader's update): at the seal's real size, over the left
    third of where the leader's image is drawn (in the approved box, or in the
    document's empty field the leader signs into). Raises ParameterInvalid."""
    assert organisation.seal_diameter_mm is not None
    if params.box is not None and params.page is not None:
        page, leader_box = params.page, params.box
    elif params.field_name in report.empty_field_places:
        page, leader_box = report.empty_field_places[params.field_name]
    else:
        raise ParameterInvalid(
            f"the field {params.field_name!r} shows on no page: the seal has nothing to overlap"
        )
    drawn = leader_box
    if leader.signature_image is not None:
        with Image.open(io.BytesIO(leader.signature_image)) as image:
            drawn = image_rect(leader_box, image.width / image.height, IMAGE_MARGIN)
    taken = set(report.field_names) | set(report.signature_fields)
    name = next(
        f"OrganisationSeal{n}" if n else "OrganisationSeal"
        for n in range(len(taken) + 1)
        if (f"OrganisationSeal{n}" if n else "OrganisationSeal") not in taken
    )
    box = seal_box(drawn, organisation.seal_diameter_mm, report.page_sizes[page - 1])
    return replace(params, empty_fields=(EmptyField(name, page, box),), next_field_name=name)


def _existing_seal_field(
    params: SignatureParameters, report: DocumentReport, seal_field_name: str
) -> SignatureParameters:
    """``params`` of the leader's signature into an existing empty field, naming the
    document's other empty field that the seal will fill (its place and size are the
    document author's)."""
    for name in (params.field_name, seal_field_name):
        if name not in report.empty_signature_fields:
            raise ParameterInvalid(f"the document has no empty signature field {name!r}")
    return replace(params, next_field_name=seal_field_name)


def _check_workflow_field(name: str, report: DocumentReport, whose: str) -> None:
    """A document's own empty field that a workflow step signs visibly: shown on a page
    (not hidden, on the visible page, at least
    :data:`~gateway.requests.placement_policy.MIN_BOX_POINTS` each way), with no field
    lock or seed values that would bind the signature beyond what was approved (a lock
    could make the next step break this one). Raises ParameterInvalid."""
    if name not in report.empty_signature_fields:
        raise ParameterInvalid(f"the document has no empty signature field {name!r}")
    if name not in report.empty_field_places or "hidden" in report.empty_field_flags.get(name, []):
        raise ParameterInvalid(f"the field {name!r} for {whose} shows on no page")
    page, box = report.empty_field_places[name]
    check_box(page, box, report, f"the field {name!r} for {whose}")
    if "widgets" in report.empty_field_flags.get(name, []):
        raise ParameterInvalid(
            f"the field {name!r} for {whose} has several widgets: a signature goes into a"
            " field with exactly one"
        )
    carried = {"lock", "seed_value"} & set(report.empty_field_flags.get(name, []))
    if carried:
        raise ParameterInvalid(
            f"the field {name!r} for {whose} carries a "
            + " and ".join(sorted(c.replace("_", " ") for c in carried))
            + " (/Lock, /SV), which would bind its signature beyond what is approved"
        )
