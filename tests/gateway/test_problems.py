"""The one error policy's rendering: a problem document is always JSON a client can
read, whatever text an error message echoes."""

from __future__ import annotations

import json

from gateway.problems import problem


def test_a_problem_that_echoes_a_lone_surrogate_is_still_sent_as_json():
    answer = problem(422, "parameter_invalid", "A parameter is invalid", "name: 'x\ud800'")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert json.loads(answer.body)["detail"] == "name: 'x\ud800'"


def test_vietnamese_text_stays_readable_utf8():
    answer = problem(409, "request_expired", "Hết hạn", "Văn bản đã hết hạn ký")
    assert "Văn bản đã hết hạn ký".encode() in answer.body
