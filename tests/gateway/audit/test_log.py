"""The audit log is hash-chained and verifiable (docs/design.md invariant 5), and every
state change of the demo flow left an entry in the same transaction."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from gateway.audit import log as audit
from gateway.db.database import Database
from gateway.db.models import AuditEntry, Base


@pytest.mark.invariant(5)
def test_chain_detects_tampering(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    Base.metadata.create_all(db.engine)
    now = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)
    with db.transaction() as session:
        for i in range(5):
            audit.record(session, actor="system", action=f"test.{i}", now=now, detail={"n": i})
    with db.transaction() as session:
        report = audit.verify_chain(session)
        assert report.intact and report.entries == 5
        session.execute(update(AuditEntry).where(AuditEntry.id == 3).values(detail='{"n":99}'))
    with db.transaction() as session:
        report = audit.verify_chain(session)
        assert not report.intact and report.first_broken_id == 3
    db.dispose()


@pytest.mark.invariant(5)
def test_a_rollback_drops_the_entry_with_the_change(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    Base.metadata.create_all(db.engine)
    now = dt.datetime.now(dt.UTC)
    try:
        with db.transaction() as session:
            audit.record(session, actor="system", action="doomed", now=now)
            raise RuntimeError("the state change failed")
    except RuntimeError:
        pass
    with db.transaction() as session:
        assert session.scalars(select(AuditEntry)).all() == []
    db.dispose()


@pytest.mark.invariant(5)
def test_entries_chain_within_a_transaction_across_rollbacks_and_other_writers(tmp_path):
    """A transaction reads the chain's end once and links its later entries to the ones
    it appended; a rolled-back transaction's entries, and another session's, are never
    taken for the end."""
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    Base.metadata.create_all(db.engine)
    now = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
    with db.transaction() as session:
        for i in range(3):
            audit.record(session, actor="system", action=f"batch.{i}", now=now)
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.record(session, actor="system", action="savepoint.lost", now=now)
            raise RuntimeError("the savepoint is rolled back")
        audit.record(session, actor="system", action="after.savepoint", now=now)
    with pytest.raises(RuntimeError), db.transaction() as session:
        audit.record(session, actor="system", action="rolled.back", now=now)
        raise RuntimeError("the transaction is rolled back")
    with db.transaction() as first:
        audit.record(first, actor="system", action="first", now=now)
    with db.transaction() as other:  # another session, as another process would be
        audit.record(other, actor="system", action="other", now=now)
    with db.transaction() as session:
        report = audit.verify_chain(session)
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert report.intact and report.entries == 6
    assert actions == ["batch.0", "batch.1", "batch.2", "after.savepoint", "first", "other"]
    db.dispose()


@pytest.mark.invariant(5)
def test_installation_log_is_intact_and_covers_a_signing(server, db, signer, corpus):
    from tests.conftest import approve, submit

    document = (corpus / "pdf" / "plain-google-docs-skia.pdf").read_bytes()
    request_id = submit(server, document, signer.username).json()["id"]
    with server.tablet(signer.username, signer.password) as tablet:
        assert approve(tablet, request_id, signer.otp(), document).json()["status"] == "signed"
    with db.transaction() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.request_id == request_id)
            .order_by(AuditEntry.id)
        ).all()
        assert actions == [
            "request.submitted",
            "request.approved",
            "request.signing",
            "request.signed",
        ]
        assert audit.verify_chain(session).intact


def _checkpointed_db(tmp_path, every: int = 3):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.audit.checkpoints import SESSION_INFO_KEY, CheckpointSigner

    key = Ed25519PrivateKey.generate()
    db = Database(
        f"sqlite:///{tmp_path / 'c.db'}",
        session_info={SESSION_INFO_KEY: CheckpointSigner(key, every=every)},
    )
    Base.metadata.create_all(db.engine)
    now = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
    with db.transaction() as session:
        for i in range(7):
            audit.record(session, actor="system", action=f"test.{i}", now=now, detail={"n": i})
    return db, key


def _rewrite_from(session, first_id: int) -> None:
    """What someone with write access to the database but not the key can do: change
    an entry and recompute every hash after it, so that the chain alone looks intact."""
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    prev = audit.GENESIS_HASH
    for entry in entries:
        if entry.id == first_id:
            entry.detail = '{"n":"forged"}'
        if entry.id >= first_id:
            entry.prev_hash = prev
            entry.entry_hash = audit._entry_hash(prev, entry)
        prev = entry.entry_hash


@pytest.mark.invariant(5)
def test_signed_checkpoints_catch_a_rewritten_chain(tmp_path):
    from gateway.audit.checkpoints import verify_checkpoints
    from gateway.db.models import AuditCheckpoint

    db, key = _checkpointed_db(tmp_path)
    with db.transaction() as session:
        assert session.scalars(select(AuditCheckpoint.entry_id)).all() == [3, 6]
        report = verify_checkpoints(session, key.public_key())
        assert report.intact and report.checkpoints == 2 and report.last_entry_id == 6
        _rewrite_from(session, 2)
    with db.transaction() as session:
        assert audit.verify_chain(session).intact, "the recomputed chain alone looks fine"
        report = verify_checkpoints(session, key.public_key())
        assert (report.problem, report.problem_entry_id) == ("entry_changed", 3)
    db.dispose()


@pytest.mark.invariant(5)
def test_signed_checkpoints_catch_a_log_cut_short_and_a_foreign_key(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy import delete

    from gateway.audit.checkpoints import verify_checkpoints

    db, key = _checkpointed_db(tmp_path)
    with db.transaction() as session:
        session.execute(delete(AuditEntry).where(AuditEntry.id >= 5))
    with db.transaction() as session:
        assert audit.verify_chain(session).intact, "a cut chain still links"
        report = verify_checkpoints(session, key.public_key())
        assert (report.problem, report.problem_entry_id) == ("entry_missing", 6)
        assert report.last_entry_id == 3
        other = Ed25519PrivateKey.generate().public_key()
        assert verify_checkpoints(session, other).problem == "bad_signature"
    db.dispose()


def _cli(data_dir, *args: str, env: dict[str, str] | None = None):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "signing_gateway.cli", "audit", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or dict(os.environ),
    )


def test_audit_verify_on_the_installation_checks_chain_and_checkpoints(installation):
    written = _cli(installation.data_dir, "checkpoint")
    assert written.returncode == 0, written.stderr
    assert re.search(r"checkpoint signed at entry \d+|nothing new", written.stdout)
    verified = _cli(installation.data_dir, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
    assert re.search(r"checkpoints: [1-9]\d* signed and matching", verified.stdout)


@pytest.mark.invariant(5)
def test_audit_verify_reports_a_rewritten_log_and_fails(tmp_path):
    import os

    from gateway.config import load_settings
    from gateway.context import open_database

    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_DATABASE_URL"}  # own SQLite
    data_dir = tmp_path / "gw"
    assert _cli_init(data_dir, env).returncode == 0
    settings = load_settings(data_dir, database_url=None)
    db = open_database(settings)
    now = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
    with db.transaction() as session:
        for i in range(4):
            audit.record(session, actor="system", action=f"test.{i}", now=now)
    assert _cli(data_dir, "checkpoint", env=env).returncode == 0
    assert _cli(data_dir, "verify", env=env).returncode == 0
    with db.transaction() as session:
        _rewrite_from(session, 1)
    db.dispose()
    verified = _cli(data_dir, "verify", env=env)
    assert verified.returncode == 1
    assert "audit chain intact" in verified.stdout
    assert "BROKEN (entry_changed)" in verified.stdout


def _cli_init(data_dir, env):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "signing_gateway.cli", "init", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.invariant(5)
def test_deleted_checkpoints_and_a_rewritten_tail_are_caught(tmp_path):
    from sqlalchemy import delete

    from gateway.audit.checkpoints import verify_checkpoints
    from gateway.db.models import AuditCheckpoint

    db, key = _checkpointed_db(tmp_path, every=2)  # 7 entries, checkpoints at 2, 4, 6
    # rewrite from entry 3 on and drop the checkpoints that covered it
    with db.transaction() as session:
        session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.entry_id >= 3))
        session.execute(delete(AuditEntry).where(AuditEntry.id >= 3))
    unsigned = Database(f"sqlite:///{tmp_path / 'c.db'}")  # without the checkpoint key
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    with unsigned.transaction() as session:
        for i in range(4):
            audit.record(session, actor="user:a", action=f"forged.{i}", now=now)
    unsigned.dispose()
    with db.transaction() as session:
        assert audit.verify_chain(session).intact
        report = verify_checkpoints(session, key.public_key(), every=2)
        assert (report.problem, report.problem_entry_id) == ("checkpoint_missing", 4)
        assert report.last_entry_id == 2
        session.execute(delete(AuditCheckpoint))  # or drop them all
    with db.transaction() as session:
        report = verify_checkpoints(session, key.public_key(), every=2)
        assert (report.problem, report.problem_entry_id) == ("checkpoint_missing", 2)
    db.dispose()
