"""The passkey part of the bridge's signer records: registration challenges (issued by
the bridge, one use, five minutes) and passkeys as devices of kind ``passkey`` with
their credential id, COSE public key, sign counter and backup flags. Mixed into
:class:`~hsm_bridge.sam.signers.SignerRegistry`, whose SQLite file and transactions it
uses; verification itself is :mod:`hsm_bridge.sam.passkeys`."""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
from dataclasses import dataclass

from hsm_bridge.clock import posix
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.sam.passkeys import RegisteredPasskey, passkey_device_id
from hsm_bridge.sam.records_file import RecordsFile

__all__ = ["PasskeyChallenge", "PasskeyRecords"]

CHALLENGE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class PasskeyChallenge:
    """A registration challenge the bridge issued for ``signer``: its id, its 32 random
    bytes, and when it expires (POSIX seconds)."""

    challenge_id: str
    signer: str
    challenge: bytes
    expires_at: int


class PasskeyRecords(RecordsFile):
    """Passkey operations over the signer records' file (:class:`RecordsFile`)."""

    def issue_passkey_challenge(self, signer: str, *, now: dt.datetime) -> PasskeyChallenge:
        """A new registration challenge for ``signer``."""
        challenge = PasskeyChallenge(
            challenge_id=secrets.token_urlsafe(12),
            signer=signer,
            challenge=secrets.token_bytes(32),
            expires_at=posix(now) + CHALLENGE_SECONDS,
        )
        with self._write() as conn:
            conn.execute(
                "DELETE FROM webauthn_challenge WHERE expires_at < ?", (posix(now) - 3600,)
            )
            conn.execute(
                "INSERT INTO webauthn_challenge (challenge_id, signer, challenge, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (challenge.challenge_id, signer, challenge.challenge, challenge.expires_at),
            )
        return challenge

    def passkey_challenge(self, challenge_id: str, *, now: dt.datetime) -> PasskeyChallenge:
        """The unused, unexpired challenge ``challenge_id``; ``challenge_invalid``
        otherwise."""
        rows = self._read(
            "SELECT signer, challenge, expires_at FROM webauthn_challenge"
            " WHERE challenge_id = ? AND used_at IS NULL AND expires_at > ?",
            (challenge_id, posix(now)),
        )
        if not rows:
            raise AuthorizationRefused(
                "the passkey challenge is unknown, used or expired",
                reason=RefusalReason.CHALLENGE_INVALID,
            )
        signer, challenge, expires_at = rows[0]
        assert isinstance(challenge, bytes) and isinstance(expires_at, int)
        return PasskeyChallenge(challenge_id, str(signer), challenge, expires_at)

    def store_passkey(
        self,
        conn: sqlite3.Connection,
        challenge: PasskeyChallenge,
        passkey: RegisteredPasskey,
        issued_by: str,
        *,
        now: dt.datetime,
    ) -> str:
        """In ``conn``'s transaction: spend ``challenge`` and keep ``passkey`` as a device
        of its signer; the device id. ``challenge_invalid`` when the challenge was spent
        meanwhile, ``device_key_invalid`` when the credential is another signer's or
        revoked."""
        spent = conn.execute(
            "UPDATE webauthn_challenge SET used_at = ? WHERE challenge_id = ? AND used_at IS NULL",
            (posix(now), challenge.challenge_id),
        )
        if spent.rowcount != 1:
            raise AuthorizationRefused(
                "the passkey challenge was used already", reason=RefusalReason.CHALLENGE_INVALID
            )
        device_id = passkey_device_id(passkey.credential_id)
        known = conn.execute(
            "SELECT signer FROM device WHERE device_id = ?", (device_id,)
        ).fetchone()
        if known is not None:
            raise AuthorizationRefused(
                "this passkey is enrolled already", reason=RefusalReason.DEVICE_KEY_INVALID
            )
        conn.execute(
            "INSERT INTO device (device_id, signer, public_key, created_at, enrolled_with,"
            " kind, credential_id, sign_count, backup_eligible, backed_up)"
            " VALUES (?, ?, ?, ?, ?, 'passkey', ?, ?, ?, ?)",
            (
                device_id,
                challenge.signer,
                passkey.public_key,
                posix(now),
                issued_by,
                passkey.credential_id,
                passkey.sign_count,
                int(passkey.backup_eligible),
                int(passkey.backed_up),
            ),
        )
        return device_id

    def passkey_credentials(self, signer: str) -> list[bytes]:
        """The credential ids of ``signer``'s passkeys (to exclude on a new registration)."""
        rows = self._read(
            "SELECT credential_id FROM device WHERE signer = ? AND kind = 'passkey'"
            " AND credential_id IS NOT NULL",
            (signer,),
        )
        return [bytes(row[0]) for row in rows if isinstance(row[0], bytes)]

    def advance_sign_count(self, device_id: str, count: int) -> bool:
        """Record a passkey's new sign counter; False when a concurrent assertion moved it
        to ``count`` or beyond first (a counter must never go backwards)."""
        with self._write() as conn:
            moved = conn.execute(
                "UPDATE device SET sign_count = ? WHERE device_id = ?"
                " AND (sign_count < ? OR (sign_count = 0 AND ? = 0))",
                (count, device_id, count, count),
            )
            return moved.rowcount == 1
