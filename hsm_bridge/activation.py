"""Signature activation data (SAD): the proof the bridge demands before it signs.

An activation is bound to one credential and one digest, expires after a short time and
is single-use (the CSC API v2 / EN 419 241-1 notion of SAD). It is issued by the approval
step once the signer's second factor was verified, and verified here, by the bridge,
right before C_Sign. Used activations are recorded durably (SQLite), so a replay after a
restart is refused too.

Wire form: ``base64url(payload JSON) "." base64url(HMAC-SHA256(key, payload JSON))``
(RFC 2104 HMAC over the exact payload bytes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from hsm_bridge.credentials import CredentialRef
from hsm_bridge.errors import ActivationInvalid

__all__ = ["Activation", "ActivationIssuer", "ActivationVerifier", "UsedActivationStore"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Activation:
    """The decoded content of a SAD.

    What it authorises is one of: ``digest``, the 32-byte SHA-256 digest that may be
    signed; or ``document``, the 32-byte SHA-256 of the approved document, from which
    the bridge derives the digest itself (:mod:`hsm_bridge.binding`). ``expires_at``:
    POSIX seconds; ``nonce``: 128-bit random hex; ``subject``: what the approval was for
    (the signing request id), for the audit trail. ``parameters``: the approved
    signature parameters (reason, location, contact_info, field_name, page, box...) that
    the bridge checks in the prepared PDF, when the activation names a document.
    """

    credential: str
    digest: bytes | None
    expires_at: int
    nonce: str
    subject: str
    document: bytes | None = None
    parameters: dict[str, object] | None = None


class ActivationIssuer:
    """Issues SADs. Held by the approval step; ``key`` is 32 secret bytes shared with
    the bridge's :class:`ActivationVerifier`."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the activation key must be at least 32 bytes")
        self._key = key

    def issue(
        self,
        credential: CredentialRef,
        digest: bytes | None = None,
        *,
        subject: str,
        now: float,
        ttl_seconds: int,
        mechanism: str | None = None,
        document_sha256: bytes | None = None,
        parameters: dict[str, object] | None = None,
    ) -> str:
        """Return a SAD (ASCII text) for signing with ``credential``, valid for
        ``ttl_seconds`` from ``now`` (POSIX seconds), bound to exactly one of ``digest``
        (32 bytes: that digest may be signed) and ``document_sha256`` (32 bytes: a
        signature of that document may be made; the bridge checks the prepared PDF and
        signed attributes against it). With ``mechanism`` (a :class:`SignatureMechanism`
        value) it is bound to that one too; with ``parameters`` (the approved signature
        parameters as a JSON object) the bridge checks the signature dictionary and the
        widget against them."""
        if (digest is None) == (document_sha256 is None):
            raise ValueError("bind the activation to a digest or to a document, not both")
        bound = digest if digest is not None else document_sha256
        assert bound is not None
        if len(bound) != 32:
            raise ValueError("digests are 32 bytes (SHA-256)")
        fields = {
            "cred": str(credential),
            ("dig" if digest is not None else "doc"): bound.hex(),
            "exp": int(now) + ttl_seconds,
            "nonce": secrets.token_hex(16),
            "sub": subject,
        }
        if mechanism is not None:
            fields["mech"] = str(mechanism)
        if parameters is not None:
            fields["par"] = parameters
        payload = json.dumps(
            fields,
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}"


