"""What the bridge knows about signers: which credentials each may use, their devices'
public keys, their TOTP secrets, one-time device enrolment codes and spent approval
nonces. The signature activation module (:mod:`hsm_bridge.authorization`) decides from
this, and from nothing the web tier says, whether a signer approved.

Stored in the bridge's own SQLite file (WAL journal, ``synchronous=FULL``), next to its
PIN file and used activations; TOTP secrets and enrolment codes are encrypted at rest
with the bridge's Fernet key (AES-128-CBC + HMAC-SHA256). Three kinds of operations:

- local administration, only from the bridge host's own CLI or the in-process bridge
  (:meth:`SignerRegistry.bind_credential`, :meth:`~SignerRegistry.issue_enrolment_code`,
  :meth:`~SignerRegistry.set_totp`): never reachable over the bridge's network API;
- what the gateway may forward because it carries a proof it cannot forge (a device
  enrolment with the code's HMAC, a TOTP enrolment confirmed by a code) or only takes
  power away (revoking a device);
- the checks the activation module runs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import AuthorizationRefused
from hsm_bridge.otp import match_step
from hsm_bridge.statement import StatementSignatureInvalid, load_device_public_key

__all__ = [
    "ENROLMENT_PROOF_CONTEXT",
    "DeviceRecord",
    "EnrolledDevice",
    "EnrolmentCode",
    "SignerRegistry",
    "TotpPolicy",
    "device_id_of",
    "enrolment_proof",
]

# What a device's enrolment proof is an HMAC of (followed by its DER SPKI).
ENROLMENT_PROOF_CONTEXT = b"signing-gateway/device-enrolment/1\x00"
_BASE32 = re.compile(r"^[A-Z2-7]+=*$")
# Wrong proofs a code survives; then it is void (it is shown once, on one screen).
MAX_ENROLMENT_ATTEMPTS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signer_credential (
    signer TEXT NOT NULL, credential TEXT NOT NULL, PRIMARY KEY (signer, credential));
CREATE TABLE IF NOT EXISTS device (
    device_id TEXT PRIMARY KEY, signer TEXT NOT NULL, public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS enrolment_code (
    code_id TEXT PRIMARY KEY, signer TEXT NOT NULL, secret BLOB NOT NULL,
    expires_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, used_at INTEGER);
CREATE TABLE IF NOT EXISTS totp (
    signer TEXT PRIMARY KEY, secret BLOB, pending_secret BLOB, last_step INTEGER,
    failures INTEGER NOT NULL DEFAULT 0, locked_until INTEGER, open_until INTEGER);
CREATE TABLE IF NOT EXISTS spent_nonce (
    nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
"""


def device_id_of(public_key_der: bytes) -> str:
    """A device's id: the first 16 bytes of the SHA-256 of its DER SPKI (uncompressed
    point), hex (32 characters). Derived from the key, so the same device has the same id at every
    bridge it enrols with, and one statement can be checked by all of them."""
    return hashlib.sha256(public_key_der).hexdigest()[:32]


def enrolment_proof(code_secret: str, public_key_der: bytes) -> bytes:
    """What a device sends instead of its enrolment code: HMAC-SHA256 (RFC 2104) keyed
    with the code's secret (its ASCII bytes) over :data:`ENROLMENT_PROOF_CONTEXT` and the
    device's DER SubjectPublicKeyInfo; 32 bytes. Whoever relays it learns nothing that
    would let them enrol another key."""
    return hmac.new(
        code_secret.encode("ascii"), ENROLMENT_PROOF_CONTEXT + public_key_der, hashlib.sha256
    ).digest()


@dataclass(frozen=True, slots=True)
class EnrolmentCode:
    """A one-time device enrolment code for ``signer``: ``code_id`` names it, ``secret``
    (base64url, 128 bits) never leaves the signer's screen and app; ``text`` is what the
    QR code carries (``code_id.secret``); ``expires_at`` in POSIX seconds."""

    code_id: str
    secret: str
    signer: str
    expires_at: int

    @property
    def text(self) -> str:
        """``code_id.secret``."""
        return f"{self.code_id}.{self.secret}"


