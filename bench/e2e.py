"""End-to-end batch throughput: one approval of N requests through the gateway, against
pyHanko with python-pkcs11 signing the same document on the same token in-process.

Self-contained: a demo installation is made in a temporary folder (``signing-gateway init
--demo``: SQLite, SoftHSM2 tokens, the demo PKI), its leader enrols a device key, and two
variants run on the same document and the leader's token:

- ``pyhanko`` (the baseline): ``pyhanko.sign.signers.sign_pdf`` with
  ``pyhanko.sign.pkcs11.PKCS11Signer`` on a logged-in session, N times in a row;
- ``gateway``: N requests are submitted (not timed: intake is the document system's
  side), then one device-signed decision approves them all
  (``SigningService.approve_batch``: the bridge checks the statement, issues N SADs, and for each
  request builds the PAdES signature, signs on the token and the gateway stores the
  result, with its life-cycle transitions and audit entries); the time is from the
  decision to the last request ``signed``.

Both sign PAdES B-B with the same certificate chain; both outputs are checked with
pyHanko's validator once per round. The machine is noisy, so the variants run in
interleaved rounds (the order alternates) and each round's ratio, gateway throughput to
baseline throughput, is taken against the baseline of that same round; the median over
the rounds is reported, per document, with the target (0.7).

Usage::

    .venv/bin/python bench/e2e.py [--rounds 3] [--requests 50] [--documents a.pdf,b.pdf]
                                  [--json]

By default the documents are the corpus's Word document (``vn-word-text-hybrid-xref.pdf``,
4 pages) and its 117-page book (``many-pages-117p-objstm.pdf``) from ``../shared/corpus``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsm_bridge.clock import utcnow
from signing_gateway.demo.pki import DemoPki
from signing_gateway.demo.pki_service import start_pki_service

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "pdf"
DEFAULT_DOCUMENTS = ("vn-word-text-hybrid-xref.pdf", "many-pages-117p-objstm.pdf")
TARGET = 0.7
_LIBRARY: Any = None


@dataclass
class Rig:
    """The installation's long-lived objects for the run."""

    context: Any
    client: Any
    leader: Any
    device_key: Any
    device_id: str
    pin: str
    credential: Any
    root_pem: Path


def make_installation(folder: Path) -> tuple[Path, dict[str, Any]]:
    """A demo installation in ``folder`` made by the real CLI, its demo PKI's services
    (OCSP, CRL, TSA: the bridge asks the CA before each signature) on a free port; its
    credentials file."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(
        [sys.executable, "-m", "signing_gateway.cli", "init", "--demo", "--data-dir", str(folder)],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "GATEWAY_DEMO_PKI_URL": f"http://127.0.0.1:{port}"},
    )
    return folder, json.loads((folder / "demo-credentials.json").read_text("utf-8"))


def open_rig(folder: Path) -> Rig:
    """The gateway's context over the installation, and the leader's enrolled device."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from sqlalchemy import select

    from gateway.approvals import devices
    from gateway.bridges import local_registry
    from gateway.config import load_settings
    from gateway.context import build_context
    from gateway.db.models import Credential, IntegrationClient, User
    from gateway.secrets_at_rest import InstallationKeys
    from hsm_bridge.pkcs11.pins import PinStore
    from hsm_bridge.sam.signers import enrolment_proof

    settings = load_settings(folder, batch_max_requests=500)
    context = build_context(settings)
    context.start()  # as the service does at start-up: the document workers, gc.freeze
    keys = InstallationKeys.load(settings.secrets_dir)
    code = local_registry(settings, keys).issue_enrolment_code(
        "leader1", now=utcnow(), ttl_seconds=600
    )
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    device = devices.enrol_device(
        context.db,
        context.bridge,
        code.code_id,
        enrolment_proof(code.secret, der),
        public_key_der=der,
        push_token="bench",
        platform="web",
        name="bench",
        now=dt.datetime.now(dt.UTC),
    )
    with context.db.transaction() as session:
        client = session.scalars(select(IntegrationClient)).first()
        leader = session.scalar(select(User).where(User.username == "leader1"))
        credential = session.scalar(select(Credential).where(Credential.user_id == leader.id))
        session.expunge_all()
    pin = PinStore(folder / "bridge" / "pins.json", keys.fernet_key).get(credential.token_serial)
    return Rig(
        context, client, leader, key, device.id, pin, credential, folder / "pki" / "root-ca.pem"
    )


