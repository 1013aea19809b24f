"""The bridge under load and when a token stops answering, on the real SoftHSM2 tokens
of the test installation (leader1 RSA, clerk1 EC, org1 RSA): many threads on three
tokens, the per-token session limit, busy and stuck tokens, and a forked worker. Every
signature is a PDF the bridge built, checked with pyHanko."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from gateway.bridges import bridge_config
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import (
    Bridge,
    BridgeConfig,
    ModuleConfig,
    SignRequest,
    TokenLimits,
)
from hsm_bridge.errors import TokenBusy, TokenTimeout, TokenUnhealthy
from hsm_bridge.pkcs11.signing import sign_digest
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.sads import request_for


def _bridge(installation, limits: TokenLimits, tmp_path) -> Bridge:
    base = bridge_config(installation, InstallationKeys.load(installation.secrets_dir))
    return Bridge(
        BridgeConfig(
            modules=(ModuleConfig(base.modules[0].path, limits=limits),),
            pin_file=base.pin_file,
            pin_key=base.pin_key,
            activation_key=base.activation_key,
            used_activations_file=tmp_path / "used.db",
            ca_certificates_file=base.ca_certificates_file,
            trust_anchors_file=base.trust_anchors_file,
        )
    )


def _verify(certificate_der: bytes, digest: bytes, signature: bytes) -> None:
    """A raw token signature of ``digest`` verifies with the certificate's key."""
    public = x509.load_der_x509_certificate(certificate_der).public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    else:
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def _request(bridge: Bridge, issuer, demo_keys, name: str, text: str) -> SignRequest:
    ref, mechanism = demo_keys[name]
    document = sample_pdf([text])
    return request_for(issuer, ref, mechanism, document, bridge.certificate(ref), subject=text)


def _check(request: SignRequest, signed: bytes) -> None:
    """The bridge's output: the request's document and one valid, intact signature over
    it (trust is checked elsewhere: here only what the token signed)."""
    assert signed.startswith(request.document)
    (signature,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    status = validate_pdf_signature(
        signature, ValidationContext(trust_roots=[signature.signer_cert], allow_fetching=False)
    )
    assert status.intact and status.valid, status


def test_twenty_threads_on_three_tokens_all_sign_and_verify(
    installation, demo_keys, issuer, tmp_path
):
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=60), tmp_path)
    names = sorted(demo_keys)

    def worker(number: int) -> list[str]:
        problems = []
        for round_ in range(4):
            name = names[(number + round_) % 3]
            try:
                request = _request(bridge, issuer, demo_keys, name, f"{number}-{round_}")
                _check(request, bridge.sign(request))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                problems.append(f"{name}: {exc!r}")
        return problems

    with ThreadPoolExecutor(20) as pool:
        problems = [p for result in pool.map(worker, range(20)) for p in result]
    assert problems == []
    ops = {h.serial: h for h in bridge.health()}
    assert all(ops[ref.token_serial].state == "ok" for ref, _ in demo_keys.values())
    assert all(ops[ref.token_serial].busy == 0 for ref, _ in demo_keys.values())


def test_the_per_token_session_limit_holds_under_load(installation, demo_keys, tmp_path):
    bridge = _bridge(installation, TokenLimits(max_sessions=2, timeout_seconds=60), tmp_path)
    ref, mechanism = demo_keys["leader1"]
    pool = bridge._pool(ref.token_serial)
    running = 0
    peak = 0
    lock = threading.Lock()
    sessions_seen: set[int] = set()

    def work(session) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            sessions_seen.add(id(session))
        try:
            time.sleep(0.01)
            return sign_digest(session, ref.key_id, bytes(32), mechanism)
        finally:
            with lock:
                running -= 1

    with ThreadPoolExecutor(12) as threads:
        results = list(threads.map(lambda _: pool.run(ref.token_serial, "sign", work), range(48)))
    assert len(results) == 48 and all(len(r) == 256 for r in results)
    assert peak == 2, "never more operations at once than max_sessions, and it is reached"
    assert len(sessions_seen) == 2, "sessions are pooled and reused, one per slot"


