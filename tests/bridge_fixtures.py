"""Bridge services in child processes, for tests that talk to them only over mutual TLS.

SoftHSM2 reads SOFTHSM2_CONF once, at C_Initialize, and a module is loaded once per
process; the test process may already hold the demo installation's SoftHSM2. So each
service here gets a token folder and a ``softhsm2.conf`` of its own, and everything that
loads the module (key generation, certificates, signing) happens in its child process:
the test process only runs ``softhsm2-util`` and speaks HTTPS.

The child side is this module run as a program::

    python -m tests.bridge_fixtures STATE.json

It builds an in-process :class:`~hsm_bridge.Bridge` over its token, stores the token's
PIN, generates the planned keys inside the token with certificates issued by a
throwaway test CA (:meth:`~hsm_bridge.Bridge.provision`), then serves
:func:`~hsm_bridge.transport.service.serve` (uvicorn with mutual TLS).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import BridgeError
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.pkcs11.softhsm import init_token, write_config
from hsm_bridge.sam.signers import SignerRegistry
from hsm_bridge.transport.link_tls import LinkFiles, create_link_credentials
from hsm_bridge.transport.remote import RemoteBridge, RemoteBridgeConfig

__all__ = [
    "BridgeService",
    "PlannedKey",
    "free_port",
    "start_bridge_service",
    "tls_client",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
USER_PIN = "246810"
SO_PIN = "13579111"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class PlannedKey:
    """A key pair to generate inside the service's token, with its certificate."""

    key_id: bytes
    spec: KeySpec
    label: str


@dataclass
class BridgeService:
    """One bridge service child: its name, URL, link files, token label and keys.
    ``serial`` is known once :meth:`wait_ready` saw the token in ``/health``."""

    name: str
    url: str
    link: LinkFiles
    token_label: str
    keys: list[PlannedKey]
    process: subprocess.Popen[bytes]
    log_path: Path
    serial: str = ""
    certificates: dict[bytes, bytes] = field(default_factory=dict)
    _remotes: list[RemoteBridge] = field(default_factory=list)

    def ref(self, key_id: bytes) -> CredentialRef:
        """The credential of key ``key_id`` on this service's token."""
        return CredentialRef(self.serial, key_id)

    def log(self) -> str:
        """What the child printed so far."""
        return self.log_path.read_text("utf-8", "replace")

    @property
    def ca_certificate(self) -> Path:
        """The service's test CA certificate (PEM): the trust anchor of its keys'
        certificates, also in the bridge's CA file for the chains it embeds."""
        return self.log_path.parent / "ca-certificates.pem"

    def registry(self) -> SignerRegistry:
        """The service's signer registry, opened as its host's administrator would
        (``signing-gateway bridge bind``, ``bridge enrolment-code``): the file beside the
        service's state, with its key. Never reachable over the link."""
        folder = self.log_path.parent
        state = json.loads((folder / "service.json").read_text("utf-8"))
        return SignerRegistry(folder / "signers.db", state["pin_key"].encode("ascii"))

    def remote(
        self,
        *,
        name: str | None = None,
        certificate: Path | None = None,
        key: Path | None = None,
        url: str | None = None,
        timeout_seconds: float = 30.0,
    ) -> RemoteBridge:
        """A :class:`RemoteBridge` to this service, with the gateway's client
        credential unless another ``certificate``/``key`` is given; closed by
        :meth:`stop`."""
        remote = RemoteBridge(
            RemoteBridgeConfig(
                name=name or self.name,
                url=url or self.url,
                client_certificate=certificate or self.link.gateway_certificate,
                client_key=key or self.link.gateway_key,
                ca_certificate=self.link.ca,
                timeout_seconds=timeout_seconds,
            )
        )
        self._remotes.append(remote)
        return remote

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until ``/health`` over mutual TLS shows the service's token ``ok``
        (the keys are provisioned before uvicorn starts); sets :attr:`serial` and
        :attr:`certificates` (key id → DER)."""
        probe = self.remote(timeout_seconds=5)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"bridge service {self.name} exited ({self.process.returncode}):\n" + self.log()
                )
            try:
                for token in probe.health():
                    if token.label == self.token_label and token.state == "ok":
                        self.serial = token.serial
                        self.certificates = {
                            k.key_id: probe.certificate(self.ref(k.key_id)) for k in self.keys
                        }
                        return
            except BridgeError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bridge service {self.name} did not start:\n" + self.log())
            time.sleep(0.1)

    def stop(self) -> None:
        """Close the clients and stop the child."""
        for remote in self._remotes:
            remote.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def tls_client(
    url: str,
    ca: Path,
    certificate: Path | None = None,
    key: Path | None = None,
    *,
    maximum_version: ssl.TLSVersion | None = None,
) -> httpx.Client:
    """A plain httpx client for ``url`` that trusts ``ca`` and presents
    ``certificate``/``key`` (PEM) as its client certificate, or none;
    ``maximum_version`` caps the TLS version (with TLS 1.2 the server's verdict on the
    client certificate arrives inside the handshake, with TLS 1.3 right after it)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if maximum_version is not None:
        context.maximum_version = maximum_version
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key) if key else None)
    return httpx.Client(base_url=url, verify=context, timeout=30)


