"""Decisions as use cases (:class:`gateway.approvals.decisions.SigningService`), without
HTTP, against the fake bridge and a fixed clock (tests/usecases.py)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.approvals.statements import DecisionItem
from gateway.errors import DocumentChanged, OtpInvalid, RequestExpired
from hsm_bridge.errors import CertificateNotUsable, TokenBusy
from hsm_bridge.sam.authorization import TotpFactor
from tests.usecases import GOOD_OTP, START, World, make_world


@pytest.fixture
def world(tmp_path) -> World:
    return make_world(tmp_path)


def test_an_approval_is_signed_and_recorded_at_the_clocks_time(world):
    request = world.submit()
    world.clock.advance(90)
    signed = world.service.approve(
        world.leader,
        request.id,
        request.document_sha256,
        TotpFactor(GOOD_OTP),
        client_address="192.0.2.20",
    )
    assert signed.status == "signed"
    (authorization,) = world.bridge.authorized
    assert [i.request_id for i in authorization.items] == [request.id]
    assert world.bridge.signed[0].activation == f"sad:{request.id}"
    signed = world.store.read_signed(request.id)
    (signature,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert signature.self_reported_timestamp == START + dt.timedelta(seconds=90)
    actions = world.audit(request.id)
    assert [a for a, _ in actions] == [
        "request.submitted",
        "request.approved",
        "request.signing",
        "request.signed",
    ]
    later = START + dt.timedelta(seconds=90)
    assert [at for _, at in actions] == [START, later, later, later]


def test_a_request_is_expired_by_the_injected_clock_and_reaches_no_bridge(world):
    request = world.submit()
    assert request.expires_at == START + dt.timedelta(seconds=world.settings.request_ttl_seconds)
    world.clock.advance(world.settings.request_ttl_seconds + 1)
    with pytest.raises(RequestExpired):
        world.service.approve(
            world.leader,
            request.id,
            request.document_sha256,
            TotpFactor(GOOD_OTP),
            client_address=None,
        )
    assert world.status(request.id) == "expired"
    assert world.bridge.authorized == [] and world.bridge.checked_codes == []


def test_a_wrong_code_decides_nothing(world):
    request = world.submit()
    with pytest.raises(OtpInvalid):
        world.service.approve(
            world.leader,
            request.id,
            request.document_sha256,
            TotpFactor("000000"),
            client_address=None,
        )
    assert world.status(request.id) == "pending_approval"
    assert world.bridge.signed == []
    assert "totp.failed" in [a for a, _ in world.audit(request.id)]


def test_one_changed_document_does_not_sink_the_batch(world):
    first, second, third = (world.submit([f"Văn bản {n}"]) for n in range(3))
    outcomes = world.service.approve_batch(
        world.leader,
        [
            DecisionItem(first.id, first.document_sha256),
            DecisionItem(second.id, "0" * 64),
            DecisionItem(third.id, third.document_sha256),
        ],
        TotpFactor(GOOD_OTP),
        client_address=None,
    )
    assert [o.request.status if o.request else o.error.code for o in outcomes] == [
        "signed",
        DocumentChanged.code,
        "signed",
    ]
    (authorization,) = world.bridge.authorized
    assert {i.request_id for i in authorization.items} == {first.id, third.id}
    assert world.status(second.id) == "pending_approval"


def test_the_bridges_refusal_of_one_item_fails_it_alone_and_a_busy_token_waits(world):
    refused, busy, fine = (world.submit([f"Văn bản {n}"]) for n in range(3))
    world.bridge.failures[refused.id] = CertificateNotUsable("expired at the bridge's clock")
    world.bridge.failures[busy.id] = TokenBusy("every session is busy")
    outcomes = world.service.approve_batch(
        world.leader,
        [DecisionItem(r.id, r.document_sha256) for r in (refused, busy, fine)],
        TotpFactor(GOOD_OTP),
        client_address=None,
    )
    assert outcomes[0].request.status == "failed"
    assert outcomes[0].request.failure_code == CertificateNotUsable.code
    assert isinstance(outcomes[1].error, TokenBusy)
    assert world.status(busy.id) == "pending_approval"  # a new approval may sign it
    assert outcomes[2].request.status == "signed"


def test_a_rejection_checks_the_code_at_the_bridge_and_signs_nothing(world):
    request = world.submit()
    with pytest.raises(OtpInvalid):
        world.service.reject(
            world.leader, request.id, "sai số liệu", TotpFactor("111111"), client_address=None
        )
    assert world.status(request.id) == "pending_approval"
    rejected = world.service.reject(
        world.leader, request.id, "sai số liệu", TotpFactor(GOOD_OTP), client_address=None
    )
    assert rejected.status == "rejected"
    assert world.bridge.checked_codes == ["111111", GOOD_OTP]
    assert world.bridge.authorized == [] and world.bridge.signed == []
