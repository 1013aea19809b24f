"""``GET /api/v1/signing-requests`` on the running gateway: a document system lists its
own requests, filtered by status, workflow and time, newest first, a page at a time;
a request submitted while it pages neither shifts nor repeats what it sees; another
client's requests never appear; an altered or borrowed cursor and a bad filter are
refused with their code."""

from __future__ import annotations

import pytest

from signing_gateway.demo.sample_pdf import sample_pdf
from tests.conftest import submit
from tests.factories import make_client


@pytest.fixture(scope="module")
def own(server, db, box):
    """A fresh client's API key and its seven requests' ids (oldest first), two of
    them cancelled."""
    from tests.factories import make_signer

    signer = make_signer(db, box)
    key = make_client(db)
    ids = []
    for n in range(7):
        answer = submit(server, sample_pdf([f"Công văn số {n}"]), signer.username, api_key=key)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    with server.client(key) as http:
        for cancelled in ids[1:3]:
            assert http.delete(f"/api/v1/signing-requests/{cancelled}").status_code == 200
    return {"key": key, "ids": ids, "signer": signer.username}


def _list(server, key: str, **params: object) -> dict:
    with server.client(key) as http:
        answer = http.get("/api/v1/signing-requests", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _refusal(server, key: str, **params: object) -> dict:
    with server.client(key) as http:
        answer = http.get("/api/v1/signing-requests", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


def test_three_pages_show_every_request_once_though_one_arrives_between(server, own):
    first = _list(server, own["key"], limit=3)
    # a new request between pages: newer than the first page, so never in the next ones
    late = submit(server, sample_pdf(["Đến muộn"]), own["signer"], api_key=own["key"])
    assert late.status_code == 201, late.text
    second = _list(server, own["key"], limit=3, cursor=first["next_cursor"])
    third = _list(server, own["key"], limit=3, cursor=second["next_cursor"])
    pages = [first, second, third]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert third["next_cursor"] is None
    seen = [item["id"] for page in pages for item in page["items"]]
    assert seen == list(reversed(own["ids"]))  # each once, newest first
    assert late.json()["id"] not in seen
    assert _list(server, own["key"], limit=3)["items"][0]["id"] == late.json()["id"]


def test_filters_by_status_workflow_and_time(server, own):
    ids = own["ids"]
    cancelled = _list(server, own["key"], status="cancelled")["items"]
    assert sorted(i["id"] for i in cancelled) == sorted(ids[1:3])
    both = _list(server, own["key"], status=["cancelled", "pending_approval"], limit=200)
    assert set(ids) <= {i["id"] for i in both["items"]}
    assert _list(server, own["key"], workflow="official_document")["items"] == []

    everything = {i["id"]: i for i in _list(server, own["key"], limit=200)["items"]}
    pivot = everything[ids[4]]["created_at"]
    since = {i["id"] for i in _list(server, own["key"], created_after=pivot, limit=200)["items"]}
    assert set(ids[4:]) <= since and not since & set(ids[:4])
    before = {i["id"] for i in _list(server, own["key"], created_before=pivot)["items"]}
    assert before == set(ids[:4])
    changed = everything[ids[2]]["updated_at"]  # the last cancellation
    late = _list(server, own["key"], updated_after=changed, status="cancelled")["items"]
    assert [i["id"] for i in late] == [ids[2]]


def test_another_clients_requests_never_appear_and_its_cursor_is_refused(server, db, own):
    other = make_client(db)
    theirs = submit(server, sample_pdf(["Của đơn vị khác"]), own["signer"], api_key=other)
    assert theirs.status_code == 201, theirs.text
    mine = {i["id"] for i in _list(server, own["key"], limit=200)["items"]}
    assert theirs.json()["id"] not in mine
    assert [i["id"] for i in _list(server, other)["items"]] == [theirs.json()["id"]]
    borrowed = _list(server, own["key"], limit=2)["next_cursor"]
    assert _refusal(server, other, cursor=borrowed)["code"] == "cursor_invalid"


def test_bad_cursors_and_filters_are_refused_with_their_code(server, own):
    cursor = _list(server, own["key"], limit=2)["next_cursor"]
    tampered = cursor[:-6] + ("A" if cursor[-6] != "A" else "B") + cursor[-5:]
    assert _refusal(server, own["key"], cursor=tampered)["code"] == "cursor_invalid"
    assert _refusal(server, own["key"], cursor="not-a-cursor")["code"] == "cursor_invalid"
    assert _refusal(server, own["key"], status="lost")["code"] == "parameter_invalid"
    naive = _refusal(server, own["key"], created_after="2024-01-01T00:00:00")
    assert naive["code"] == "parameter_invalid"
    assert _refusal(server, own["key"], limit=201)["code"] == "parameter_invalid"
    assert _refusal(server, own["key"], limit=0)["code"] == "parameter_invalid"
