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
    ActivationVerifier,
    UsedActivationStore,
)
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import BridgeError, CredentialNotFound, PinRequired, TokenNotPresent
from hsm_bridge.interface import SignRequest
from hsm_bridge.inventory import CredentialEntry, TokenEntry, describe_token, list_credentials
from hsm_bridge.pins import PinStore
from hsm_bridge.provisioning import KeySpec, generate_key_pair, store_certificate
from hsm_bridge.signing import find_certificate, sign_digest
from hsm_bridge.tokens import PendingBatch, TokenHealth, TokenLimits, TokenPool

__all__ = ["Bridge", "BridgeConfig", "ModuleConfig", "SignRequest"]

log = logging.getLogger(__name__)


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
    (Fernet, urlsafe base64), the SAD key (32+ bytes) and the SQLite file that records
    used activations."""

    modules: tuple[ModuleConfig, ...]
    pin_file: Path
    pin_key: bytes
    activation_key: bytes
    used_activations_file: Path
    name: str = "local"


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
        reaches a token. The digests of one token (and one PIN) go to that token's worker
        in one hand-off; while the tokens sign, the activations are marked used in one
        durable transaction, and a signature leaves the bridge only when its activation
        was fresh (a concurrent replay gets ``activation_invalid``, reason ``reused``).
        Activations already recorded as used, or used twice in the batch, never reach a
        token; with a signer's PIN the activation is recorded *before* the token is
        touched, so one activation carries at most one PIN attempt.
        """
        instant = time.time() if now is None else now
        outcomes: list[bytes | BridgeError | None] = [None] * len(requests)
        activations: dict[int, Activation] = {}
        groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            try:
                activations[index] = self._verifier.check(
                    request.activation,
                    request.credential,
                    request.digest,
                    now=instant,
                    mechanism=request.mechanism.value,
                )
            except ActivationInvalid as exc:
                log.warning(
                    "refused a signature with credential %s: activation %s",
                    request.credential,
                    exc.reason,
                )
                outcomes[index] = exc
                continue
        # Replays never reach a token: nonces already recorded, and the second use of a
        # nonce within this batch, are refused before any C_Login or C_Sign.
        replayed = self._verifier.already_used(list(activations.values()))
        seen: set[str] = set()
        for index in sorted(activations):
            nonce = activations[index].nonce
            if nonce in replayed or nonce in seen:
                outcomes[index] = ActivationInvalid(
                    "the activation was already used", reason="reused"
                )
                del activations[index]
                continue
            seen.add(nonce)
            groups[(requests[index].credential.token_serial, requests[index].pin)].append(index)
        # A signer's PIN is tried only under an activation already recorded as used, so
        # one activation can never carry more than one PIN attempt.
        early = [i for i in sorted(activations) if requests[i].pin is not None]
        try:
            fresh_early = self._verifier.consume_many([activations[i] for i in early], now=instant)
        except Exception:
            log.exception("the used-activation store failed: no signature is made")
            return [
                o if o is not None else BridgeError("the activation store failed") for o in outcomes
            ]
        for index, fresh in zip(early, fresh_early, strict=True):
            if not fresh:
                outcomes[index] = ActivationInvalid(
                    "the activation was already used", reason="reused"
                )
                group = (requests[index].credential.token_serial, requests[index].pin)
                groups[group].remove(index)
        groups = {g: idx for g, idx in groups.items() if idx}
        pending = {
            group: self._start_on_token(group[0], group[1], [requests[i] for i in indexes])
            for group, indexes in groups.items()
        }
        order = [i for i in sorted(activations) if requests[i].pin is None]
        try:
            consumed = self._verifier.consume_many([activations[i] for i in order], now=instant)
        except Exception:
            log.exception("the used-activation store failed: no signature is released")
            for started in pending.values():  # let the workers finish and free the tokens
                if isinstance(started, PendingBatch):
                    started.outcomes()
            return [
                o if o is not None else BridgeError("the activation store failed") for o in outcomes
            ]
        fresh = dict(zip(order, consumed, strict=True))
        fresh.update(dict.fromkeys(early, True))  # the stale ones left their groups above
        for group, indexes in groups.items():
            started = pending[group]
            results = started.outcomes() if isinstance(started, PendingBatch) else started
            for index, result in zip(indexes, results, strict=True):
                if not fresh[index]:
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

    def _start_on_token(
        self, serial: str, pin: str | None, requests: list[SignRequest]
    ) -> PendingBatch | list[BridgeError]:
        try:
            if pin is None and not self._pins.has(serial):
                raise PinRequired("this credential's PIN policy is signer: the PIN is missing")
            pool = self._pool(serial)
        except BridgeError as exc:
            return [exc] * len(requests)

        def context_pin() -> str:
            return pin if pin is not None else self._pins.get(serial)

        def work(request: SignRequest) -> Callable[[Any], bytes]:
            return lambda session: sign_digest(
                session,
                request.credential.key_id,
                request.digest,
                request.mechanism,
                context_pin=context_pin,
                cache=pool.session_cache(session),
            )

        try:
            return pool.submit_many(serial, "sign", [work(r) for r in requests], pin=pin)
        except BridgeError as exc:
            return [exc] * len(requests)

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
