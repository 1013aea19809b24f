"""Signature activation data (SAD): the bridge's own permission to make one signature.

The bridge's signature activation module issues a SAD for each request a signer approved
(:mod:`hsm_bridge.sam.authorization`), and the bridge demands it right before it builds and
signs (the CSC API v2 / EN 419 241-1 notion of SAD). A SAD names everything the
signature may be: the credential and mechanism, the SHA-256 of the approved document,
the approved signature parameters, the SHA-256 of the certificate that signs, and the
authorization (the approval) it came from; it expires after a few minutes and is spent
on its first use, whatever the outcome of that use (a refused or failed signing spends
it too). Spent SADs are recorded durably (SQLite), so a replay after a restart is
refused as well.

Wire form: ``base64url(payload JSON) "." base64url(HMAC-SHA256(key, payload JSON))``
(RFC 2104 HMAC over the exact payload bytes); the key is the bridge's alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hsm_bridge.clock import posix
from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import ActivationInvalid, RefusalReason

__all__ = ["Activation", "ActivationIssuer", "ActivationVerifier", "SpentActivations"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Activation:
    """The content of a SAD. ``credential``: ``serial/key-id-hex``; ``mechanism``: a
    :class:`~hsm_bridge.credentials.SignatureMechanism` value; ``document_sha256`` and
    ``certificate_sha256``: lowercase hex; ``parameters``: the approved signature
    parameters (JSON object); ``authorization``: the id of the approval it came from (a
    device statement's nonce, or the nonce a TOTP approval named), to which a signer's
    PIN is bound; ``expires_at``: POSIX seconds; ``nonce``: 128-bit random hex, what
    spends it; ``subject``: the signing request id, for the audit trail."""

    credential: str
    mechanism: str
    document_sha256: str
    certificate_sha256: str
    parameters: Mapping[str, object] = field(hash=False)
    authorization: str
    expires_at: int
    nonce: str
    subject: str


class ActivationIssuer:
    """Mints SADs with the bridge's ``key`` (32 secret bytes or more)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the activation key must be at least 32 bytes")
        self._key = key

    def issue(
        self,
        credential: CredentialRef,
        *,
        mechanism: str,
        document_sha256: str,
        certificate_sha256: str,
        parameters: Mapping[str, object],
        authorization: str,
        subject: str,
        now: dt.datetime,
        ttl_seconds: int,
    ) -> str:
        """A SAD (ASCII text) for one signature with ``credential``, valid for
        ``ttl_seconds`` from ``now`` (aware); see :class:`Activation`."""
        payload = json.dumps(
            {
                "auth": authorization,
                "cert": certificate_sha256,
                "cred": str(credential),
                "doc": document_sha256,
                "exp": posix(now) + ttl_seconds,
                "mech": mechanism,
                "nonce": secrets.token_hex(16),
                "par": dict(parameters),
                "sub": subject,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}"


class SpentActivations:
    """Durable record of spent SAD nonces (SQLite file ``path``, WAL journal with
    ``synchronous=FULL``: a commit survives a crash of the process or the host).

    :meth:`spend` is atomic: of two concurrent calls with one nonce, exactly one wins.
    One connection is kept per store and serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS used_activation ("
            " nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)"
        )
        self._pruned_at = 0

    def spend(self, entries: Sequence[tuple[str, int]], *, now: dt.datetime) -> list[bool]:
        """Record each ``(nonce, expires_at)`` as spent in one transaction (one fsync).
        Returns, per entry, False when that nonce was spent before (also earlier in the
        same list). Entries whose ``expires_at`` (POSIX seconds) passed more than a
        minute ago are pruned now and then: an expired SAD is refused anyway."""
        fresh: list[bool] = []
        if not entries:
            return fresh
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if posix(now) - self._pruned_at > 60:
                    self._conn.execute(
                        "DELETE FROM used_activation WHERE expires_at < ?", (posix(now) - 60,)
                    )
                    self._pruned_at = posix(now)
                for nonce, expires_at in entries:
                    cursor = self._conn.execute(
                        "INSERT OR IGNORE INTO used_activation (nonce, expires_at) VALUES (?, ?)",
                        (nonce, expires_at),
                    )
                    fresh.append(cursor.rowcount == 1)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return fresh


class ActivationVerifier:
    """Reads, checks and spends SADs inside the bridge (docs/design.md invariant 1). ``key``:
    the issuer's; ``spent``: the durable record."""

    def __init__(self, key: bytes, spent: SpentActivations) -> None:
        self._key = key
        self._spent = spent

    def check(
        self, sad: str, credential: CredentialRef, mechanism: str, *, now: dt.datetime
    ) -> Activation:
        """The :class:`Activation` in ``sad`` when it is authentic, unexpired at ``now``
        (POSIX seconds) and for ``credential`` and ``mechanism``; it is not spent here.
        The MAC is compared in constant time before any field is trusted.

        Raises :class:`ActivationInvalid` with ``reason`` ``malformed``, ``forged``,
        ``expired``, ``wrong_credential`` or ``wrong_mechanism``."""
        try:
            payload_b64, mac_b64 = sad.split(".")
            payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        except (ValueError, AttributeError) as exc:
            raise ActivationInvalid(
                "the activation is malformed", reason=RefusalReason.MALFORMED
            ) from exc
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise ActivationInvalid("the activation is not authentic", reason=RefusalReason.FORGED)
        try:
            fields = json.loads(payload)
            activation = Activation(
                credential=str(fields["cred"]),
                mechanism=str(fields["mech"]),
                document_sha256=str(fields["doc"]),
                certificate_sha256=str(fields["cert"]),
                parameters=dict(fields["par"]),
                authorization=str(fields["auth"]),
                expires_at=int(fields["exp"]),
                nonce=str(fields["nonce"]),
                subject=str(fields["sub"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ActivationInvalid(
                "the activation is malformed", reason=RefusalReason.MALFORMED
            ) from exc
        if posix(now) >= activation.expires_at:
            raise ActivationInvalid("the activation has expired", reason=RefusalReason.EXPIRED)
        if not hmac.compare_digest(activation.credential, str(credential)):
            raise ActivationInvalid(
                "the activation is for another credential", reason=RefusalReason.WRONG_CREDENTIAL
            )
        if activation.mechanism != mechanism:
            raise ActivationInvalid(
                "the activation is for another mechanism", reason=RefusalReason.WRONG_MECHANISM
            )
        return activation

    def spend(self, activations: Sequence[Activation], *, now: dt.datetime) -> list[bool]:
        """Spend checked activations in one durable transaction, before anything is
        built or signed with them; False for each one spent before (a replay, or the
        same SAD twice in one list: it must not be used)."""
        return self._spent.spend([(a.nonce, a.expires_at) for a in activations], now=now)