@dataclass(frozen=True, slots=True)
class EnrolledDevice:
    """A device the bridge now knows: the id it gave it and whose it is."""

    device_id: str
    signer: str


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device key as the bridge holds it (DER SPKI, P-256); ``revoked_at`` POSIX
    seconds or None."""

    device_id: str
    signer: str
    public_key_der: bytes
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class TotpPolicy:
    """Wrong codes allowed before approval locks (``max_failures``), and for how long
    (``lockout_seconds``)."""

    max_failures: int = 5
    lockout_seconds: int = 300


def _refused(reason: str, message: str) -> AuthorizationRefused:
    return AuthorizationRefused(message, reason=reason)


class SignerRegistry:
    """The bridge's signer records in the SQLite file ``path``; ``key`` is the bridge's
    Fernet key (urlsafe base64). Every write is one ``BEGIN IMMEDIATE`` transaction, so
    a code, a nonce or a TOTP step is spent once even by concurrent callers or
    processes."""

    def __init__(self, path: Path, key: bytes, *, totp_policy: TotpPolicy | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fernet = Fernet(key)
        self._policy = totp_policy or TotpPolicy()
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(totp)")}
        if "open_until" not in columns:  # a registry made before the column existed
            self._conn.execute("ALTER TABLE totp ADD COLUMN open_until INTEGER")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    # ---- local administration (bridge host only) ----------------------------------

    def bind_credential(self, signer: str, credential: CredentialRef) -> None:
        """Let ``signer`` (a username) sign with ``credential``. Idempotent."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO signer_credential (signer, credential) VALUES (?, ?)",
                (signer, str(credential)),
            )

    def unbind_credential(self, signer: str, credential: CredentialRef) -> bool:
        """Stop ``signer`` from signing with ``credential``; False when it was not bound."""
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM signer_credential WHERE signer = ? AND credential = ?",
                (signer, str(credential)),
            )
            return cursor.rowcount == 1

    def credentials_of(self, signer: str) -> set[str]:
        """The credentials (``serial/key-id-hex`` text, as ``str(CredentialRef)``) ``signer``
        may sign with."""
        rows = self._read("SELECT credential FROM signer_credential WHERE signer = ?", (signer,))
        return {str(row[0]) for row in rows}

    def issue_enrolment_code(self, signer: str, *, now: float, ttl_seconds: int) -> EnrolmentCode:
        """A new one-time device enrolment code for ``signer``, valid ``ttl_seconds``."""
        code = EnrolmentCode(
            code_id=secrets.token_urlsafe(9),
            secret=secrets.token_urlsafe(16),
            signer=signer,
            expires_at=int(now) + ttl_seconds,
        )
        with self._write() as conn:
            conn.execute("DELETE FROM enrolment_code WHERE expires_at < ?", (int(now) - 86400,))
            conn.execute(
                "INSERT INTO enrolment_code (code_id, signer, secret, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (code.code_id, signer, self._fernet.encrypt(code.secret.encode()), code.expires_at),
            )
        return code

    def set_totp(self, signer: str, secret: str) -> None:
        """Install ``signer``'s TOTP secret (base32) directly, replacing any; for the
        bridge host's administrator (and the demo installation)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO totp (signer, secret) VALUES (?, ?) ON CONFLICT (signer) DO"
                " UPDATE SET secret = excluded.secret, pending_secret = NULL,"
                " last_step = NULL, failures = 0, locked_until = NULL",
                (signer, self._fernet.encrypt(secret.encode())),
            )

    def reset_totp(self, signer: str, *, now: float, open_seconds: int = 86400) -> bool:
        """Forget ``signer``'s TOTP secret (a lost phone) and allow, for ``open_seconds``,
        one new enrolment from the gateway without a code of the old one (even for a
        signer with an enrolled device). False when there was no secret."""
        with self._write() as conn:
            found = conn.execute("SELECT secret FROM totp WHERE signer = ?", (signer,)).fetchone()
            conn.execute(
                "INSERT INTO totp (signer, open_until) VALUES (?, ?) ON CONFLICT (signer) DO"
                " UPDATE SET secret = NULL, pending_secret = NULL, last_step = NULL,"
                " failures = 0, locked_until = NULL, open_until = excluded.open_until",
                (signer, int(now) + open_seconds),
            )
            return found is not None and found[0] is not None

    # ---- what the gateway may forward ---------------------------------------------

    def enrol_device(
        self, code_id: str, public_key_der: bytes, proof: bytes, *, now: float
    ) -> EnrolledDevice:
        """Register a device key with an enrolment code: ``proof`` must be
        :func:`enrolment_proof` of the code's secret and ``public_key_der`` (DER SPKI,
        P-256). The code is spent here; it is void after
        :data:`MAX_ENROLMENT_ATTEMPTS` wrong proofs. The device is named by
        :func:`device_id_of`; enrolling a key the signer has already is accepted (a
        new push token), a revoked key or another signer's is not. Raises
        :class:`AuthorizationRefused` (``enrolment_code_invalid``,
        ``device_key_invalid``)."""
        try:
            key = load_device_public_key(public_key_der)
        except StatementSignatureInvalid as exc:
            raise _refused("device_key_invalid", "device keys are P-256 (DER SPKI)") from exc
        # One key, one encoding (uncompressed point): a revoked key sent again in another
        # encoding (a compressed point) is still that revoked key.
        canonical = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        with self._write() as conn:
            row = conn.execute(
                "SELECT signer, secret, expires_at, attempts, used_at FROM enrolment_code"
                " WHERE code_id = ?",
                (code_id,),
            ).fetchone()
            usable = (
                row is not None
                and row[4] is None
                and int(now) < int(row[2])
                and int(row[3]) < MAX_ENROLMENT_ATTEMPTS
            )
            if usable:
                secret = self._fernet.decrypt(bytes(row[1])).decode()
                expected = enrolment_proof(secret, public_key_der)
                if hmac.compare_digest(expected, proof):
                    device = EnrolledDevice(device_id_of(canonical), str(row[0]))
                    conn.execute(
                        "UPDATE enrolment_code SET used_at = ? WHERE code_id = ?",
                        (int(now), code_id),
                    )
                    known = conn.execute(
                        "SELECT signer, revoked_at FROM device WHERE device_id = ?",
                        (device.device_id,),
                    ).fetchone()
                    if known is None:
                        conn.execute(
                            "INSERT INTO device (device_id, signer, public_key, created_at)"
                            " VALUES (?, ?, ?, ?)",
                            (device.device_id, device.signer, canonical, int(now)),
                        )
                        return device
                    if known[0] == device.signer and known[1] is None:
                        return device  # enrolled again (a new push token): the same key
                    raise _refused(  # rolled back: the code stays as it was
                        "device_key_invalid", "this key is revoked or belongs to someone else"
                    )
            if row is not None:
                conn.execute(
                    "UPDATE enrolment_code SET attempts = attempts + 1 WHERE code_id = ?",
                    (code_id,),
                )
        raise _refused(
            "enrolment_code_invalid", "the enrolment code is unknown, used, expired or wrong"
        )

    def revoke_device(self, device_id: str, *, now: float) -> bool:
        """Revoke a device key at once; idempotent. False when the bridge never knew it."""
        with self._write() as conn:
            conn.execute(
                "UPDATE device SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL",
                (int(now), device_id),
            )
            found = conn.execute("SELECT 1 FROM device WHERE device_id = ?", (device_id,))
            return found.fetchone() is not None

    def begin_totp_enrolment(
        self, signer: str, secret: str, current_otp: str | None, *, now: float
    ) -> None:
        """Keep ``secret`` (base32, 128 bits or more) as ``signer``'s pending TOTP secret.
        When the signer has one already, ``current_otp`` must be a valid, unused code of
        it; a signer with no TOTP but an enrolled device gets none this way (whoever
        relays this could otherwise give them an authenticator of its own). Raises
        :class:`AuthorizationRefused` (``totp_secret_invalid``,
        ``totp_enrolment_refused``, and the reasons of :meth:`check_totp`)."""
        if not _BASE32.match(secret) or len(secret) < 26:
            raise _refused("totp_secret_invalid", "a TOTP secret is base32, 128 bits or more")
        refusal: AuthorizationRefused | None = None
        with self._write() as conn:
            row = conn.execute(
                "SELECT secret, open_until FROM totp WHERE signer = ?", (signer,)
            ).fetchone()
            devices = conn.execute(
                "SELECT 1 FROM device WHERE signer = ? AND revoked_at IS NULL", (signer,)
            ).fetchone()
            opened = row is not None and row[1] is not None and now < int(row[1])
            if (row is None or row[0] is None) and devices is not None and not opened:
                # whoever relays this could give a device-only signer an authenticator
                # of its own: the bridge's administrator adds one (set_totp)
                raise _refused(
                    "totp_enrolment_refused",
                    "this signer approves with a device; the bridge's administrator adds TOTP",
                )
            if row is not None and row[0] is not None:
                try:
                    if current_otp is None:
                        raise _refused("totp_invalid", "a code of the current authenticator")
                    self._accept_code(conn, signer, current_otp, now=now)
                except AuthorizationRefused as exc:
                    refusal = exc  # committed: the failure count must stick
            if refusal is None:
                conn.execute(
                    "INSERT INTO totp (signer, pending_secret) VALUES (?, ?) ON CONFLICT"
                    " (signer) DO UPDATE SET pending_secret = excluded.pending_secret",
                    (signer, self._fernet.encrypt(secret.encode())),
                )
        if refusal is not None:
            raise refusal

    def confirm_totp_enrolment(self, signer: str, otp: str, *, now: float) -> None:
        """Make the pending secret active when ``otp`` is a code of it; that code's step
        can approve nothing afterwards. Raises :class:`AuthorizationRefused`
        (``totp_not_enrolled`` when nothing is pending, ``totp_invalid``)."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT pending_secret FROM totp WHERE signer = ?", (signer,)
            ).fetchone()
            if row is None or row[0] is None:
                raise _refused("totp_not_enrolled", "no TOTP enrolment is pending")
            pending = bytes(row[0])
            step = match_step(self._fernet.decrypt(pending).decode(), otp.strip(), now=now)
            if step is None:
                raise _refused("totp_invalid", "the code does not match the new authenticator")
            conn.execute(
                "UPDATE totp SET secret = ?, pending_secret = NULL, last_step = ?,"
                " failures = 0, locked_until = NULL, open_until = NULL WHERE signer = ?",
                (pending, step, signer),
            )

    # ---- checks -------------------------------------------------------------------

    def device(self, device_id: str) -> DeviceRecord | None:
        """The device key the bridge holds under ``device_id``, if any."""
        rows = self._read(
            "SELECT device_id, signer, public_key, revoked_at FROM device WHERE device_id = ?",
            (device_id,),
        )
        if not rows:
            return None
        found = rows[0]
        return DeviceRecord(
            str(found[0]),
            str(found[1]),
            bytes(found[2]),  # type: ignore[arg-type]
            None if found[3] is None else int(found[3]),  # type: ignore[call-overload]
        )

    def spend_nonce(self, nonce: str, expires_at: int, *, now: float) -> bool:
        """Record an approval nonce as spent; False when it was spent before. Entries
        expired for a day are pruned (a statement past its expiry is refused anyway)."""
        with self._write() as conn:
            conn.execute("DELETE FROM spent_nonce WHERE expires_at < ?", (int(now) - 86400,))
            cursor = conn.execute(
                "INSERT OR IGNORE INTO spent_nonce (nonce, expires_at) VALUES (?, ?)",
                (nonce, expires_at),
            )
            return cursor.rowcount == 1

    def check_totp(self, signer: str, otp: str, *, now: float) -> None:
        """Accept ``otp`` for ``signer`` once: a code of the current or previous 30-second
        step, strictly newer than the last step accepted. A wrong code counts towards
        the lockout (kept even though the call fails). Raises
        :class:`AuthorizationRefused` with reason ``totp_not_enrolled``,
        ``totp_locked`` (locked already), ``totp_lockout`` (this wrong code locked it),
        ``totp_invalid`` or ``totp_reused``."""
        refusal: AuthorizationRefused | None = None
        with self._write() as conn:
            try:
                self._accept_code(conn, signer, otp, now=now)
            except AuthorizationRefused as exc:
                refusal = exc  # committed: the failure count must stick
        if refusal is not None:
            raise refusal

    def _accept_code(self, conn: sqlite3.Connection, signer: str, otp: str, *, now: float) -> None:
        row = conn.execute(
            "SELECT secret, last_step, failures, locked_until FROM totp WHERE signer = ?",
            (signer,),
        ).fetchone()
        if row is None or row[0] is None:
            raise _refused("totp_not_enrolled", "the bridge holds no TOTP secret for this signer")
        secret, last_step, failures, locked_until = row
        if locked_until is not None and now < int(locked_until):
            raise _refused("totp_locked", "too many wrong codes; approval is locked for a while")
        step = match_step(self._fernet.decrypt(bytes(secret)).decode(), otp.strip(), now=now)
        if step is None:
            failures = int(failures) + 1
            if failures >= self._policy.max_failures:
                conn.execute(
                    "UPDATE totp SET failures = 0, locked_until = ? WHERE signer = ?",
                    (int(now) + self._policy.lockout_seconds, signer),
                )
                raise _refused("totp_lockout", "too many wrong codes; approval is now locked")
            conn.execute("UPDATE totp SET failures = ? WHERE signer = ?", (failures, signer))
            raise _refused("totp_invalid", "the code is wrong")
        if last_step is not None and step <= int(last_step):
            raise _refused("totp_reused", "this code, or a newer one, was already used")
        conn.execute(
            "UPDATE totp SET last_step = ?, failures = 0, locked_until = NULL WHERE signer = ?",
            (step, signer),
        )
