"""One settings object, read from GATEWAY_* environment variables and the optional
installation file ``<data_dir>/gateway.toml`` (environment wins), with safe defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pdf_structure.limits import DocumentLimits

__all__ = [
    "SETTINGS_FILE_NAME",
    "Pkcs11ModuleSettings",
    "RemoteBridgeSettings",
    "Settings",
    "load_settings",
]

SETTINGS_FILE_NAME = "gateway.toml"


class Pkcs11ModuleSettings(BaseModel):
    """One PKCS#11 module the in-process bridge (or ``bridge serve``) loads.

    ``max_sessions_per_token``: concurrent operations per token (1 for a USB token, more
    for an HSM partition); ``token_max_sessions`` overrides it per token serial.
    ``operation_timeout_seconds``: after this a token that has not answered is marked
    unhealthy and the operation fails with ``token_timeout`` (retryable).
    """

    path: str
    max_sessions_per_token: int = Field(1, ge=1)
    operation_timeout_seconds: float = Field(30.0, gt=0)
    token_max_sessions: dict[str, int] = Field(default_factory=dict)


class RemoteBridgeSettings(BaseModel):
    """A bridge service on a secure host (``signing-gateway bridge serve``), reached over
    HTTPS with mutual TLS. Certificates and key are PEM files."""

    name: str
    url: str = Field(description="https://host:port of the bridge service")
    client_certificate: Path
    client_key: Path
    ca_certificate: Path = Field(description="trust anchor for the bridge's certificate")
    timeout_seconds: float = Field(60.0, gt=0)


class Settings(BaseSettings):
    """Gateway configuration. Durations are seconds, sizes bytes."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="installation folder")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/gateway.db"
    )
    pkcs11_modules: list[Pkcs11ModuleSettings] = Field(
        default_factory=list,
        description="PKCS#11 modules of the in-process bridge; default SoftHSM2",
    )
    in_process_bridge: bool = Field(
        True, description="load the PKCS#11 modules in this process (the embedded default)"
    )
    remote_bridges: list[RemoteBridgeSettings] = Field(
        default_factory=list, description="bridge services on secure hosts"
    )
    bridge_profile: Literal["embedded", "secure_host"] | None = Field(
        None,
        description="what the bridge on this host accepts as an approval: embedded (TOTP"
        " approves; the default in the gateway's process) or secure_host (device-bound"
        " factors only; the default for `bridge serve`)",
    )
    bridge_listen_host: str = Field("127.0.0.1", description="bridge serve: address")
    bridge_listen_port: int = Field(8443, description="bridge serve: TCP port")
    softhsm2_conf: Path | None = Field(
        None, description="SoftHSM2 config; default <data_dir>/softhsm2.conf"
    )
    max_document_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_pages: int = Field(5_000, gt=0, description="pages in one document")
    max_stream_bytes: int = Field(
        128 * 1024 * 1024, gt=0, description="one stream of a document, decompressed"
    )
    max_page_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="what one page draws from, decompressed"
    )
    max_image_pixels: int = Field(64_000_000, gt=0, description="one image's width x height")
    document_workers: int = Field(2, gt=0, le=64, description="processes that read documents")
    document_worker_memory_bytes: int = Field(
        1536 * 1024 * 1024,
        ge=512 * 1024 * 1024,
        description="a document worker's address-space limit",
    )
    document_job_seconds: float = Field(
        30.0, gt=0, description="how long reading or drawing one document may take"
    )
    request_ttl_seconds: int = Field(3 * 24 * 3600, gt=0)
    mobile_session_ttl_seconds: int = Field(15 * 60, gt=0)
    activation_ttl_seconds: int = Field(300, gt=0)
    totp_max_failures: int = Field(5, gt=0)
    totp_lockout_seconds: int = Field(15 * 60, gt=0)
    login_rate_limit: str = Field(
        "30/minute", description="logins per client address (limits' notation, e.g. 30/minute)"
    )
    rate_limit_storage_url: str = Field(
        "memory://", description="where rate-limit counters live; redis://… with replicas"
    )
    preview_max_width: int = Field(2000, gt=0)
    push_provider: Literal["log", "fcm"] = "log"
    fcm_service_account_file: Path | None = None
    push_title: str = "Văn bản chờ ký số"
    web_push_subject: str = Field(
        "mailto:operator@localhost",
        description="the VAPID subject push services may contact (mailto: or https:)",
    )
    web_push_hosts: list[str] = Field(
        default_factory=lambda: [
            "fcm.googleapis.com",
            "push.apple.com",
            "push.services.mozilla.com",
            "notify.windows.com",
        ],
        description="Web Push services the gateway posts to (a host or its parent domain)",
    )
    web_push_allowed_networks: list[str] = Field(
        default_factory=list,
        description="networks (CIDR) besides public addresses a push service may be in",
    )
    tsa_url: str | None = Field(
        None, description="RFC 3161 TSA for PAdES B-T and above (on the bridge's host)"
    )
    default_pades_level: Literal["B-B", "B-T", "B-LT", "B-LTA"] | None = Field(
        None,
        description="a request's PAdES level when it names none (default: B-LT with a TSA,"
        " else B-B); an official document's seal is B-LTA with a TSA",
    )
    trust_anchors_file: Path | None = Field(
        None,
        description="PEM bundle of the root CAs signers' certificates must chain to, for the"
        " bridge's revocation checks and for validation reports (default DIR/trust-anchors.pem)",
    )
    check_revocation: bool = Field(
        True,
        description="the bridge asks the CA (OCSP, then CRL) before every signature and"
        " refuses without a good answer",
    )
    revocation_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="one OCSP, CRL or certificate request"
    )
    revocation_cache_seconds: float = Field(
        30.0, ge=0, le=3600, description="how long a CA answer is reused (never past nextUpdate)"
    )
    archive_tsa_url: str | None = Field(
        None,
        description="RFC 3161 TSA for the archive's renewals (default: tsa_url); choose one"
        " whose certificate outlives the one being renewed",
    )
    archive_renew_before_days: int = Field(
        365,
        ge=1,
        le=3650,
        description="renew an archived document this long before its last timestamp's"
        " TSA certificate ends",
    )
    demo_pki_url: str = Field(
        "http://127.0.0.1:8079",
        description="where a new demo PKI's services answer (written into its certificates)",
    )
    demo_pki_serve: bool = Field(
        True, description="serve a demo installation's PKI (OCSP, CRL, TSA) with the gateway"
    )
    signature_text_with_image: bool = Field(
        False,
        description="write the signer, position and time over a signer's signature image"
        " (Decree 30 prescribes no such text on the main document: unconfirmed)",
    )
    batch_max_requests: int = Field(50, gt=0, le=500, description="requests per decision")
    signing_lease_seconds: int = Field(
        600,
        gt=0,
        description="how long a process may take to sign what it took (a batch), after"
        " which another process recovers it",
    )
    approval_nonce_ttl_seconds: int = Field(
        24 * 3600, gt=0, description="lifetime of a server nonce for a signed decision"
    )
    enrolment_code_ttl_seconds: int = Field(
        600, gt=0, description="lifetime of a one-time enrolment code"
    )
    webauthn_rp_id: str | None = Field(
        None,
        description="the passkeys' relying party id: the app's host name (default: the host"
        " of public_url, else localhost)",
    )
    webauthn_origins: list[str] = Field(
        default_factory=list,
        description="origins besides https://<rp id> (and http://localhost for the demo)"
        " where passkeys may be used, e.g. https://ky.example.gov.vn:8443",
    )
    webauthn_rp_name: str = Field("Ký số", description="the name authenticators show")
    passkeys_require_device_bound: bool = Field(
        False,
        description="refuse synced passkeys (iCloud Keychain, Google Password Manager):"
        " accept only credentials bound to one device, such as a security key",
    )
    public_url: str | None = Field(
        None, description="the gateway's address as tablets reach it (put in activation QR codes)"
    )
    callback_poll_seconds: float = Field(2.0, gt=0, description="outbox and expiry sweep period")
    callback_retry_seconds: float = Field(10.0, gt=0, description="first retry delay, doubled")
    callback_max_attempts: int = Field(15, gt=0)
    callback_allowed_networks: list[str] = Field(
        default_factory=list,
        description="networks (CIDR) besides public addresses that callbacks may go to,"
        " e.g. the document system's intranet: 10.20.0.0/16; loopback, link-local and"
        " private addresses are refused otherwise",
    )
    callback_timeout_seconds: float = Field(10.0, gt=0)
    audit_checkpoint_every: int = Field(
        100, gt=0, description="a signed audit checkpoint every this many entries"
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text (for people) or json (one object a line, for a log collector)",
    )
    otel_enabled: bool = Field(
        False,
        description="send OpenTelemetry traces (OTLP over HTTP, configured by the standard"
        " OTEL_* variables); needs the otel extra: pip install '.[otel]'",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
        )

    @property
    def document_limits(self) -> DocumentLimits:
        """What one document may ask of a reader (intake, previews, the bridge)."""
        return DocumentLimits(
            max_pages=self.max_pages,
            max_stream_bytes=self.max_stream_bytes,
            max_page_bytes=self.max_page_bytes,
            max_image_pixels=self.max_image_pixels,
        )

    @property
    def effective_database_url(self) -> str:
        """The database URL in force (SQLite file in the data folder by default)."""
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'gateway.db'}"

    @property
    def effective_softhsm2_conf(self) -> Path:
        """The SoftHSM2 configuration file in force."""
        return self.softhsm2_conf or self.data_dir.resolve() / "softhsm2.conf"

    @property
    def effective_trust_anchors_file(self) -> Path:
        """The trust anchors' PEM bundle in force."""
        return self.trust_anchors_file or self.data_dir.resolve() / "trust-anchors.pem"

    @property
    def effective_pades_level(self) -> str:
        """The PAdES level of a request that names none."""
        return self.default_pades_level or ("B-LT" if self.tsa_url else "B-B")

    @property
    def secrets_dir(self) -> Path:
        """Folder with the installation's keys (owner-only)."""
        return self.data_dir.resolve() / "secrets"

    @property
    def bridge_tls_dir(self) -> Path:
        """Folder with the bridge link's TLS files (``bridge init-tls``)."""
        return self.data_dir.resolve() / "bridge-tls"

    @property
    def documents_dir(self) -> Path:
        """Folder of the document store."""
        return self.data_dir.resolve() / "documents"


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings for the installation in ``data_dir`` (default: GATEWAY_DATA_DIR
    or ./var): values from the environment, then ``<data_dir>/gateway.toml``, then
    defaults. ``overrides`` win over everything (used by the CLI and tests)."""
    folder = Path(data_dir or os.environ.get("GATEWAY_DATA_DIR") or "var").resolve()
    toml_file = folder / SETTINGS_FILE_NAME

    class _Installation(Settings):
        model_config = SettingsConfigDict(
            env_prefix="GATEWAY_",
            extra="ignore",
            toml_file=toml_file if toml_file.exists() else None,
        )

    return _Installation(data_dir=folder, **overrides)
