"""PKCS#11 bridge: the only package that touches tokens and private keys.

Public surface: :class:`Bridge` (sign a digest under a signature activation),
:class:`CredentialRef`, :class:`SignatureMechanism`, the activation issuer and the
error tree. Nothing here imports ``gateway`` or ``mobile_api``.
"""

from hsm_bridge.activation import ActivationIssuer, ActivationVerifier, UsedActivationStore
from hsm_bridge.bridge import Bridge, BridgeConfig, SignRequest
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError

__all__ = [
    "ActivationIssuer",
    "ActivationVerifier",
    "Bridge",
    "BridgeConfig",
    "BridgeError",
    "CredentialRef",
    "SignRequest",
    "SignatureMechanism",
    "UsedActivationStore",
]
