"""The TOTP part of the bridge's signer records: each signer's secret (encrypted with the
bridge's Fernet key), the last accepted step, the failures and the lockout (RFC 6238;
DESIGN.md invariant 3). A code is accepted once per signer and step, never an older step
after a newer one; wrong codes count towards the lockout and a correct code erases none
of them. Mixed into :class:`~hsm_bridge.sam.signers.SignerRegistry`, whose SQLite file
and transactions it uses."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hsm_bridge.clock import posix
from hsm_bridge.errors import AuthorizationRefused, RefusalReason
from hsm_bridge.sam.otp import match_step
from hsm_bridge.sam.records_file import RecordsFile

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

__all__ = ["TOTP_ENROLMENT_CONTEXT", "TotpPolicy", "TotpRecords"]

TOTP_ENROLMENT_CONTEXT = b"signing-gateway/totp-enrolment/1\x00"
_BASE32 = re.compile(r"^[A-Z2-7]+=*$")


def _refused(reason: str, message: str) -> AuthorizationRefused:
    return AuthorizationRefused(message, reason=reason)


_CODE_REFUSAL = (
    RefusalReason.ENROLMENT_CODE_INVALID,
    "the enrolment code is unknown, used, expired or wrong",
)


@dataclass(frozen=True, slots=True)
class TotpPolicy:
    """Wrong codes allowed before approval locks (``max_failures``), for how long
    (``lockout_seconds``), and how long a wrong code counts (``failure_window_seconds``:
    failures older than that are forgotten; a correct code forgets none)."""

    max_failures: int = 5
    lockout_seconds: int = 300
    failure_window_seconds: int = 3600


class TotpRecords(RecordsFile):
    """TOTP operations over the signer records' file (:class:`RecordsFile`); the
    registry also provides ``_fernet`` and ``_policy``."""

    _fernet: Fernet
    _policy: TotpPolicy

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

    def reset_totp(self, signer: str) -> bool:
        """Forget ``signer``'s TOTP secret (a lost phone); a new one is enrolled with an
        enrolment code the administrator issues. False when there was no secret."""
        with self._write() as conn:
            found = conn.execute("SELECT secret FROM totp WHERE signer = ?", (signer,)).fetchone()
            conn.execute(
                "UPDATE totp SET secret = NULL, pending_secret = NULL, last_step = NULL"
                " WHERE signer = ?",
                (signer,),
            )
            return found is not None and found[0] is not None

    def begin_totp_enrolment(
        self,
        signer: str,
        secret: str,
        *,
        now: dt.datetime,
        current_otp: str | None = None,
        code_id: str | None = None,
        code_proof: bytes | None = None,
    ) -> None:
        """Keep ``secret`` (base32, 128 bits or more) as ``signer``'s pending TOTP secret.
        A signer with a secret gives a valid, unused ``current_otp`` of it; a signer
        without one gives an enrolment code the bridge issued for them (``code_id``, and
        ``code_proof``: :func:`enrolment_proof` of its secret over the new secret with
        :data:`TOTP_ENROLMENT_CONTEXT`), so that whoever relays this cannot plant an
        authenticator of its own. Raises :class:`AuthorizationRefused`
        (``totp_secret_invalid``, ``enrolment_code_invalid``, and the reasons of
        :meth:`check_totp`)."""
        if not _BASE32.match(secret) or len(secret) < 26:
            raise _refused(
                RefusalReason.TOTP_SECRET_INVALID, "a TOTP secret is base32, 128 bits or more"
            )
        refusal: AuthorizationRefused | None = None
        with self._write() as conn:
            row = conn.execute("SELECT secret FROM totp WHERE signer = ?", (signer,)).fetchone()
            try:
                if row is not None and row[0] is not None:
                    if current_otp is None:
                        raise _refused(
                            RefusalReason.TOTP_INVALID, "a code of the current authenticator"
                        )
                    self._accept_code(conn, signer, current_otp, now=now)
                else:
                    if code_id is None or code_proof is None:
                        raise _refused(*_CODE_REFUSAL)
                    owner, _ = self.spend_code(
                        conn, code_id, code_proof, secret.encode(), TOTP_ENROLMENT_CONTEXT, now=now
                    )
                    if owner != signer:
                        raise _refused(*_CODE_REFUSAL)
            except AuthorizationRefused as exc:
                refusal = exc  # committed: a TOTP failure count must stick
            if refusal is None:
                conn.execute(
                    "INSERT INTO totp (signer, pending_secret) VALUES (?, ?) ON CONFLICT"
                    " (signer) DO UPDATE SET pending_secret = excluded.pending_secret",
                    (signer, self._fernet.encrypt(secret.encode())),
                )
        if refusal is not None:
            raise refusal

    def confirm_totp_enrolment(self, signer: str, otp: str, *, now: dt.datetime) -> None:
        """Make the pending secret active when ``otp`` is a code of it; that code's step
        can approve nothing afterwards. Raises :class:`AuthorizationRefused`
        (``totp_not_enrolled`` when nothing is pending, ``totp_invalid``)."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT pending_secret FROM totp WHERE signer = ?", (signer,)
            ).fetchone()
            if row is None or row[0] is None:
                raise _refused(RefusalReason.TOTP_NOT_ENROLLED, "no TOTP enrolment is pending")
            pending = bytes(row[0])
            step = match_step(self._fernet.decrypt(pending).decode(), otp.strip(), now=now)
            if step is None:
                raise _refused(
                    RefusalReason.TOTP_INVALID, "the code does not match the new authenticator"
                )
            conn.execute(
                "UPDATE totp SET secret = ?, pending_secret = NULL, last_step = ? WHERE signer = ?",
                (pending, step, signer),
            )

    def check_totp(self, signer: str, otp: str, *, now: dt.datetime) -> None:
        """Accept ``otp`` for ``signer`` once: a code of the current or previous 30-second
        step, strictly newer than the last step accepted. A wrong code counts towards
        the lockout (kept even though the call fails; a later correct code does not
        erase it). A signer the bridge does not know is answered as one with no
        authenticator. Raises :class:`AuthorizationRefused` with reason
        ``totp_not_enrolled``, ``totp_locked`` (locked already), ``totp_lockout`` (this
        wrong code locked it), ``totp_invalid`` or ``totp_reused``."""
        refusal: AuthorizationRefused | None = None
        with self._write() as conn:
            try:
                self._accept_code(conn, signer, otp, now=now)
            except AuthorizationRefused as exc:
                refusal = exc  # committed: the failure count must stick
        if refusal is not None:
            raise refusal

    def _accept_code(
        self, conn: sqlite3.Connection, signer: str, otp: str, *, now: dt.datetime
    ) -> None:
        row = conn.execute(
            "SELECT secret, last_step, failures, locked_until, last_failure_at FROM totp"
            " WHERE signer = ?",
            (signer,),
        ).fetchone()
        if row is None or row[0] is None:
            raise _refused(
                RefusalReason.TOTP_NOT_ENROLLED, "the bridge holds no TOTP secret for this signer"
            )
        secret, last_step, failures, locked_until, last_failure_at = row
        if locked_until is not None and posix(now) < int(locked_until):
            raise _refused(
                RefusalReason.TOTP_LOCKED, "too many wrong codes; approval is locked for a while"
            )
        step = match_step(self._fernet.decrypt(bytes(secret)).decode(), otp.strip(), now=now)
        if step is None:
            window = self._policy.failure_window_seconds
            recent = last_failure_at is not None and posix(now) - int(last_failure_at) < window
            failures = (int(failures) if recent else 0) + 1
            if failures >= self._policy.max_failures:
                conn.execute(
                    "UPDATE totp SET failures = 0, last_failure_at = NULL, locked_until = ?"
                    " WHERE signer = ?",
                    (posix(now) + self._policy.lockout_seconds, signer),
                )
                raise _refused(
                    RefusalReason.TOTP_LOCKOUT, "too many wrong codes; approval is now locked"
                )
            conn.execute(
                "UPDATE totp SET failures = ?, last_failure_at = ? WHERE signer = ?",
                (failures, posix(now), signer),
            )
            raise _refused(RefusalReason.TOTP_INVALID, "the code is wrong")
        if last_step is not None and step <= int(last_step):
            raise _refused(RefusalReason.TOTP_REUSED, "this code, or a newer one, was already used")
        conn.execute("UPDATE totp SET last_step = ? WHERE signer = ?", (step, signer))
