"""The bridge service's endpoints (see :mod:`hsm_bridge.transport.service` for the list):
plain functions, so FastAPI runs each on its thread pool and the event loop never waits
on C_Sign. Each reads the in-process :class:`~hsm_bridge.bridge.Bridge` from the
application's state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from hsm_bridge.bridge import Bridge
from hsm_bridge.errors import BridgeError
from hsm_bridge.pkcs11 import metrics
from hsm_bridge.sam.signers import DeviceRecord
from hsm_bridge.transport.wire import (
    AuthorizeWire,
    CredentialWire,
    DeviceEnrolmentWire,
    DeviceRevocationWire,
    EnrolmentCodeWire,
    PasskeyEnrolmentWire,
    PasskeyOptionsWire,
    SignBatchWire,
    TotpConfirmationWire,
    TotpEnrolmentWire,
    as_json,
    b64,
    error_json,
    unb64,
)

__all__ = ["invalid_request", "router"]


def _bridge(request: Request) -> Bridge:
    bridge: Bridge = request.app.state.bridge
    return bridge


BridgeDep = Annotated[Bridge, Depends(_bridge)]
router = APIRouter()


@router.get("/health")
def health(bridge: BridgeDep) -> JSONResponse:
    tokens = as_json(bridge.health())
    healthy = all(t["state"] == "ok" for t in tokens)
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "bridge": bridge.name, "tokens": tokens},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics")
def prometheus() -> Response:
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)


@router.get("/v1/tokens/{serial}")
def token(serial: str, bridge: BridgeDep) -> Any:
    return {"token_serial": serial, "present": bridge.holds(serial)}


@router.post("/v1/credential-status")
def credential_status(body: CredentialWire, bridge: BridgeDep) -> Any:
    return as_json(bridge.credential_status(body.ref()))


@router.post("/v1/certificate")
def certificate(body: CredentialWire, bridge: BridgeDep) -> Any:
    return {"certificate": b64(bridge.certificate(body.ref()))}


@router.get("/v1/pin-key")
def pin_key(bridge: BridgeDep) -> Any:
    return {"public_key": b64(bridge.pin_key(""))}


@router.post("/v1/sign")
def sign(body: SignBatchWire, bridge: BridgeDep) -> Any:
    try:
        requests = [item.request() for item in body.items]
    except ValueError as exc:
        return invalid_request(str(exc))
    results: list[dict[str, Any]] = []
    for request, outcome in zip(requests, bridge.sign_many(requests), strict=True):
        if isinstance(outcome, BridgeError):
            results.append({"error": error_json(outcome)})
        else:
            results.append({"update": b64(outcome[len(request.document) :])})
    return {"results": results}


@router.post("/v1/authorize")
def authorize(body: AuthorizeWire, bridge: BridgeDep) -> Any:
    try:
        request = body.value()
    except ValueError as exc:
        return invalid_request(str(exc))
    serials = frozenset(body.token_serials) if body.token_serials is not None else None
    return {"activations": bridge.authorize(request, token_serials=serials)}


@router.post("/v1/devices")
def enrol_device(body: DeviceEnrolmentWire, bridge: BridgeDep) -> Any:
    try:
        key, proof = unb64(body.public_key), unb64(body.proof)
    except ValueError as exc:
        return invalid_request(str(exc))
    return as_json(bridge.enrol_device(body.code_id, key, proof, kind=body.kind))


@router.post("/v1/passkeys/options")
def passkey_options(body: PasskeyOptionsWire, bridge: BridgeDep) -> Any:
    return as_json(bridge.passkey_options(body.signer, body.display_name))


@router.post("/v1/passkeys")
def enrol_passkey(body: PasskeyEnrolmentWire, bridge: BridgeDep) -> Any:
    try:
        authorisation = body.authorisation()
    except ValueError as exc:
        return invalid_request(str(exc))
    return as_json(bridge.enrol_passkey(body.challenge_id, body.response, authorisation))


@router.get("/v1/signers/{signer}/devices")
def devices(signer: str, bridge: BridgeDep) -> Any:
    return [_device_json(d) for d in bridge.devices(signer)]


@router.post("/v1/devices/{device_id}/revocation")
def revoke_device(device_id: str, body: DeviceRevocationWire, bridge: BridgeDep) -> Any:
    try:
        factor = body.factor.value()
    except ValueError as exc:
        return invalid_request(str(exc))
    return {"known": bridge.revoke_device(body.signer, device_id, factor)}


@router.post("/v1/enrolment-codes")
def enrolment_code(body: EnrolmentCodeWire, bridge: BridgeDep) -> Any:
    try:
        factor = body.factor.value()
    except ValueError as exc:
        return invalid_request(str(exc))
    return as_json(
        bridge.enrolment_code(
            body.signer, factor, ttl_seconds=body.ttl_seconds, recipient=body.recipient
        )
    )


@router.post("/v1/totp/check")
def check_totp(body: TotpConfirmationWire, bridge: BridgeDep) -> Any:
    bridge.check_totp(body.signer, body.otp)
    return {}


@router.post("/v1/totp")
def begin_totp(body: TotpEnrolmentWire, bridge: BridgeDep) -> Any:
    try:
        proof = unb64(body.code_proof) if body.code_proof is not None else None
    except ValueError as exc:
        return invalid_request(str(exc))
    bridge.begin_totp_enrolment(
        body.signer,
        body.secret,
        current_otp=body.current_otp,
        code_id=body.code_id,
        code_proof=proof,
    )
    return {}


@router.post("/v1/totp/confirmation")
def confirm_totp(body: TotpConfirmationWire, bridge: BridgeDep) -> Any:
    bridge.confirm_totp_enrolment(body.signer, body.otp)
    return {}


def _device_json(device: DeviceRecord) -> dict[str, Any]:
    """A device as the link shows it: no public key (the gateway needs none)."""
    return {
        "device_id": device.device_id,
        "signer": device.signer,
        "created_at": device.created_at,
        "revoked_at": device.revoked_at,
        "enrolled_with": device.enrolled_with,
        "kind": device.kind,
        "sign_count": device.sign_count,
        "backup_eligible": device.backup_eligible,
        "backed_up": device.backed_up,
    }


def invalid_request(message: str) -> JSONResponse:
    """422 ``invalid_request`` with ``message`` (at most 500 characters)."""
    return JSONResponse(
        {"code": "invalid_request", "message": message[:500], "retryable": False},
        status_code=422,
    )
