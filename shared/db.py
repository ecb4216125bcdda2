"""Synchronous database access for the worker, the sweeper and the command line.

The scope that opens a transaction commits it (`transaction()`); services and
repositories only execute statements on the cursor they are given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2.extensions
import psycopg2.extras
from sqlalchemy import Engine, create_engine

from shared.settings import get_settings

psycopg2.extras.register_uuid()  # type: ignore[no-untyped-call]

Cursor = psycopg2.extensions.cursor

_engine: Engine | None = None


def engine() -> Engine:
    """The process's engine, created on first use (after a fork, see `reset_engine`)."""
    global _engine
    if _engine is None:
        settings = get_settings()
        _engine = create_engine(
            settings.sqlalchemy_url,
            pool_size=2,
            max_overflow=2,
            pool_pre_ping=True,
            pool_recycle=3600,
            connect_args={
                "connect_timeout": max(1, int(settings.db_connect_timeout)),
                "application_name": "paysys",
                # A dead server must not hang a worker forever ...
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                # ... nor a frozen or cut-off worker keep its claims and row locks: the
                # server ends a session idle inside a transaction, probes a silent client,
                # and no statement waits on a lock or runs for ever.
                "options": (
                    "-c idle_in_transaction_session_timeout=30s"
                    " -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5"
                    " -c tcp_keepalives_count=3"
                    f" -c lock_timeout={int(settings.db_lock_timeout * 1000)}"
                    f" -c statement_timeout={int(settings.db_worker_statement_timeout * 1000)}"
                ),
            },
        )
    return _engine


def reset_engine() -> None:
    """Forget the parent's connections in a forked child (Celery prefork)."""
    global _engine
    if _engine is not None:
        _engine.dispose(close=False)
        _engine = None


@contextmanager
def transaction() -> Iterator[Cursor]:
    """One database transaction: commits when the block ends, rolls back on an exception."""
    with engine().begin() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        with dbapi.cursor() as cur:
            yield cur
