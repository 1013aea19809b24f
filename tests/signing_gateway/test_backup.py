"""Backing up the serving installation and restoring it into a new folder, with the real
command line in child processes: the restored installation serves the signed document,
its audit chain verifies, its tokens and signer records still sign; a wrong passphrase,
a flipped byte or a cut file restore nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.config import load_settings
from gateway.context import open_database
from gateway.db.models import AuditEntry, SigningRequest
from signing_gateway.demo.sample_pdf import sample_pdf
from tests import factories
from tests.commands import cli
from tests.conftest import Server, approve, start_server, submit
from tests.factories import make_signer

PASSPHRASE = "Sao lưu hằng đêm, giữ kỹ!"

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("GATEWAY_TEST_DATABASE_URL")),
    reason="on PostgreSQL the database is backed up with pg_dump, not in the file",
)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signing_gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@dataclass
class Made:
    file: Path
    passphrase_file: Path
    document: bytes
    signed_id: str
    signed: bytes
    pending_id: str
    approver: factories.TestSigner
    submitted_meanwhile: list[str]


def _submit_while(server: Server, document: bytes, signer: str, until: threading.Event) -> list:
    made: list[str] = []
    while not until.is_set():
        answer = submit(server, document, signer)
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["id"])
    return made


@pytest.fixture(scope="module")
def made(installation, server, db, box, tmp_path_factory) -> Made:
    """A signed request, a pending one, then a backup made by the CLI while the server
    serves and a document system keeps submitting."""
    folder = tmp_path_factory.mktemp("backup")
    passphrase_file = folder / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n", "utf-8")
    passphrase_file.chmod(0o600)
    signer, approver = make_signer(db, box), make_signer(db, box)
    document = sample_pdf(["Cong van so 18/2026", "Sao luu va khoi phuc"])
    signed_id = submit(server, document, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        decision = approve(tablet, signed_id, signer.otp(), document)
    assert decision.json()["status"] == "signed", decision.text
    with server.client() as http:
        signed = http.get(f"/api/v1/signing-requests/{signed_id}/signed-document")
    assert signed.status_code == 200
    pending_id = submit(server, document, approver.username).json()["id"]

    done, meanwhile = threading.Event(), []
    writer = threading.Thread(
        target=lambda: meanwhile.extend(_submit_while(server, document, signer.username, done))
    )
    writer.start()
    try:
        made = cli(
            installation,
            "backup",
            "--to",
            str(folder / "gateway.sgwb"),
            "--passphrase-file",
            str(passphrase_file),
        )
    finally:
        done.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    assert meanwhile, "the document system submitted nothing while the backup ran"
    assert "backup written to" in made.stdout
    return Made(
        folder / "gateway.sgwb",
        passphrase_file,
        document,
        signed_id,
        signed.content,
        pending_id,
        approver,
        meanwhile,
    )


def test_the_backup_is_audited_and_left_whole(installation, db, made):
    digest = hashlib.sha256(made.file.read_bytes()).hexdigest()
    with db.transaction() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "backup.created")
        ).all()
    assert [json.loads(e.detail)["sha256"] for e in entries][-1] == digest
    assert not made.file.with_name(made.file.name + ".partial").exists()
    # no .partial file, no scratch folder left behind
    assert {p.name for p in made.file.parent.iterdir()} == {"gateway.sgwb", "passphrase"}
    # the passphrase, the keys and the documents are not readable in the file
    data = made.file.read_bytes()
    assert PASSPHRASE.encode() not in data and b"%PDF" not in data
    assert (installation.secrets_dir / "fernet.key").read_bytes().strip() not in data


def test_restored_installation_serves_verifies_and_signs(
    installation, made, tmp_path, tmp_path_factory
):
    target = tmp_path / "restored"
    restored = run(
        "restore",
        "--from",
        str(made.file),
        "--data-dir",
        str(target),
        "--passphrase-file",
        str(made.passphrase_file),
    )
    assert restored.returncode == 0, restored.stderr
    assert "softhsm2.conf" in restored.stdout and "gateway.toml" in restored.stdout
    conf = (target / "softhsm2.conf").read_text("utf-8")
    assert f"directories.tokendir = {target}/tokens" in conf
    assert str(installation.data_dir) not in (target / "gateway.toml").read_text("utf-8")

    settings = load_settings(target)
    assert settings.data_dir == target
    # every request the database's snapshot names has its document, even those
    # submitted while the backup ran
    database = open_database(settings)
    try:
        with database.transaction() as session:
            ids = set(session.scalars(select(SigningRequest.id)))
            actions = session.scalars(select(AuditEntry.action)).all()
    finally:
        database.dispose()
    assert {made.signed_id, made.pending_id} <= ids
    for request_id in ids:
        assert (settings.documents_dir / request_id / "original.pdf").is_file(), request_id
    assert "backup.created" not in actions  # written after the snapshot
    assert actions[-1] == "backup.restored"

    own_tokens = {"SOFTHSM2_CONF": str(target / "softhsm2.conf")}
    verified = run("audit", "verify", "--data-dir", str(target), env=own_tokens)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    log = tmp_path_factory.mktemp("restored-server") / "server.log"
    process, base_url = start_server(settings, log, **own_tokens)
    try:
        again = Server(
            base_url,
            log,
            json.loads((target / "demo-credentials.json").read_text("utf-8"))["api_key"],
        )
        with again.client() as http:
            signed = http.get(f"/api/v1/signing-requests/{made.signed_id}/signed-document")
        assert signed.status_code == 200 and signed.content == made.signed
        # the restored signer records (TOTP secret), PIN file and token sign a request
        # that was pending when the backup was made
        approver = made.approver
        with again.tablet(approver.username, approver.password) as tablet:
            decision = approve(tablet, made.pending_id, approver.otp(), made.document)
        assert decision.json()["status"] == "signed", decision.text
        with again.client() as http:
            fresh = http.get(f"/api/v1/signing-requests/{made.pending_id}/signed-document")
        assert fresh.status_code == 200 and fresh.content.startswith(made.document)
    finally:
        process.terminate()
        process.wait(timeout=30)

    refused = run(
        "restore",
        "--from",
        str(made.file),
        "--data-dir",
        str(target),
        "--passphrase-file",
        str(made.passphrase_file),
    )
    assert refused.returncode == 1 and "restore_target_not_empty" in refused.stderr


def _restore(source: Path, target: Path, passphrase_file: Path):
    return run(
        "restore",
        "--from",
        str(source),
        "--data-dir",
        str(target),
        "--passphrase-file",
        str(passphrase_file),
    )


def test_a_wrong_passphrase_or_a_damaged_file_restores_nothing(made, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n", "utf-8")
    wrong.chmod(0o600)
    target = tmp_path / "restored"
    refused = _restore(made.file, target, wrong)
    assert refused.returncode == 1 and "backup_passphrase_wrong" in refused.stderr

    data = made.file.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    cut_short = data[: len(data) - 1000]
    extended = data + data[-2000:]
    for name, damaged in (("flipped", bytes(flipped)), ("cut", cut_short), ("ext", extended)):
        path = tmp_path / f"{name}.sgwb"
        path.write_bytes(damaged)
        refused = _restore(path, target, made.passphrase_file)
        assert refused.returncode == 1 and "backup_damaged" in refused.stderr, name
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
