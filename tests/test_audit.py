"""The audit log is hash-chained and verifiable (DESIGN.md invariant 5), and every
state change of the demo flow left an entry in the same transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from gateway import audit
from gateway.db import Database
from gateway.models import AuditEntry, Base


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
