"""The demo: drives one full signing through the HTTP APIs exactly as a document system
and a tablet would, then checks the result with pyHanko's validator and pdfsig."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp

from gateway.sample_pdf import sample_pdf
from gateway.validation import pdfsig_verdicts, validate_with_pyhanko

__all__ = ["DemoResult", "default_demo_document", "run_signing_flow", "wait_until_up"]

CORPUS_CANDIDATES = ("vn-word-text-hybrid-xref.pdf", "plain-libreoffice-writer.pdf")


@dataclass(frozen=True, slots=True)
class DemoResult:
    """Where the signed PDF went and what the validators said."""

    request_id: str
    signed_path: Path
    pyhanko_ok: bool
    pyhanko_summary: list[str]
    pdfsig: list[str] | None


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
    signer: str = "leader1",
    say: object = print,
) -> DemoResult:
    """Submit ``document`` as the document system, approve it as ``signer`` from the
    "tablet" with a TOTP code, download the signed PDF to ``output`` and validate it."""
    creds = json.loads(credentials_file.read_text("utf-8"))
    person = next(s for s in creds["signers"] if s["username"] == signer)
    log = say if callable(say) else print
    with httpx.Client(base_url=base_url, timeout=120) as http:
        api = {"Authorization": f"Bearer {creds['api_key']}"}
        answer = http.post(
            "/api/v1/signing-requests",
            headers=api,
            files={"document": ("document.pdf", document, "application/pdf")},
            data={
                "signer": signer,
                "reason": "Phê duyệt văn bản",
                "location": "Hà Nội",
                "page": "1",
                "box": "360,60,560,130",
            },
        )
        answer.raise_for_status()
        request_id = answer.json()["id"]
        log(f"1. document system submitted request {request_id} for {signer}")
        token = (
            http.post(
                "/mobile/v1/sessions",
                json={"username": signer, "password": person["password"]},
            )
            .raise_for_status()
            .json()["access_token"]
        )
        tablet = {"Authorization": f"Bearer {token}"}
        pending = (
            http.get(
                "/mobile/v1/signing-requests",
                params={"status": "pending_approval"},
                headers=tablet,
            )
            .raise_for_status()
            .json()
        )
        log(f"2. tablet logged in as {signer}: {len(pending)} request(s) pending")
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
        shown_sha256 = hashlib.sha256(shown).hexdigest()
        log(f"3. tablet showed the document (sha256 {shown_sha256[:16]}...) and page 1")
        decision = (
            http.post(
                f"/mobile/v1/signing-requests/{request_id}/approval",
                headers=tablet,
                json={
                    "otp": pyotp.TOTP(person["totp_secret"]).now(),
                    "document_sha256": shown_sha256,
                },
            )
            .raise_for_status()
            .json()
        )
        log(f"4. approved with TOTP: status {decision['status']}")
        if decision["status"] != "signed":
            raise RuntimeError(f"signing failed: {decision.get('failure_code')}")
        signed = (
            http.get(f"/api/v1/signing-requests/{request_id}/signed-document", headers=api)
            .raise_for_status()
            .content
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(signed)
    verdicts = validate_with_pyhanko(signed, Path(creds["trust_anchor"]))
    ours = verdicts[-1]
    return DemoResult(
        request_id=request_id,
        signed_path=output,
        pyhanko_ok=ours.ok and signed.startswith(document),
        pyhanko_summary=[
            f"{v.field_name}: intact={v.intact} valid={v.valid} trusted={v.trusted} "
            f"coverage={v.coverage} signer={v.signer}"
            for v in verdicts
        ],
        pdfsig=pdfsig_verdicts(signed),
    )
