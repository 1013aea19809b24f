"""Callbacks go only where the installation allows (server-side request forgery): the
URL's host, literal or resolved, at submission and again when the callback is sent, and
the connection goes to the address that was checked."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from gateway.db.models import CallbackDelivery, IntegrationClient
from gateway.integration.callbacks import CallbackDeliverer
from gateway.integration.destinations import DestinationPolicy, DestinationRefused
from gateway.secrets_at_rest import SecretBox
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import submit
from tests.factories import make_client_with_callbacks
from tests.gateway.integration.test_callbacks import Receiver
from tests.usecases import make_world

REFUSED = [
    "http://127.0.0.1:8080/internal/admin",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/hook",
    "http://192.168.1.10/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_internal_addresses_are_refused_unless_allowed(url):
    with pytest.raises(DestinationRefused):
        DestinationPolicy().check_url(url)


def test_an_allowed_network_opens_only_itself():
    policy = DestinationPolicy(["10.20.0.0/16"])
    assert policy.check_url("https://10.20.3.4/hook") == "https://10.20.3.4/hook"
    with pytest.raises(DestinationRefused):
        policy.check_url("https://10.21.0.1/hook")


def test_a_public_address_is_allowed_and_pinned():
    target = DestinationPolicy().target("https://8.8.8.8:8443/hooks?x=1")
    assert target.pinned_url() == "https://8.8.8.8:8443/hooks?x=1"
    assert target.host == "8.8.8.8"


def _owe_callback(world, url: str) -> tuple[str, SecretBox]:
    """A callback owed to ``url`` for a fresh request of ``world``'s client."""
    box = SecretBox(Fernet.generate_key())
    request_id = world.submit().id
    with world.db.transaction() as session:
        client = session.get(IntegrationClient, world.client.id)
        client.callback_secret = box.seal("whsec_test")
        delivery = CallbackDelivery(
            id=str(uuid.uuid4()),
            client_id=client.id,
            request_id=request_id,
            url=url,
            body='{"status":"signed"}',
            created_at=world.clock(),
            attempts=0,
            next_attempt_at=world.clock() - dt.timedelta(seconds=1),
        )
        session.add(delivery)
    return delivery.id, box


def test_a_name_that_resolves_to_loopback_is_refused_when_the_callback_is_sent(tmp_path):
    """The submission's URL named a host; at send time it resolves to 127.0.0.1: nothing
    is sent. The same delivery, where the installation allows loopback, arrives, with
    the name the document system gave in the Host header."""
    world = make_world(tmp_path)
    hook = Receiver([])
    try:
        url = hook.url.replace("127.0.0.1", "localhost")
        delivery_id, box = _owe_callback(world, url)
        refusing = CallbackDeliverer(world.db, box, policy=DestinationPolicy(), clock=world.clock)
        assert refusing.deliver_due() == 0
        refusing.close()
        assert hook.received == []
        with world.db.transaction() as session:
            delivery = session.get(CallbackDelivery, delivery_id)
            assert delivery.last_error == "address_refused" and delivery.attempts == 1
            delivery.next_attempt_at = world.clock() - dt.timedelta(seconds=1)
        allowing = CallbackDeliverer(
            world.db, box, policy=DestinationPolicy(["127.0.0.0/8"]), clock=world.clock
        )
        assert allowing.deliver_due() == 1
        allowing.close()
        ((headers, body),) = hook.wait_for(1)
        assert headers["Host"].startswith("localhost:") and body == b'{"status":"signed"}'
    finally:
        hook.server.shutdown()


def test_the_api_refuses_a_metadata_endpoint_as_callback(server, db, box, signer):
    api_key, _ = make_client_with_callbacks(db, box)
    answer = submit(
        server,
        sample_pdf(["x"]),
        signer.username,
        api_key=api_key,
        callback_url="http://169.254.169.254/latest/meta-data/",
    )
    assert answer.status_code == 422 and answer.json()["code"] == "parameter_invalid"
    assert "169.254.169.254" in answer.json()["detail"]
    with db.transaction() as session:
        assert not session.scalars(
            select(CallbackDelivery).where(CallbackDelivery.url.like("%169.254%"))
        ).all()
