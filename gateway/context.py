"""Everything a running gateway holds, built once from the settings (never at import)."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from fastapi import Request

from gateway.approvals.decisions import SigningService
from gateway.audit.checkpoints import SESSION_INFO_KEY, CheckpointSigner
from gateway.bridges import build_bridge
from gateway.config import Settings
from gateway.db.database import Database
from gateway.requests.document_store import DocumentStore
from gateway.requests.sandbox import DocumentSandbox, SandboxLimits
from gateway.requests.submission import Submissions
from gateway.secrets_at_rest import InstallationKeys, SecretBox
from hsm_bridge import BridgeClient
from hsm_bridge.clock import Clock, utcnow

__all__ = ["GatewayContext", "build_context", "context_of", "open_database", "sandbox_limits"]


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
    sandbox: DocumentSandbox
    clock: Clock = utcnow

    def start(self) -> None:
        """Start the document workers, then move every object made so far (modules,
        settings, the ORM's metadata: some 200,000) out of the garbage collector's
        generations (``gc.freeze``): they live as long as the process, and each
        collection while a signature is built would otherwise walk them all again
        (10 to 20 % of a signature's time, measured with ``bench/e2e.py``)."""
        self.sandbox.start()
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        """End the document workers and release database connections."""
        self.sandbox.close()
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
    sandbox = DocumentSandbox(sandbox_limits(settings))
    return GatewayContext(
        settings=settings,
        db=db,
        box=box,
        bridge=bridge,
        service=SigningService(settings, db, store, bridge, sandbox, clock=clock),
        submissions=Submissions(settings, db, store, sandbox, clock=clock),
        sandbox=sandbox,
        clock=clock,
    )


def sandbox_limits(settings: Settings) -> SandboxLimits:
    """The document workers' number, memory and time limits from ``settings``."""
    return SandboxLimits(
        workers=settings.document_workers,
        memory_bytes=settings.document_worker_memory_bytes,
        seconds=settings.document_job_seconds,
    )


def context_of(request: Request) -> GatewayContext:
    """FastAPI dependency: the context stored on the application by the app factory."""
    context: GatewayContext = request.app.state.gateway
    return context
