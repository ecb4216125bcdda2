"""Databases of their own for tests and benchmarks, on a PostgreSQL server reached through
an administrator's URL (one naming the server's `postgres` database, say), and the
server's own programs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg2


def database_url(server_url: str, name: str) -> str:
    """The URL of the database `name` on the server that `server_url` names."""
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def execute(url: str, *statements: str) -> None:
    """Statements outside any transaction (CREATE DATABASE, VACUUM, CHECKPOINT)."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def create_database(admin_url: str, name: str) -> str:
    """A new, empty database; its URL."""
    execute(admin_url, f'CREATE DATABASE "{name}"')
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop the database if it exists, whoever is still connected to it."""
    execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(admin_url: str, name: str) -> str:
    """An empty database of that name, whatever an earlier run left in it; its URL."""
    drop_database(admin_url, name)
    return create_database(admin_url, name)


def postgres_program(name: str) -> Path:
    """A program of the installed PostgreSQL server (initdb, pg_ctl, pgbench): from the
    directory pg_config names, else of the newest version under /usr/lib/postgresql, else
    on PATH. Distributions keep the server's programs off PATH."""
    candidates = []
    if shutil.which("pg_config"):
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if bindir:
            candidates.append(Path(bindir) / name)
    candidates += sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise RuntimeError(f"PostgreSQL's {name} not found")
