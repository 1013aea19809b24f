"""PKCS#11 bridge: the only package that touches tokens and private keys.

Public surface: :class:`Bridge` (decides approvals, then builds and signs the approved
documents), :class:`BridgeClient` (the interface every transport offers),
:class:`SignRequest`, :class:`CredentialRef`, :class:`SignatureMechanism`, the error
tree. Nothing here imports ``gateway`` or ``mobile_api``.
"""

from hsm_bridge.bridge import Bridge, BridgeConfig, ModuleConfig
from hsm_bridge.credentials import CredentialRef, SignatureMechanism
from hsm_bridge.errors import BridgeError
from hsm_bridge.interface import BridgeClient, OnSigned, SignRequest
from hsm_bridge.pkcs11.tokens import TokenLimits

__all__ = [
    "Bridge",
    "BridgeClient",
    "BridgeConfig",
    "BridgeError",
    "CredentialRef",
    "ModuleConfig",
    "OnSigned",
    "SignRequest",
    "SignatureMechanism",
    "TokenLimits",
]
