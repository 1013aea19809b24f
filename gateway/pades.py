"""PAdES signing with pyHanko, the raw signature coming from the bridge.

Stages (as in pyHanko): prepare the incremental update and the CMS signed attributes,
compute their SHA-256 digest, have the token sign that digest (through a callback that
carries the signature activation), embed the CMS. PAdES baseline B-B (ETSI EN 319 142-1):
subfilter ETSI.CAdES.detached, SHA-256, the signer's certificate and chain embedded; B-T
adds an RFC 3161 signature timestamp from the configured TSA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from asn1crypto import algos, x509
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import (
    AxisAlignment,
    BoxConstraints,
    Margins,
    SimpleBoxLayoutRule,
)
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_signer import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.stamp import TextStamp, TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from gateway.fonts import EmScaledFontFactory, find_font
from gateway.intake import field_names, signature_field_places
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.interface import SigningInput
from hsm_bridge.page_geometry import page_geometries, page_geometry, to_user_space
from hsm_bridge.statement import parameters_sha256

# Points between a signature image and its box's edge. The seal is drawn at its real
# size: its box is its diameter, and its margin is only what keeps pyHanko's layout from
# finding the image wider than the box by a rounding error.
IMAGE_MARGIN = 2.0
SEAL_MARGIN = 0.01
# Signing times shown in appearances use Vietnam time, ISO 8601 (VN-SIGNATURE-FORMAT.md).
VIETNAM_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")

__all__ = [
    "VIETNAM_TIME",
    "EmptyField",
    "IMAGE_MARGIN",
    "SEAL_MARGIN",
    "PadesLevel",
    "RemoteSigner",
    "SignatureParameters",
    "SigningInput",
    "sign_pdf",
]


class PadesLevel:
    """PAdES baseline levels we produce (ETSI EN 319 142-1 §6)."""

    B_B = "B-B"
    B_T = "B-T"
    ALL = (B_B, B_T)


@dataclass(frozen=True, slots=True)
class EmptyField:
    """An empty signature field that the signature's update creates besides its own, for
    a later signer (the organisation's seal after the leader's signature): its name, its
    page (1-based) and its box as the page is displayed (points, as
    :attr:`SignatureParameters.box`)."""

    name: str
    page: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class SignatureParameters:
    """What the signer approves besides the document: PDF signature dictionary entries,
    the level and the visible box. ``page`` is 1-based; ``box`` is (x1, y1, x2, y2) in
    PDF points on the page as the reader sees it: from the bottom-left corner of the
    visible page (CropBox, after /Rotate), x right, y up
    (:mod:`hsm_bridge.page_geometry`); both or neither. ``image_sha256``: the signer's
    signature image (hex SHA-256 of the PNG) drawn in the visible signature, or None for
    the text appearance. ``stamp_text``: the text of a visible signature without image
    (an attachment's number and symbol, or a copy's type and organisation), drawn with
    the signing time under it. ``empty_fields``: the fields the update creates empty for
    the next signers of a workflow (ISO 32000-1 §12.7.4.5), so that their signatures
    only fill them. ``next_field_name``: the (empty) field the workflow's next step signs
    into, one of those or one the document has. The last three are left out of the
    canonical JSON when unset."""

    reason: str | None = None
    location: str | None = None
    contact_info: str | None = None
    field_name: str | None = None
    pades_level: str = PadesLevel.B_B
    page: int | None = None
    box: tuple[float, float, float, float] | None = None
    image_sha256: str | None = None
    stamp_text: str | None = None
    empty_fields: tuple[EmptyField, ...] = ()
    next_field_name: str | None = None

    def canonical_json(self) -> str:
        """Sorted-key compact JSON; its SHA-256 binds an approval to these parameters."""
        data = asdict(self)
        for key, unset in (("stamp_text", None), ("empty_fields", ()), ("next_field_name", None)):
            if data[key] == unset:
                del data[key]
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def sha256(self) -> str:
        """Hex SHA-256 of :meth:`canonical_json` (UTF-8), as the bridge computes it
        (:func:`hsm_bridge.statement.parameters_sha256`)."""
        return parameters_sha256(json.loads(self.canonical_json()))

    @classmethod
    def from_json(cls, text: str) -> SignatureParameters:
        """Inverse of :meth:`canonical_json`."""
        data = json.loads(text)
        if data.get("box") is not None:
            data["box"] = tuple(data["box"])
        data["empty_fields"] = tuple(
            EmptyField(f["name"], int(f["page"]), tuple(f["box"]))
            for f in data.get("empty_fields", ())
        )
        return cls(**data)


class RemoteSigner(signers.Signer):
    """A pyHanko signer whose private key stays on a token.

    ``sign`` receives a :class:`SigningInput` (the prepared PDF, the original's length
    and the DER signed attributes, whose SHA-256 is what the token signs) and returns the
    raw signature (RSA PKCS#1 v1.5 or RSASSA-PSS bytes, or a DER ECDSA-Sig-Value); it is
    where the bridge is called with the signature activation. ``mechanism`` must fit the
    certificate's key; it gives the CMS signatureAlgorithm (RFC 5652 §5.3): for RSA-PSS
    the RFC 4055 parameters SHA-256, MGF1-SHA-256, 32-byte salt. :func:`sign_pdf` tells
    the signer the prepared PDF (:meth:`prepared`) before pyHanko asks for the signature.
    """

    def __init__(
        self,
        certificate_der: bytes,
        chain_der: list[bytes],
        sign: Callable[[SigningInput], bytes],
        mechanism: SignatureMechanism | None = None,
    ) -> None:
        cert = x509.Certificate.load(certificate_der)
        is_rsa = cert.public_key.algorithm == "rsa"
        if mechanism is None:
            mechanism = (
                SignatureMechanism.RSA_PKCS_SHA256 if is_rsa else SignatureMechanism.ECDSA_SHA256
            )
        if (mechanism.key_type == "rsa") != is_rsa:
            raise ValueError(f"{mechanism} does not fit the certificate's key")
        if mechanism is SignatureMechanism.RSA_PSS_SHA256:
            algorithm = algos.SignedDigestAlgorithm(
                {
                    "algorithm": "rsassa_pss",
                    "parameters": algos.RSASSAPSSParams(
                        {
                            "hash_algorithm": {"algorithm": "sha256"},
                            "mask_gen_algorithm": {
                                "algorithm": "mgf1",
                                "parameters": {"algorithm": "sha256"},
                            },
                            "salt_length": mechanism.pss_salt_length,
                            "trailer_field": "trailer_field_bc",
                        }
                    ),
                }
            )
        else:
            algorithm = algos.SignedDigestAlgorithm(
                {"algorithm": "sha256_rsa" if is_rsa else "sha256_ecdsa"}
            )
        # Placeholder size for pyHanko's dry run: RSA modulus bytes; a DER ECDSA-Sig-Value
        # is at most two INTEGERs of the order's size plus a sign byte and headers each.
        self._size = cert.public_key.byte_size if is_rsa else 2 * cert.public_key.byte_size + 9
        super().__init__(
            signing_cert=cert,
            cert_registry=SimpleCertificateStore.from_certs(
                [x509.Certificate.load(c) for c in chain_der]
            ),
            signature_mechanism=algorithm,
        )
        self._sign = sign
        self._prepared: tuple[bytes, int] | None = None

    def prepared(self, prepared_pdf: bytes, original_length: int) -> None:
        """Remember the prepared PDF (bytes) and the original's length in bytes for the
        coming signature."""
        self._prepared = (prepared_pdf, original_length)

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        """pyHanko hook: sign ``data`` (the DER signed attributes) hashed with SHA-256."""
        if digest_algorithm.lower() != "sha256":
            raise ValueError("only SHA-256 is supported")
        if dry_run:
            return bytes(self._size)
        if self._prepared is None:
            raise RuntimeError("the prepared PDF is unknown: sign through sign_pdf")
        prepared_pdf, original_length = self._prepared
        return self._sign(SigningInput(prepared_pdf, original_length, bytes(data)))


@dataclass(frozen=True)
class UprightTextStampStyle(TextStampStyle):
    """A text stamp that reads upright on a page with /Rotate: drawn in the box as the
    reader sees it and turned by the page's rotation through the appearance's /Matrix
    (ISO 32000-1 §12.5.5 maps the turned /BBox onto the widget's /Rect)."""

    page_rotation: int = 0

    def create_stamp(self, writer: Any, box: BoxConstraints, text_params: dict) -> TextStamp:
        """A :class:`_TurnedTextStamp` for ``box`` (the widget's width and height in
        user space; swapped for a quarter turn)."""
        if self.page_rotation in (90, 270):
            box = BoxConstraints(width=box.height, height=box.width)
        stamp = _TurnedTextStamp(writer=writer, style=self, box=box, text_params=text_params)
        stamp.rotation = self.page_rotation
        return stamp


class _TurnedTextStamp(TextStamp):
    rotation = 0

    def as_form_xobject(self) -> Any:
        xobject = super().as_form_xobject()
        if self.rotation:
            w, h = self.box.width, self.box.height
            # counter-clockwise by the page's clockwise /Rotate, kept in the first quadrant
            matrix = {90: (0, 1, -1, 0, h, 0), 180: (-1, 0, 0, -1, w, h), 270: (0, -1, 1, 0, 0, w)}
            xobject[generic.pdf_name("/Matrix")] = generic.ArrayObject(
                generic.FloatObject(v) for v in matrix[self.rotation]
            )
        return xobject


def _image_stamp_style(
    image: Image.Image,
    page_rotation: int,
    margin: float = IMAGE_MARGIN,
    *,
    text: bool = False,
    position: str = "",
) -> TextStampStyle:
    """The signer's image, centred in the box less ``margin`` points on each side and
    scaled to fit it (its aspect kept), fully opaque where the PNG is; no border. With
    ``text``, the signature's text (:func:`_stamp_style`) is written over it; else none.
    A seal is drawn with no margin: its box is its real size."""
    words = _stamp_style(page_rotation, position) if text else None
    return UprightTextStampStyle(
        stamp_text=words.stamp_text if words is not None else "",
        text_box_style=words.text_box_style if words is not None else TextBoxStyle(),
        border_width=0,
        background=PdfImage(image),
        background_opacity=1.0,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID,
            y_align=AxisAlignment.ALIGN_MID,
            margins=Margins.uniform(margin),
        ),
        page_rotation=page_rotation,
    )


def _text_box_style(size: float) -> tuple[TextBoxStyle, bool]:
    """Text of ``size`` points in the embedded Vietnamese font (:func:`find_font`), and
    whether that font was found (else pyHanko's Latin-only default)."""
    font = find_font()
    if font is None:
        return TextBoxStyle(font_size=size), False
    # the font engine and the text box must agree on the size (pyHanko issue #733)
    return TextBoxStyle(font=EmScaledFontFactory(font, font_size=size), font_size=size), True


def _stamp_style(page_rotation: int = 0, position: str = "") -> TextStampStyle:
    """The signature's text: who signed (the certificate's common name), their
    ``position`` when known, and the signing time; Vietnamese in the embedded font."""
    text_box, vietnamese = _text_box_style(9)
    line = position.replace("%", "%%") + "\n" if position else ""
    text = (
        f"Ký số bởi: %(signer)s\n{line}Thời gian: %(local_time)s"
        if vietnamese
        else f"Signed by: %(signer)s\n{line}%(local_time)s"
    )
    return UprightTextStampStyle(
        stamp_text=text, text_box_style=text_box, page_rotation=page_rotation
    )


def _plain_text_style(text: str, page_rotation: int) -> TextStampStyle:
    """``text`` (escaped for pyHanko's %-interpolation) and the signing time under it:
    10 pt upright black text in the embedded Vietnamese font, no border
    (../shared/VN-SIGNATURE-FORMAT.md, attachments signed by the organisation)."""
    text_box, _ = _text_box_style(10)
    return UprightTextStampStyle(
        stamp_text=text.replace("%", "%%") + "\n%(local_time)s",
        text_box_style=text_box,
        border_width=0,
        page_rotation=page_rotation,
    )


def _free_field_name(writer: IncrementalPdfFileWriter, params: SignatureParameters) -> str:
    """``SignatureN`` with the smallest N not used by any field of the document nor by
    the empty fields the update creates (so that an earlier field, filled or of another
    type, is never chosen)."""
    taken = set(field_names(writer.prev.root.get("/AcroForm"))) | {
        empty.name for empty in params.empty_fields
    }
    return next(f"Signature{n}" for n in range(1, len(taken) + 2) if f"Signature{n}" not in taken)


def _field_rotation(writer: IncrementalPdfFileWriter, name: str) -> int:
    """The /Rotate of the page that shows the widget of the document's field ``name``
    (fully qualified), so that its appearance reads upright too; 0 when not found."""
    place = signature_field_places(writer.prev, writer.root["/Pages"]).get(name)
    if place is None:
        return 0
    return page_geometries(writer.root["/Pages"])[place[0]].rotate


def _position(signer: RemoteSigner) -> str:
    """The signer's position as their certificate names it: its title and organisation
    (X.520 title, organizationName), e.g. "Giám đốc Sở Tài chính tỉnh Hà Nam"; "" when
    it names neither."""
    subject = signer.signing_cert.subject.native
    parts = [subject.get("title"), subject.get("organization_name")]
    return " ".join(str(p) for p in parts if p)


def _field_spec(
    writer: IncrementalPdfFileWriter, name: str, page: int, box: tuple[float, float, float, float]
) -> fields.SigFieldSpec:
    """A signature field ``name`` on ``page`` (1-based) at ``box`` as the reader sees
    the page; the widget's /Rect is in user space (:mod:`hsm_bridge.page_geometry`)."""
    rect = to_user_space(box, page_geometry(writer.root["/Pages"], page - 1))
    return fields.SigFieldSpec(
        sig_field_name=name,
        on_page=page - 1,
        box=(round(rect[0], 4), round(rect[1], 4), round(rect[2], 4), round(rect[3], 4)),
    )


def sign_pdf(
    document: bytes,
    params: SignatureParameters,
    signer: RemoteSigner,
    *,
    timestamper: TimeStamper | None = None,
    signature_image: bytes | None = None,
    image_margin: float = IMAGE_MARGIN,
    text_with_image: bool = False,
) -> bytes:
    """Sign ``document`` (PDF bytes) as an incremental update; return the signed PDF
    bytes, of which ``document`` is an exact prefix. ``signature_image``: the PNG whose
    SHA-256 ``params.image_sha256`` names (required then), drawn ``image_margin``
    points inside the box, with the signature's text over it when ``text_with_image``.
    The fields of ``params.empty_fields`` are created empty in the same update, after
    the signature's own (so that they are drawn over it). The text names the signer,
    their position (the certificate's title and organisation, e.g. "Giám đốc Sở Tài
    chính tỉnh Hà Nam") and the signing time in Vietnam time, ISO 8601.

    Raises pyHanko's errors (the caller maps them) and ValueError when the output does
    not start with the input (never expected: it would mean the original was rewritten)
    or the image is not the approved one.
    """
    image: Image.Image | None = None
    if params.image_sha256 is not None:
        if signature_image is None or (
            hashlib.sha256(signature_image).hexdigest() != params.image_sha256
        ):
            raise ValueError("the signature image is not the approved one")
        image = Image.open(io.BytesIO(signature_image)).convert("RGBA")
    writer = IncrementalPdfFileWriter(io.BytesIO(document), strict=False)
    field_name = params.field_name or _free_field_name(writer, params)
    new_field = None
    rotation = 0
    if params.box is not None and params.page is not None:
        new_field = _field_spec(writer, field_name, params.page, params.box)
        rotation = page_geometry(writer.root["/Pages"], params.page - 1).rotate
    if params.empty_fields:
        # the signature's own field first, then the empty ones, in one update
        if new_field is not None:
            fields.append_signature_field(writer, new_field)
            new_field = None
        for empty in params.empty_fields:
            fields.append_signature_field(
                writer, _field_spec(writer, empty.name, empty.page, empty.box)
            )
    visible = params.box is not None or params.field_name is not None
    if params.field_name is not None and params.box is None:
        rotation = _field_rotation(writer, params.field_name)  # the document's own field
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=params.reason,
        location=params.location,
        contact_info=params.contact_info,
    )
    pdf_signer = signers.PdfSigner(
        meta,
        signer=signer,
        timestamper=timestamper if params.pades_level == PadesLevel.B_T else None,
        # also for an existing visible field: its appearance gets the Vietnamese font
        stamp_style=(
            None
            if not visible
            else _image_stamp_style(
                image, rotation, image_margin, text=text_with_image, position=_position(signer)
            )
            if image is not None
            else _plain_text_style(params.stamp_text, rotation)
            if params.stamp_text is not None
            else _stamp_style(rotation, _position(signer))
        ),
        new_field_spec=new_field,
    )
    local_time = dt.datetime.now(VIETNAM_TIME).isoformat(timespec="seconds")

    async def interrupted() -> bytes:
        # pyHanko's interrupted signing: prepare and digest the document, hand the
        # prepared bytes to the signer, then build the CMS (which calls the token).
        prepared_digest, tbs_document, output = await pdf_signer.async_digest_doc_for_signing(
            writer,
            appearance_text_params={"local_time": local_time},
            output=io.BytesIO(),
        )
        signer.prepared(output.getvalue(), len(document))
        post_signature = await tbs_document.perform_signature(
            prepared_digest.document_digest,
            PdfCMSSignedAttributes(
                signing_time=dt.datetime.now(dt.UTC),
                cades_signed_attrs=meta.cades_signed_attr_spec,
            ),
        )
        await post_signature.post_signature_processing(output)
        return bytes(output.getvalue())

    signed = asyncio.run(interrupted())
    if not signed.startswith(document):
        raise ValueError("the signed output does not start with the original bytes")
    return signed
