"""Schema-driven fuzzing (schemathesis) of both HTTP APIs on the running gateway: the
document system's (``/api/v1``, with an API key) and the tablet's (``/mobile/v1``,
with a session). Whatever schemathesis generates from the OpenAPI description, the
gateway answers without a 5xx, and every documented answer matches its schema.

Seeded (derandomised) and short in CI; ``FUZZ_EXAMPLES=500 make test`` runs longer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from gateway.config import load_settings
from signing_gateway.app import create_app

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def credentials(server, db, box):
    """The API key of the demo's document system, and a session of a signer of its own
    (the fuzzer may log it out: later calls then answer 401, which is fine)."""
    from tests.factories import make_signer

    person = make_signer(db, box)
    with server.tablet(person.username, person.password) as tablet:
        token = tablet.headers["Authorization"]
    return {"api": f"Bearer {server.api_key}", "mobile": token}


# the gateway's own OpenAPI description, as /openapi.json serves it (the app is only
# built here, not started: the calls go to the running test server)
schema = schemathesis.openapi.from_dict(create_app(load_settings(Path("unused"))).openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_gateway_fail_or_break_its_schema(case, server, credentials):
    which = "mobile" if case.path.startswith("/mobile/") else "api"
    case.call_and_validate(
        base_url=server.base_url,
        headers={"Authorization": credentials[which]},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