def start_bridge_service(
    folder: Path,
    name: str,
    *,
    token_label: str,
    keys: Sequence[PlannedKey],
    activation_key: bytes,
    module: str,
    profile: str = "secure_host",
) -> BridgeService:
    """Make a SoftHSM2 token in ``folder`` (its own ``softhsm2.conf``), link
    credentials for 127.0.0.1, and start the bridge service child on a free port; the
    caller waits with :meth:`BridgeService.wait_ready`."""
    from cryptography.fernet import Fernet

    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    write_config(conf, folder / "tokens")
    init_token(conf, token_label, SO_PIN, USER_PIN)
    link = create_link_credentials(folder / "link", ["127.0.0.1"], now=dt.datetime.now(dt.UTC))
    port = free_port()
    state = folder / "service.json"
    state.write_text(
        json.dumps(
            {
                "name": name,
                "module": module,
                "port": port,
                "token_label": token_label,
                "user_pin": USER_PIN,
                "pin_file": str(folder / "pins.json"),
                "pin_key": Fernet.generate_key().decode("ascii"),
                "activation_key": activation_key.hex(),
                "used_activations_file": str(folder / "activations.db"),
                "ca_certificates_file": str(folder / "ca-certificates.pem"),
                "profile": profile,
                "certificate": str(link.bridge_certificate),
                "key": str(link.bridge_key),
                "ca": str(link.ca),
                "keys": [
                    {"key_id": k.key_id.hex(), "spec": k.spec.value, "label": k.label} for k in keys
                ],
            }
        ),
        "utf-8",
    )
    os.chmod(state, 0o600)
    log_path = folder / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bridge_fixtures", str(state)],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, SOFTHSM2_CONF=str(conf)),
        )
    return BridgeService(
        name=name,
        url=f"https://127.0.0.1:{port}",
        link=link,
        token_label=token_label,
        keys=list(keys),
        process=process,
        log_path=log_path,
    )


# ---- the child side ---------------------------------------------------------------------


def _test_ca(certificate_file: Path) -> tuple[Any, Any]:
    """A throwaway CA key and name (EC P-256) that certifies the token keys; its
    self-signed certificate is written to ``certificate_file`` (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bridge test CA")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    certificate_file.write_bytes(certificate.public_bytes(Encoding.PEM))
    return key, name


def _certifier(label: str, ca_key: Any, ca_name: Any) -> Any:
    """A ``certify`` callback for :meth:`Bridge.provision`: a certificate for the
    token's public key, subject CN ``label``, issued by the test CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    def certify(public_key: Any) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)]))
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )

    return certify


def serve(state_file: Path) -> None:
    """The child: provision the planned keys, then serve the bridge with mutual TLS,
    logging as ``bridge serve`` does (here in JSON, with request ids)."""

    from gateway.logs import configure_logging
    from hsm_bridge import Bridge, BridgeConfig, ModuleConfig, TokenLimits
    from hsm_bridge.pkcs11.pins import PinStore
    from hsm_bridge.sam.authorization import Profile
    from hsm_bridge.transport.service import serve

    configure_logging("INFO", "json")
    state = json.loads(state_file.read_text("utf-8"))
    pin_key = state["pin_key"].encode("ascii")
    ca_key, ca_name = _test_ca(Path(state["ca_certificates_file"]))
    bridge = Bridge(
        BridgeConfig(
            modules=(
                ModuleConfig(
                    state["module"], limits=TokenLimits(max_sessions=2, timeout_seconds=30)
                ),
            ),
            pin_file=Path(state["pin_file"]),
            pin_key=pin_key,
            activation_key=bytes.fromhex(state["activation_key"]),
            used_activations_file=Path(state["used_activations_file"]),
            name=state["name"],
            profile=Profile(state["profile"]),
            ca_certificates_file=Path(state["ca_certificates_file"]),
            # the link's own test CA has no OCSP or CRL service: revocation at the CA is
            # tested on the installation's live demo PKI (tests/hsm_bridge/test_revocation.py)
            check_revocation=False,
        )
    )
    serial = next(t.serial for t in bridge.inventory() if t.label == state["token_label"])
    PinStore(Path(state["pin_file"]), pin_key).put(serial, state["user_pin"])
    for planned in state["keys"]:
        bridge.provision(
            serial,
            KeySpec(planned["spec"]),
            bytes.fromhex(planned["key_id"]),
            planned["label"],
            _certifier(planned["label"], ca_key, ca_name),
        )
    serve(
        bridge,
        host="127.0.0.1",
        port=int(state["port"]),
        certificate=Path(state["certificate"]),
        key=Path(state["key"]),
        client_ca=Path(state["ca"]),
        log_level="warning",
    )


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
