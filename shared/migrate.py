"""Schema migrations, run programmatically (`paysys migrate`, `paysys run`, the tests)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from alembic import command
from alembic.config import Config
from psycopg2 import sql
from sqlalchemy.engine import make_url

import migrations

log = logging.getLogger("paysys.migrate")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def ensure_database(database_url: str) -> None:
    """Create the database named in the URL if the server does not have it yet, so that a
    first `paysys run` works against a bare PostgreSQL."""
    url = make_url(database_url)
    given: dict[str, object] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        **{k: v for k, v in url.query.items() if isinstance(v, str)},
    }
    params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    try:
        psycopg2.connect(dbname=url.database, **params).close()
        return
    except psycopg2.OperationalError as exc:
        if f'"{url.database}" does not exist' not in str(exc):
            raise
    conn = psycopg2.connect(dbname="postgres", **params)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database or "")))
        log.info("created database %s", url.database)
    except psycopg2.errors.DuplicateDatabase:
        pass  # someone else just made it
    finally:
        conn.close()


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_database(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
