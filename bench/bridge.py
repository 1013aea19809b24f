"""Signatures per second: raw python-pkcs11 against the bridge, in-process and as a service.

Self-contained: a temporary SoftHSM2 token with an RSA-2048 key is made for the run and
thrown away afterwards. Four variants are measured, every one on one session of that one
token (the same concurrency for a fair ratio):

- ``raw``: the baseline, python-pkcs11 alone: C_Sign (CKM_RSA_PKCS over a SHA-256
  DigestInfo) in a plain loop on one logged-in session, the key looked up once;
- ``bridge``: :meth:`hsm_bridge.Bridge.sign` in this process, one call per digest, each
  with its own activation (SAD) from :class:`hsm_bridge.ActivationIssuer`;
- ``bridge_batch``: :meth:`hsm_bridge.Bridge.sign_many` with batches of ``--batch``
  digests (each with its own activation);
- ``service``: the bridge service (:func:`hsm_bridge.service.serve`) under
  uvicorn over mutual TLS on loopback, in a child process (``--serve``: its own GIL),
  driven by :class:`hsm_bridge.remote.RemoteBridge` with batches of ``--batch`` digests.

The machine may be noisy, so the variants run in interleaved rounds (the order rotates
from round to round); each variant's ratio to the baseline is taken per round, against
the baseline measured in that same round, and the median over the rounds is reported.

Usage::

    .venv/bin/python bench/bridge.py [--seconds 2] [--rounds 5] [--batch 100] [--json]
                                     [--only raw,bridge,...] [--breakdown N]

``--breakdown N`` also times each piece of the bridge's signing path (PKCS#11 look-ups,
activation HMAC/JSON, the durable single-use record, the thread hand-off) to show where
the time goes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# DER prefix of DigestInfo{sha256, NULL} (RFC 8017 §9.2 note 1); the digest follows.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
TOKEN_LABEL = "bench"
KEY_ID = b"\x01"
USER_PIN = "1234"
SO_PIN = "5678"
VARIANTS = ("raw", "bridge", "bridge_batch", "service")
# Ratio of each variant's rate to the baseline's that the issue asks for.
TARGETS = {"bridge": 0.95, "bridge_batch": 0.95, "service": 0.85}


@dataclass(frozen=True, slots=True)
class BenchToken:
    """The temporary token and the bridge secrets of one run. ``activation_key`` is
    hex; ``pin_key`` is the Fernet key (urlsafe base64 text)."""

    module: str
    softhsm_conf: Path
    serial: str
    pin_file: Path
    pin_key: str
    activation_key: str
    workdir: Path

    def to_json(self) -> dict[str, str]:
        """The fields as JSON-ready text (for the ``--serve`` child)."""
        return {
            "module": self.module,
            "softhsm_conf": str(self.softhsm_conf),
            "serial": self.serial,
            "pin_file": str(self.pin_file),
            "pin_key": self.pin_key,
            "activation_key": self.activation_key,
            "workdir": str(self.workdir),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> BenchToken:
        """The inverse of :meth:`to_json`."""
        return cls(
            module=data["module"],
            softhsm_conf=Path(data["softhsm_conf"]),
            serial=data["serial"],
            pin_file=Path(data["pin_file"]),
            pin_key=data["pin_key"],
            activation_key=data["activation_key"],
            workdir=Path(data["workdir"]),
        )


# ---- set-up ---------------------------------------------------------------------------


def find_module() -> str:
    """The SoftHSM2 PKCS#11 module's path; SystemExit when SoftHSM2 is not installed."""
    from hsm_bridge.softhsm import find_softhsm_module

    module = find_softhsm_module()
    if module is None:
        raise SystemExit("SoftHSM2 is not installed (apt-get install softhsm2)")
    return module


