"""Which bridge(s) the gateway talks to, built from the settings: the in-process bridge
over the configured PKCS#11 modules (the embedded default: SoftHSM2), bridge services on
secure hosts over mutual TLS, or several of them behind a router that sends each
credential to the bridge holding its token."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.config import Settings
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import Bridge, BridgeClient, BridgeConfig, ModuleConfig, TokenLimits
from hsm_bridge.pades.chain import load_ca_file
from hsm_bridge.pkcs11.softhsm import find_softhsm_module
from hsm_bridge.sam.authorization import Profile
from hsm_bridge.sam.passkeys import RelyingParty
from hsm_bridge.sam.signers import SignerRegistry, TotpPolicy
from hsm_bridge.transport.remote import RemoteBridge, RemoteBridgeConfig
from hsm_bridge.transport.router import BridgeRouter

__all__ = [
    "SOFTHSM_MAX_SESSIONS",
    "add_ca_certificates",
    "bridge_config",
    "bridge_dir",
    "build_bridge",
    "local_registry",
    "module_configs",
]

# SoftHSM2 is software: a few concurrent sessions per token cost nothing.
SOFTHSM_MAX_SESSIONS = 4


def module_configs(settings: Settings) -> tuple[ModuleConfig, ...]:
    """The PKCS#11 modules in force: ``pkcs11_modules`` from the settings, or the
    SoftHSM2 module when none is configured. RuntimeError when there is none at all."""
    if settings.pkcs11_modules:
        return tuple(
            ModuleConfig(
                path=m.path,
                limits=TokenLimits(m.max_sessions_per_token, m.operation_timeout_seconds),
                token_limits={
                    serial: TokenLimits(count, m.operation_timeout_seconds)
                    for serial, count in m.token_max_sessions.items()
                },
            )
            for m in settings.pkcs11_modules
        )
    path = find_softhsm_module()
    if path is None:
        raise RuntimeError(
            "no PKCS#11 module: install softhsm2 or configure pkcs11_modules in gateway.toml"
        )
    return (ModuleConfig(path=path, limits=TokenLimits(SOFTHSM_MAX_SESSIONS, 30.0)),)


def bridge_dir(settings: Settings) -> Path:
    """The folder of the bridge running on this host: its PIN file, spent SADs, signer
    records, HPKE key and CA certificates."""
    return settings.data_dir.resolve() / "bridge"


def bridge_config(
    settings: Settings, keys: InstallationKeys, *, serving: bool = False
) -> BridgeConfig:
    """The configuration of the bridge running on this host: in the gateway's process
    (profile ``embedded`` unless ``bridge_profile`` says otherwise), or ``bridge serve``
    on a secure host (``serving``: profile ``secure_host`` unless it says otherwise).
    Points SoftHSM2 at the installation's own configuration (SOFTHSM2_CONF) before the
    module is loaded."""
    os.environ.setdefault("SOFTHSM2_CONF", str(settings.effective_softhsm2_conf))
    folder = bridge_dir(settings)
    default = Profile.SECURE_HOST if serving else Profile.EMBEDDED
    return BridgeConfig(
        modules=module_configs(settings),
        pin_file=folder / "pins.json",
        pin_key=keys.fernet_key,
        activation_key=keys.activation_key,
        used_activations_file=folder / "activations.db",
        signers_file=folder / "signers.db",
        activation_ttl_seconds=settings.activation_ttl_seconds,
        profile=Profile(settings.bridge_profile) if settings.bridge_profile else default,
        max_batch=settings.batch_max_requests,
        totp_policy=TotpPolicy(settings.totp_max_failures, settings.totp_lockout_seconds),
        ca_certificates_file=folder / "ca-certificates.pem",
        pin_envelope_key_file=folder / "pin-envelope-key.pem",
        tsa_url=settings.tsa_url,
        relying_party=relying_party(settings),
        trust_anchors_file=settings.effective_trust_anchors_file,
        check_revocation=settings.check_revocation,
        revocation_timeout_seconds=settings.revocation_timeout_seconds,
        revocation_cache_seconds=settings.revocation_cache_seconds,
    )


def relying_party(settings: Settings) -> RelyingParty:
    """The WebAuthn relying party of this installation: ``webauthn_rp_id`` (by default
    the host of ``public_url``, else ``localhost``), the extra origins, and whether synced
    passkeys are refused."""
    rp_id = settings.webauthn_rp_id or (
        urlsplit(settings.public_url).hostname if settings.public_url else None
    )
    return RelyingParty(
        rp_id=rp_id or "localhost",
        origins=tuple(settings.webauthn_origins),
        name=settings.webauthn_rp_name,
        require_device_bound=settings.passkeys_require_device_bound,
    )


def add_ca_certificates(settings: Settings, chain_pem: str) -> int:
    """Add the CA certificates of ``chain_pem`` (PEM) to the CA file of the bridge on
    this host, for chains its tokens do not hold; returns how many were new."""
    return _add_certificates(bridge_dir(settings) / "ca-certificates.pem", chain_pem)


def add_trust_anchors(settings: Settings, roots_pem: str) -> int:
    """Add the root certificates of ``roots_pem`` (PEM) to the installation's trust
    anchors (the bridge's revocation checks, validation reports); returns how many were
    new."""
    return _add_certificates(settings.effective_trust_anchors_file, roots_pem)


def _add_certificates(path: Path, pem: str) -> int:
    """Append the certificates of ``pem`` not yet in the PEM bundle ``path``."""
    if not pem.strip():
        return 0
    known = set(load_ca_file(path))
    new = [
        c.public_bytes(Encoding.DER)
        for c in x509.load_pem_x509_certificates(pem.encode())
        if c.public_bytes(Encoding.DER) not in known
    ]
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            for der in dict.fromkeys(new):
                out.write(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return len(set(new))


def local_registry(settings: Settings, keys: InstallationKeys) -> SignerRegistry:
    """The signer registry of the bridge that runs on this host (the in-process bridge,
    or ``bridge serve`` on a secure host): for the administrator's CLI, which binds
    signers to credentials and issues device enrolment codes, never over the network."""
    return SignerRegistry(
        settings.data_dir.resolve() / "bridge" / "signers.db",
        keys.fernet_key,
        totp_policy=TotpPolicy(settings.totp_max_failures, settings.totp_lockout_seconds),
    )


def build_bridge(settings: Settings, keys: InstallationKeys) -> BridgeClient:
    """The bridge the gateway signs through: the in-process one alone (the default), or
    a :class:`~hsm_bridge.transport.router.BridgeRouter` over it and the ``remote_bridges``."""
    bridges: list[BridgeClient] = []
    if settings.in_process_bridge:
        bridges.append(Bridge(bridge_config(settings, keys)))
    for remote in settings.remote_bridges:
        bridges.append(
            RemoteBridge(
                RemoteBridgeConfig(
                    name=remote.name,
                    url=remote.url,
                    client_certificate=remote.client_certificate,
                    client_key=remote.client_key,
                    ca_certificate=remote.ca_certificate,
                    timeout_seconds=remote.timeout_seconds,
                )
            )
        )
    if not bridges:
        raise RuntimeError("no bridge: enable in_process_bridge or configure remote_bridges")
    if len(bridges) == 1:
        return bridges[0]
    return BridgeRouter(bridges)
