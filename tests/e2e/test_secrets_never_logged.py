"""No PIN, OTP, password, API key, bearer token, TOTP secret or document content in
logs, errors or push payloads (docs/design.md invariant 4)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from gateway.logs import RedactedJsonFormatter, RedactingFilter, redact
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge.pkcs11.pins import PinStore
from hsm_bridge.transport.request_ids import RequestIdLogFilter
from tests.conftest import approve, submit
from tests.device_app import DeviceApp
from tests.factories import enrolment_code


def test_redaction_patterns():
    assert "abc123" not in redact("Authorization: Bearer abc123")
    assert "sgw_secretkeyvalue" not in redact("key sgw_secretkeyvalue used")
    for text in ("password=hunter2", "pin: 123456", "otp=654321", 'secret="JBSWY3DP"'):
        assert redact(text).endswith("***") or "***" in redact(text)
        assert text.split("=")[-1].split(":")[-1].strip(' "') not in redact(text)
    assert "JBSW" not in redact("otpauth://totp/x?secret=JBSWY3DP&issuer=y")


def test_filter_rewrites_formatted_records():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "login with password=%s", ("hunter2",), None
    )
    RedactingFilter().filter(record)
    assert "hunter2" not in record.getMessage()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_server_log_holds_no_secret(
    request, log_format, installation, demo_credentials, signer, corpus, db
):
    server = request.getfixturevalue("server" if log_format == "text" else "json_server")
    document = (corpus / "pdf" / "pdf20-utf8.pdf").read_bytes()
    request_id = submit(server, document, signer.username).json()["id"]
    code = signer.otp()
    with server.tablet(signer.username, signer.password) as tablet:
        token = tablet.headers["Authorization"].split()[1]
        one_time_code = enrolment_code(db, signer.username)
        device = DeviceApp(server.base_url, signer.username)
        assert device.enrol(one_time_code, push_token="fcm-tok-1").status_code == 201
        nonce = tablet.post("/mobile/v1/approval-nonces").json()["nonce"]
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        refused = approve(tablet, request_id, wrong, document)
        assert wrong not in refused.text and "Traceback" not in refused.text
        assert approve(tablet, request_id, code, document).json()["status"] == "signed"
    keys = InstallationKeys.load(installation.secrets_dir)
    pins = PinStore(installation.data_dir / "bridge" / "pins.json", keys.fernet_key)
    stored = json.loads((installation.data_dir / "bridge" / "pins.json").read_text())
    for otp in (code, wrong):  # six digits: look for them as whole words only
        assert not re.search(rf"\b{otp}\b", server.log_path.read_text("utf-8"))
    secrets = {
        demo_credentials["api_key"],
        signer.password,
        signer.totp_secret,
        token,
        one_time_code,
        nonce,
        "fcm-tok-1",
        *(pins.get(serial) for serial in stored),
        *(s["password"] for s in demo_credentials["signers"]),
        *(s["totp_secret"] for s in demo_credentials["signers"]),
    }
    log_text = server.log_path.read_text("utf-8", "replace")
    assert "with credential" in log_text  # the log is really being written (bridge.signed)
    for secret in secrets:
        assert secret not in log_text
    assert document[200:260].decode("latin-1") not in log_text
    if log_format == "json":  # every line an object, none carrying a field we did not name
        records = [json.loads(line) for line in log_text.splitlines() if line.strip()]
        assert records and all(set(r) <= _JSON_FIELDS for r in records)


_JSON_FIELDS = {"time", "level", "logger", "message", "request_id", "exc_info"}


def test_tracebacks_are_redacted():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise ValueError("password=hunter2 token=abc.def")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "ValueError" in text and "hunter2" not in text and "abc.def" not in text


def test_json_tracebacks_and_extras_are_redacted():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "pin=%s", ("123456",), None)
    record.color_message = "pin=123456"  # an extra a library adds, never redacted: left out
    try:
        raise ValueError("password=hunter2")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RequestIdLogFilter().filter(record)
    RedactingFilter().filter(record)
    line = json.loads(RedactedJsonFormatter().format(record))
    assert set(line) == {"time", "level", "logger", "message", "request_id", "exc_info"}
    assert "123456" not in json.dumps(line) and "hunter2" not in json.dumps(line)
    assert "ValueError" in line["exc_info"] and line["request_id"] == "-"
