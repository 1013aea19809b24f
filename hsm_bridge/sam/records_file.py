"""What the signer records' operation groups (:class:`~hsm_bridge.sam.totp_records.
TotpRecords`, :class:`~hsm_bridge.sam.passkey_records.PasskeyRecords`) need from the
file they work on, implemented by :class:`~hsm_bridge.sam.signers.SignerRegistry`."""

from __future__ import annotations

import datetime as dt
import sqlite3
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

__all__ = ["RecordsFile"]


class RecordsFile(ABC):
    """The signer records' SQLite file: one write transaction at a time, reads, and the
    spending of an enrolment code inside a write transaction."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on leaving."""

    @abstractmethod
    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        """The rows ``sql`` selects with ``args``."""

    @abstractmethod
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
        """In ``conn``'s transaction, mark the enrolment code ``code_id`` used when
        ``proof`` is its HMAC over ``context`` + ``what``; its signer and issuer. Raises
        AuthorizationRefused ``enrolment_code_invalid`` (nothing recorded)."""
