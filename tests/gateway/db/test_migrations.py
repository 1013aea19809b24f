"""The Alembic migrations build exactly the schema the models describe, on SQLite and on
the installation's database (PostgreSQL in CI's second run)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gateway.db.migrate import upgrade
from gateway.db.models import Base


def _differences(engine) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_migrations_match_the_models_on_a_fresh_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    engine = create_engine(url)
    assert _differences(engine) == []
    engine.dispose()


def test_the_installation_database_matches_the_models(db):
    assert _differences(db.engine) == []
