"""Administration use cases (:mod:`gateway.admin.enrolment`) that the CLI and the admin
API share, without either, at a fixed clock (tests/usecases.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.admin.enrolment import revoke_credential
from gateway.db.models import AuditEntry
from gateway.errors import NotFound
from tests.usecases import World, make_world


@pytest.fixture
def world(tmp_path) -> World:
    return make_world(tmp_path)


def test_revoking_a_credential_fails_its_pending_requests_once(world):
    pending = [world.submit([f"Văn bản {n}"]) for n in range(2)]
    world.clock.advance(60)
    revocation = revoke_credential(
        world.db, world.credential.id, actor="admin:test", now=world.clock()
    )
    assert not revocation.already_revoked
    assert sorted(revocation.failed) == sorted(r.id for r in pending)
    for request in pending:
        assert world.status(request.id) == "failed"
        assert ("request.failed", world.clock()) in world.audit(request.id)
    again = revoke_credential(world.db, world.credential.id, actor="admin:test", now=world.clock())
    assert again.already_revoked and again.failed == ()
    with world.db.transaction() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "credential.revoked")
        ).all()
    assert len(entries) == 1


def test_revoking_an_unknown_credential_is_not_found(world):
    with pytest.raises(NotFound):
        revoke_credential(world.db, "cred-nobody", actor="admin:test", now=world.clock())
