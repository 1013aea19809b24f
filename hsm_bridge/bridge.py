"""The in-process bridge: certificates and activated signatures by credential, over one or
more PKCS#11 modules loaded in this process (the embedded default transport).

It verifies the signature activation (SAD) itself, right before C_Sign, so that a caller
holding only the web tier's powers cannot make it sign a digest nobody approved
(DESIGN.md invariant 1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from hsm_bridge.activation import (
    Activation,
    ActivationInvalid,
    ActivationIssuer,
    ActivationVerifier,
    UsedActivationStore,
)
from hsm_bridge.authorization import AuthorizationRequest, SignatureActivationModule
from hsm_bridge.binding import verify_signing_input
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import (
    AuthorizationRefused,
    BatchAbandoned,
    BridgeError,
    CredentialNotFound,
    PinRequired,
    TokenNotPresent,
)
from hsm_bridge.interface import SignRequest
from hsm_bridge.inventory import CredentialEntry, TokenEntry, describe_token, list_credentials
from hsm_bridge.pins import PinStore
from hsm_bridge.provisioning import KeySpec, generate_key_pair, store_certificate
from hsm_bridge.signers import EnrolledDevice, EnrolmentCode, SignerRegistry, TotpPolicy
from hsm_bridge.signing import find_certificate, sign_digest
from hsm_bridge.tokens import PendingBatch, TokenHealth, TokenLimits, TokenPool

__all__ = ["Bridge", "BridgeConfig", "ModuleConfig", "SignRequest"]

log = logging.getLogger(__name__)

# Activations are checked in chunks (the first of one, so that the token starts at once,
# then of this many); each chunk's digests go to their token as soon as they are checked,
# so the token signs while the rest of the batch is being checked.
_CHECK_CHUNK = 8


@dataclass(frozen=True, slots=True)
class ModuleConfig:
    """One PKCS#11 module: the shared library's ``path``, the default per-token
    ``limits`` and per-serial overrides in ``token_limits``."""

    path: str
    limits: TokenLimits = TokenLimits()
    token_limits: dict[str, TokenLimits] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """What the bridge needs: its PKCS#11 modules, the encrypted PIN file and its key
    (Fernet, urlsafe base64, also used for the TOTP secrets of the signer registry),
    the SAD key (32+ bytes, the bridge's alone), the SQLite file that records used
    activations and the signer registry's SQLite file (by default ``signers.db``
    beside it). ``activation_ttl_seconds``: the life of a SAD and the furthest a device
    statement may expire; ``accept_totp``: whether a TOTP code may authorise signing
    (False: device approvals only); ``totp_policy``: the lockout."""

    modules: tuple[ModuleConfig, ...]
    pin_file: Path
    pin_key: bytes
    activation_key: bytes
    used_activations_file: Path
    name: str = "local"
    signers_file: Path | None = None
    activation_ttl_seconds: int = 300
    accept_totp: bool = True
    totp_policy: TotpPolicy = TotpPolicy()


class Bridge:
    """In-process bridge over the PKCS#11 modules of ``config``; tokens are found by
    serial number across all of them."""

    def __init__(self, config: BridgeConfig) -> None:
        if not config.modules:
            raise ValueError("the bridge needs at least one PKCS#11 module")
        self.name = config.name
        self._pins = PinStore(config.pin_file, config.pin_key)
        self._pools = [
            TokenPool(m.path, self._pins.get, limits=m.limits, token_limits=m.token_limits)
            for m in config.modules
        ]
        self._verifier = ActivationVerifier(
            config.activation_key, UsedActivationStore(config.used_activations_file)
        )
        self._owner: dict[str, TokenPool] = {}
        self._owner_lock = threading.Lock()
        signers_file = config.signers_file or config.used_activations_file.with_name("signers.db")
        self.registry = SignerRegistry(signers_file, config.pin_key, totp_policy=config.totp_policy)
        self._accept_totp = config.accept_totp
        self._sam = SignatureActivationModule(
            self.registry,
            ActivationIssuer(config.activation_key),
            self.certificate,
            activation_ttl_seconds=config.activation_ttl_seconds,
            accept_totp=config.accept_totp,
        )

    # ---- routing between modules --------------------------------------------------

    def _pool(self, token_serial: str) -> TokenPool:
        with self._owner_lock:
            pool = self._owner.get(token_serial)
        if pool is not None:
            return pool
        for candidate in self._pools:
            try:
                if candidate.holds(token_serial):
                    with self._owner_lock:
                        self._owner[token_serial] = candidate
                    return candidate
            except BridgeError as exc:
                log.warning("module %s does not answer: %s", candidate.module_path, exc.code)
        raise TokenNotPresent("no module of this bridge holds the token")

    def _run(self, token_serial: str, operation: str, work: Callable[[Any], Any]) -> Any:
        return self._pool(token_serial).run(token_serial, operation, work)

    # ---- inventory and health -----------------------------------------------------

    def health(self) -> list[TokenHealth]:
        """Every token seen by any module, with its state."""
        return [entry for pool in self._pools for entry in pool.health()]

    def inventory(self) -> list[TokenEntry]:
        """Every present token of every module with its flags and signature mechanisms."""
        return [
            describe_token(t, module=pool.module_path)
            for pool in self._pools
            for t in pool.tokens()
        ]

    def holds(self, token_serial: str) -> bool:
        """Whether a module of this bridge has a present token ``token_serial``."""
        try:
            self._pool(token_serial)
        except TokenNotPresent:
            return False
        return True

    def credentials(self, token_serial: str) -> list[CredentialEntry]:
        """The keys and certificates of one token (logs in with the stored PIN)."""
        result: list[CredentialEntry] = self._run(token_serial, "credentials", list_credentials)
        return result

    def certificate(self, credential: CredentialRef) -> bytes:
        """DER bytes of the credential's certificate, read from its token.

        Raises :class:`~hsm_bridge.errors.CredentialNotFound` or a token error."""
        der: bytes = self._run(
            credential.token_serial,
            "certificate",
            lambda session: find_certificate(session, credential.key_id),
        )
        return der

    # ---- signature activation (the gateway relays the signer's proof) --------------

    def authorize(
        self,
        request: AuthorizationRequest,
        *,
        token_serials: frozenset[str] | None = None,
        now: float | None = None,
    ) -> list[str | None]:
        """Verify the signer's proof and issue one SAD per item (see
        :meth:`~hsm_bridge.authorization.SignatureActivationModule.authorize`); raises
        :class:`~hsm_bridge.errors.AuthorizationRefused`."""
        instant = time.time() if now is None else now
        return self._sam.authorize(request, now=instant, token_serials=token_serials)

    def enrol_device(self, code_id: str, public_key_der: bytes, proof: bytes) -> EnrolledDevice:
        """Register a device key with a bridge-issued enrolment code and the code's HMAC
        over the key (:func:`~hsm_bridge.signers.enrolment_proof`)."""
        return self.registry.enrol_device(code_id, public_key_der, proof, now=time.time())

    def revoke_device(self, device_id: str) -> bool:
        """Revoke a device key at once; False when this bridge never knew it."""
        return self.registry.revoke_device(device_id, now=time.time())

    def enrolment_code(self, signer: str, otp: str, *, ttl_seconds: int) -> EnrolmentCode:
        """A device enrolment code for ``signer``, who proves presence with a TOTP code
        the bridge checks itself (refused with ``totp_not_accepted`` when this bridge
        takes device approvals only: then codes come from the bridge host's CLI; with
        ``signer_unknown`` when the signer may use none of this bridge's credentials)."""
        if not self._accept_totp:
            raise AuthorizationRefused(
                "enrolment codes come from the bridge host's administrator",
                reason="totp_not_accepted",
            )
        if not self.registry.credentials_of(signer):
            raise AuthorizationRefused(
                "this bridge lets the signer use no credential", reason="signer_unknown"
            )
        now = time.time()
        self.registry.check_totp(signer, otp, now=now)
        return self.registry.issue_enrolment_code(signer, now=now, ttl_seconds=ttl_seconds)

    def check_totp(self, signer: str, otp: str) -> None:
        """Accept ``signer``'s TOTP code once (a rejection, which signs nothing, still
        needs the signer's presence); raises AuthorizationRefused with a ``totp_*``
        reason."""
        self.registry.check_totp(signer, otp, now=time.time())

    def begin_totp_enrolment(self, signer: str, secret: str, current_otp: str | None) -> None:
        """Keep a new TOTP secret pending for ``signer`` (a code of the current one is
        needed when there is one)."""
        self.registry.begin_totp_enrolment(signer, secret, current_otp, now=time.time())

    def confirm_totp_enrolment(self, signer: str, otp: str) -> None:
        """Activate the pending TOTP secret with a first code from it."""
        self.registry.confirm_totp_enrolment(signer, otp, now=time.time())

    # ---- signing ------------------------------------------------------------------

    def sign(self, request: SignRequest, *, now: float | None = None) -> bytes:
        """Verify and consume the request's activation, then sign its digest on the token.

        Returns the signature bytes (RSA: modulus length; ECDSA: DER). ``now`` is POSIX
        seconds (defaults to the clock). Raises
        :class:`~hsm_bridge.errors.ActivationInvalid` before touching the token when
        the activation does not authorise exactly this credential and digest;
        :class:`~hsm_bridge.errors.PinRequired` when the token has no stored PIN and the
        request carries none; PIN and token errors as
        :class:`~hsm_bridge.errors.BridgeError` subclasses.
        """
        outcome = self.sign_many([request], now=now)[0]
        if isinstance(outcome, BridgeError):
            raise outcome
        return outcome

    def sign_many(
        self, requests: Sequence[SignRequest], *, now: float | None = None
    ) -> list[bytes | BridgeError]:
        """:meth:`sign` for each request; one signature or error per request, in order.

        Every activation is checked (MAC, expiry, credential, digest) before its digest
        reaches a token. The digests of one token go to one batch on that token's worker,
        a few at a time as they are checked, so the token starts signing while the rest
        is still being checked; while the tokens sign, the activations are marked used in one
        durable transaction, and a signature leaves the bridge only when its activation
        was fresh (a concurrent replay gets ``activation_invalid``, reason ``reused``).
        Activations already recorded as used, or used twice in the batch, never reach a
        token; with a signer's PIN the activation is recorded *before* the token is
        touched, so one activation carries at most one PIN attempt.
        """
        instant = time.time() if now is None else now
        outcomes: list[bytes | BridgeError | None] = [None] * len(requests)
        activations: dict[int, Activation] = {}
        digests: dict[int, bytes] = {}
        seen: set[str] = set()
        # pooled (stored-PIN) work, one batch per token, fed while the rest is checked
        batches: dict[tuple[str, str | None], PendingBatch | BridgeError] = {}
        members: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        # signer-PIN work, per (token, PIN): started only after its activations are used
        signer: dict[tuple[str, str], list[int]] = defaultdict(list)
        try:
            bounds = [0, *range(1, len(requests), _CHECK_CHUNK), len(requests)]
            for start, stop in zip(bounds, bounds[1:], strict=False):
                checked = []
                for index in range(start, stop):
                    request = requests[index]
                    try:
                        activations[index] = self._verifier.check(
                            request.activation,
                            request.credential,
                            request.digest,
                            now=instant,
                            mechanism=request.mechanism.value,
                        )
                        digests[index] = _digest_to_sign(request, activations[index])
                    except ActivationInvalid as exc:
                        log.warning(
                            "refused a signature with credential %s: activation %s",
                            request.credential,
                            exc.reason,
                        )
                        outcomes[index] = exc
                        continue
                    checked.append(index)
                # Replays never reach a token: nonces already recorded, and the second
                # use of a nonce within this batch, are refused before C_Login or C_Sign.
                replayed = self._verifier.already_used([activations[i] for i in checked])
                for index in checked:
                    nonce = activations[index].nonce
                    if nonce in replayed or nonce in seen:
                        outcomes[index] = ActivationInvalid(
                            "the activation was already used", reason="reused"
                        )
                        del activations[index]
                        continue
                    seen.add(nonce)
                    request = requests[index]
                    serial = request.credential.token_serial
                    if request.pin is not None:
                        signer[(serial, request.pin)].append(index)
                        continue
                    if (serial, None) not in batches:
                        batches[(serial, None)] = self._open_on_token(serial, None)
                    batch = batches[(serial, None)]
                    if isinstance(batch, PendingBatch):
                        batch.add(self._signature_work(serial, None, request, digests[index]))
                    members[(serial, None)].append(index)
        finally:
            for batch in batches.values():
                if isinstance(batch, PendingBatch):
                    batch.close()  # the worker finishes what it has; never left waiting
        pooled = [i for indexes in members.values() for i in indexes]
        early = [i for indexes in signer.values() for i in indexes]
        try:
            # A signer's PIN is tried only under an activation already recorded as used,
            # so one activation can never carry more than one PIN attempt.
            fresh_early = self._verifier.consume_many([activations[i] for i in early], now=instant)
            for index, fresh in zip(early, fresh_early, strict=True):
                if not fresh:
                    outcomes[index] = ActivationInvalid(
                        "the activation was already used", reason="reused"
                    )
                    group = (requests[index].credential.token_serial, requests[index].pin)
                    signer[group].remove(index)
            for (serial, pin), indexes in signer.items():
                if indexes:
                    batch = self._open_on_token(serial, pin)
                    if isinstance(batch, PendingBatch):
                        for i in indexes:
                            batch.add(self._signature_work(serial, pin, requests[i], digests[i]))
                        batch.close()
                    batches[(serial, pin)] = batch
                    members[(serial, pin)] = indexes
            # The pooled signatures are being made meanwhile.
            consumed = self._verifier.consume_many([activations[i] for i in pooled], now=instant)
        except Exception:
            log.exception("the used-activation store failed: no signature is released")
            for batch in batches.values():  # let the workers finish and free the tokens
                if isinstance(batch, PendingBatch):
                    batch.outcomes()
            return [
                o if o is not None else BridgeError("the activation store failed") for o in outcomes
            ]
        fresh = dict(zip(pooled, consumed, strict=True))
        for (serial, pin), batch in batches.items():
            indexes = members[(serial, pin)]
            if isinstance(batch, PendingBatch):
                results: list[Any] = self._requeue_abandoned(
                    serial,
                    pin,
                    [requests[i] for i in indexes],
                    [digests[i] for i in indexes],
                    batch.outcomes(),
                )
            else:
                results = [batch] * len(indexes)
            for index, result in zip(indexes, results, strict=True):
                if not fresh.get(index, True):
                    outcomes[index] = ActivationInvalid(
                        "the activation was already used", reason="reused"
                    )
                    continue
                outcomes[index] = result
                if isinstance(result, bytes):
                    log.info(
                        "signed a digest with credential %s for %s",
                        requests[index].credential,
                        activations[index].subject,
                    )
        return [o if o is not None else BridgeError("not signed") for o in outcomes]

    def _requeue_abandoned(
        self,
        serial: str,
        pin: str | None,
        requests: list[SignRequest],
        digests: list[bytes],
        results: list[Any],
    ) -> list[Any]:
        """Items a worker gave up on (their batch stalled between adds) never reached the
        token, and their activations are recorded as used by now: sign them in one batch
        filled at once rather than lose them."""
        again = [k for k, result in enumerate(results) if isinstance(result, BatchAbandoned)]
        if not again:
            return results
        log.warning("token %s: %d items of a stalled batch are queued again", serial, len(again))
        retry = self._open_on_token(serial, pin)
        if isinstance(retry, BridgeError):
            retried: list[Any] = [retry] * len(again)
        else:
            for k in again:
                retry.add(self._signature_work(serial, pin, requests[k], digests[k]))
            retried = retry.outcomes()
        merged = list(results)
        for k, result in zip(again, retried, strict=True):
            merged[k] = result
        return merged

    def _open_on_token(self, serial: str, pin: str | None) -> PendingBatch | BridgeError:
        """A batch queued for the token's workers, or the error that prevents it."""
        try:
            if pin is None and not self._pins.has(serial):
                raise PinRequired("this credential's PIN policy is signer: the PIN is missing")
            return self._pool(serial).open_batch(serial, "sign", pin=pin)
        except BridgeError as exc:
            return exc

    def _signature_work(
        self, serial: str, pin: str | None, request: SignRequest, digest: bytes
    ) -> Callable[[Any], bytes]:
        pool = self._pool(serial)

        def context_pin() -> str:
            return pin if pin is not None else self._pins.get(serial)

        return lambda session: sign_digest(
            session,
            request.credential.key_id,
            digest,
            request.mechanism,
            context_pin=context_pin,
            cache=pool.session_cache(session),
        )

    # ---- provisioning (the installation's own tokens) -----------------------------

    def provision(
        self,
        token_serial: str,
        spec: KeySpec,
        key_id: bytes,
        label: str,
        certify: Callable[[PublicKeyTypes], x509.Certificate],
        *,
        always_authenticate: bool = False,
    ) -> bytes:
        """Generate a key pair inside the token (C_GenerateKeyPair), have ``certify``
        issue a certificate for its public key, store that certificate beside the key
        under the same CKA_ID, and return the certificate's DER bytes. Idempotent per
        CKA_ID: when a certificate with ``key_id`` is already there, it is returned.
        ``always_authenticate`` sets CKA_ALWAYS_AUTHENTICATE on the private key."""

        def work(session: Any) -> bytes:
            try:
                return find_certificate(session, key_id)
            except CredentialNotFound:
                pass
            public_key = generate_key_pair(
                session, spec, key_id, label, always_authenticate=always_authenticate
            )
            certificate = certify(public_key)
            store_certificate(session, certificate, key_id, label)
            return certificate.public_bytes(Encoding.DER)

        der: bytes = self._run(token_serial, "provision", work)
        return der


def _digest_to_sign(request: SignRequest, activation: Activation) -> bytes:
    """The digest the token signs: for an activation bound to a document, derived by the
    bridge from the request's signing input after checking it against the approved
    document (:func:`~hsm_bridge.binding.verify_signing_input`); for one bound to a
    digest, that digest. Raises ActivationInvalid."""
    if activation.document is None:
        assert request.digest is not None  # check() matched it against the activation
        return request.digest
    signing_input = request.signing_input
    if signing_input is None:
        raise ActivationInvalid(
            "this activation covers a document: send the prepared PDF and signed attributes",
            reason="signing_input_missing",
        )
    return verify_signing_input(
        signing_input.prepared_pdf,
        signing_input.original_length,
        signing_input.signed_attributes,
        document_sha256=activation.document,
        parameters=activation.parameters,
    )
