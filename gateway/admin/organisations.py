"""Organisations and their digital seal (docs/vn-signature-format.md): the unit's
own credential, kept by one of its clerks, and the seal's image, red on a transparent
background, drawn at the seal's real size over the left third of the leader's signature
image.

An administrator creates an organisation, uploads its seal once (``signing-gateway
organisations add|seal``) and registers its token's key for the clerk who keeps it
(``credentials register CLERK --organisation NAME``); every change is audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.admin.signature_images import check_signature_image
from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import Credential, Organisation, SigningRequest, User
from gateway.errors import (
    OrganisationNoCredential,
    OrganisationNoSeal,
    OrganisationUnknown,
    ParameterInvalid,
    SignerUnknown,
)
from gateway.requests.lifecycle import RequestStatus
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.sam.signers import SignerRegistry

__all__ = [
    "MAX_SEAL_DIAMETER_MM",
    "MIN_SEAL_DIAMETER_MM",
    "POINTS_PER_MM",
    "Handover",
    "add_organisation",
    "hand_over",
    "image_rect",
    "organisation_credential",
    "organisation_named",
    "seal_box",
    "set_seal",
]

POINTS_PER_MM = 72 / 25.4
# Vietnamese seals are 30 to 45 mm across; anything outside this is a typing error.
MIN_SEAL_DIAMETER_MM = 20.0
MAX_SEAL_DIAMETER_MM = 60.0

Box = tuple[float, float, float, float]


def add_organisation(
    db: Database,
    name: str,
    display_name: str,
    *,
    now: dt.datetime,
    actor: str = "admin:cli",
    client_address: str | None = None,
) -> str:
    """Create the organisation ``name`` (a short handle, e.g. ``stc-hanam``) shown as
    ``display_name`` (e.g. "Sở Tài chính tỉnh Hà Nam"); return its id. Audited.
    Raises ParameterInvalid (empty, too long or taken name)."""
    if not name or len(name) > 64 or not name.isprintable() or " " in name:
        raise ParameterInvalid("the name must be 1 to 64 printable characters without spaces")
    if not display_name.strip() or len(display_name) > 200:
        raise ParameterInvalid("the display name must be 1 to 200 characters")
    with db.transaction() as session:
        if session.scalar(select(Organisation).where(Organisation.name == name)) is not None:
            raise ParameterInvalid(f"the organisation {name!r} exists")
        organisation = Organisation(
            id=str(uuid.uuid4()), name=name, display_name=display_name.strip(), created_at=now
        )
        session.add(organisation)
        audit.record(
            session,
            actor=actor,
            action="organisation.added",
            now=now,
            client_address=client_address,
            detail={"organisation": name, "display_name": organisation.display_name},
        )
    return organisation.id


def set_seal(
    db: Database,
    name: str,
    image: bytes,
    diameter_mm: float,
    *,
    now: dt.datetime,
    actor: str = "admin:cli",
    client_address: str | None = None,
) -> str:
    """Keep ``image`` (PNG with transparency, see
    :func:`gateway.admin.signature_images.check_signature_image`; the seal filling it edge to
    edge) as organisation ``name``'s seal, ``diameter_mm`` millimetres across on paper;
    return its SHA-256 (hex). Audited as done by ``actor``. Raises OrganisationUnknown,
    ParameterInvalid (unreadable or opaque image, a diameter outside 20 to 60 mm)."""
    if not (
        math.isfinite(diameter_mm) and MIN_SEAL_DIAMETER_MM <= diameter_mm <= MAX_SEAL_DIAMETER_MM
    ):
        raise ParameterInvalid(
            f"the seal's diameter must be {MIN_SEAL_DIAMETER_MM:g} to {MAX_SEAL_DIAMETER_MM:g} mm"
        )
    check_signature_image(image, "seal image")
    digest = hashlib.sha256(image).hexdigest()
    with db.transaction() as session:
        organisation = organisation_named(session, name)
        organisation.seal_image = image
        organisation.seal_diameter_mm = float(diameter_mm)
        audit.record(
            session,
            actor=actor,
            action="organisation.seal_set",
            now=now,
            client_address=client_address,
            detail={"organisation": name, "image_sha256": digest, "diameter_mm": diameter_mm},
        )
    return digest


@dataclass(frozen=True, slots=True)
class Handover:
    """What a handover of an organisation's token did: from and to whom (usernames),
    the credentials (token serial and CKA_ID, as the bridge names them) and the pending
    requests now addressed to the new keeper."""

    previous: list[str]
    keeper: str
    keeper_id: str
    credentials: list[CredentialRef]
    readdressed: list[str]


def hand_over(
    db: Database,
    name: str,
    to_username: str,
    permission: str,
    *,
    now: dt.datetime,
    registry: SignerRegistry | None = None,
    actor: str = "admin:cli",
    client_address: str | None = None,
) -> Handover:
    """Hand organisation ``name``'s token to the clerk ``to_username``, under the written
    ``permission`` (e.g. the decision's number and date; docs/vn-signature-format.md: "a
    handover needs written permission and is recorded"). Every active credential of the
    organisation is kept by the new clerk from now on; its pending requests are
    addressed to them. With ``registry`` (the bridge on this host) the bridge is told
    at once; a remote bridge's administrator binds and unbinds on its host. Audited as
    done by ``actor`` from ``client_address``, with the permission.
    Raises OrganisationUnknown, OrganisationNoCredential, SignerUnknown,
    ParameterInvalid (not a clerk of the organisation, no permission given)."""
    if not permission.strip() or len(permission) > 500:
        raise ParameterInvalid("name the written permission (1 to 500 characters)")
    with db.transaction() as session:
        organisation = organisation_named(session, name)
        keeper = _new_keeper(session, organisation, to_username)
        credentials = _active_credentials(session, organisation)
        if all(c.user_id == keeper.id for c in credentials):
            raise ParameterInvalid(f"{to_username!r} already keeps the token of {name!r}")
        previous = {}
        for credential in credentials:
            before = session.get(User, credential.user_id)
            previous[credential.id] = before.username if before is not None else ""
            credential.user_id = keeper.id
        readdressed = _readdress_pending(session, credentials, keeper, now=now)
        refs = [CredentialRef(c.token_serial, bytes.fromhex(c.key_id)) for c in credentials]
        audit.record(
            session,
            actor=actor,
            action="organisation.handed_over",
            now=now,
            client_address=client_address,
            detail={
                "organisation": name,
                "from": sorted(set(previous.values())),
                "to": to_username,
                "permission": permission.strip(),
                "credentials": [c.id for c in credentials],
                "readdressed": readdressed,
            },
        )
        if registry is not None:
            for credential, ref in zip(credentials, refs, strict=True):
                registry.bind_credential(to_username, ref)
                if previous[credential.id] and previous[credential.id] != to_username:
                    registry.unbind_credential(previous[credential.id], ref)
    return Handover(sorted(set(previous.values())), to_username, keeper.id, refs, readdressed)


def _new_keeper(session: Session, organisation: Organisation, username: str) -> User:
    """The clerk of ``organisation`` named ``username``; SignerUnknown, ParameterInvalid."""
    keeper = session.scalar(select(User).where(User.username == username))
    if keeper is None:
        raise SignerUnknown(f"no user {username!r}")
    if keeper.role != "clerk" or keeper.organisation_id != organisation.id:
        raise ParameterInvalid(f"{username!r} is not a clerk of {organisation.name!r}")
    return keeper


def _active_credentials(session: Session, organisation: Organisation) -> list[Credential]:
    credentials = list(
        session.scalars(
            select(Credential).where(
                Credential.organisation_id == organisation.id,
                Credential.revoked_at.is_(None),
            )
        )
    )
    if not credentials:
        raise OrganisationNoCredential(
            f"{organisation.name!r} has no active credential to hand over"
        )
    return credentials


def _readdress_pending(
    session: Session, credentials: list[Credential], keeper: User, *, now: dt.datetime
) -> list[str]:
    """Address the requests pending on ``credentials`` to ``keeper``; their ids."""
    pending = list(
        session.scalars(
            select(SigningRequest).where(
                SigningRequest.credential_id.in_([c.id for c in credentials]),
                SigningRequest.status == RequestStatus.PENDING_APPROVAL,
            )
        )
    )
    for request in pending:
        request.signer_id = keeper.id
        request.updated_at = now
    return [r.id for r in pending]


def organisation_named(session: Session, name: str) -> Organisation:
    """The organisation ``name``; OrganisationUnknown otherwise."""
    organisation = session.scalar(select(Organisation).where(Organisation.name == name))
    if organisation is None:
        raise OrganisationUnknown(f"no organisation {name!r}")
    return organisation


def organisation_credential(
    session: Session, organisation: Organisation, *, need_seal: bool, for_update: bool = False
) -> tuple[Credential, User]:
    """The organisation's newest unrevoked credential and the clerk who keeps it. The
    keeper must be a clerk of that very organisation: the seal is usable by no one
    else. ``for_update``: lock the credential's row until the transaction ends, so that
    a concurrent handover (:func:`hand_over`) comes before or after, never between. A
    keeper whose account is disabled keeps it for no one (hand it over).
    Raises OrganisationNoCredential, and OrganisationNoSeal when ``need_seal`` and no
    seal image was uploaded."""
    if need_seal and (organisation.seal_image is None or organisation.seal_diameter_mm is None):
        raise OrganisationNoSeal(f"{organisation.name!r} has no seal image")
    query = (
        select(Credential)
        .where(
            Credential.organisation_id == organisation.id,
            Credential.revoked_at.is_(None),
        )
        .order_by(Credential.created_at.desc())
    )
    credential = session.scalar(query.with_for_update() if for_update else query)
    keeper = session.get(User, credential.user_id) if credential is not None else None
    if (
        credential is None
        or keeper is None
        or keeper.role != "clerk"
        or keeper.organisation_id != organisation.id
        or keeper.disabled_at is not None
    ):
        raise OrganisationNoCredential(
            f"{organisation.name!r} has no active credential kept by one of its clerks"
        )
    return credential, keeper


def image_rect(box: Box, aspect: float, margin: float) -> Box:
    """Where an image of ``aspect`` (width / height) lands in ``box`` (points): scaled
    to fit the box less ``margin`` on each side, centred (as
    :func:`hsm_bridge.pades.build_signed_pdf` draws it)."""
    x1, y1, x2, y2 = box
    width, height = max(x2 - x1 - 2 * margin, 0.0), max(y2 - y1 - 2 * margin, 0.0)
    if width / max(height, 1e-9) > aspect:
        width = height * aspect
    else:
        height = width / aspect
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def seal_box(leader_image: Box, diameter_mm: float, page_size: tuple[float, float]) -> Box:
    """The seal's box (points, as the page is displayed): a square of the seal's real
    diameter, centred on the height of ``leader_image`` (where the leader's signature
    image lies) and overlapping the left third of it (docs/vn-signature-format.md: "about one
    third of the leader's signature image, on its left"); moved onto the page where it
    would stick out of it (``page_size``: width, height)."""
    size = diameter_mm * POINTS_PER_MM
    x1, y1, x2, y2 = leader_image
    right = x1 + (x2 - x1) / 3
    left, bottom = right - size, (y1 + y2) / 2 - size / 2
    width, height = page_size
    left = min(max(left, 0.0), max(width - size, 0.0))
    bottom = min(max(bottom, 0.0), max(height - size, 0.0))
    return (round(left, 2), round(bottom, 2), round(left + size, 2), round(bottom + size, 2))
