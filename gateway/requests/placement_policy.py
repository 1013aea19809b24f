"""The placement policy of a submission: where the signature goes, decided before anyone
approves it, and what the decided parameters may not do on this document (certified,
locked, a box off its page). Every function raises the refusal the document system
gets at once, before anything is stored or anyone notified."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import replace

from PIL import Image

from gateway.db.models import User
from gateway.errors import (
    DocumentCertifiedFieldRequired,
    DocumentCertifiedNoEmptyField,
    DocumentLocked,
    ParameterInvalid,
)
from gateway.requests.intake import DocumentReport
from gateway.requests.placement import TextLine, signer_block_box
from hsm_bridge.pades import PadesLevel, SignatureParameters

__all__ = [
    "MIN_BOX_POINTS",
    "check_box",
    "check_final_placement",
    "requested_placement",
    "signature_place",
    "signer_block_placement",
]

# The smallest visible signature box (points each way): a signature's appearance needs
# room, and a box a reader cannot see is not a visible signature.
MIN_BOX_POINTS = 12.0


def signature_place(
    params: SignatureParameters,
    empty_fields: Mapping[str, tuple[int, tuple[float, float, float, float]]],
) -> str | None:
    """Where the signature ``params`` describe will show, for the signer's app to draw:
    JSON ``[page, [x1, y1, x2, y2]]`` (1-based page; points from the visible page's
    bottom-left corner): the box it was given, else the place of the document's empty
    field it signs into (``empty_fields``: name to page and box). None when it shows
    nowhere (an invisible signature)."""
    if params.page is not None and params.box is not None:
        return json.dumps([params.page, list(params.box)])
    if params.field_name is not None and params.field_name in empty_fields:
        page, box = empty_fields[params.field_name]
        return json.dumps([page, list(box)])
    return None


def requested_placement(
    params: SignatureParameters, report: DocumentReport, placement: str | None, *, has_tsa: bool
) -> SignatureParameters:
    """The parameters the document system asked for, checked against the document
    (level, an already signed field, the page, the box) and with the place the document
    decides (:func:`_placement`). ``placement="auto"`` must come without a page, box or
    field. Raises ParameterInvalid, DocumentCertifiedFieldRequired,
    DocumentCertifiedNoEmptyField."""
    if params.pades_level not in PadesLevel.ALL:
        raise ParameterInvalid(f"pades_level must be one of {', '.join(PadesLevel.ALL)}")
    if params.pades_level in PadesLevel.TIMESTAMPED and not has_tsa:
        raise ParameterInvalid(
            f"{params.pades_level} needs a TSA; none is configured (GATEWAY_TSA_URL)"
        )
    if params.field_name is not None and params.field_name in report.signature_fields:
        raise ParameterInvalid(f"the field {params.field_name!r} is already signed")
    if params.page is not None and not 1 <= params.page <= report.page_count:
        raise ParameterInvalid(f"page must be between 1 and {report.page_count}")
    if params.page is not None and params.box is not None:
        check_box(params.page, params.box, report, "the box")
    params = _placement(params, report)
    if placement == "auto" and (
        params.page is not None or params.box is not None or params.field_name is not None
    ):
        raise ParameterInvalid("placement=auto decides the page and box: give neither")
    return params


def _placement(params: SignatureParameters, report: DocumentReport) -> SignatureParameters:
    """Where the signature goes, decided before anyone approves it: into an existing
    empty field when one is named (its box is the document's: no page or box then).

    On a document certified with P=2 (ISO 32000-1 §12.8.2.2: form filling and signing
    only) a signature goes into an existing empty field: the one there is, or the one
    named. Only when the author left no empty field may a new one be made, and then
    invisible (a new widget on a page is the change a strict reader refuses; a new
    invisible signature is what pyHanko's difference analysis and poppler accept, as
    on the certified government documents of ../shared/corpus). Raises
    ParameterInvalid, DocumentCertifiedFieldRequired, DocumentCertifiedNoEmptyField."""
    existing = params.field_name is not None and params.field_name in report.empty_signature_fields
    if existing and (params.page is not None or params.box is not None):
        raise ParameterInvalid(
            f"the field {params.field_name!r} exists: its place is the document's (no page/box)"
        )
    if report.certification != "fill_forms" or existing:
        return params
    empty = report.empty_signature_fields
    if not empty:
        if params.box is not None:
            raise DocumentCertifiedNoEmptyField(
                "the document is certified for form filling and signing only and has no"
                " empty signature field: only an invisible signature can be added"
            )
        return params
    if params.field_name is None and params.box is None and len(empty) == 1:
        return replace(params, field_name=empty[0])
    raise DocumentCertifiedFieldRequired(
        "sign into one of the empty signature fields: " + ", ".join(repr(n) for n in empty)
    )


def signer_block_placement(
    params: SignatureParameters, lines: list[TextLine], report: DocumentReport, signer: User
) -> SignatureParameters:
    """``params`` with the page and box of ``signer``'s block on the last page (whose text
    is ``lines``), the box shaped like their signature image (or 3:1 without one), as
    the page is displayed. Raises SignerBlockNotFound."""
    aspect = 3.0
    if signer.signature_image is not None:
        with Image.open(io.BytesIO(signer.signature_image)) as image:
            aspect = image.width / image.height
    page = report.page_count
    found = signer_block_box(lines, signer.display_name, aspect=aspect)
    cx1, cy1 = report.page_origins[page - 1]
    width, height = report.page_sizes[page - 1]
    x1, y1, x2, y2 = found[0] - cx1, found[1] - cy1, found[2] - cx1, found[3] - cy1
    box = (max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height))
    return replace(params, page=page, box=box)


def check_box(
    page: int, box: tuple[float, float, float, float], report: DocumentReport, what: str
) -> None:
    """``box`` (as page ``page`` is displayed) lies on that visible page and is at least
    :data:`MIN_BOX_POINTS` each way; ParameterInvalid names ``what`` otherwise."""
    width, height = report.page_sizes[page - 1]
    x1, y1, x2, y2 = box
    if abs(x2 - x1) < MIN_BOX_POINTS - 0.005 or abs(y2 - y1) < MIN_BOX_POINTS - 0.005:
        raise ParameterInvalid(f"{what} must be at least {MIN_BOX_POINTS:g} points wide and high")
    slack = 0.01  # derived boxes are rounded to hundredths of a point
    if (
        min(x1, x2) < -slack
        or min(y1, y2) < -slack
        or max(x1, x2) > width + slack
        or max(y1, y2) > height + slack
    ):
        raise ParameterInvalid(
            f"{what} must lie on the visible page {page}, {width:g} x {height:g} points as"
            " displayed"
        )


def check_final_placement(params: SignatureParameters, report: DocumentReport) -> None:
    """Refuse, before anyone is notified, what the decided parameters cannot do: on a
    certified document (DocMDP P=2 or 3, or a field lock's /P) any new visible field,
    the signer's or an empty one for a later signer; filling a field an earlier
    signature's lock covers; a box (given, found or derived: the attachment's line, the
    seal's field) off its visible page or under :data:`MIN_BOX_POINTS`; a box for a
    field the document already has (its place is the document's). Raises
    ParameterInvalid, DocumentCertifiedFieldRequired, DocumentCertifiedNoEmptyField."""
    existing = params.field_name is not None and params.field_name in report.empty_signature_fields
    if report.certification is not None and (params.box is not None or params.empty_fields):
        # a new widget after a certification signature is a change its policy forbids
        # (pyHanko's difference analysis: not allowed after a certification signature)
        if not report.empty_signature_fields:
            raise DocumentCertifiedNoEmptyField(
                "the document is certified and has no empty signature field: no visible"
                " signature or new field can be added"
            )
        raise DocumentCertifiedFieldRequired(
            "the document is certified: sign into its empty signature fields ("
            + ", ".join(repr(n) for n in report.empty_signature_fields)
            + ") and add no new one"
        )
    if report.new_fields_locked and (not existing or params.empty_fields):
        raise DocumentLocked(
            "an earlier signature locks every form field but those it names: a new"
            " signature field would break it"
            + (
                "; sign into one of the empty fields it leaves open"
                if set(report.empty_signature_fields) - set(report.locked_fields)
                else ""
            )
        )
    if existing and "widgets" in report.empty_field_flags.get(str(params.field_name), []):
        raise ParameterInvalid(
            f"the field {params.field_name!r} has several widgets (or kid fields): a"
            " signature goes into a field with exactly one"
        )
    for name in (params.field_name, params.next_field_name):
        if name is not None and name in report.locked_fields:
            raise ParameterInvalid(
                f"the field {name!r} is locked by an earlier signature: filling it would"
                " break that signature"
            )
    if params.page is not None and params.box is not None:
        check_box(params.page, params.box, report, "the signature's box")
    for empty in params.empty_fields:
        check_box(empty.page, empty.box, report, f"the field {empty.name!r}")
    if existing and params.box is not None:
        raise ParameterInvalid(
            f"the field {params.field_name!r} exists: its place is the document's (no page/box)"
        )
