"""The operator's endpoints: the public liveness answer names nothing; token states and
metrics need the operator token (before, /health listed token serials, labels and
module paths to anyone, and /metrics per-token counters)."""

from __future__ import annotations

import httpx

from tests.commands import cli


def test_liveness_names_nothing_and_details_need_the_operator_token(server, installation, db):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        public = http.get("/health")
        assert public.status_code == 200 and public.json() == {"status": "ok"}
        for path in ("/operator/health", "/metrics"):
            assert http.get(path).status_code == 401
            wrong = http.get(path, headers={"Authorization": "Bearer sgo_guess"})
            assert wrong.status_code == 401 and wrong.json()["code"] == "unauthenticated"
    issued = cli(installation, "operator-token")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    with httpx.Client(
        base_url=server.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        details = http.get("/operator/health").json()
        assert {t["label"] for t in details["tokens"]} >= {"leader1", "clerk1", "org1"}
        assert http.get("/metrics").status_code == 200
    # a new token replaces the old one
    assert cli(installation, "operator-token").returncode == 0
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        stale = http.get("/operator/health", headers={"Authorization": f"Bearer {token}"})
        assert stale.status_code == 401