def create_token(workdir: Path) -> tuple[BenchToken, Any, Any]:
    """Initialise a SoftHSM2 token in ``workdir``, point this process at it
    (SOFTHSM2_CONF, before the module is loaded), store its PIN with the bridge's
    :class:`~hsm_bridge.pins.PinStore` and generate the RSA-2048 key pair inside it.

    The in-process bridge is built first and loads the module its own way (python-pkcs11
    then hands the baseline that same module object). Returns the token's description,
    the logged-in python-pkcs11 session that made the key (the baseline signs on it; the
    bridge's pool shares its login state) and the bridge."""
    from cryptography.fernet import Fernet

    from hsm_bridge.pins import PinStore
    from hsm_bridge.softhsm import init_token, write_config

    conf = workdir / "softhsm2.conf"
    write_config(conf, workdir / "tokens")
    init_token(conf, TOKEN_LABEL, SO_PIN, USER_PIN)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    token = BenchToken(
        module=find_module(),
        softhsm_conf=conf,
        serial="",
        pin_file=workdir / "pins.json",
        pin_key=Fernet.generate_key().decode("ascii"),
        activation_key=os.urandom(32).hex(),
        workdir=workdir,
    )
    bridge = make_bridge(token, workdir / "activations.db")
    serial = next(t.serial for t in bridge.inventory() if t.label == TOKEN_LABEL)
    token = dataclasses.replace(token, serial=serial)
    PinStore(token.pin_file, token.pin_key.encode("ascii")).put(serial, USER_PIN)

    import pkcs11
    from pkcs11 import KeyType

    session = (
        pkcs11.lib(token.module).get_token(token_label=TOKEN_LABEL).open(user_pin=USER_PIN, rw=True)
    )
    session.generate_keypair(KeyType.RSA, 2048, store=True, id=KEY_ID, label=TOKEN_LABEL)
    return token, session, bridge


