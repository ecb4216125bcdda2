"""Alembic migrations: the only way paysys's schema changes (see shared/migrate.py)."""