class UsedActivationStore:
    """Durable record of consumed activation nonces (SQLite file ``path``, WAL journal
    with ``synchronous=FULL``: a commit survives a crash of the process or the host).

    :meth:`consume_many` is atomic: of two concurrent calls with one nonce, exactly one
    wins. One connection is kept per store and serialised by a lock.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
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
        self._pruned_at = 0.0
        # Reads have their own connection: in WAL mode they never wait for a writer's
        # lock or fsync (a replay check must not stall the signing of a batch).
        self._reader = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._read_lock = threading.Lock()

    def used(self, nonces: list[str]) -> set[str]:
        """Which of ``nonces`` are recorded as used already (a read on its own
        connection, never waiting for a writer)."""
        if not nonces:
            return set()
        with self._read_lock:
            found: set[str] = set()
            for start in range(0, len(nonces), 500):
                chunk = nonces[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._reader.execute(
                    f"SELECT nonce FROM used_activation WHERE nonce IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                found.update(row[0] for row in rows)
            return found

    def consume(self, nonce: str, expires_at: int, *, now: float) -> bool:
        """Record ``nonce`` as used. Return False when it was used before."""
        return self.consume_many([(nonce, expires_at)], now=now)[0]

    def consume_many(self, entries: list[tuple[str, int]], *, now: float) -> list[bool]:
        """Record each ``(nonce, expires_at)`` as used in one transaction (one fsync).
        Returns, per entry, False when that nonce was used before (also earlier in the
        same list). Entries whose ``expires_at`` (POSIX seconds) passed more than a
        minute ago are pruned now and then: an expired SAD is refused anyway."""
        fresh: list[bool] = []
        if not entries:
            return fresh
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if now - self._pruned_at > 60:
                    self._conn.execute(
                        "DELETE FROM used_activation WHERE expires_at < ?", (int(now) - 60,)
                    )
                    self._pruned_at = now
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
    """Verifies and consumes SADs inside the bridge (invariant 1 of DESIGN.md)."""

    def __init__(self, key: bytes, used: UsedActivationStore) -> None:
        self._key = key
        self._used = used

    def verify_and_consume(
        self, sad: str, credential: CredentialRef, digest: bytes, *, now: float
    ) -> Activation:
        """Check that ``sad`` is authentic, unexpired at ``now`` (POSIX seconds), bound to
        ``credential`` and ``digest``, and unused; then mark it used.

        Raises :class:`ActivationInvalid` with ``reason`` one of ``malformed``,
        ``forged``, ``expired``, ``wrong_credential``, ``wrong_digest``, ``reused``.
        The MAC is compared in constant time before any field is trusted.
        """
        outcome = self.verify_and_consume_many([(sad, credential, digest)], now=now)[0]
        if isinstance(outcome, ActivationInvalid):
            raise outcome
        return outcome

    def verify_and_consume_many(
        self, items: list[tuple[str, CredentialRef, bytes]], *, now: float
    ) -> list[Activation | ActivationInvalid]:
        """:meth:`verify_and_consume` for each ``(sad, credential, digest)``, consuming
        all valid ones in one durable transaction; one outcome per item, in order."""
        checked: list[Activation | ActivationInvalid] = []
        for sad, credential, digest in items:
            try:
                checked.append(self.check(sad, credential, digest, now=now))
            except ActivationInvalid as exc:
                checked.append(exc)
        valid = [a for a in checked if isinstance(a, Activation)]
        fresh = iter(self.consume_many(valid, now=now))
        outcomes: list[Activation | ActivationInvalid] = []
        for activation in checked:
            if isinstance(activation, Activation) and not next(fresh):
                outcomes.append(
                    ActivationInvalid("the activation was already used", reason="reused")
                )
            else:
                outcomes.append(activation)
        return outcomes

    def already_used(self, activations: list[Activation]) -> set[str]:
        """Nonces among ``activations`` that are recorded as used (replays)."""
        return self._used.used([a.nonce for a in activations])

    def consume_many(self, activations: list[Activation], *, now: float) -> list[bool]:
        """Mark checked activations used, in one durable transaction; False for each one
        that was used before (a replay: its signature must not leave the bridge)."""
        return self._used.consume_many([(a.nonce, a.expires_at) for a in activations], now=now)

    def check(
        self,
        sad: str,
        credential: CredentialRef,
        digest: bytes | None,
        *,
        now: float,
        mechanism: str | None = None,
    ) -> Activation:
        """Verify ``sad`` like :meth:`verify_and_consume` without consuming it. A SAD
        bound to a mechanism is refused for another one (``wrong_mechanism``). A SAD
        bound to a digest must match ``digest`` (``wrong_digest``); a SAD bound to a
        document is returned with :attr:`Activation.document` set, and the caller checks
        the signing input against it (``digest`` is then not used)."""
        try:
            payload_b64, mac_b64 = sad.split(".")
            payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        except (ValueError, AttributeError) as exc:
            raise ActivationInvalid("the activation is malformed", reason="malformed") from exc
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise ActivationInvalid("the activation is not authentic", reason="forged")
        try:
            fields = json.loads(payload)
            bound_digest = bytes.fromhex(fields["dig"]) if "dig" in fields else None
            bound_document = bytes.fromhex(fields["doc"]) if "doc" in fields else None
            if (bound_digest is None) == (bound_document is None):
                raise ValueError("a digest or a document")
            activation = Activation(
                credential=str(fields["cred"]),
                digest=bound_digest,
                expires_at=int(fields["exp"]),
                nonce=str(fields["nonce"]),
                subject=str(fields["sub"]),
                document=bound_document,
                parameters=dict(fields["par"]) if "par" in fields else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ActivationInvalid("the activation is malformed", reason="malformed") from exc
        if now >= activation.expires_at:
            raise ActivationInvalid("the activation has expired", reason="expired")
        if not hmac.compare_digest(activation.credential, str(credential)):
            raise ActivationInvalid(
                "the activation is for another credential", reason="wrong_credential"
            )
        if activation.digest is not None and (
            digest is None or not hmac.compare_digest(activation.digest, digest)
        ):
            raise ActivationInvalid("the activation is for another digest", reason="wrong_digest")
        bound = fields.get("mech")
        if bound is not None and mechanism is not None and str(bound) != str(mechanism):
            raise ActivationInvalid(
                "the activation is for another mechanism", reason="wrong_mechanism"
            )
        return activation
