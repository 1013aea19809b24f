"""Small PDFs as they come from the wild, built by the tests themselves: signed or
certified by someone else (pyHanko with a throwaway key), with empty signature fields
(also with non-ASCII names, which PDF stores as UTF-16BE text strings), and a hybrid
cross-reference file as Microsoft Word writes it (a classic xref table whose trailer
points with /XRefStm to a cross-reference stream for objects kept in an object stream).
"""

from __future__ import annotations

import datetime as dt
import io
import zlib
from dataclasses import dataclass
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm
from pyhanko_certvalidator.registry import SimpleCertificateStore

__all__ = [
    "certified",
    "hybrid_xref_pdf",
    "someone_else",
    "signed_by_someone_else",
    "with_empty_field",
]


def someone_else(name: str = "Trần Văn Bình") -> signers.SimpleSigner:
    """A pyHanko signer with a fresh EC P-256 key and a self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
    private = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    )
    return signers.SimpleSigner(
        signing_cert=cert, signing_key=private, cert_registry=SimpleCertificateStore()
    )


def _sign(document: bytes, meta: signers.PdfSignatureMetadata) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(document), strict=False)
    output = io.BytesIO()
    signers.PdfSigner(meta, signer=someone_else()).sign_pdf(writer, output=output)
    return output.getvalue()


def signed_by_someone_else(document: bytes, field_name: str = "ChuKyKhac") -> bytes:
    """``document`` with an approval signature by another signer (PAdES, invisible)."""
    return _sign(
        document,
        signers.PdfSignatureMetadata(
            field_name=field_name, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256"
        ),
    )


def with_empty_field(
    document: bytes,
    name: str,
    *,
    page: int = 0,
    box: tuple[float, float, float, float] = (300, 80, 520, 180),
) -> bytes:
    """``document`` with an empty signature field ``name`` (a widget on ``page``, 0-based)
    added as an incremental update; a non-ASCII name is written as UTF-16BE."""
    writer = IncrementalPdfFileWriter(io.BytesIO(document), strict=False)
    fields.append_signature_field(writer, fields.SigFieldSpec(name, on_page=page, box=box))
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


def certified(document: bytes, permission: MDPPerm) -> bytes:
    """``document`` certified (author signature with DocMDP, ISO 32000-1 §12.8.2.2) by
    another signer with ``permission``."""
    return _sign(
        document,
        signers.PdfSignatureMetadata(
            field_name="Certification",
            certify=True,
            docmdp_permissions=permission,
            subfilter=fields.SigSeedSubFilter.PADES,
            md_algorithm="sha256",
        ),
    )


def hybrid_xref_pdf(text: str = "Cong van so 7") -> bytes:
    """A one-page PDF with a hybrid cross-reference (ISO 32000-1 §7.5.8.4): the page's
    font dictionary lives only in an object stream, listed by the cross-reference
    stream that the classic table's trailer names in /XRefStm; a reader of PDF 1.4
    sees the table alone (and the font as free, as in Word's files)."""
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}

    def put(number: int, body: bytes) -> None:
        offsets[number] = len(out)
        out.extend(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    content = b"BT /F1 18 Tf 72 720 Td (" + text.encode("latin-1") + b") Tj ET"
    put(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    put(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    put(
        3,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
    )
    put(4, b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>"
    header = b"5 0 "
    packed = header + font
    put(
        6,
        b"<< /Type /ObjStm /N 1 /First %d /Length %d >>\nstream\n" % (len(header), len(packed))
        + packed
        + b"\nendstream",
    )
    # the cross-reference stream for object 5 (compressed, in object stream 6, index 0)
    rows = bytes([2]) + (6).to_bytes(2, "big") + (0).to_bytes(1, "big")
    data = zlib.compress(rows)
    put(
        7,
        b"<< /Type /XRef /Size 8 /Index [5 1] /W [1 2 1] /Filter /FlateDecode /Length %d >>"
        b"\nstream\n" % len(data) + data + b"\nendstream",
    )
    table_at = len(out)
    out.extend(b"xref\n0 8\n0000000000 65535 f \n")
    for number in range(1, 8):
        if number == 5:
            out.extend(b"0000000000 00000 f \n")  # compressed: only the stream knows it
        else:
            out.extend(b"%010d 00000 n \n" % offsets[number])
    out.extend(
        b"trailer\n<< /Size 8 /Root 1 0 R /XRefStm %d >>\nstartxref\n%d\n%%%%EOF\n"
        % (offsets[7], table_at)
    )
    return bytes(out)


def page_with_geometry(
    rotate: int,
    *,
    media: tuple[float, float, float, float] = (0, 0, 595, 842),
    crop: tuple[float, float, float, float] | None = (30, 40, 565, 802),
) -> bytes:
    """A one-page PDF whose page has /Rotate ``rotate`` and a CropBox offset from the
    MediaBox (none when ``crop`` is None), with a line of text."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}

    def put(number: int, body: bytes) -> None:
        offsets[number] = len(out)
        out.extend(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    content = b"BT /F1 14 Tf 80 700 Td (Trang xoay) Tj ET"
    boxes = b"/MediaBox [%g %g %g %g]" % media
    if crop is not None:
        boxes += b" /CropBox [%g %g %g %g]" % crop
    put(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    put(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    put(
        3,
        b"<< /Type /Page /Parent 2 0 R "
        + boxes
        + b" /Rotate %d /Contents 4 0 R" % rotate
        + b" /Resources << /Font << /F1 5 0 R >> >> >>",
    )
    put(4, b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    put(5, b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>")
    table_at = len(out)
    out.extend(b"xref\n0 6\n0000000000 65535 f \n")
    for number in range(1, 6):
        out.extend(b"%010d 00000 n \n" % offsets[number])
    out.extend(b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % table_at)
    return bytes(out)


def signer_block_pdf(title: str, name: str, *, x: float = 330, y: float = 150) -> bytes:
    """A one-page document ending with a signer block as Decree 30 lays it out: the
    signer's title, blank lines for the signature, then the full name, in a Vietnamese
    font (embedded subset, page content, so that text extraction finds each line)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.text import TextBox, TextBoxStyle

    from hsm_bridge.pades.fonts import EmScaledFontFactory, find_font

    writer = IncrementalPdfFileWriter(io.BytesIO(page_with_geometry(0, crop=None)))
    style = TextBoxStyle(
        font=EmScaledFontFactory(find_font(), font_size=13), font_size=13, leading=18
    )
    box = TextBox(style, writer=writer)
    box.content = f"{title}\n\n\n\n\n{name}"
    commands = box.render()
    fonts = box.resources.as_pdf_object()["/Font"]
    resources = generic.DictionaryObject(
        {
            generic.pdf_name("/Font"): generic.DictionaryObject(
                {generic.pdf_name("/FV"): font for _, font in fonts.items()}
            )
        }
    )
    stream = b"q 1 0 0 1 %g %g cm " % (x, y) + commands.replace(b"/F1 ", b"/FV ") + b" Q"
    writer.add_stream_to_page(
        0, writer.add_object(generic.StreamObject(stream_data=stream)), resources
    )
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


def raw_pdf(objects: dict[int, bytes]) -> bytes:
    """A PDF written by hand from ``objects`` (number → body), with a classic xref
    table and a trailer whose /Root is object 1."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out.extend(b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n")
    size = max(objects) + 1
    table_at = len(out)
    out.extend(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        if number in offsets:
            out.extend(b"%010d 00000 n \n" % offsets[number])
        else:
            out.extend(b"0000000000 00000 f \n")
    out.extend(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, table_at))
    return bytes(out)


def raw_stream(data: bytes, extra: bytes = b"") -> bytes:
    """A stream object body holding ``data`` (``extra``: more dictionary entries)."""
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


@dataclass(frozen=True)
class SoftwareKey:
    """A key in memory with a self-signed certificate (key usage: digital signature and
    non-repudiation), standing in for a token where only the PDF built around the
    signature is tested: ``identity`` for :func:`hsm_bridge.pades.build_signed_pdf`,
    ``sign_digest`` its raw RSA PKCS#1 v1.5 signature of a SHA-256 digest."""

    key: Any
    certificate_der: bytes

    @property
    def identity(self) -> Any:
        from hsm_bridge.credentials import SignatureMechanism
        from hsm_bridge.pades import SignerIdentity

        return SignerIdentity(self.certificate_der, (), SignatureMechanism.RSA_PKCS_SHA256)

    def sign_digest(self, digest: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def software_key(
    common_name: str = "Nguyễn Thị Ánh",
    title: str | None = "Giám đốc",
    organisation: str | None = "Sở Tài chính",
) -> SoftwareKey:
    """A fresh RSA-2048 :class:`SoftwareKey` whose certificate names the holder."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if title:
        attributes.append(x509.NameAttribute(NameOID.TITLE, title))
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    name = x509.Name(attributes)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2035, 1, 1, tzinfo=dt.UTC))
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return SoftwareKey(key, certificate.public_bytes(Encoding.DER))


def pages_in_object_stream(pages: int) -> bytes:
    """A PDF of ``pages`` empty A4 pages whose page objects all sit in one compressed
    object stream (PDF 1.5 §7.5.7), as some producers pack them: the case where
    reading each object rescanned the stream's header (quadratic time)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter(stream_xrefs=True, init_page_tree=False)
    stream = writer.prepare_object_stream()
    kids = generic.ArrayObject()
    tree = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Pages"),
            generic.pdf_name("/Kids"): kids,
            generic.pdf_name("/Count"): generic.NumberObject(pages),
        }
    )
    pages_ref = writer.add_object(tree)
    for _ in range(pages):
        page = generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Page"),
                generic.pdf_name("/Parent"): pages_ref,
                generic.pdf_name("/MediaBox"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (0, 0, 595, 842)]
                ),
            }
        )
        kids.append(writer.add_object(page, obj_stream=stream))
    writer.root[generic.pdf_name("/Pages")] = pages_ref
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def content_bomb(inflated: int, listed: int = 1) -> bytes:
    """A one-page PDF whose /Contents lists ``listed`` times one Flate stream that
    inflates to ``inflated`` bytes of spaces (a decompression bomb: about a thousandth
    of that on disk)."""
    import zlib

    compressor = zlib.compressobj(6)
    chunk = b" " * (16 << 20)
    parts, remaining = [], inflated
    while remaining:
        size = min(remaining, len(chunk))
        parts.append(compressor.compress(chunk[:size]))
        remaining -= size
    parts.append(compressor.flush())
    contents = b" ".join(b"4 0 R" for _ in range(listed))
    return raw_pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents ["
            + contents
            + b"] >>",
            4: raw_stream(b"".join(parts), b"/Filter /FlateDecode "),
        }
    )


def document_timestamped(document: bytes) -> bytes:
    """``document`` with a document timestamp (/DocTimeStamp, RFC 3161, as PAdES-LTA
    adds) appended by pyHanko with a TSA made here."""
    import datetime as dt

    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )
    stamper = DummyTimeStamper(
        asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER)),
        asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(document))
    return PdfTimeStamper(stamper).timestamp_pdf(writer, "sha256").getvalue()
