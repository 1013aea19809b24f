"""The bridge under load and when a token stops answering, on the real SoftHSM2 tokens
of the test installation (leader1 RSA, clerk1 EC, org1 RSA): many threads on three
tokens, the per-token session limit, busy and stuck tokens, and a forked worker."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from gateway.bridges import bridge_config
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import (
    Bridge,
    BridgeConfig,
    ModuleConfig,
    SignRequest,
    TokenLimits,
)
from hsm_bridge.errors import BridgeError, TokenBusy, TokenTimeout, TokenUnhealthy
from hsm_bridge.signing import sign_digest


def _bridge(installation, limits: TokenLimits, tmp_path) -> Bridge:
    base = bridge_config(installation, InstallationKeys.load(installation.secrets_dir))
    return Bridge(
        BridgeConfig(
            modules=(ModuleConfig(base.modules[0].path, limits=limits),),
            pin_file=base.pin_file,
            pin_key=base.pin_key,
            activation_key=base.activation_key,
            used_activations_file=tmp_path / "used.db",
        )
    )


def _verify(certificate_der: bytes, digest: bytes, signature: bytes) -> None:
    public = x509.load_der_x509_certificate(certificate_der).public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    else:
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_twenty_threads_on_three_tokens_all_sign_and_verify(
    installation, demo_keys, issuer, tmp_path
):
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=60), tmp_path)
    certificates = {name: bridge.certificate(ref) for name, (ref, _) in demo_keys.items()}
    names = sorted(demo_keys)

    def worker(number: int) -> list[str]:
        problems = []
        for round_ in range(6):
            name = names[(number + round_) % 3]
            ref, mechanism = demo_keys[name]
            digest = hashlib.sha256(f"{number}-{round_}".encode()).digest()
            sad = issuer.issue(ref, digest, subject=f"t{number}", now=time.time(), ttl_seconds=60)
            try:
                signature = bridge.sign(SignRequest(ref, digest, mechanism, sad))
                _verify(certificates[name], digest, signature)
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
    other_ref, other_mechanism = demo_keys["clerk1"]
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
    digest = hashlib.sha256(b"other").digest()
    sad = issuer.issue(other_ref, digest, subject="o", now=time.time(), ttl_seconds=60)
    assert bridge.sign(SignRequest(other_ref, digest, other_mechanism, sad))
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
    ref, mechanism = demo_keys["leader1"]
    certificate = bridge.certificate(ref)  # the parent has the module loaded and a session
    digest = hashlib.sha256(b"child").digest()
    sad = issuer.issue(ref, digest, subject="fork", now=time.time(), ttl_seconds=60)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signature = bridge.sign(SignRequest(ref, digest, mechanism, sad))
            _verify(certificate, digest, signature)
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
    ref, mechanism = demo_keys["clerk1"]
    digest = hashlib.sha256(b"replayed").digest()
    sad = issuer.issue(ref, digest, subject="replay", now=time.time(), ttl_seconds=60)
    request = SignRequest(ref, digest, mechanism, sad)
    with ThreadPoolExecutor(10) as threads:
        outcomes = list(threads.map(lambda _: bridge.sign_many([request])[0], range(10)))
    signatures = [o for o in outcomes if isinstance(o, bytes)]
    refusals = [o for o in outcomes if not isinstance(o, bytes)]
    assert len(signatures) == 1
    assert {(r.code, r.reason) for r in refusals} == {("activation_invalid", "reused")}
    _verify(bridge.certificate(ref), digest, signatures[0])


def test_a_token_starts_on_a_batch_while_it_is_still_being_filled(
    installation, demo_keys, tmp_path
):
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=30), tmp_path)
    ref, mechanism = demo_keys["leader1"]
    pool = bridge._pool(ref.token_serial)
    batch = pool.open_batch(ref.token_serial, "sign")
    first_signed = threading.Event()

    def first(session) -> bytes:
        signature = sign_digest(session, ref.key_id, bytes(32), mechanism)
        first_signed.set()
        return signature

    batch.add(first)
    assert first_signed.wait(10), "the worker signs the first digest before the batch closes"
    batch.add(lambda session: sign_digest(session, ref.key_id, bytes(range(32)), mechanism))
    outcomes = batch.outcomes()
    certificate = bridge.certificate(ref)
    _verify(certificate, bytes(32), outcomes[0])
    _verify(certificate, bytes(range(32)), outcomes[1])


def test_a_caller_that_stops_feeding_its_batch_never_wedges_the_token(
    installation, demo_keys, tmp_path, monkeypatch
):
    monkeypatch.setattr("hsm_bridge.tokens.FEED_IDLE_SECONDS", 0.3)  # 120 s in production
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=0.3), tmp_path)
    ref, mechanism = demo_keys["org1"]
    pool = bridge._pool(ref.token_serial)
    batch = pool.open_batch(ref.token_serial, "sign")
    batch.add(lambda session: sign_digest(session, ref.key_id, bytes(32), mechanism))
    time.sleep(1.0)  # the caller stalls for longer than the token's timeout
    # the worker gave up on the stalled batch: the token serves others again
    assert pool.run(ref.token_serial, "probe", lambda session: "answered") == "answered"
    batch.add(lambda session: b"added too late")
    first, late = batch.outcomes()
    _verify(bridge.certificate(ref), bytes(32), first)
    assert isinstance(late, BridgeError) and late.code == "batch_abandoned" and late.retryable
    assert {h.serial: h.state for h in bridge.health()}[ref.token_serial] == "ok"


def test_a_store_stalled_between_chunks_loses_no_request(installation, demo_keys, issuer, tmp_path):
    T = 0.5
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=T), tmp_path)
    ref, mech = demo_keys["leader1"]
    other, _ = demo_keys["clerk1"]
    certificate = bridge.certificate(ref)

    def request(text, cred=ref):
        digest = hashlib.sha256(text.encode()).digest()
        sad = issuer.issue(cred, digest, subject="s", now=time.time(), ttl_seconds=60)
        return SignRequest(cred, digest, mech, sad)

    requests = [request(f"a{n}") for n in range(5)]
    store = bridge._verifier._used
    # another process of the installation commits used activations to the same file
    # (the stand-in: a second connection holding the write lock for 1.5 s)
    blocker = sqlite3.connect(tmp_path / "used.db", isolation_level=None, check_same_thread=False)

    def other_process() -> None:
        blocker.execute("BEGIN IMMEDIATE")
        time.sleep(1.5)
        blocker.execute("COMMIT")

    # a concurrent sign_many of this process reaches consume_many meanwhile
    theirs = bridge._verifier.check(
        (r := request("b", other)).activation, r.credential, r.digest, now=time.time()
    )
    concurrent = threading.Thread(
        target=lambda: bridge._verifier.consume_many([theirs], now=time.time())
    )
    real, calls = bridge._verifier.already_used, []

    def interleave(activations):  # only orders the threads; calls the real check
        calls.append(1)
        if len(calls) == 2:  # chunk 0 was added to the token; chunk 1 is next
            threading.Thread(target=other_process).start()
            time.sleep(0.05)
            concurrent.start()
            while not store._lock.locked():
                time.sleep(0.001)
        return real(activations)

    bridge._verifier.already_used = interleave
    outcomes = bridge.sign_many(requests)
    concurrent.join()
    bridge._verifier.already_used = real
    _verify(certificate, requests[0].digest, outcomes[0])
    lost = [o for o in outcomes[1:] if not isinstance(o, bytes)]
    assert lost == [], [(o.code, o.retryable, str(o)) for o in lost]
    for request, signature in zip(requests, outcomes, strict=True):
        _verify(certificate, request.digest, signature)


def test_the_timeout_runs_from_the_tokens_last_answer(installation, demo_keys, tmp_path):
    T = 0.5
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=T), tmp_path)
    ref, mech = demo_keys["clerk1"]
    pool = bridge._pool(ref.token_serial)
    release = threading.Event()
    first = threading.Event()
    batch = pool.open_batch(ref.token_serial, "sign")
    batch.add(lambda s: (first.set(), b"one")[1])
    assert first.wait(5)
    time.sleep(0.05)
    batch.add(lambda s: release.wait(10) and b"two")
    begin = time.monotonic()
    out = batch.outcomes()
    waited = time.monotonic() - begin
    release.set()
    assert isinstance(out[1], TokenTimeout)
    assert waited < T * 1.5, f"caller blocked {waited:.2f}s for a {T}s timeout"


def test_a_timed_out_batch_stops_after_the_stuck_call(installation, demo_keys, tmp_path):
    T = 0.3
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=T), tmp_path)
    ref, _ = demo_keys["org1"]
    pool = bridge._pool(ref.token_serial)
    ran = []

    def slow(n):
        def work(session):
            time.sleep(0.5)  # each call a bit longer than the timeout
            ran.append((n, time.monotonic()))
            return n

        return work

    begin = time.monotonic()
    outcomes = pool.run_many(ref.token_serial, "sign", [slow(n) for n in range(5)])
    answered = time.monotonic()
    assert all(isinstance(o, TokenTimeout) for o in outcomes)
    # the stuck call (item 0) returns at ~0.5 s; wait a little longer than that
    time.sleep(0.5 - (answered - begin) + 0.2)
    state = {h.serial: h.state for h in bridge.health()}[ref.token_serial]
    time.sleep(2.5)
    late = [n for n, at in ran if at > answered]
    assert late == [0], "only the call that was already running should finish"
    assert state == "ok"


def test_items_of_a_batch_given_up_on_are_signed_in_a_new_one(
    installation, demo_keys, issuer, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr("hsm_bridge.tokens.FEED_IDLE_SECONDS", 0.2)
    bridge = _bridge(installation, TokenLimits(max_sessions=1, timeout_seconds=0.2), tmp_path)
    ref, mechanism = demo_keys["leader1"]
    digests = [hashlib.sha256(f"stall{n}".encode()).digest() for n in range(12)]
    requests = [
        SignRequest(
            ref, d, mechanism, issuer.issue(ref, d, subject="s", now=time.time(), ttl_seconds=60)
        )
        for d in digests
    ]
    real, calls = bridge._verifier.already_used, []

    def stalling(activations):  # the caller stalls between two chunks
        calls.append(1)
        if len(calls) == 2:
            time.sleep(0.6)
        return real(activations)

    monkeypatch.setattr(bridge._verifier, "already_used", stalling)
    with caplog.at_level("WARNING", logger="hsm_bridge.bridge"):
        outcomes = bridge.sign_many(requests)
    assert "items of a stalled batch are queued again" in caplog.text
    certificate = bridge.certificate(ref)
    for digest, signature in zip(digests, outcomes, strict=True):
        _verify(certificate, digest, signature)
