"""Routing each credential to the bridge that holds its token.

A gateway may use several bridges (the in-process one and services on secure hosts).
The router asks them which holds a token serial, remembers the answer, and asks again
when the token is reported absent (a token moved to another host).

Each bridge keeps its own signer records: a device is enrolled at the bridge that
issued its enrolment code (the one binding the signer to a credential), and an
authorization is checked by every bridge holding one of the batch's tokens. A signer's
TOTP secret lives on the first bridge only (in configuration order: the in-process one
where there is one), so that it has one failure count and one last-used step; a TOTP
code approves only there, and only in the embedded profile.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import AuthorizationRefused, BridgeError, RefusalReason, TokenNotPresent
from hsm_bridge.interface import BridgeClient, OnSigned, PasskeyOptions, SignRequest
from hsm_bridge.pkcs11.inventory import CredentialEntry, TokenEntry
from hsm_bridge.pkcs11.tokens import TokenHealth
from hsm_bridge.sam.authorization import (
    AuthorizationRequest,
    Factor,
    PasskeyAuthorisation,
    TotpFactor,
)
from hsm_bridge.sam.signers import DeviceRecord, EnrolledDevice, EnrolmentCode

__all__ = ["BridgeRouter"]

log = logging.getLogger(__name__)


class BridgeRouter:
    """A :class:`~hsm_bridge.interface.BridgeClient` over several bridges (``bridges``,
    each with a distinct ``name``), routing by token serial."""

    name = "router"

    def __init__(self, bridges: Sequence[BridgeClient]) -> None:
        if not bridges:
            raise ValueError("the router needs at least one bridge")
        names = [b.name for b in bridges]
        if len(set(names)) != len(names):
            raise ValueError(f"bridge names must be distinct: {names}")
        self.bridges = list(bridges)
        self._owner: dict[str, BridgeClient] = {}
        self._lock = threading.Lock()

    def bridge_for(self, token_serial: str) -> BridgeClient:
        """The bridge holding ``token_serial``; :class:`TokenNotPresent` when none does
        (unreachable bridges are skipped and logged)."""
        with self._lock:
            owner = self._owner.get(token_serial)
        if owner is not None:
            return owner
        for bridge in self.bridges:
            try:
                if bridge.holds(token_serial):
                    with self._lock:
                        self._owner[token_serial] = bridge
                    return bridge
            except BridgeError as exc:
                log.warning("bridge %s did not answer: %s", bridge.name, exc.code)
        raise TokenNotPresent("no bridge holds the token")

    def _forget(self, token_serial: str) -> None:
        with self._lock:
            self._owner.pop(token_serial, None)

    def health(self) -> list[TokenHealth]:
        """The tokens of every reachable bridge (an unreachable one is logged)."""
        found: list[TokenHealth] = []
        for bridge in self.bridges:
            try:
                found.extend(bridge.health())
            except BridgeError as exc:
                log.warning("bridge %s did not answer: %s", bridge.name, exc.code)
        return found

    def unreachable(self) -> list[str]:
        """Names of the bridges that do not answer a health request now."""
        down = []
        for bridge in self.bridges:
            try:
                bridge.health()
            except BridgeError:
                down.append(bridge.name)
        return down

    def inventory(self) -> list[TokenEntry]:
        """The present tokens of every bridge that lists them to this process (a bridge
        on a secure host lists its own to its administrator)."""
        found: list[TokenEntry] = []
        for bridge in self.bridges:
            try:
                found.extend(bridge.inventory())
            except BridgeError as exc:
                log.info("bridge %s lists no tokens here: %s", bridge.name, exc.code)
        return found

    def holds(self, token_serial: str) -> bool:
        """Whether any bridge holds ``token_serial``."""
        try:
            self.bridge_for(token_serial)
        except TokenNotPresent:
            return False
        return True

    def credentials(self, token_serial: str) -> list[CredentialEntry]:
        """The keys and certificates of one token, from the bridge that holds it."""
        return self.bridge_for(token_serial).credentials(token_serial)

    def credential_status(self, credential: CredentialRef) -> CredentialEntry:
        """One credential's inventory entry, from the bridge that holds its token."""
        return self.bridge_for(credential.token_serial).credential_status(credential)

    def pin_key(self, token_serial: str) -> bytes:
        """The HPKE key of the bridge holding ``token_serial``: a PIN is sealed to it."""
        return self.bridge_for(token_serial).pin_key(token_serial)

    def certificate(self, credential: CredentialRef) -> bytes:
        """The credential's certificate (DER), from the bridge that holds its token."""
        try:
            return self.bridge_for(credential.token_serial).certificate(credential)
        except TokenNotPresent:
            self._forget(credential.token_serial)
            raise

    def authorize(
        self, request: AuthorizationRequest, *, token_serials: frozenset[str] | None = None
    ) -> list[str | None]:
        """Each bridge holding one of the batch's tokens checks the proof and issues the
        SADs for its own tokens; one SAD per item, in order. Raises the first refusal."""
        wanted = {
            item.credential.token_serial
            for item in request.items
            if token_serials is None or item.credential.token_serial in token_serials
        }
        serials: dict[str, set[str]] = defaultdict(set)
        by_name: dict[str, BridgeClient] = {}
        for serial in wanted:
            bridge = self.bridge_for(serial)
            by_name[bridge.name] = bridge
            serials[bridge.name].add(serial)
        activations: list[str | None] = [None] * len(request.items)
        for name, held in serials.items():
            issued = by_name[name].authorize(request, token_serials=frozenset(held))
            for index, sad in enumerate(issued):
                if sad is not None:
                    activations[index] = sad
        return activations

    def passkey_options(self, signer: str, display_name: str) -> PasskeyOptions:
        """Open the registration at the first bridge (as TOTP: a signer whose keys are
        on several hosts enrols a passkey at each, with each host's code)."""
        return self.bridges[0].passkey_options(signer, display_name)

    def enrol_passkey(
        self, challenge_id: str, response: Mapping[str, Any], authorisation: PasskeyAuthorisation
    ) -> EnrolledDevice:
        """Enrol at the bridge that issued the challenge (the others do not know it)."""
        refusal: BridgeError | None = None
        for bridge in self.bridges:
            try:
                return bridge.enrol_passkey(challenge_id, response, authorisation)
            except BridgeError as exc:
                if refusal is None or getattr(refusal, "reason", None) == "challenge_invalid":
                    refusal = exc
        assert refusal is not None
        raise refusal

    def enrol_device(
        self, code_id: str, public_key_der: bytes, proof: bytes, *, kind: str = "device_key"
    ) -> EnrolledDevice:
        """Enrol at the bridge that issued the code (the others do not know it)."""
        refusal: BridgeError | None = None
        for bridge in self.bridges:
            try:
                return bridge.enrol_device(code_id, public_key_der, proof, kind=kind)
            except BridgeError as exc:
                # "unknown code" from a bridge that did not issue it says the least
                if refusal is None or getattr(refusal, "reason", None) == "enrolment_code_invalid":
                    refusal = exc
        assert refusal is not None
        raise refusal

    def devices(self, signer: str) -> list[DeviceRecord]:
        """The signer's devices at every bridge, each device once (the same key has the
        same id everywhere; revoked if any bridge revoked it)."""
        found: dict[str, DeviceRecord] = {}
        for bridge in self.bridges:
            for device in bridge.devices(signer):
                known = found.get(device.device_id)
                if known is None or (device.revoked_at is not None and known.revoked_at is None):
                    found[device.device_id] = device
        return sorted(found.values(), key=lambda d: d.created_at)

    def revoke_device(self, signer: str, device_id: str, factor: Factor) -> bool:
        """Revoke at each bridge that knows the device, with the signer's factor (a
        device statement is checked, and its nonce spent, by each); raises the first
        refusal."""
        known = False
        for bridge in self.bridges:
            if any(d.device_id == device_id for d in bridge.devices(signer)):
                known = bridge.revoke_device(signer, device_id, factor) or known
        return known

    def enrolment_code(
        self, signer: str, factor: Factor, *, ttl_seconds: int, recipient: str | None = None
    ) -> EnrolmentCode:
        """A code on a TOTP code from the first bridge, which holds the TOTP secret; on a
        device's statement from the bridge that knows the device (the code then enrols
        the new device there)."""
        if isinstance(factor, TotpFactor):
            return self.bridges[0].enrolment_code(signer, factor, ttl_seconds=ttl_seconds)
        for bridge in self.bridges:
            if any(d.device_id == factor.device_id for d in bridge.devices(signer)):
                return bridge.enrolment_code(
                    signer, factor, ttl_seconds=ttl_seconds, recipient=recipient
                )
        raise AuthorizationRefused(
            "no bridge knows this device", reason=RefusalReason.DEVICE_UNKNOWN
        )

    def check_totp(self, signer: str, otp: str) -> None:
        """Accept the code at the first bridge, which holds the TOTP secret."""
        self.bridges[0].check_totp(signer, otp)

    def begin_totp_enrolment(
        self,
        signer: str,
        secret: str,
        *,
        current_otp: str | None = None,
        code_id: str | None = None,
        code_proof: bytes | None = None,
    ) -> None:
        """Keep the new secret pending at the first bridge only."""
        self.bridges[0].begin_totp_enrolment(
            signer, secret, current_otp=current_otp, code_id=code_id, code_proof=code_proof
        )

    def confirm_totp_enrolment(self, signer: str, otp: str) -> None:
        """Activate the pending secret at the first bridge."""
        self.bridges[0].confirm_totp_enrolment(signer, otp)

    def sign(self, request: SignRequest) -> bytes:
        """Build and sign on the bridge that holds the credential's token."""
        outcome = self.sign_many([request])[0]
        if isinstance(outcome, BridgeError):
            raise outcome
        return outcome

    def sign_many(
        self, requests: Sequence[SignRequest], on_signed: OnSigned | None = None
    ) -> list[bytes | BridgeError]:
        """Each request on its token's bridge (one call per bridge); outcomes in order;
        ``on_signed`` hears of each signed PDF, by its index in ``requests``."""
        outcomes: list[bytes | BridgeError | None] = [None] * len(requests)
        per_bridge: dict[str, list[int]] = defaultdict(list)
        by_name: dict[str, BridgeClient] = {}
        for index, request in enumerate(requests):
            try:
                bridge = self.bridge_for(request.credential.token_serial)
            except BridgeError as exc:
                outcomes[index] = exc
                continue
            by_name[bridge.name] = bridge
            per_bridge[bridge.name].append(index)
        for name, indexes in per_bridge.items():
            try:
                results = by_name[name].sign_many(
                    [requests[i] for i in indexes], _renumbered(on_signed, indexes)
                )
            except BridgeError as exc:
                results = [exc] * len(indexes)
            for index, result in zip(indexes, results, strict=True):
                if isinstance(result, TokenNotPresent):
                    self._forget(requests[index].credential.token_serial)
                outcomes[index] = result
        return [o if o is not None else BridgeError("not signed") for o in outcomes]


def _renumbered(on_signed: OnSigned | None, indexes: list[int]) -> OnSigned | None:
    """``on_signed`` told of a sub-batch's PDF by its index in the whole batch."""
    if on_signed is None:
        return None
    hook = on_signed
    return lambda index, pdf: hook(indexes[index], pdf)
