"""A validation report (:mod:`gateway.signing.reports`) as a printable HTML page, in
Vietnamese or English, rendered by Jinja2 with autoescaping (a document's signer names
and field names are the document's author's to choose). No script, no external asset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.signing.reports import ValidationReport

__all__ = ["WORDS", "report_html"]

_ENVIRONMENT = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True),
)
_VIETNAM = dt.timezone(dt.timedelta(hours=7))

_MODIFICATIONS_VI = {
    "NONE": "không có",
    "LTA_UPDATES": "chỉ dữ liệu kiểm tra và dấu thời gian",
    "FORM_FILLING": "điền ô biểu mẫu (ô ký)",
    "ANNOTATIONS": "thêm chú thích",
    "OTHER": "thay đổi nội dung khác",
}
_MODIFICATIONS_EN = {
    "NONE": "none",
    "LTA_UPDATES": "validation data and timestamps only",
    "FORM_FILLING": "form fields filled (signature fields)",
    "ANNOTATIONS": "annotations added",
    "OTHER": "other content changes",
}

WORDS: dict[str, dict[str, Any]] = {
    "vi": {
        "title": "Báo cáo kiểm tra chữ ký số",
        "document": "Văn bản (SHA-256)",
        "validated_at": "Thời điểm kiểm tra",
        "anchors": "Chứng thư gốc tin cậy",
        "none": "không có",
        "unknown": "không rõ",
        "no_signatures": "Văn bản không có chữ ký số nào.",
        "signature_kind": "Chữ ký",
        "timestamp_kind": "Dấu thời gian văn bản",
        "verdict_now": "Kết luận hiện tại",
        "verdict_at_signing": "Tại thời điểm ký",
        "valid": "Hợp lệ",
        "failed": "Không hợp lệ",
        "valid_revocation_unknown": "Hợp lệ, nhưng văn bản không kèm dữ liệu thu hồi để xác nhận",
        "not_valid": "Không xác nhận được",
        "level": "Mức PAdES đạt được",
        "signer": "Người ký",
        "tsa": "Đơn vị cấp dấu thời gian",
        "issuer": "Tổ chức cấp chứng thư",
        "serial": "số hiệu",
        "claimed_time": "Thời gian ký (do người ký ghi)",
        "timestamp": "Dấu thời gian",
        "integrity": "Toàn vẹn / Chữ ký đúng / Tin cậy",
        "yes": "có",
        "no": "không",
        "coverage": "Phạm vi",
        "covers_all": "toàn bộ tệp",
        "covers_revision": "đến hết phiên bản {revision} của tệp (có phần thêm sau)",
        "after": "phần thêm sau",
        "modifications": _MODIFICATIONS_VI,
        "docmdp": "Thay đổi sau khi ký phù hợp quy định của văn bản",
        "ades": "Kiểm tra dài hạn AdES (ETSI EN 319 102-1)",
        "problems": "Vấn đề",
        "unsigned_changes": "Thay đổi không có chữ ký",
        "problem_words": {
            "bytes_changed": "nội dung đã ký bị thay đổi",
            "signature_invalid": "giá trị chữ ký không đúng",
            "not_trusted": "chứng thư không thuộc tổ chức tin cậy hoặc đã hết hạn",
            "changes_not_allowed": "có thay đổi sau khi ký mà văn bản không cho phép",
            "cannot_validate": "không đọc được chữ ký này",
            "changed_after_signing": "có ô được thêm hoặc sửa sau khi ký mà không có chữ ký nào"
            " kèm theo",
        },
        "footer": "Kiểm tra ngoại tuyến: chỉ dùng chứng thư gốc tin cậy đã cấu hình và dữ liệu"
        " kèm trong văn bản; tình trạng thu hồi hiện tại không được hỏi lại tổ chức cấp.",
    },
    "en": {
        "title": "Digital signature validation report",
        "document": "Document (SHA-256)",
        "validated_at": "Validated at",
        "anchors": "Trusted roots",
        "none": "none",
        "unknown": "unknown",
        "no_signatures": "The document carries no digital signature.",
        "signature_kind": "Signature",
        "timestamp_kind": "Document timestamp",
        "verdict_now": "Verdict now",
        "verdict_at_signing": "When signed",
        "valid": "Valid",
        "failed": "Not valid",
        "valid_revocation_unknown": "Valid, but no revocation data is embedded to confirm it",
        "not_valid": "Not established",
        "level": "PAdES level reached",
        "signer": "Signer",
        "tsa": "Time-stamping authority",
        "issuer": "Certificate issuer",
        "serial": "serial",
        "claimed_time": "Signing time (as the signer states it)",
        "timestamp": "Timestamp",
        "integrity": "Intact / Signature verifies / Trusted",
        "yes": "yes",
        "no": "no",
        "coverage": "Coverage",
        "covers_all": "the whole file",
        "covers_revision": "up to the end of revision {revision} (more was added later)",
        "after": "added later",
        "modifications": _MODIFICATIONS_EN,
        "docmdp": "Later changes allowed by the document's policy",
        "ades": "AdES long-term validation (ETSI EN 319 102-1)",
        "problems": "Problems",
        "unsigned_changes": "Unsigned changes",
        "problem_words": {
            "bytes_changed": "the signed content was changed",
            "signature_invalid": "the signature value does not verify",
            "not_trusted": "the certificate is not from a trusted authority, or has expired",
            "changes_not_allowed": "changes were made after signing that the document forbids",
            "cannot_validate": "this signature cannot be read",
            "changed_after_signing": "fields were added or changed after signing that no"
            " signature covers",
        },
        "footer": "Validated offline: only the configured trusted roots and what the document"
        " embeds; the certificates' revocation status now was not asked of their issuers.",
    },
}


def report_html(report: ValidationReport, lang: str = "vi") -> str:
    """``report`` as a standalone HTML page in ``lang`` (``vi`` or ``en``); times in
    Vietnam time (UTC+7)."""
    words = WORDS[lang]
    template = _ENVIRONMENT.get_template("validation-report.html")
    return template.render(report=report, w=words, lang=lang, when=_when)


def _when(moment: dt.datetime) -> str:
    """``moment`` in Vietnam time; a time a document claims outside what can be shown
    there (year 9999, naive) as it was written."""
    try:
        return moment.astimezone(_VIETNAM).strftime("%d/%m/%Y %H:%M:%S (UTC+7)")
    except (OverflowError, ValueError):
        return moment.isoformat()
