"""The demo: drives one full signing through the HTTP APIs exactly as a document system
and a tablet would, then checks the result with pyHanko's validator and pdfsig."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pypdfium2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.signing.reports import validation_report
from gateway.signing.validation import pdfsig_verdicts, validate_with_pyhanko
from hsm_bridge.pades import PadesLevel
from signing_gateway.demo.sample_pdf import sample_pdf
from signing_gateway.demo.tablet import Signer, run_tablet_flow, submit_official_document

__all__ = [
    "DemoResult",
    "TabletOptions",
    "default_demo_document",
    "run_signing_flow",
    "wait_until_up",
]

CORPUS_CANDIDATES = ("vn-word-text-hybrid-xref.pdf", "plain-libreoffice-writer.pdf")


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Where the signed PDF and the picture of its signed page went, what the validators
    said and what the picture shows."""

    request_id: str
    signed_path: Path
    page_png: Path
    pyhanko_ok: bool
    pyhanko_summary: list[str]
    pdfsig: list[str] | None
    look_ok: bool
    look: str
    # (field, PAdES level reached, pyHanko's AdES LTA indication) of each signature,
    # judged offline with only the demo root trusted (:mod:`gateway.signing.reports`)
    levels: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    @property
    def long_term_ok(self) -> bool:
        """The leader's signature is B-LT or above, the seal's B-LTA, and pyHanko's LTA
        validation passes both."""
        found = [level or "" for _, level, _ in self.levels]
        return (
            len(found) >= 2
            and PadesLevel.rank(found[-2]) >= PadesLevel.rank(PadesLevel.B_LT)
            and found[-1] == PadesLevel.B_LTA
            and all(indication == "PASSED" for _, _, indication in self.levels[-2:])
        )


def default_demo_document(project_root: Path) -> tuple[str, bytes]:
    """A real PDF from ``../shared/corpus`` when present, else a generated sample."""
    for root in (Path.cwd(), project_root):
        for name in CORPUS_CANDIDATES:
            path = root.parent / "shared" / "corpus" / "pdf" / name
            if path.exists():
                return str(path), path.read_bytes()
    return "generated sample", sample_pdf(
        ["Signing gateway demo document", "Van ban mau de ky so (sample to sign)."]
    )


def _approve(
    http: httpx.Client,
    tablet: dict[str, str],
    request_id: str,
    totp_secret: str,
    document_sha256: str,
    log: Callable[[str], object],
) -> dict[str, object]:
    """Approve with the current TOTP code. A code is accepted once per 30-second step,
    so when a previous run already used this step, wait for the next one."""
    totp = pyotp.TOTP(totp_secret)
    for _ in range(2):
        answer = http.post(
            f"/mobile/v1/signing-requests/{request_id}/approval",
            headers=tablet,
            json={"otp": totp.now(), "document_sha256": document_sha256},
        )
        if answer.status_code == 403 and answer.json().get("code") == "otp_reused":
            wait = 30 - time.time() % 30 + 1
            log(f"   this TOTP step was already used; waiting {wait:.0f} s for a new code")
            time.sleep(wait)
            continue
        answer.raise_for_status()
        return dict(answer.json())
    raise RuntimeError("no fresh TOTP code was accepted")


