"""Everything a running gateway holds, built once from the settings (never at import)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gateway.approvals.decisions import SigningService
from gateway.audit.checkpoints import SESSION_INFO_KEY, CheckpointSigner
from gateway.bridges import build_bridge
from gateway.config import Settings
from gateway.db.database import Database
from gateway.requests.document_store import DocumentStore
from gateway.requests.submission import Submissions
from gateway.secrets_at_rest import InstallationKeys, SecretBox
from hsm_bridge import BridgeClient
from hsm_bridge.clock import Clock, utcnow

__all__ = ["GatewayContext", "build_context", "context_of", "open_database"]


@dataclass
class GatewayContext:
    """The long-lived objects of one gateway process: ``submissions`` serves the
    document system, ``service`` the signers (and signs what they approve)."""

    settings: Settings
    db: Database
    box: SecretBox
    bridge: BridgeClient
    service: SigningService
    submissions: Submissions
    clock: Clock = utcnow

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()


def open_database(settings: Settings, keys: InstallationKeys | None = None) -> Database:
    """The installation's database, its sessions carrying the audit checkpoint signer
    (a signed checkpoint every ``settings.audit_checkpoint_every`` entries). Raises
    FileNotFoundError when the installation was never initialised."""
    keys = keys or InstallationKeys.load(settings.secrets_dir)
    signer = CheckpointSigner(keys.checkpoint_key, every=settings.audit_checkpoint_every)
    return Database(settings.effective_database_url, session_info={SESSION_INFO_KEY: signer})


def build_context(settings: Settings, *, clock: Clock = utcnow) -> GatewayContext:
    """Open the installation in ``settings.data_dir``; every use case reads the time
    from ``clock``. Raises FileNotFoundError when it was never initialised
    (``signing-gateway init``)."""
    keys = InstallationKeys.load(settings.secrets_dir)
    db = open_database(settings, keys)
    box = SecretBox(keys.fernet_key)
    bridge = build_bridge(settings, keys)
    store = DocumentStore(settings.documents_dir)
    return GatewayContext(
        settings=settings,
        db=db,
        box=box,
        bridge=bridge,
        service=SigningService(settings, db, store, bridge, clock=clock),
        submissions=Submissions(settings, db, store, clock=clock),
        clock=clock,
    )


def context_of(request: Request) -> GatewayContext:
    """FastAPI dependency: the context stored on the application by the app factory."""
    context: GatewayContext = request.app.state.gateway
    return context
