"""The bridge when hardware misbehaves, with a fault-injecting PKCS#11 shim in front of a
private SoftHSM2 instance (tests/pkcs11_shim/faultshim.c), loaded beside the plain
SoftHSM2 module of the test installation: two modules in one bridge, device errors, a
token pulled out and plugged back in, a stuck token, wrong and locked PINs, the signer
PIN policy and keys that demand the PIN for each signature."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature

from gateway.bridges import bridge_config
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge import (
    Bridge,
    BridgeConfig,
    CredentialRef,
    ModuleConfig,
    SignRequest,
    TokenLimits,
)
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.errors import BridgeError
from hsm_bridge.pkcs11.pins import PinStore
from hsm_bridge.pkcs11.provisioning import KeySpec
from hsm_bridge.sam.activation import ActivationIssuer
from hsm_bridge.sam.pin_envelope import seal_pin
from signing_gateway.demo.pki import DemoPki, HolderName
from signing_gateway.demo.sample_pdf import sample_pdf
from tests.sads import request_for
from tests.shim import CKR_DEVICE_ERROR, CKR_PIN_LOCKED, FaultShim, ShimUnavailable

# python-pkcs11 calls C_FindObjectsFinal from a destructor after a failed search and
# raises there (an "exception ignored" on a removed device): not ours to fail on.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

PINS = {"f1": "1111", "f2": "2222", "fpin": "3333", "fauth": "4444", "fdel": "5555"}
KEY_ID = b"\x0f\x01"
CKU_CONTEXT_SPECIFIC = 2


def _certifier(installation, label: str):
    """Certificates from the installation's demo CA (its OCSP responder answers for
    them, as the bridge asks before each signature)."""
    pki = DemoPki(installation.data_dir / "pki")
    holder = HolderName(f"Thử nghiệm {label}", "Chuyên viên", "Sở Tài chính tỉnh Hà Nam")
    return lambda public: pki.certify(public, holder, dt.datetime.now(dt.UTC))


@dataclass
class Rig:
    shim: FaultShim
    bridge: Bridge
    issuer: ActivationIssuer
    pins: PinStore
    serials: dict[str, str]
    plain_serial: str
    certificates: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def request(
        self,
        label: str,
        *,
        pin: str | None = None,
        text: str = "x",
        authorization: str | None = None,
    ) -> SignRequest:
        """A request for a fresh document under a fresh SAD; ``pin`` is sealed to the
        bridge for the SAD's approval, as the tablet seals it."""
        ref = CredentialRef(self.serials[label], KEY_ID)
        document = sample_pdf([f"{label} {text}"])
        authorization = authorization or secrets.token_hex(8)
        request = request_for(
            self.issuer,
            ref,
            SignatureMechanism.RSA_PKCS_SHA256,
            document,
            self.certificates[label],
            subject="fault",
            authorization=authorization,
        )
        if pin is None:
            return request
        sealed = seal_pin(self.bridge.pin_key(ref.token_serial), pin, authorization)
        return dataclasses.replace(request, pin_envelope=sealed)

    def sign(self, label: str, **kwargs: str | None) -> bytes:
        request = self.request(label, **kwargs)
        signed = self.bridge.sign(request)
        (signature,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
        status = validate_pdf_signature(signature)
        assert status.intact and status.valid
        assert signature.signer_cert.dump() == self.certificates[label]
        return signed

    def state(self, label: str) -> str:
        return {h.serial: h.state for h in self.bridge.health()}[self.serials[label]]

    def error(self, label: str, **kwargs: str | None) -> BridgeError:
        with pytest.raises(BridgeError) as caught:
            self.bridge.sign(self.request(label, **kwargs))
        return caught.value


@pytest.fixture(scope="module")
def rig(installation, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    work = tmp_path_factory.mktemp("faults")
    try:
        shim = FaultShim(work / "shim")
    except ShimUnavailable as exc:  # pragma: no cover - gcc is a test dependency
        pytest.fail(str(exc))
    for label, pin in PINS.items():
        shim.init_token(label, so_pin="9999", user_pin=pin)
    keys = InstallationKeys.load(installation.secrets_dir)
    base = bridge_config(installation, keys)
    pin_file = work / "pins.json"
    shutil.copyfile(base.pin_file, pin_file)
    pins = PinStore(pin_file, base.pin_key)

    def bridge_with(limits: TokenLimits) -> Bridge:
        return Bridge(
            BridgeConfig(
                modules=(ModuleConfig(str(shim.module_path), limits=limits), base.modules[0]),
                pin_file=pin_file,
                pin_key=base.pin_key,
                activation_key=keys.activation_key,
                used_activations_file=work / "used.db",
                ca_certificates_file=base.ca_certificates_file,
                trust_anchors_file=base.trust_anchors_file,
            )
        )

    with shim.environment():
        # keys are made, and certified by the demo CA, without the tests' 1 s limit
        setup = bridge_with(TokenLimits(1, 60.0))
        inventory = setup.inventory()
        serials = {t.label: t.serial for t in inventory if t.module == str(shim.module_path)}
        certificates = {}
        for label, pin in PINS.items():
            pins.put(serials[label], pin)
            certificates[label] = setup.provision(
                serials[label],
                KeySpec.RSA_2048,
                KEY_ID,
                label,
                _certifier(installation, label),
                always_authenticate=label == "fauth",
            )
        bridge = bridge_with(TokenLimits(1, 1.0))
        inventory = bridge.inventory()
    plain = next(t.serial for t in inventory if t.label == "leader1")
    pins.remove(serials["fpin"])  # PIN policy signer
    return Rig(
        shim, bridge, ActivationIssuer(keys.activation_key), pins, serials, plain, certificates
    )


@pytest.fixture(autouse=True)
def _clean(rig: Rig):
    rig.shim.clear()
    rig.shim.reset_calls()
    yield
    rig.shim.clear()


def test_two_modules_in_one_bridge_each_show_their_tokens(rig: Rig):
    entries = {t.serial: t for t in rig.bridge.inventory()}
    assert entries[rig.serials["f1"]].module == str(rig.shim.module_path)
    assert entries[rig.plain_serial].module != str(rig.shim.module_path)
    assert "RSA_PKCS" in entries[rig.serials["f1"]].mechanisms
    assert rig.sign("f1")


def test_a_device_error_is_reported_retryable_and_the_next_call_reconnects(rig: Rig):
    rig.sign("f1")
    rig.shim.set(sign=CKR_DEVICE_ERROR)
    error = rig.error("f1")
    assert (error.code, error.retryable) == ("token_error", True)
    assert rig.state("f1") == "failing"
    rig.shim.clear()
    assert rig.sign("f1")
    assert rig.state("f1") == "ok"


def test_a_removed_token_shows_as_removed_and_comes_back_without_a_restart(rig: Rig):
    rig.sign("f2")
    rig.shim.set(removed=1)
    error = rig.error("f2")
    assert (error.code, error.retryable) == ("token_not_present", True)
    assert rig.state("f2") == "removed"
    assert rig.serials["f2"] not in {t.serial for t in rig.bridge.inventory()}
    # the other module's tokens are unaffected
    assert {h.serial: h.state for h in rig.bridge.health()}[rig.plain_serial] == "ok"
    rig.shim.clear()  # plugged back in: the old sessions are void, new ones are opened
    assert rig.sign("f2")
    assert rig.state("f2") == "ok"


def test_pulling_the_token_while_signers_hammer_it_loses_nothing_and_hangs_nothing(rig: Rig):
    outcomes: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            try:
                rig.sign("f1", text=f"h{number}")
                outcomes.append("signed")
            except BridgeError as exc:
                assert exc.retryable, exc.code
                outcomes.append(exc.code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    rig.shim.set(removed=1)
    time.sleep(0.3)
    rig.shim.clear()
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), "a signer hung"
    assert "signed" in outcomes
    assert set(outcomes) <= {"signed", "token_not_present", "token_error", "token_busy"}
    assert rig.sign("f1")


def test_a_stuck_token_times_out_and_the_other_module_keeps_signing(rig: Rig):
    rig.sign("f2")
    rig.shim.set(sign_delay_ms=2500)
    begin = time.monotonic()
    error = rig.error("f2")
    assert (error.code, error.retryable) == ("token_timeout", True)
    assert time.monotonic() - begin < 2.0
    assert rig.state("f2") == "unhealthy"
    assert rig.error("f2").code == "token_unhealthy"
    # the other tokens of the module, and the plain module's, are not stalled
    assert {h.serial: h.state for h in rig.bridge.health()}[rig.plain_serial] == "ok"
    rig.shim.clear()
    deadline = time.monotonic() + 10
    while rig.state("f2") != "ok" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.state("f2") == "ok"
    assert rig.sign("f2")


def test_a_locked_pin_is_reported_as_pin_locked(rig: Rig):
    serial = rig.serials["f1"]
    # force a new login: drop the pooled sessions of f1 with a device error first
    rig.shim.set(sign=CKR_DEVICE_ERROR)
    rig.error("f1")
    rig.shim.set(login=CKR_PIN_LOCKED)
    rig.shim.reset_calls()
    error = rig.error("f1")
    assert (error.code, error.retryable) == ("pin_locked", False)
    assert rig.state("f1") == "pin_locked"
    assert rig.shim.calls().count("login 1") == 1
    rig.shim.clear()
    assert serial


def test_a_wrong_stored_pin_is_tried_once_and_never_again(rig: Rig):
    serial = rig.serials["f2"]
    rig.shim.set(sign=CKR_DEVICE_ERROR)
    rig.error("f2")  # drop the pooled, logged-in sessions
    rig.shim.clear()
    rig.pins.put(serial, "0000")
    rig.shim.reset_calls()
    assert rig.error("f2").code == "pin_incorrect"
    assert rig.error("f2").code == "pin_incorrect"
    assert rig.error("f2").code == "pin_incorrect"
    assert rig.shim.calls().count("login 1") == 1, "a rejected PIN is never tried again"
    rig.pins.put(serial, PINS["f2"])  # the clerk stores the right one
    assert rig.sign("f2")


def test_signer_pin_is_used_once_checked_every_time_and_never_retried(rig: Rig):
    assert rig.error("fpin").code == "pin_required"
    rig.shim.reset_calls()
    assert rig.error("fpin", pin="0000").code == "pin_incorrect"
    assert rig.shim.calls().count("login 1") == 1
    assert rig.sign("fpin", pin=PINS["fpin"])
    # the login ended with the operation: the next signature logs in again
    rig.shim.reset_calls()
    assert rig.sign("fpin", pin=PINS["fpin"])
    assert rig.shim.calls().count("login 1") == 1
    assert rig.error("fpin", pin="0000").code == "pin_incorrect"
    assert rig.error("fpin").code == "pin_required"


def test_always_authenticate_keys_get_a_context_specific_login_per_signature(rig: Rig):
    rig.shim.reset_calls()
    rig.sign("fauth", text="one")
    rig.sign("fauth", text="two")
    assert rig.shim.calls().count(f"login {CKU_CONTEXT_SPECIFIC}") == 2


def test_a_used_activation_never_reaches_the_token(rig: Rig):
    request = rig.request("f1", text="once")
    rig.bridge.sign(request)
    rig.shim.reset_calls()
    outcomes = rig.bridge.sign_many([request, request])
    assert [(o.code, o.reason) for o in outcomes] == [("activation_invalid", "reused")] * 2
    assert "sign" not in rig.shim.calls()


def test_one_activation_carries_at_most_one_signer_pin_attempt(rig: Rig):
    base = rig.request("fpin", text="guess", pin="9000", authorization="guesses")
    guesses = [
        dataclasses.replace(
            base,
            pin_envelope=seal_pin(rig.bridge.pin_key(""), f"9{n:03d}", "guesses"),
        )
        for n in range(5)
    ]
    rig.shim.reset_calls()
    outcomes = rig.bridge.sign_many(guesses)
    assert rig.shim.calls().count("login 1") == 1, "one PIN attempt per activation"
    assert [o.code for o in outcomes] == ["pin_incorrect"] + ["activation_invalid"] * 4
    rig.shim.reset_calls()
    again = rig.bridge.sign_many([dataclasses.replace(base)])[0]
    assert isinstance(again, BridgeError) and again.code == "activation_invalid"
    assert rig.shim.calls() == [], "a used activation is refused before any login"


@pytest.mark.invariant(1)
def test_one_approval_tries_a_wrong_pin_once_for_all_its_signatures(rig: Rig):
    """Twelve requests of one approval with a wrong PIN: one login on the token (a real
    USB token locks after 3 to 10 wrong ones), every request refused."""
    requests = [
        rig.request("fpin", text=f"batch {n}", pin="0000", authorization="one-statement")
        for n in range(12)
    ]
    rig.shim.reset_calls()
    outcomes = rig.bridge.sign_many(requests)
    assert [o.code for o in outcomes] == ["pin_incorrect"] * 12
    assert rig.shim.calls().count("login 1") == 1
    rig.shim.reset_calls()
    # sent again one by one (a relay retrying), under new SADs of the same approval
    for n in range(3):
        late = rig.request("fpin", text=f"late {n}", pin="0000", authorization="one-statement")
        assert rig.bridge.sign_many([late])[0].code == "pin_incorrect"
    assert rig.shim.calls().count("login 1") == 0


@pytest.mark.invariant(1)
def test_a_pin_sealed_for_one_approval_opens_for_no_other(rig: Rig):
    request = rig.request("fpin", text="bound", pin=PINS["fpin"], authorization="statement-a")
    other = rig.request("fpin", text="other", authorization="statement-b")
    moved = dataclasses.replace(other, pin_envelope=request.pin_envelope)
    rig.shim.reset_calls()
    outcome = rig.bridge.sign_many([moved])[0]
    assert isinstance(outcome, BridgeError) and outcome.code == "pin_envelope_invalid"
    assert "login 1" not in rig.shim.calls()
    assert rig.bridge.sign(request)


def test_an_activation_is_bound_to_its_mechanism(rig: Rig):
    request = rig.request("f1", text="mechanism")
    pss = dataclasses.replace(request, mechanism=SignatureMechanism.RSA_PSS_SHA256)
    outcome = rig.bridge.sign_many([pss])[0]
    assert isinstance(outcome, BridgeError)
    assert (outcome.code, outcome.reason) == ("activation_invalid", "wrong_mechanism")


# Last: SoftHSM2 refuses new logins on the whole instance once a token directory
# vanished under it, which no real token does to its neighbours.
def test_a_token_deleted_under_the_bridge_fails_clearly_and_spares_the_others(rig: Rig):
    rig.sign("fdel")
    subprocess.run(
        ["softhsm2-util", "--delete-token", "--serial", rig.serials["fdel"]],
        env=dict(os.environ, SOFTHSM2_CONF=str(rig.shim.softhsm2_conf)),
        check=True,
        capture_output=True,
        timeout=60,
    )
    error = rig.error("fdel")
    assert error.code in ("token_error", "token_not_present", "credential_not_found")
    assert error.retryable or error.code == "credential_not_found"
    # listing still works (the broken slot is skipped) and the other module is untouched
    listed = {t.serial for t in rig.bridge.inventory()}
    assert rig.plain_serial in listed
    assert {h.serial: h.state for h in rig.bridge.health()}[rig.plain_serial] == "ok"
