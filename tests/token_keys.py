"""A key on a token that nobody signs with yet, made as an administrator would with the
command line: a key pair generated on an existing token of the test installation (one
the running server already sees), certified by the demo CA, its certificate imported
for a throwaway user, whose credential is then revoked. The inventory shows it ``ok``
with no holder."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signing_gateway.demo.pki import DemoPki, HolderName
from tests.commands import cli


@dataclass(frozen=True)
class LooseKey:
    """A key on token ``token_serial`` (CKA_ID ``key_id``, hex) whose certificate names
    ``holder``; no live credential uses it."""

    token_serial: str
    key_id: str
    holder: str


def loose_key(installation, token_serial: str, holder: str, folder: Path) -> LooseKey:
    """Generate, certify (for ``holder``) and store a key on ``token_serial`` (its PIN
    stored by the bridge), then leave it registered to nobody."""
    owner = f"tam-{secrets.token_hex(3)}"
    added = cli(installation, "users", "add", owner, "--display-name", holder, "--role", "leader")
    assert added.returncode == 0, added.stderr
    request = folder / f"{owner}.csr"
    made = cli(
        installation, "credentials", "generate", owner, "--token", token_serial,
        "--out", str(request),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key_id = re.search(r"key ([0-9a-f]+) ", made.stdout).group(1)
    pki = DemoPki(installation.data_dir / "pki")
    name = HolderName(holder, "Chuyên viên", "Sở Tài chính tỉnh Hà Nam")
    csr = x509.load_pem_x509_csr(request.read_bytes())
    certificate = pki.certify(csr.public_key(), name, dt.datetime.now(dt.UTC))
    (folder / f"{owner}.der").write_bytes(certificate.public_bytes(Encoding.DER))
    (folder / "chain.pem").write_text(pki.issuing_path.read_text() + pki.root_path.read_text())
    imported = cli(
        installation, "credentials", "import-certificate", owner, "--token", token_serial,
        "--certificate", str(folder / f"{owner}.der"), "--chain", str(folder / "chain.pem"),
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    credential = re.search(r"credential (\S+) registered", imported.stdout).group(1)
    revoked = cli(installation, "credentials", "revoke", credential)
    assert revoked.returncode == 0, revoked.stderr
    return LooseKey(token_serial, key_id, holder)
