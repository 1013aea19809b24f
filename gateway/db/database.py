"""Database engine and sessions (SQLAlchemy 2). SQLite by default, PostgreSQL in
production: the same models, migrated by Alembic.

SQLite transactions start with ``BEGIN IMMEDIATE`` so that a read-then-write (the audit
chain head, a TOTP step) is serialised instead of failing late with "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "affected_rows", "lock_for_update"]


class Database:
    """An engine and its session factory for one URL (nothing is created at import)."""

    def __init__(self, url: str, *, session_info: dict[str, Any] | None = None) -> None:
        """``session_info``: copied into every session's ``info`` (e.g. the audit
        checkpoint signer that :func:`gateway.audit.log.record` looks for)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_immediate_transactions(self.engine)
        self._sessions = sessionmaker(
            self.engine, expire_on_commit=False, info=dict(session_info or {})
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back when
        it raises."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_immediate_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_for_update(session: Session, name: str) -> None:
    """Serialise writers of one logical resource (``name``) until the transaction ends:
    a transaction-level advisory lock on PostgreSQL; on SQLite ``BEGIN IMMEDIATE``
    already holds the write lock."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        key = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "big") & 0x7FFFFFFFFFFFFFFF
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def affected_rows(result: Result[Any]) -> int:
    """How many rows an executed UPDATE or DELETE changed (its cursor's rowcount)."""
    if not isinstance(result, CursorResult):
        raise TypeError("affected_rows needs the result of an UPDATE or DELETE")
    return int(result.rowcount or 0)