def test_a_busy_token_answers_token_busy_within_the_timeout(installation, demo_keys, tmp_path):
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=0.5), tmp_path)
    ref, _ = demo_keys["org1"]
    pool = bridge._pool(ref.token_serial)
    started, release = threading.Event(), threading.Event()

    def hold(session) -> None:
        started.set()
        release.wait(10)

    with ThreadPoolExecutor(1) as threads:
        holder = threads.submit(pool.run, ref.token_serial, "hold", hold)
        assert started.wait(5)
        begin = time.monotonic()
        with pytest.raises(TokenBusy) as caught:
            pool.run(ref.token_serial, "sign", lambda s: b"never runs")
        waited = time.monotonic() - begin
        release.set()
        # the holder itself ran for about its own timeout: it may or may not have timed out
        with contextlib.suppress(TokenTimeout):
            holder.result()
    assert caught.value.code == "token_busy" and caught.value.retryable
    assert 0.4 < waited < 3


def test_a_stuck_token_is_unhealthy_and_never_stalls_the_others(
    installation, demo_keys, issuer, tmp_path
):
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=0.3), tmp_path)
    stuck_ref, _ = demo_keys["leader1"]
    pool = bridge._pool(stuck_ref.token_serial)
    release = threading.Event()

    begin = time.monotonic()
    with pytest.raises(TokenTimeout) as caught:
        pool.run(stuck_ref.token_serial, "sign", lambda s: release.wait(10))
    assert caught.value.code == "token_timeout" and caught.value.retryable
    assert time.monotonic() - begin < 2
    states = {h.serial: h.state for h in bridge.health()}
    assert states[stuck_ref.token_serial] == "unhealthy"
    # new work on the stuck token is refused at once instead of queueing
    with pytest.raises(TokenUnhealthy):
        pool.run(stuck_ref.token_serial, "sign", lambda s: b"")
    # the other tokens keep signing meanwhile
    request = _request(bridge, issuer, demo_keys, "clerk1", "other")
    _check(request, bridge.sign(request))
    # when the stuck call returns, the token is healthy again
    release.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if {h.serial: h.state for h in bridge.health()}[stuck_ref.token_serial] == "ok":
            break
        time.sleep(0.02)
    assert {h.serial: h.state for h in bridge.health()}[stuck_ref.token_serial] == "ok"
    assert pool.run(stuck_ref.token_serial, "probe", lambda s: "answered") == "answered"


def test_a_forked_worker_initialises_pkcs11_again_and_signs(
    installation, demo_keys, issuer, tmp_path
):
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=30), tmp_path)
    ref, _ = demo_keys["leader1"]
    certificate = bridge.certificate(ref)  # the parent has the module loaded and a session
    request = _request(bridge, issuer, demo_keys, "leader1", "child")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            _check(request, bridge.sign(request))
            os.write(write, b"ok")
            code = 0
        except BaseException as exc:  # noqa: BLE001
            os.write(write, repr(exc).encode()[:500])
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(child, 0)
    message = os.read(read, 1000)
    os.close(read)
    assert os.WEXITSTATUS(status) == 0, message
    assert message == b"ok"
    # the parent's own sessions still work after the child is gone
    assert bridge.certificate(ref) == certificate


@pytest.mark.invariant(1)
def test_one_activation_replayed_by_ten_threads_releases_one_signature(
    installation, demo_keys, issuer, tmp_path
):
    bridge = _bridge(installation, TokenLimits(max_sessions=2, timeout_seconds=30), tmp_path)
    request = _request(bridge, issuer, demo_keys, "clerk1", "replayed")
    with ThreadPoolExecutor(10) as threads:
        outcomes = list(threads.map(lambda _: bridge.sign_many([request])[0], range(10)))
    signatures = [o for o in outcomes if isinstance(o, bytes)]
    refusals = [o for o in outcomes if not isinstance(o, bytes)]
    assert len(signatures) == 1
    assert {(r.code, r.reason) for r in refusals} == {("activation_invalid", "reused")}
    _check(request, signatures[0])
