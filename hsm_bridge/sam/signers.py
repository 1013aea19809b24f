"""What the bridge knows about signers: which credentials each may use, their devices'
public keys, their TOTP secrets, one-time enrolment codes, spent approval nonces and the
approvals whose sealed PIN a token refused. The signature activation module
(:mod:`hsm_bridge.sam.authorization`) decides from this, and from nothing the web tier says,
whether a signer approved. The bridge is the source of truth for every signer's factors:
the gateway's lists are views of these records.

Stored in the bridge's own SQLite file (WAL journal, ``synchronous=FULL``), next to its
PIN file and spent activations, with a versioned schema (:data:`_MIGRATIONS`,
``PRAGMA user_version``); TOTP secrets and enrolment codes are encrypted at rest with the
bridge's Fernet key (AES-128-CBC + HMAC-SHA256). Three kinds of operations:

- local administration, only from the bridge host's own CLI or the in-process bridge
  (:meth:`SignerRegistry.bind_credential`, :meth:`~SignerRegistry.issue_enrolment_code`,
  :meth:`~SignerRegistry.set_totp`, :meth:`~SignerRegistry.revoke_device`): never
  reachable over the bridge's network API;
- what the gateway may forward because it carries a proof it cannot forge (an
  enrolment with a code's HMAC, a TOTP change confirmed by a code);
- the checks the activation module runs.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm_bridge.clock import posix
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.sam.passkey_records import PasskeyRecords
from hsm_bridge.sam.statement import StatementSignatureInvalid, load_device_public_key
from hsm_bridge.sam.totp_records import TOTP_ENROLMENT_CONTEXT, TotpPolicy, TotpRecords

__all__ = [
    "DEVICE_ENROLMENT_CONTEXT",
    "TOTP_ENROLMENT_CONTEXT",
    "CodeIssuer",
    "DeviceRecord",
    "EnrolledDevice",
    "EnrolmentCode",
    "SignerRegistry",
    "TotpPolicy",
    "device_id_of",
    "enrolment_proof",
]

# What an enrolment proof is an HMAC of: one of these, then what is enrolled.
DEVICE_ENROLMENT_CONTEXT = b"signing-gateway/device-enrolment/1\x00"

# Each migration runs once, in order; ``PRAGMA user_version`` counts those applied.
# 1: the records as they were before versioning (every statement idempotent, so that a
#    file made then is taken over as it is); 2: who issued an enrolment code and how
#    each device was enrolled (the profile decides which are accepted), failures that a
#    correct code does not erase, PIN refusals per approval, no attempt limit on codes.
_MIGRATIONS: tuple[str, ...] = (
    """
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
        failures INTEGER NOT NULL DEFAULT 0, locked_until INTEGER);
    CREATE TABLE IF NOT EXISTS spent_nonce (
        nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
    """,
    """
    ALTER TABLE enrolment_code ADD COLUMN issued_by TEXT NOT NULL DEFAULT 'administrator';
    ALTER TABLE device ADD COLUMN enrolled_with TEXT NOT NULL DEFAULT 'administrator';
    ALTER TABLE device ADD COLUMN kind TEXT NOT NULL DEFAULT 'device_key';
    ALTER TABLE totp ADD COLUMN last_failure_at INTEGER;
    CREATE TABLE IF NOT EXISTS pin_refusal (
        authorization TEXT NOT NULL, token_serial TEXT NOT NULL,
        expires_at INTEGER NOT NULL, PRIMARY KEY (authorization, token_serial));
    """,
    # 3: passkeys (WebAuthn): a device of kind 'passkey' keeps its credential id, its
    #    COSE public key (in public_key), its sign counter and backup flags; the
    #    registration challenges the bridge issued
    """
    ALTER TABLE device ADD COLUMN credential_id BLOB;
    ALTER TABLE device ADD COLUMN sign_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE device ADD COLUMN backup_eligible INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE device ADD COLUMN backed_up INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS webauthn_challenge (
        challenge_id TEXT PRIMARY KEY, signer TEXT NOT NULL, challenge BLOB NOT NULL,
        expires_at INTEGER NOT NULL, used_at INTEGER);
    """,
)


class CodeIssuer(enum.StrEnum):
    """Who had an enrolment code issued, which the profile judges
    (:class:`~hsm_bridge.sam.authorization.Profile`): the bridge's ``administrator`` (its
    host's CLI), a signer's ``totp`` code (only where TOTP approves), or one of the
    signer's enrolled ``device`` factors."""

    ADMINISTRATOR = "administrator"
    TOTP = "totp"
    DEVICE = "device"


def device_id_of(public_key_der: bytes) -> str:
    """A device's id: the first 16 bytes of the SHA-256 of its DER SPKI (uncompressed
    point), hex (32 characters). Derived from the key, so the same device has the same
    id at every bridge it enrols with, and one statement can be checked by all of them."""
    return hashlib.sha256(public_key_der).hexdigest()[:32]


def enrolment_proof(
    code_secret: str, what: bytes, context: bytes = DEVICE_ENROLMENT_CONTEXT
) -> bytes:
    """What the signer's app sends instead of an enrolment code: HMAC-SHA256 (RFC 2104)
    keyed with the code's secret (its ASCII bytes) over ``context`` and ``what`` (a
    device's DER SubjectPublicKeyInfo, or a TOTP secret's ASCII bytes with
    :data:`TOTP_ENROLMENT_CONTEXT`); 32 bytes. Whoever relays it learns nothing that
    would let them enrol anything else."""
    return hmac.new(code_secret.encode("ascii"), context + what, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class EnrolmentCode:
    """A one-time enrolment code for ``signer``: ``code_id`` names it, ``secret``
    (base64url, 128 bits) never leaves the signer's screen and app; ``text`` is what the
    QR code carries (``code_id.secret``); ``expires_at`` in POSIX seconds. A code issued
    on a device leaves the bridge without its secret (``secret`` empty) and ``sealed``
    instead: the text sealed to the asking app (base64url,
    :mod:`hsm_bridge.sam.code_envelope`)."""

    code_id: str
    secret: str
    signer: str
    expires_at: int
    sealed: str = ""

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
    """A device-bound factor as the bridge holds it: its id, whose it is, its public key
    (``device_key``: DER SPKI, P-256; ``passkey``: COSE), when it was enrolled and revoked
    (POSIX seconds), who issued the code it was enrolled with (:class:`CodeIssuer`) and
    its ``kind``; for a passkey also its credential id, sign counter and backup flags
    (BE: may be synced to other devices; BS: is)."""

    device_id: str
    signer: str
    public_key_der: bytes
    created_at: int
    revoked_at: int | None
    enrolled_with: str
    kind: str = "device_key"
    credential_id: bytes | None = None
    sign_count: int = 0
    backup_eligible: bool = False
    backed_up: bool = False


def _refused(reason: str, message: str) -> AuthorizationRefused:
    return AuthorizationRefused(message, reason=reason)


_CODE_REFUSAL = (
    RefusalReason.ENROLMENT_CODE_INVALID,
    "the enrolment code is unknown, used, expired or wrong",
)


class SignerRegistry(TotpRecords, PasskeyRecords):
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
        self._migrate()

    def _migrate(self) -> None:
        """Apply the migrations this file has not had, each in its own transaction."""
        with self._lock:
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in filter(str.strip, script.split(";")):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """How many migrations this file has had."""
        return _int(self._read("PRAGMA user_version", ())[0][0])

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

    def issue_enrolment_code(
        self,
        signer: str,
        *,
        now: dt.datetime,
        ttl_seconds: int,
        issued_by: CodeIssuer = CodeIssuer.ADMINISTRATOR,
    ) -> EnrolmentCode:
        """A new one-time enrolment code for ``signer``, valid ``ttl_seconds``: it enrols
        one device, or a first TOTP authenticator. ``issued_by`` is recorded with every
        device it enrols."""
        code = EnrolmentCode(
            code_id=secrets.token_urlsafe(9),
            secret=secrets.token_urlsafe(16),
            signer=signer,
            expires_at=posix(now) + ttl_seconds,
        )
        with self._write() as conn:
            conn.execute("DELETE FROM enrolment_code WHERE expires_at < ?", (posix(now) - 86400,))
            conn.execute(
                "INSERT INTO enrolment_code (code_id, signer, secret, expires_at, issued_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    code.code_id,
                    signer,
                    self._fernet.encrypt(code.secret.encode()),
                    code.expires_at,
                    issued_by.value,
                ),
            )
        return code

    def revoke_device(self, device_id: str, *, now: dt.datetime) -> bool:
        """Revoke a device at once; idempotent. False when the bridge never knew it. The
        administrator calls this directly; the network reaches it only with the
        signer's own factor (``SignatureActivationModule.revoke_device``)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE device SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL",
                (posix(now), device_id),
            )
            found = conn.execute("SELECT 1 FROM device WHERE device_id = ?", (device_id,))
            return found.fetchone() is not None

    # ---- what the gateway may forward ---------------------------------------------

    def enrol_device(
        self,
        code_id: str,
        public_key_der: bytes,
        proof: bytes,
        *,
        now: dt.datetime,
        kind: str = "device_key",
    ) -> EnrolledDevice:
        """Register a device key with an enrolment code: ``proof`` must be
        :func:`enrolment_proof` of the code's secret and ``public_key_der`` (DER SPKI,
        P-256). The code is spent here; a wrong proof leaves it as it was (its 128-bit
        secret cannot be guessed, and a relay must not be able to void it). The device
        is named by :func:`device_id_of` and remembers who issued the code; enrolling a
        key the signer has already is accepted (a new push token), a revoked key or
        another signer's is not. Raises :class:`AuthorizationRefused`
        (``enrolment_code_invalid``, ``device_key_invalid``)."""
        try:
            key = load_device_public_key(public_key_der)
        except StatementSignatureInvalid as exc:
            raise _refused(
                RefusalReason.DEVICE_KEY_INVALID, "device keys are P-256 (DER SPKI)"
            ) from exc
        # One key, one encoding (uncompressed point): a revoked key sent again in another
        # encoding (a compressed point) is still that revoked key.
        canonical = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        with self._write() as conn:
            signer, issued_by = self.spend_code(
                conn, code_id, proof, public_key_der, DEVICE_ENROLMENT_CONTEXT, now=now
            )
            device = EnrolledDevice(device_id_of(canonical), signer)
            known = conn.execute(
                "SELECT signer, revoked_at FROM device WHERE device_id = ?", (device.device_id,)
            ).fetchone()
            if known is None:
                conn.execute(
                    "INSERT INTO device (device_id, signer, public_key, created_at,"
                    " enrolled_with, kind) VALUES (?, ?, ?, ?, ?, ?)",
                    (device.device_id, signer, canonical, posix(now), issued_by, kind),
                )
                return device
            if known[0] == signer and known[1] is None:
                return device  # enrolled again (a new push token): the same key
            raise _refused(  # rolled back: the code stays as it was
                "device_key_invalid", "this key is revoked or belongs to someone else"
            )

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``) over the records, for the
        activation module's enrolments that spend a code and store a passkey together."""
        return self._write()

    def spend_code(
        self,
        conn: sqlite3.Connection,
        code_id: str,
        proof: bytes,
        what: bytes,
        context: bytes,
        *,
        now: dt.datetime,
    ) -> tuple[str, str]:
        """Mark the code ``code_id`` used when ``proof`` is its HMAC over ``what``; its
        signer and issuer. Raises ``enrolment_code_invalid`` (nothing recorded)."""
        row = conn.execute(
            "SELECT signer, secret, expires_at, used_at, issued_by FROM enrolment_code"
            " WHERE code_id = ?",
            (code_id,),
        ).fetchone()
        if row is None or row[3] is not None or posix(now) >= int(row[2]):
            raise _refused(*_CODE_REFUSAL)
        secret = self._fernet.decrypt(bytes(row[1])).decode()
        if not hmac.compare_digest(enrolment_proof(secret, what, context), proof):
            raise _refused(*_CODE_REFUSAL)
        conn.execute(
            "UPDATE enrolment_code SET used_at = ? WHERE code_id = ?", (posix(now), code_id)
        )
        return str(row[0]), str(row[4])

    # ---- checks -------------------------------------------------------------------

    def device(self, device_id: str) -> DeviceRecord | None:
        """The device the bridge holds under ``device_id``, if any."""
        rows = self._read(_DEVICE_COLUMNS + " WHERE device_id = ?", (device_id,))
        return _device(rows[0]) if rows else None

    def devices(self, signer: str) -> list[DeviceRecord]:
        """Every device the bridge holds for ``signer``, revoked ones included, oldest
        first."""
        rows = self._read(_DEVICE_COLUMNS + " WHERE signer = ? ORDER BY created_at", (signer,))
        return [_device(row) for row in rows]

    def spend_nonce(self, nonce: str, expires_at: int, *, now: dt.datetime) -> bool:
        """Record an approval nonce as spent; False when it was spent before. Entries
        expired for a day are pruned (a statement past its expiry is refused anyway)."""
        with self._write() as conn:
            conn.execute("DELETE FROM spent_nonce WHERE expires_at < ?", (posix(now) - 86400,))
            cursor = conn.execute(
                "INSERT OR IGNORE INTO spent_nonce (nonce, expires_at) VALUES (?, ?)",
                (nonce, expires_at),
            )
            return cursor.rowcount == 1

    def refuse_pin(self, authorization: str, token_serial: str, expires_at: int) -> None:
        """Remember that the token ``token_serial`` refused the PIN sealed for the
        approval ``authorization`` (until ``expires_at``, POSIX seconds: its SADs' end)."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO pin_refusal (authorization, token_serial, expires_at)"
                " VALUES (?, ?, ?)",
                (authorization, token_serial, expires_at),
            )

    def pin_refused(self, authorization: str, token_serial: str, *, now: dt.datetime) -> bool:
        """Whether the token already refused this approval's PIN: then it is never
        tried again (a real token locks after a few wrong PINs)."""
        rows = self._read(
            "SELECT 1 FROM pin_refusal WHERE authorization = ? AND token_serial = ?"
            " AND expires_at > ?",
            (authorization, token_serial, posix(now)),
        )
        return bool(rows)


_DEVICE_COLUMNS = (
    "SELECT device_id, signer, public_key, created_at, revoked_at, enrolled_with, kind,"
    " credential_id, sign_count, backup_eligible, backed_up FROM device"
)


def _device(row: tuple[object, ...]) -> DeviceRecord:
    return DeviceRecord(
        device_id=str(row[0]),
        signer=str(row[1]),
        public_key_der=_bytes(row[2]),
        created_at=_int(row[3]),
        revoked_at=None if row[4] is None else _int(row[4]),
        enrolled_with=str(row[5]),
        kind=str(row[6]),
        credential_id=None if row[7] is None else _bytes(row[7]),
        sign_count=_int(row[8]),
        backup_eligible=bool(row[9]),
        backed_up=bool(row[10]),
    )


def _int(value: object) -> int:
    """An INTEGER column's value (SQLite hands back ``object`` to the type checker)."""
    if not isinstance(value, int):
        raise TypeError(f"expected an integer column, found {type(value).__name__}")
    return value


def _bytes(value: object) -> bytes:
    """A BLOB column's value."""
    if not isinstance(value, bytes):
        raise TypeError(f"expected a blob column, found {type(value).__name__}")
    return value
