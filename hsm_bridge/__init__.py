"""PKCS#11 bridge: the only package that touches tokens and private keys.

Public surface: :class:`Bridge` (sign a digest under a signature activation),
:class:`CredentialRef`, :class:`SignatureMechanism`, the activation issuer and the
error tree. Nothing here imports ``gateway`` or ``mobile_api``.
"""

from hsm_bridge.activation import ActivationIssuer, ActivationVerifier, UsedActivationStore
from hsm_bridge.bridge import Bridge, BridgeConfig, ModuleConfig
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError
from hsm_bridge.interface import BridgeClient, SigningInput, SignRequest
from hsm_bridge.tokens import TokenLimits

__all__ = [
    "ActivationIssuer",
    "ActivationVerifier",
    "Bridge",
    "BridgeClient",
    "BridgeConfig",
    "BridgeError",
    "CredentialRef",
    "ModuleConfig",
    "SignRequest",
    "SignatureMechanism",
    "SigningInput",
    "TokenLimits",
    "UsedActivationStore",
]
