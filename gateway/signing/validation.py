"""Checking signed PDFs with tools nobody here wrote: pyHanko's validator (with a
given trust anchor) and poppler's ``pdfsig``."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

__all__ = ["SignatureVerdict", "pdfsig_verdicts", "validate_with_pyhanko"]


@dataclass(frozen=True, slots=True)
class SignatureVerdict:
    """One signature's result: field name, whether the covered bytes are unchanged
    (``intact``), the signature value checks out (``valid``), the signer chains to the
    trust anchor (``trusted``), the coverage level, and pyHanko's difference analysis of
    what later revisions changed (``modification_level``: ``NONE``, ``LTA_UPDATES``,
    ``FORM_FILLING``, ``ANNOTATIONS`` or ``OTHER``; ``docmdp_ok``: whether that fits the
    document's modification policy, None when it was not assessed)."""

    field_name: str
    intact: bool
    valid: bool
    trusted: bool
    coverage: str
    signer: str
    modification_level: str = "NONE"
    docmdp_ok: bool | None = None
    # form fields changed after the signature that no later signature fills
    unsigned_changes: tuple[str, ...] = ()

    @property
    def covers_document(self) -> bool:
        """The signature covers the whole file, or all of it but what PAdES B-LT and
        B-LTA add after a signature (validation data, document timestamps)."""
        return self.coverage == "ENTIRE_FILE" or (
            self.coverage == "ENTIRE_REVISION" and self.modification_level == "LTA_UPDATES"
        )

    @property
    def ok(self) -> bool:
        """intact, valid and trusted, and later changes (if any) allowed: at most form
        filling by later signatures (no field changed that no signature fills), within
        the modification policy."""
        return (
            self.intact
            and self.valid
            and self.trusted
            and self.modification_level in ("NONE", "LTA_UPDATES", "FORM_FILLING")
            and self.docmdp_ok is not False
            and not self.unsigned_changes
        )


def _load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def validate_with_pyhanko(pdf: bytes, trust_anchor: Path) -> list[SignatureVerdict]:
    """Validate every signature of ``pdf`` with pyHanko (document timestamps aside:
    :mod:`gateway.signing.levels` judges those), trusting only the certificate in
    ``trust_anchor`` (PEM or DER): integrity, the signer's chain, what later revisions
    changed. Revocation is not judged here (offline, soft-fail)."""
    context = ValidationContext(
        trust_roots=[_load_certificate(trust_anchor)],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signed_fields = {str(s.field_name) for s in reader.embedded_signatures}
    verdicts = []
    for sig in reader.embedded_regular_signatures:
        status = validate_pdf_signature(sig, context)
        changed = getattr(status.diff_result, "changed_form_fields", None) or set()
        verdicts.append(
            SignatureVerdict(
                field_name=sig.field_name,
                intact=bool(status.intact),
                valid=bool(status.valid),
                trusted=bool(status.trusted),
                coverage=status.coverage.name if status.coverage else "NONE",
                signer=status.signing_cert.subject.human_friendly,
                modification_level=(
                    status.modification_level.name if status.modification_level else "NONE"
                ),
                docmdp_ok=status.docmdp_ok,
                unsigned_changes=tuple(
                    sorted(str(f) for f in changed if str(f) not in signed_fields)
                ),
            )
        )
    return verdicts


def pdfsig_verdicts(pdf: bytes) -> list[str] | None:
    """The "Signature Validation:" line of each signature as poppler's ``pdfsig``
    reports it (e.g. "Signature is Valid."), or None when pdfsig is not installed.
    Document timestamps (RFC 3161, which pdfsig lists with type "unknown" and does not
    verify) are left out."""
    tool = shutil.which("pdfsig")
    if tool is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        result = subprocess.run(
            [tool, handle.name], capture_output=True, text=True, check=False, timeout=120
        )
    verdicts: list[str] = []
    kind = ""
    for line in result.stdout.splitlines():
        label, _, value = line.strip().partition(":")
        if label == "- Signature Type":
            kind = value.strip()
        elif label == "- Signature Validation" and kind not in ("unknown", "ETSI.RFC3161"):
            verdicts.append(value.strip())
    return verdicts
