"""Fixtures: one fresh database and one private Redis namespace per test run, the real
`paysys api`, `paysys worker`, `paysys webhooks` and `paysys sweeper` as subprocesses, and
a new tenant for each test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from devtools.databases import create_database, drop_database
from devtools.processes import free_port, wait_ready
from tests.helpers import Api
from tests.stack import ADMIN_URL, Environment, Service, clear_redis_prefix

ENV = Environment()


def pytest_configure(config: pytest.Config) -> None:
    # The test process itself talks to the same database and Redis namespace (audit,
    # direct checks), through the same settings as the services.
    os.environ.update(ENV.variables())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from shared.migrate import upgrade
    from shared.settings import get_settings

    url = create_database(ADMIN_URL, ENV.database_name)
    try:
        upgrade(get_settings().sqlalchemy_url)
        yield url
    finally:
        from shared import db

        db.reset_engine()
        drop_database(ADMIN_URL, ENV.database_name)
        clear_redis_prefix(ENV.prefix)
        shutil.rmtree(ENV.metrics_dir, ignore_errors=True)


class Stack:
    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**ENV.variables(), "PAYSYS_API_PORT": str(self.port)}
        self.log_dir = log_dir
        self.api = Service("api", ["api"], self.env, log_dir)
        self.worker = Service("worker", ["worker", "--concurrency", "2"], self.env, log_dir)
        self.sweeper = Service("sweeper", ["sweeper"], self.env, log_dir)
        self.webhooks = Service("webhooks", ["webhooks"], self.env, log_dir)

    @property
    def services(self) -> list[Service]:
        return [self.api, self.worker, self.sweeper, self.webhooks]

    def start(self) -> None:
        for service in self.services:
            service.start()
        wait_ready(self.base_url)
        self.worker.wait_for_log("ready.")
        self.webhooks.wait_for_log("ready.")

    def stop(self) -> None:
        for service in self.services:
            service.stop()


@pytest.fixture(scope="session")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("logs"))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        for service in stack.services:
            # A crash in a service shows up in the test output, not only in a temp file.
            if "Traceback" in service.log():
                print(
                    f"\n===== {service.name} log (has tracebacks) =====\n{service.log()[-20000:]}"
                )


def make_api(stack: Stack, tenant: str | None = None) -> Api:
    from shared import apikeys
    from shared.db import transaction

    with transaction() as cur:
        created = apikeys.create_key(cur, tenant or f"tenant-{os.urandom(6).hex()}")
    return Api(stack.base_url, created.key)


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    """A new tenant, so tests never see each other's accounts."""
    client = make_api(stack)
    yield client
    client.close()


@pytest.fixture
def other_api(stack: Stack) -> Iterator[Api]:
    """A second tenant."""
    client = make_api(stack)
    yield client
    client.close()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A direct connection to the test database, for checks the API cannot make."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    yield conn
    conn.close()


def query(conn: psycopg2.extensions.connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())