def wait_until_up(base_url: str, timeout_seconds: float = 60.0) -> None:
    """Poll ``/health`` until the server answers; TimeoutError after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server at {base_url} did not start")


def run_signing_flow(
    base_url: str,
    credentials_file: Path,
    document: bytes,
    output: Path,
    *,
    say: object = print,
    tablet: TabletOptions | None = None,
) -> DemoResult:
    """The official-document workflow: submit ``document`` as the document system; the
    leader approves it, then the clerk who keeps the organisation's token approves the
    seal: in the tablet app in headless Chromium when ``tablet`` is given (the leader
    with a passkey, screenshots next to ``output``), else over the tablet's HTTP API
    with TOTP codes. Download the finished PDF to ``output``, validate both signatures
    and render the signed page next to it."""
    creds = json.loads(credentials_file.read_text("utf-8"))
    log = say if callable(say) else print
    page_count = _page_count(document)
    with httpx.Client(base_url=base_url, timeout=120) as http:
        request_id, signed = _official_document(
            http, creds, document, page_count, log, tablet, output.parent
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(signed)
    verdicts = validate_with_pyhanko(signed, Path(creds["trust_anchor"]))
    page_png = output.with_suffix(".png")
    look_ok, look = _look(signed, page_count - 1, page_png)
    root = x509.load_pem_x509_certificate(Path(creds["trust_anchor"]).read_bytes())
    return DemoResult(
        levels=[
            (s.field_name, s.pades_level, s.ades_indication)
            for s in validation_report(
                signed, [root.public_bytes(Encoding.DER)], now=dt.datetime.now(dt.UTC)
            ).signatures
            if s.kind == "signature"
        ],
        request_id=request_id,
        signed_path=output,
        page_png=page_png,
        pyhanko_ok=len(verdicts) >= 2
        and all(v.ok for v in verdicts[-2:])
        and signed.startswith(document),
        pyhanko_summary=[
            f"{v.field_name}: intact={v.intact} valid={v.valid} trusted={v.trusted} "
            f"coverage={v.coverage} changes_after={v.modification_level} signer={v.signer}"
            for v in verdicts
        ],
        pdfsig=pdfsig_verdicts(signed),
        look_ok=look_ok,
        look=look,
    )


@dataclass(frozen=True, slots=True)
class TabletOptions:
    """How the demo reaches the tablet app: its address (``http://localhost:PORT``, the
    passkeys' relying party) and who issues the leader's one-time enrolment code."""

    app_url: str
    enrolment_code: Callable[[str], str]


def _official_document(
    http: httpx.Client,
    creds: dict[str, Any],
    document: bytes,
    page_count: int,
    log: Callable[[str], None],
    tablet: TabletOptions | None,
    out_dir: Path,
) -> tuple[str, bytes]:
    """Submit ``document`` as an official document, have the leader and the clerk who
    keeps the seal approve it; step 1's id and the finished PDF."""
    leader = next(s for s in creds["signers"] if s["role"] == "leader")
    clerk = next(s for s in creds["signers"] if s["username"] == creds["organisation"]["keeper"])
    api = {"Authorization": f"Bearer {creds['api_key']}"}
    step1 = submit_official_document(
        http,
        creds["api_key"],
        {
            "signer": leader["username"],
            "workflow": "official_document",
            "organisation": creds["organisation"]["name"],
            "title": DEMO_TITLE,
            "reason": "Ban hành văn bản",
            "location": "Hà Nam",
            "page": str(page_count),
            "box": ",".join(str(v) for v in DEMO_LEADER_BOX),
        },
        document,
    )
    log(
        f"1. document system submitted official document {step1}: the leader"
        f" {leader['username']} signs, then {creds['organisation']['name']} seals"
    )

    def seal_step() -> str:
        steps = http.get(f"/api/v1/signing-requests/{step1}", headers=api).json()
        return str(steps["workflow"]["steps"][1]["request_id"])

    if tablet is not None:
        run = run_tablet_flow(
            tablet.app_url,
            step1,
            seal_step,
            _signer(leader),
            _signer(clerk),
            lambda: tablet.enrolment_code(leader["username"]),
            out_dir,
            log=log,
        )
        log(f"   screenshots of the tablet: {', '.join(p.name for p in run.screenshots)}")
    else:
        _sign_as(http, leader, step1, "2", log)
        _sign_as(http, clerk, seal_step(), "3", log)
    step2_id = seal_step()
    final = http.get(f"/api/v1/signing-requests/{step1}", headers=api).json()
    log(f"   the workflow is {final['workflow']['status']}")
    signed = (
        http.get(f"/api/v1/signing-requests/{step2_id}/signed-document", headers=api)
        .raise_for_status()
        .content
    )
    return step1, signed


def _signer(person: dict[str, str]) -> Signer:
    return Signer(person["username"], person["password"], person["totp_secret"])


DEMO_TITLE = "Quyết định ban hành quy chế làm việc (văn bản mẫu)"


# The leader's box on the last page (points from its bottom-left corner): where a
# signer block sits on an A4 page, clear of the demo document's text.
DEMO_LEADER_BOX = (330.0, 380.0, 530.0, 450.0)


def _sign_as(
    http: httpx.Client,
    person: dict[str, str],
    request_id: str,
    number: str,
    log: Callable[[str], None],
) -> None:
    """Log in as ``person`` on a "tablet", find ``request_id`` pending, look at the
    document and its page 1, approve it with a TOTP code."""
    token = (
        http.post(
            "/mobile/v1/sessions",
            json={"username": person["username"], "password": person["password"]},
        )
        .raise_for_status()
        .json()["access_token"]
    )
    tablet = {"Authorization": f"Bearer {token}"}
    pending = (
        http.get(
            "/mobile/v1/signing-requests", params={"status": "pending_approval"}, headers=tablet
        )
        .raise_for_status()
        .json()
    )
    if request_id not in [r["id"] for r in pending]:
        raise RuntimeError(
            f"{person['username']} does not see request {request_id} pending (was the"
            " organisation's token handed to another clerk? hand it back with"
            " `organisations handover`, or run the demo in a fresh data folder)"
        )
    shown = (
        http.get(f"/mobile/v1/signing-requests/{request_id}/document", headers=tablet)
        .raise_for_status()
        .content
    )
    http.get(
        f"/mobile/v1/signing-requests/{request_id}/pages/1.png",
        params={"width": 600},
        headers=tablet,
    ).raise_for_status()
    digest = hashlib.sha256(shown).hexdigest()
    decision = _approve(http, tablet, request_id, person["totp_secret"], digest, log)
    log(
        f"{number}. {person['username']} ({person['role']}) saw the document (sha256"
        f" {digest[:16]}...) and approved it with TOTP: {decision['status']}"
    )
    if decision["status"] != "signed":
        raise RuntimeError(f"signing failed: {decision.get('failure_code')}")


def _page_count(document: bytes) -> int:
    pdf = pypdfium2.PdfDocument(document)
    try:
        return len(pdf)
    finally:
        pdf.close()


def _look(signed: bytes, page_index: int, png: Path) -> tuple[bool, str]:
    """Render the signed page to ``png`` and say what it shows: the blue signature and
    the red seal, and how much of the seal lies over the left third of the signature
    (docs/vn-signature-format.md)."""
    pdf = pypdfium2.PdfDocument(signed)
    pdf.init_forms()
    try:
        image = pdf[page_index].render(scale=2, may_draw_forms=True).to_pil().convert("RGB")
    finally:
        pdf.close()
    image.save(png)
    blue, red = [], []
    for i, (r, g, b) in enumerate(image.get_flattened_data()):
        if b > 150 and r < 60 and g < 60:
            blue.append(i % image.width)
        elif r > 180 and g < 60 and b < 70:
            red.append(i % image.width)
    if not blue or not red:
        return False, f"blue pixels {len(blue)}, red pixels {len(red)}: something is missing"
    left, right = min(blue), max(blue)
    third = left + (right - left) / 3
    over = sum(1 for x in red if x >= left)
    beyond = sum(1 for x in red if x > third + 4)
    text = (
        f"blue signature {len(blue)} px, red seal {len(red)} px; {over} red px over the"
        f" signature, {beyond} beyond its left third"
    )
    return over > 0 and beyond == 0, text
