"""Persistence: the database and its transactions (`database`), the SQLAlchemy models
(`models`) and the Alembic migrations (`migrate`, `migrations/`)."""