def make_bridge(token: BenchToken, used_activations: Path, *, max_sessions: int = 1) -> Any:
    """An in-process :class:`hsm_bridge.Bridge` over the bench token (``max_sessions``
    sessions, like the baseline's one)."""
    from hsm_bridge import Bridge, BridgeConfig, ModuleConfig, TokenLimits

    return Bridge(
        BridgeConfig(
            modules=(
                ModuleConfig(
                    token.module,
                    limits=TokenLimits(max_sessions=max_sessions, timeout_seconds=30),
                ),
            ),
            pin_file=token.pin_file,
            pin_key=token.pin_key.encode("ascii"),
            activation_key=bytes.fromhex(token.activation_key),
            used_activations_file=used_activations,
            name="bench",
        )
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the service child ------------------------------------------------------------------


def serve(state_file: Path) -> int:
    """``--serve``: run the bridge service over the bench token under uvicorn with
    mutual TLS, as described by ``state_file`` (JSON written by the parent)."""

    from hsm_bridge.service import serve

    state = json.loads(state_file.read_text("utf-8"))
    token = BenchToken.from_json(state["token"])
    os.environ["SOFTHSM2_CONF"] = str(token.softhsm_conf)
    bridge = make_bridge(token, Path(state["used_activations"]))
    serve(
        bridge,
        host="127.0.0.1",
        port=int(state["port"]),
        certificate=Path(state["certificate"]),
        key=Path(state["key"]),
        client_ca=Path(state["ca"]),
        log_level="warning",
    )
    return 0


@contextmanager
def service(token: BenchToken) -> Iterator[Any]:
    """Start the bridge service in a child process (``--serve``) on a free loopback
    port with fresh link credentials; yield a connected
    :class:`~hsm_bridge.remote.RemoteBridge`; stop the child at the end."""
    from hsm_bridge.errors import BridgeError
    from hsm_bridge.link_tls import create_link_credentials
    from hsm_bridge.remote import RemoteBridge, RemoteBridgeConfig

    link = create_link_credentials(
        token.workdir / "link", ["127.0.0.1"], now=dt.datetime.now(dt.UTC)
    )
    port = free_port()
    state_file = token.workdir / "serve.json"
    state_file.write_text(
        json.dumps(
            {
                "token": token.to_json(),
                "used_activations": str(token.workdir / "service-activations.db"),
                "port": port,
                "certificate": str(link.bridge_certificate),
                "key": str(link.bridge_key),
                "ca": str(link.ca),
            }
        ),
        "utf-8",
    )
    os.chmod(state_file, 0o600)
    log_path = token.workdir / "serve.log"
    env = dict(os.environ, SOFTHSM2_CONF=str(token.softhsm_conf))
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(state_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    remote = RemoteBridge(
        RemoteBridgeConfig(
            name="bench-service",
            url=f"https://127.0.0.1:{port}",
            client_certificate=link.gateway_certificate,
            client_key=link.gateway_key,
            ca_certificate=link.ca,
            timeout_seconds=60,
        )
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.poll() is not None:
                raise SystemExit(
                    f"the bridge service exited ({child.returncode}):\n"
                    + log_path.read_text("utf-8", "replace")
                )
            try:
                if any(h.serial == token.serial and h.state == "ok" for h in remote.health()):
                    break
            except BridgeError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the bridge service did not start within 60 s")
            time.sleep(0.1)
        yield remote
    finally:
        remote.close()
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# ---- measurement -------------------------------------------------------------------------

SLICE_SECONDS = 0.25


def measure(
    step: Callable[[Any], int], seconds: float, prepare: Callable[[], Any] = lambda: None
) -> tuple[int, float]:
    """Call ``step(prepare())`` (which signs some digests and returns how many) until
    ``seconds`` of ``step`` time passed; return the count and the seconds it took.
    ``prepare`` is not timed: it makes the digests (and, for the bridge, the activations
    the web tier would have issued), which are not the signer's work."""
    count = 0
    elapsed = 0.0
    while elapsed < seconds:
        prepared = prepare()
        started = time.perf_counter()
        count += step(prepared)
        elapsed += time.perf_counter() - started
    return count, elapsed


def verify(public_key: Any, signature: bytes, digest: bytes) -> None:
    """Check an RSASSA-PKCS1-v1_5 SHA-256 signature over ``digest`` (InvalidSignature)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    public_key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def public_key_of(session: Any) -> Any:
    """The bench key's public key as a ``cryptography`` object."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from pkcs11 import ObjectClass
    from pkcs11.util.rsa import encode_rsa_public_key

    public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=KEY_ID)
    return load_der_public_key(encode_rsa_public_key(public))


class Steps:
    """The four variants as step functions; each keeps its last (digest, signature) for
    a correctness check after the round."""

    def __init__(
        self, session: Any, bridge: Any, remote: Any, token: BenchToken, batch: int
    ) -> None:
        from pkcs11 import Mechanism, ObjectClass

        from hsm_bridge import ActivationIssuer, CredentialRef, SignRequest
        from hsm_bridge.credentials import SignatureMechanism

        self._mechanism = Mechanism.RSA_PKCS
        self._key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=KEY_ID)
        self._bridge = bridge
        self._remote = remote
        self._batch = batch
        self._issuer = ActivationIssuer(bytes.fromhex(token.activation_key))
        self._ref = CredentialRef(token.serial, KEY_ID)
        self._request = SignRequest
        self._rsa = SignatureMechanism.RSA_PKCS_SHA256
        self.last: dict[str, tuple[bytes, bytes]] = {}

    def _sad(self, digest: bytes) -> str:
        return self._issuer.issue(
            self._ref, digest, subject="bench", now=time.time(), ttl_seconds=300
        )

    def _requests(self) -> list[Any]:
        return self._requests_of(self._batch)

    def prepare(self, name: str) -> Callable[[], Any]:
        """The untimed preparation of variant ``name``: a digest, one activated request,
        or a batch of them."""
        if name == "raw":
            return lambda: os.urandom(32)
        if name == "bridge":
            return lambda: self._requests_of(1)[0]
        return self._requests

    def _requests_of(self, count: int) -> list[Any]:
        digests = [os.urandom(32) for _ in range(count)]
        return [self._request(self._ref, d, self._rsa, self._sad(d)) for d in digests]

    def raw(self, digest: bytes) -> int:
        """One C_SignInit + C_Sign with the key found once: the baseline."""
        signature = self._key.sign(SHA256_DIGEST_INFO + digest, mechanism=self._mechanism)
        self.last["raw"] = (digest, bytes(signature))
        return 1

    def bridge(self, request: Any) -> int:
        """One :meth:`Bridge.sign` of an activated request."""
        self.last["bridge"] = (request.digest, self._bridge.sign(request))
        return 1

    def _check_batch(self, name: str, requests: list[Any], outcomes: list[Any]) -> int:
        for outcome in outcomes:
            if not isinstance(outcome, bytes):
                raise SystemExit(f"{name}: a signature failed: {outcome!r}")
        self.last[name] = (requests[-1].digest, outcomes[-1])
        return len(outcomes)

    def bridge_batch(self, requests: list[Any]) -> int:
        """One :meth:`Bridge.sign_many` of ``batch`` activated requests."""
        return self._check_batch("bridge_batch", requests, self._bridge.sign_many(requests))

    def service(self, requests: list[Any]) -> int:
        """One :meth:`RemoteBridge.sign_many` of ``batch`` requests over mutual TLS."""
        return self._check_batch("service", requests, self._remote.sign_many(requests))


def _median_us(call: Callable[[], object], repeats: int, per_call: int = 1) -> float:
    """Median wall time of ``call`` over ``repeats`` calls, in microseconds per item
    (``per_call`` items per call)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6 / per_call


def _binding_check() -> Callable[[], object]:
    """:func:`hsm_bridge.binding.verify_signing_input` on the signing input pyHanko makes
    for a one-page PDF (what the bridge adds per signature on the gateway's PAdES path:
    the document and /ByteRange hashes and the signed attributes' messageDigest)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    from gateway.pades import RemoteSigner, SignatureParameters, sign_pdf
    from gateway.sample_pdf import sample_pdf
    from hsm_bridge.binding import verify_signing_input

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    seen: list[Any] = []

    def sign(signing_input: Any) -> bytes:
        seen.append(signing_input)
        return key.sign(signing_input.digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    document = sample_pdf(["bench"])
    sign_pdf(
        document,
        SignatureParameters(),
        RemoteSigner(certificate.public_bytes(Encoding.DER), [], sign),
    )
    given = seen[0]
    document_sha256 = hashlib.sha256(document).digest()
    return lambda: verify_signing_input(
        given.prepared_pdf,
        given.original_length,
        given.signed_attributes,
        document_sha256=document_sha256,
    )


def breakdown(token: BenchToken, session: Any, repeats: int, batch: int) -> dict[str, float]:
    """What each piece of the bridge's signing path costs on this machine, in
    microseconds per signature (median of ``repeats``): the PKCS#11 calls the bridge
    makes besides the baseline's C_Sign, the activation's HMAC/JSON, the durable
    single-use record (SQLite WAL, synchronous=FULL: one fsync per transaction), the PIN
    file read and the hand-off to the token's worker thread."""
    from pkcs11 import Mechanism, ObjectClass

    from hsm_bridge import ActivationIssuer, ActivationVerifier, CredentialRef, TokenLimits
    from hsm_bridge.activation import UsedActivationStore
    from hsm_bridge.credentials import SignatureMechanism
    from hsm_bridge.pins import PinStore
    from hsm_bridge.signing import always_authenticate, find_private_key, sign_digest
    from hsm_bridge.tokens import TokenPool

    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=KEY_ID)
    digest = os.urandom(32)
    ref = CredentialRef(token.serial, KEY_ID)
    activation_key = bytes.fromhex(token.activation_key)
    issuer = ActivationIssuer(activation_key)
    store = UsedActivationStore(token.workdir / "breakdown-activations.db")
    verifier = ActivationVerifier(activation_key, store)
    sad = issuer.issue(ref, digest, subject="bench", now=time.time(), ttl_seconds=300)
    pins = PinStore(token.pin_file, token.pin_key.encode("ascii"))
    pool = TokenPool(token.module, pins.get, limits=TokenLimits(1, 30))
    noops = [lambda _session: None] * batch

    def fresh(count: int) -> list[tuple[str, int]]:
        return [(os.urandom(16).hex(), int(time.time()) + 300) for _ in range(count)]

    def consume_one() -> None:
        store.consume_many(fresh(1), now=time.time())

    def consume_batch() -> None:
        store.consume_many(fresh(batch), now=time.time())

    costs = {
        "C_SignInit+C_Sign (baseline, key found once)": lambda: key.sign(
            SHA256_DIGEST_INFO + digest, mechanism=Mechanism.RSA_PKCS
        ),
        "sign_digest (C_FindObjects + attribute reads + C_Sign)": lambda: sign_digest(
            session, KEY_ID, digest, SignatureMechanism.RSA_PKCS_SHA256, context_pin=lambda: ""
        ),
        "  of which C_FindObjects of the key (find_private_key)": lambda: find_private_key(
            session, KEY_ID
        ),
        "  of which CKA_KEY_TYPE of a fresh key object": lambda: (
            find_private_key(session, KEY_ID).key_type
        ),
        "  of which CKA_ALWAYS_AUTHENTICATE read": lambda: always_authenticate(key),
        "ActivationIssuer.issue (JSON + HMAC)": lambda: issuer.issue(
            ref, digest, subject="bench", now=time.time(), ttl_seconds=300
        ),
        "ActivationVerifier.check (HMAC + JSON)": lambda: verifier.check(
            sad, ref, digest, now=time.time()
        ),
        "UsedActivationStore, 1 nonce per transaction (fsync)": consume_one,
        f"UsedActivationStore, {batch} nonces per transaction": (consume_batch, batch),
        "PinStore.has (reads the PIN file)": lambda: pins.has(token.serial),
        "TokenPool.run of a no-op (thread hand-off)": lambda: pool.run(
            token.serial, "bench", noops[0]
        ),
        f"TokenPool.run_many of {batch} no-ops": (
            lambda: pool.run_many(token.serial, "bench", noops),
            batch,
        ),
        "binding check of a PAdES signing input (one-page PDF)": _binding_check(),
    }
    result: dict[str, float] = {}
    for name, spec in costs.items():
        call, per_call = spec if isinstance(spec, tuple) else (spec, 1)
        result[name] = _median_us(call, max(1, repeats // per_call), per_call)
    # The find/key-type line includes a find: report the attribute read alone.
    find = result["  of which C_FindObjects of the key (find_private_key)"]
    name = "  of which CKA_KEY_TYPE of a fresh key object"
    result[name] = max(0.0, result[name] - find)
    return result


def run(
    seconds: float,
    rounds: int,
    batch: int,
    variants: tuple[str, ...],
    *,
    progress: bool = True,
    breakdown_repeats: int = 0,
) -> dict[str, Any]:
    """Make the token, start the service, measure ``rounds`` interleaved rounds of
    ``seconds`` per variant (and, with ``breakdown_repeats``, the cost of each piece of
    the signing path); the results as a JSON-ready dict."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    costs: dict[str, float] = {}
    try:
        token, session, bridge = create_token(workdir)
        public_key = public_key_of(session)
        with service(token) if "service" in variants else _nothing() as remote:
            steps = Steps(session, bridge, remote, token, batch)
            per_round: list[dict[str, float]] = []
            for index in range(rounds):
                # Rotate the order so that no variant always runs first or last.
                shift = index % len(variants)
                order = variants[shift:] + variants[:shift]
                # Each variant's time is spread over slices of SLICE_SECONDS, taken in
                # turn, so that a slow spell of the machine hits every variant alike.
                counts = dict.fromkeys(order, 0)
                times = dict.fromkeys(order, 0.0)
                for name in order:
                    prepare = steps.prepare(name)
                    getattr(steps, name)(prepare())  # warm-up: checkout, connection, caches
                for _ in range(max(1, round(seconds / SLICE_SECONDS))):
                    for name in order:
                        count, elapsed = measure(
                            getattr(steps, name), SLICE_SECONDS, steps.prepare(name)
                        )
                        counts[name] += count
                        times[name] += elapsed
                rates = {name: counts[name] / times[name] for name in order}
                for name in order:
                    digest, signature = steps.last[name]
                    verify(public_key, signature, digest)
                per_round.append(rates)
                if progress:
                    print(
                        f"round {index + 1}/{rounds}: "
                        + "  ".join(f"{n} {rates[n]:8.1f}/s" for n in variants),
                        file=sys.stderr,
                        flush=True,
                    )
        if breakdown_repeats:
            costs = breakdown(token, session, breakdown_repeats, batch)
        session.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {n: statistics.median(r[n] for r in per_round) for n in variants}
    ratios = {
        n: statistics.median(r[n] / r["raw"] for r in per_round) for n in variants if n != "raw"
    }
    result: dict[str, Any] = {
        "seconds_per_round": seconds,
        "rounds": rounds,
        "batch": batch,
        "sessions": 1,
        "key": "RSA-2048 (SoftHSM2), CKM_RSA_PKCS over a SHA-256 DigestInfo",
        "per_round": per_round,
        "median_rate": medians,
        "median_ratio": ratios,
        "targets": {n: TARGETS[n] for n in ratios},
        "meets_target": {n: ratios[n] >= TARGETS[n] for n in ratios},
    }
    if costs:
        result["breakdown_us_per_signature"] = costs
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def report(result: dict[str, Any]) -> str:
    """The human-readable table of a :func:`run` result."""
    labels = {
        "raw": "(a)  raw python-pkcs11, C_Sign loop",
        "bridge": "(b)  Bridge.sign, in-process",
        "bridge_batch": f"(b2) Bridge.sign_many, batches of {result['batch']}",
        "service": f"(c)  service over mTLS, batches of {result['batch']}",
    }
    lines = [
        f"{result['key']}; 1 session; {result['rounds']} rounds of "
        f"{result['seconds_per_round']:g} s per variant (medians)",
        "",
        f"{'variant':<44} {'sig/s':>9} {'ratio':>7} {'target':>8}",
    ]
    for name, rate in result["median_rate"].items():
        if name == "raw":
            lines.append(f"{labels[name]:<44} {rate:9.1f} {'1.000':>7} {'':>8}")
            continue
        ratio = result["median_ratio"][name]
        verdict = "ok" if result["meets_target"][name] else "MISSED"
        lines.append(
            f"{labels[name]:<44} {rate:9.1f} {ratio:7.3f} "
            f"{'>= ' + format(result['targets'][name], '.2f'):>8}  {verdict}"
        )
    costs = result.get("breakdown_us_per_signature")
    if costs:
        lines += ["", "where the time goes (median microseconds per signature):"]
        lines += [f"  {name:<60} {value:9.1f}" for name, value in costs.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=100, help="digests per sign_many batch")
    parser.add_argument(
        "--only",
        default=",".join(VARIANTS),
        help="comma-separated variants to run (raw is always run): " + ",".join(VARIANTS),
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--breakdown",
        type=int,
        default=0,
        metavar="N",
        help="also time each piece of the signing path, median of N repetitions",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args.serve)
    chosen = {v.strip() for v in args.only.split(",") if v.strip()} | {"raw"}
    unknown = chosen - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    variants = tuple(v for v in VARIANTS if v in chosen)
    result = run(
        args.seconds,
        args.rounds,
        args.batch,
        variants,
        progress=not args.json,
        breakdown_repeats=args.breakdown,
    )
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
