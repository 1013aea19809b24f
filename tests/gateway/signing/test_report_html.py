"""The printable report renders whatever times a document claims."""

from __future__ import annotations

import datetime as dt

from gateway.signing.report_html import report_html
from gateway.signing.reports import SignatureReport, ValidationReport


def test_a_timestamp_in_the_year_9999_is_printed_not_a_failure():
    far = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)
    report = ValidationReport(
        document_sha256="00" * 32,
        validated_at=dt.datetime(2026, 12, 7, tzinfo=dt.UTC),
        trust_anchors=[],
        signatures=[
            SignatureReport(
                field_name="Sig", kind="signature", revision=2, timestamp_time=far, claimed_time=far
            )
        ],
    )
    for lang in ("vi", "en"):
        assert "9999-12-31T23:59:00+00:00" in report_html(report, lang)
