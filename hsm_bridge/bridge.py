"""The in-process bridge: over one or more PKCS#11 modules loaded in this process, it
holds the signers' records, decides approvals (its signature activation module) and
builds and makes the signatures they authorise (the embedded default transport; the
same object serves ``bridge serve`` on a secure host).

It builds what it signs (docs/design.md invariant 1): a caller holding only the web tier's
powers can hand it documents and SADs, never bytes to sign; the SAD names the approved
document, parameters, certificate and mechanism, and is spent before anything is built.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, ObjectClass
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper

from hsm_bridge.clock import Clock, utcnow
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import (
    ActivationInvalid,
    BridgeError,
    CredentialNotFound,
    PinRequired,
    RefusalReason,
    TokenNotPresent,
)
from hsm_bridge.interface import OnSigned, PasskeyOptions, SignRequest
from hsm_bridge.pades.chain import issuer_chain, load_ca_file
from hsm_bridge.pkcs11.inventory import (
    CredentialEntry,
    TokenEntry,
    describe_token,
    list_credentials,
)
from hsm_bridge.pkcs11.pins import PinStore
from hsm_bridge.pkcs11.provisioning import KeySpec, generate_key_pair, store_certificate
from hsm_bridge.pkcs11.signing import find_certificate, sign_digest
from hsm_bridge.pkcs11.tokens import TokenHealth, TokenLimits, TokenPool
from hsm_bridge.revocation import RevocationCache, RevocationChecker, RevocationEvidence
from hsm_bridge.sam.activation import (
    Activation,
    ActivationIssuer,
    ActivationVerifier,
    SpentActivations,
)
from hsm_bridge.sam.authorization import (
    AuthorizationRequest,
    Factor,
    PasskeyAuthorisation,
    Profile,
    SignatureActivationModule,
)
from hsm_bridge.sam.passkeys import RelyingParty
from hsm_bridge.sam.pin_envelope import PinEnvelopeKey
from hsm_bridge.sam.signers import (
    DeviceRecord,
    EnrolledDevice,
    EnrolmentCode,
    SignerRegistry,
    TotpPolicy,
)
from hsm_bridge.signature_step import SignatureStep, TokenReads

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
    (Fernet, urlsafe base64, also used for the TOTP secrets of the signer registry),
    the SAD key (32+ bytes, the bridge's alone), the SQLite file of spent SADs and the
    signer registry's SQLite file (by default ``signers.db`` beside it).
    ``activation_ttl_seconds``: the life of a SAD and the furthest a device statement
    may expire; ``profile``: what approves (:class:`~hsm_bridge.sam.authorization.Profile`);
    ``max_batch``: the most SADs one approval yields; ``totp_policy``: the lockout;
    ``ca_certificates_file``: a PEM bundle of CA certificates for chains the tokens do
    not hold; ``pin_envelope_key_file``: the HPKE key tablets seal PINs to (made on
    first use; by default ``pin-envelope-key.pem`` beside the SAD file); ``tsa_url``:
    the RFC 3161 TSA for PAdES B-T and above; ``relying_party``: the WebAuthn RP whose
    passkeys approve (:mod:`hsm_bridge.sam.passkeys`); ``trust_anchors_file``: the PEM
    bundle of root certificates a signer's certificate must chain to;
    ``check_revocation``: ask the CA (OCSP, then CRL) right before every authorization
    and signature, and refuse when it says revoked or gives no answer (fail closed),
    each request bounded by ``revocation_timeout_seconds``, an answer reused for at most
    ``revocation_cache_seconds`` (:mod:`hsm_bridge.revocation`)."""

    modules: tuple[ModuleConfig, ...]
    pin_file: Path
    pin_key: bytes
    activation_key: bytes
    used_activations_file: Path
    name: str = "local"
    signers_file: Path | None = None
    activation_ttl_seconds: int = 300
    profile: Profile = Profile.EMBEDDED
    max_batch: int = 50
    totp_policy: TotpPolicy = TotpPolicy()
    ca_certificates_file: Path | None = None
    pin_envelope_key_file: Path | None = None
    tsa_url: str | None = None
    relying_party: RelyingParty = RelyingParty()
    trust_anchors_file: Path | None = None
    check_revocation: bool = True
    revocation_timeout_seconds: float = 5.0
    revocation_cache_seconds: float = 30.0


