"""Creating an installation (``signing-gateway init``): settings file, keys, SoftHSM2
configuration and token folder, database schema.

Idempotent: what exists is kept; keys are never overwritten. The demo installation
(``init --demo``) is built on top of it by :mod:`signing_gateway.demo.installation`.
"""

from __future__ import annotations

from gateway.config import SETTINGS_FILE_NAME, Settings
from gateway.db.migrate import upgrade
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge.pkcs11.softhsm import write_config

__all__ = ["init_installation"]


def init_installation(settings: Settings) -> InstallationKeys:
    """Create or complete the installation in ``settings.data_dir``; its keys."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "bridge").mkdir(exist_ok=True)
    settings_file = data_dir / SETTINGS_FILE_NAME
    if not settings_file.exists():
        settings_file.write_text(
            "# Signing gateway settings; GATEWAY_* environment variables override them.\n"
            f'data_dir = "{data_dir}"\n'
            'push_provider = "log"\n'
            f"max_document_bytes = {settings.max_document_bytes}\n"
            f"request_ttl_seconds = {settings.request_ttl_seconds}\n",
            "utf-8",
        )
    keys = InstallationKeys.create_or_load(settings.secrets_dir)
    write_config(settings.effective_softhsm2_conf, data_dir / "tokens")
    settings.documents_dir.mkdir(exist_ok=True)
    upgrade(settings.effective_database_url)
    return keys
