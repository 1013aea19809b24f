"""The operator's view of ``/metrics`` in tests: every sample, by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str, token: str) -> Samples:
    """Every sample of ``/metrics`` read with the operator ``token``: (name, labels) →
    value."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        answer = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels``; 0 when absent."""
    return samples.get((name, frozenset(labels.items())), 0.0)