class Bridge:
    """In-process bridge over the PKCS#11 modules of ``config``; tokens are found by
    serial number across all of them. ``clock`` returns aware UTC now (injected in
    tests; the signing time and every check use it)."""

    def __init__(self, config: BridgeConfig, *, clock: Clock = utcnow) -> None:
        if not config.modules:
            raise ValueError("the bridge needs at least one PKCS#11 module")
        self.name = config.name
        self.clock = clock
        self._pins = PinStore(config.pin_file, config.pin_key)
        self._pools = [
            TokenPool(m.path, self._pins.get, limits=m.limits, token_limits=m.token_limits)
            for m in config.modules
        ]
        self._verifier = ActivationVerifier(
            config.activation_key, SpentActivations(config.used_activations_file)
        )
        self._owner: dict[str, TokenPool] = {}
        self._owner_lock = threading.Lock()
        self._ca_certificates = load_ca_file(config.ca_certificates_file)
        self._revocation = (
            RevocationChecker(
                load_ca_file(config.trust_anchors_file),
                timeout_seconds=config.revocation_timeout_seconds,
                cache=RevocationCache(dt.timedelta(seconds=config.revocation_cache_seconds)),
            )
            if config.check_revocation
            else None
        )
        signers_file = config.signers_file or config.used_activations_file.with_name("signers.db")
        self.registry = SignerRegistry(signers_file, config.pin_key, totp_policy=config.totp_policy)
        self.sam = SignatureActivationModule(
            self.registry,
            ActivationIssuer(config.activation_key),
            self.certificate,
            activation_ttl_seconds=config.activation_ttl_seconds,
            profile=config.profile,
            max_items=config.max_batch,
            relying_party=config.relying_party,
            certificate_check=self.check_certificate,
        )
        envelope_file = config.pin_envelope_key_file or config.used_activations_file.with_name(
            "pin-envelope-key.pem"
        )
        self._envelope_key = PinEnvelopeKey(envelope_file)
        tsa_url = config.tsa_url
        self._step = SignatureStep(
            tokens=self,
            registry=self.registry,
            envelope_key=self._envelope_key,
            ca_certificates=self._ca_certificates,
            timestamper=(
                (lambda: HTTPTimeStamper(tsa_url, timeout=10)) if tsa_url else _no_timestamper
            ),
            check_certificate=self.check_certificate,
            trust_anchors=load_ca_file(config.trust_anchors_file),
            fetch_timeout_seconds=config.revocation_timeout_seconds,
        )

    @property
    def profile(self) -> Profile:
        """What this bridge accepts as an approval."""
        return self.sam.profile

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

    def credential_status(self, credential: CredentialRef) -> CredentialEntry:
        """The inventory entry of one credential; CredentialNotFound when its token has
        no key with that CKA_ID."""
        for entry in self.credentials(credential.token_serial):
            if entry.key_id == credential.key_id.hex():
                return entry
        raise CredentialNotFound("no private key with this CKA_ID on the token")

    def certificate(self, credential: CredentialRef) -> bytes:
        """DER bytes of the credential's certificate, read from its token.

        Raises :class:`~hsm_bridge.errors.CredentialNotFound` or a token error."""
        der: bytes = self._run(
            credential.token_serial,
            "certificate",
            lambda session: find_certificate(session, credential.key_id),
        )
        return der

    def token_certificates(self, token_serial: str) -> tuple[bytes, ...]:
        """Every certificate (DER) stored on the token (CKO_CERTIFICATE objects)."""

        def work(session: Any) -> tuple[bytes, ...]:
            objects = session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
            return tuple(bytes(obj[Attribute.VALUE]) for obj in objects)

        found: tuple[bytes, ...] = self._run(token_serial, "certificate", work)
        return found

    def check_certificate(
        self, credential: CredentialRef, certificate: bytes, now: dt.datetime
    ) -> RevocationEvidence:
        """Whether ``credential``'s ``certificate`` (DER) chains to a trust anchor and is
        not revoked at ``now``, asked of its CA (:mod:`hsm_bridge.revocation`); the CA's
        answers. Raises CertificateRevoked, RevocationUnavailable, CertificateNotUsable.
        Answers nothing and checks nothing when ``check_revocation`` is off."""
        if self._revocation is None:
            return RevocationEvidence()
        candidates = (*self.token_certificates(credential.token_serial), *self._ca_certificates)
        chain = issuer_chain(certificate, candidates)
        return self._revocation.check(certificate, chain, now)

    def pin_key(self, token_serial: str) -> bytes:
        """The HPKE public key (65-byte uncompressed P-256 point) tablets seal a token PIN
        to (:mod:`hsm_bridge.sam.pin_envelope`); one per bridge."""
        return self._envelope_key.public_point

    # ---- signature activation (the gateway relays the signer's factor) -------------

    def authorize(
        self, request: AuthorizationRequest, *, token_serials: frozenset[str] | None = None
    ) -> list[str | None]:
        """Verify the signer's factor and issue one SAD per item (see
        :meth:`~hsm_bridge.sam.authorization.SignatureActivationModule.authorize`); raises
        :class:`~hsm_bridge.errors.AuthorizationRefused`."""
        return self.sam.authorize(request, now=self.clock(), token_serials=token_serials)

    def enrol_device(
        self, code_id: str, public_key_der: bytes, proof: bytes, *, kind: str = "device_key"
    ) -> EnrolledDevice:
        """Register a device key with a bridge-issued enrolment code and the code's HMAC
        over the key (:func:`~hsm_bridge.sam.signers.enrolment_proof`)."""
        return self.registry.enrol_device(
            code_id, public_key_der, proof, now=self.clock(), kind=kind
        )

    def passkey_options(self, signer: str, display_name: str) -> PasskeyOptions:
        """A registration challenge and the browser's creation options for a passkey
        of ``signer`` (:meth:`SignatureActivationModule.passkey_options`)."""
        challenge_id, options = self.sam.passkey_options(signer, display_name, now=self.clock())
        return PasskeyOptions(challenge_id, options)

    def enrol_passkey(
        self, challenge_id: str, response: Mapping[str, Any], authorisation: PasskeyAuthorisation
    ) -> EnrolledDevice:
        """Register a passkey (:meth:`SignatureActivationModule.enrol_passkey`)."""
        return self.sam.enrol_passkey(challenge_id, response, authorisation, now=self.clock())

    def devices(self, signer: str) -> list[DeviceRecord]:
        """The devices this bridge holds for ``signer``, revoked ones included."""
        return self.registry.devices(signer)

    def revoke_device(self, signer: str, device_id: str, factor: Factor) -> bool:
        """Revoke one of ``signer``'s devices with the signer's own factor (see
        :meth:`~hsm_bridge.sam.authorization.SignatureActivationModule.revoke_device`)."""
        return self.sam.revoke_device(signer, device_id, factor, now=self.clock())

    def enrolment_code(
        self, signer: str, factor: Factor, *, ttl_seconds: int, recipient: str | None = None
    ) -> EnrolmentCode:
        """A device enrolment code for ``signer``, on the signer's own factor the bridge
        checks itself: an enrolled device's signed statement, or a TOTP code where TOTP
        approves (see
        :meth:`~hsm_bridge.sam.authorization.SignatureActivationModule.enrolment_code`)."""
        return self.sam.enrolment_code(
            signer, factor, now=self.clock(), ttl_seconds=ttl_seconds, recipient=recipient
        )

    def check_totp(self, signer: str, otp: str) -> None:
        """Accept ``signer``'s TOTP code once (a rejection, which signs nothing, still
        needs the signer's presence); raises AuthorizationRefused with a ``totp_*``
        reason."""
        self.registry.check_totp(signer, otp, now=self.clock())

    def begin_totp_enrolment(
        self,
        signer: str,
        secret: str,
        *,
        current_otp: str | None = None,
        code_id: str | None = None,
        code_proof: bytes | None = None,
    ) -> None:
        """Keep a new TOTP secret pending for ``signer`` (see
        :meth:`~hsm_bridge.sam.signers.SignerRegistry.begin_totp_enrolment`)."""
        self.registry.begin_totp_enrolment(
            signer,
            secret,
            now=self.clock(),
            current_otp=current_otp,
            code_id=code_id,
            code_proof=code_proof,
        )

    def confirm_totp_enrolment(self, signer: str, otp: str) -> None:
        """Activate the pending TOTP secret with a first code from it."""
        self.registry.confirm_totp_enrolment(signer, otp, now=self.clock())

    # ---- signing ------------------------------------------------------------------

    def sign(self, request: SignRequest) -> bytes:
        """:meth:`sign_many` for one request; the signed PDF, or its error raised."""
        outcome = self.sign_many([request])[0]
        if isinstance(outcome, BridgeError):
            raise outcome
        return outcome

    def sign_many(
        self, requests: Sequence[SignRequest], on_signed: OnSigned | None = None
    ) -> list[bytes | BridgeError]:
        """Build and sign each request's approved document; one signed PDF (the document
        followed by one incremental update) or error per request, in order.

        First every SAD is read and checked (MAC, expiry, credential, mechanism); then
        all that hold are spent in one durable transaction, before anything is built,
        so that each is used once whatever happens next (a replay, or one SAD twice in
        the batch, gets ``activation_invalid`` ``reused``); then each spent one goes
        through :class:`~hsm_bridge.signature_step.SignatureStep`, at the bridge's
        clock, its errors kept per item; ``on_signed`` hears of each signed PDF as it is
        built."""
        now = self.clock()
        outcomes: list[bytes | BridgeError | None] = [None] * len(requests)
        checked: dict[int, Activation] = {}
        for index, request in enumerate(requests):
            try:
                checked[index] = self._verifier.check(
                    request.activation,
                    request.credential,
                    request.mechanism.value,
                    now=now,
                )
            except ActivationInvalid as exc:
                log.warning(
                    "refused a signature with %s: activation %s", request.credential, exc.reason
                )
                outcomes[index] = exc
        order = list(checked)
        fresh = self._verifier.spend([checked[i] for i in order], now=now)
        for index, unused in zip(order, fresh, strict=True):
            if not unused:
                outcomes[index] = ActivationInvalid(
                    "the activation was already used", reason=RefusalReason.REUSED
                )
                del checked[index]
        reads = TokenReads()  # each certificate read from its token once for the batch
        for index, activation in checked.items():
            outcome = self._sign_one(requests[index], activation, now, reads)
            outcomes[index] = outcome
            if on_signed is not None and isinstance(outcome, bytes):
                on_signed(index, outcome)
        return [o if o is not None else BridgeError("not signed") for o in outcomes]

    def _sign_one(
        self, request: SignRequest, activation: Activation, now: dt.datetime, reads: TokenReads
    ) -> bytes | BridgeError:
        try:
            signed = self._step.run(request, activation, now, reads)
        except BridgeError as exc:
            log.warning("signature for %s refused or failed: %s", activation.subject, exc.code)
            return exc
        log.info("signed %s with credential %s", activation.subject, request.credential)
        return signed

    def sign_digest(
        self,
        credential: CredentialRef,
        mechanism: SignatureMechanism,
        digest: bytes,
        pin: str | None,
    ) -> bytes:
        """The token's raw signature of a 32-byte SHA-256 ``digest`` (C_SignInit +
        C_Sign, :func:`~hsm_bridge.pkcs11.signing.sign_digest`): with the signer's ``pin`` on
        a fresh session, or with the stored PIN on a pooled one. Only the signature
        step calls it, under a spent SAD: the bridge's network API offers no way to it.
        Raises :class:`~hsm_bridge.errors.PinRequired` when the token has no stored PIN
        and none is given, and token errors."""
        serial = credential.token_serial
        if pin is None and not self._pins.has(serial):
            raise PinRequired("this credential's PIN policy is signer: the PIN is missing")
        pool = self._pool(serial)

        def context_pin() -> str:
            return pin if pin is not None else self._pins.get(serial)

        def work(session: Any) -> bytes:
            return sign_digest(
                session,
                credential.key_id,
                digest,
                mechanism,
                context_pin=context_pin,
                cache=pool.session_cache(session),
            )

        signature: bytes = pool.run(serial, "sign", work, pin=pin)
        return signature

    # ---- provisioning (the installation's own tokens) -----------------------------

    def provision(
        self,
        token_serial: str,
        spec: KeySpec,
        key_id: bytes,
        label: str,
        certify: Callable[[CertificatePublicKeyTypes], x509.Certificate],
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


def _no_timestamper() -> TimeStamper | None:
    return None