def baseline(rig: Rig, document: bytes, count: int) -> tuple[float, bytes]:
    """Seconds for ``count`` signatures of ``document`` by pyHanko with python-pkcs11,
    and the last signed PDF."""
    import pkcs11
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.pkcs11 import PKCS11Signer

    from hsm_bridge import CredentialRef
    from hsm_bridge.pkcs11.softhsm import find_softhsm_module

    # one library object for the run: python-pkcs11 finalises the module when one is
    # collected, which would pull it from under the bridge in this same process
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = pkcs11.lib(find_softhsm_module())
    token = _LIBRARY.get_token(token_serial=rig.credential.token_serial.encode())
    chain = [
        asn1_x509.Certificate.load(pem.unarmor(block)[2])
        for block in _pem_blocks(rig.credential.chain_pem.encode())
    ]
    meta = signers.PdfSignatureMetadata(
        field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    # The bridge in this process keeps the token logged in (its pooled sessions share the
    # login): a session of our own needs none, and must not log out (that would end the
    # bridge's login too).
    rig.context.bridge.certificate(
        CredentialRef(rig.credential.token_serial, bytes.fromhex(rig.credential.key_id))
    )
    with token.open() as session:
        signer = PKCS11Signer(
            session,
            signing_cert=asn1_x509.Certificate.load(rig.credential.certificate_der),
            ca_chain=chain,
            key_id=bytes.fromhex(rig.credential.key_id),
            cert_id=bytes.fromhex(rig.credential.key_id),
        )
        begin = time.perf_counter()
        for _ in range(count):
            writer = IncrementalPdfFileWriter(io.BytesIO(document), strict=False)
            output = signers.sign_pdf(writer, meta, signer=signer)
            signed = output.getvalue()
        return time.perf_counter() - begin, signed


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks, current = [], []
    for line in data.splitlines(keepends=True):
        current.append(line)
        if line.startswith(b"-----END"):
            blocks.append(b"".join(current))
            current = []
    return blocks


def gateway(rig: Rig, document: bytes, count: int) -> tuple[float, bytes]:
    """Seconds from one device-signed decision on ``count`` submitted requests of
    ``document`` to the last one signed, and one signed PDF."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from gateway.approvals.statements import DecisionItem, issue_nonce, statement_for
    from hsm_bridge.pades import SignatureParameters
    from hsm_bridge.sam.authorization import DeviceFactor
    from hsm_bridge.sam.statement import Decision

    context = rig.context
    requests = []
    for _ in range(count):
        submitted = context.submissions.submit(
            rig.client,
            document,
            "leader1",
            SignatureParameters(reason="Phê duyệt"),
            idempotency_key=None,
            client_address=None,
        )
        requests.append(submitted.request)
    now = dt.datetime.now(dt.UTC)
    with context.db.transaction() as session:
        nonce = issue_nonce(session, rig.leader.id, now=now, ttl_seconds=600).nonce
    expires_at = int(time.time()) + 240
    unsigned = DeviceFactor(rig.device_id, nonce, expires_at, b"")
    statement = statement_for(rig.leader, rig.device_id, Decision.APPROVE, unsigned, requests)
    signature = rig.device_key.sign(statement.canonical_bytes(), ec.ECDSA(hashes.SHA256()))
    proof = DeviceFactor(rig.device_id, nonce, expires_at, signature)
    items = [DecisionItem(r.id, r.document_sha256) for r in requests]
    begin = time.perf_counter()
    outcomes = context.service.approve_batch(rig.leader, items, proof, client_address=None)
    elapsed = time.perf_counter() - begin
    states = {o.request.status if o.request else o.error.code for o in outcomes}
    if states != {"signed"}:
        raise RuntimeError(f"the gateway did not sign every request: {states}")
    signed = context.service.store.read_signed(requests[-1].id)
    return elapsed, signed


def check(signed: bytes, root: Path) -> None:
    """The output holds one valid, trusted signature over the whole file."""
    from gateway.signing.validation import validate_with_pyhanko

    (verdict,) = validate_with_pyhanko(signed, root)
    if not (verdict.ok and verdict.coverage == "ENTIRE_FILE"):
        raise RuntimeError(f"an invalid signature: {verdict}")


def run(documents: list[Path], rounds: int, count: int) -> dict[str, Any]:
    """Interleaved rounds per document; the median ratio of each."""
    results: dict[str, Any] = {"requests": count, "rounds": rounds, "target": TARGET}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as work:
        folder, _ = make_installation(Path(work) / "var")
        os.environ["SOFTHSM2_CONF"] = str(folder / "softhsm2.conf")
        pki_service = start_pki_service(DemoPki(folder / "pki"))
        rig = open_rig(folder)
        try:
            for path in documents:
                document = path.read_bytes()
                ratios, base_times, gateway_times = [], [], []
                for round_ in range(rounds):
                    order = ("pyhanko", "gateway") if round_ % 2 == 0 else ("gateway", "pyhanko")
                    seconds: dict[str, float] = {}
                    for variant in order:
                        if variant == "pyhanko":
                            seconds[variant], signed = baseline(rig, document, count)
                        else:
                            seconds[variant], signed = gateway(rig, document, count)
                        check(signed, rig.root_pem)
                    base_times.append(seconds["pyhanko"])
                    gateway_times.append(seconds["gateway"])
                    ratios.append(seconds["pyhanko"] / seconds["gateway"])
                    print(
                        f"{path.name} round {round_ + 1}:"
                        f" pyhanko {count / seconds['pyhanko']:.1f}/s,"
                        f" gateway {count / seconds['gateway']:.1f}/s,"
                        f" ratio {ratios[-1]:.2f}",
                        file=sys.stderr,
                    )
                results[path.name] = {
                    "bytes": len(document),
                    "sha256": hashlib.sha256(document).hexdigest(),
                    "pyhanko_per_second": count / statistics.median(base_times),
                    "gateway_per_second": count / statistics.median(gateway_times),
                    "ratio": statistics.median(ratios),
                    "ratios": ratios,
                    "ok": statistics.median(ratios) >= TARGET,
                }
        finally:
            rig.context.close()
            pki_service.shutdown()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--documents", help="comma-separated PDF paths (default: the corpus's)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.documents:
        documents = [Path(p) for p in args.documents.split(",")]
    else:
        documents = [CORPUS / name for name in DEFAULT_DOCUMENTS]
        missing = [p for p in documents if not p.exists()]
        if missing:
            print(f"the corpus is absent ({CORPUS}); give --documents", file=sys.stderr)
            return 2
    os.chdir(ROOT)
    results = run(documents, args.rounds, args.requests)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.requests} requests, one approval; median of {args.rounds} interleaved rounds")
    print(f"{'document':<34} {'pyhanko/s':>10} {'gateway/s':>10} {'ratio':>6}  target {TARGET}")
    for path in documents:
        row = results[path.name]
        verdict = "ok" if row["ok"] else "BELOW"
        print(
            f"{path.name:<34} {row['pyhanko_per_second']:>10.1f} {row['gateway_per_second']:>10.1f}"
            f" {row['ratio']:>6.2f}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
