"""Webhook rows written straight into a scratch database (`tests.scratch_ledger`), for tests
of the senders' statements that must not share a database with a running `paysys
webhooks`: tenants, endpoints, events and deliveries, and fan-out run to the end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2.extensions

from shared.webhooks import fanout
from tests.scratch_ledger import scratch_database

Conn = psycopg2.extensions.connection


def scratch() -> Iterator[tuple[str, Conn]]:
    """A scratch database (its URL, an autocommit connection to it), for a fixture."""
    for url, conn in scratch_database():
        conn.autocommit = True
        yield url, conn


def execute(conn: Conn, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """One statement on an autocommit connection; its rows, if any."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall()) if cur.description else []


def new_tenant(conn: Conn) -> uuid.UUID:
    tenant = uuid.uuid4()
    execute(conn, "INSERT INTO tenant (id, name) VALUES (%s, %s)", tenant, str(tenant))
    return tenant


def new_endpoint(
    conn: Conn,
    tenant: uuid.UUID,
    types: tuple[str, ...] = ("*",),
    url: str = "https://example.com/hooks",
    secret: str = "plain:whsec_scratch",  # noqa: S107 (a test's)
    created: str = "now()",
) -> uuid.UUID:
    """An endpoint as registration makes it: fanned out from the feed's horizon."""
    endpoint = uuid.uuid4()
    execute(
        conn,
        f"INSERT INTO webhook_endpoint (id, tenant_id, url, event_types, secret, created_at, "
        f"fanout_xid) VALUES (%s, %s, %s, %s, %s, {created}, "
        f"pg_snapshot_xmin(pg_current_snapshot()))",
        endpoint,
        tenant,
        url,
        list(types),
        secret,
    )
    return endpoint


def new_event(
    conn: Conn, tenant: uuid.UUID, kind: str = "account.created", created: str = "now()"
) -> uuid.UUID:
    event = uuid.uuid4()
    execute(
        conn,
        f"INSERT INTO event (id, tenant_id, type, created_at, data) "
        f"VALUES (%s, %s, %s, {created}, '{{}}')",
        event,
        tenant,
        kind,
    )
    return event


def new_delivery(
    conn: Conn,
    endpoint: uuid.UUID,
    event: uuid.UUID,
    tenant: uuid.UUID,
    due: str = "now()",
    attempts: int = 0,
) -> None:
    execute(
        conn,
        f"INSERT INTO webhook_delivery (endpoint_id, event_id, tenant_id, attempts, "
        f"next_attempt_at, event_created_at) "
        f"SELECT %s, id, tenant_id, %s, {due}, created_at FROM event WHERE id = %s AND "
        f"tenant_id = %s",
        endpoint,
        attempts,
        event,
        tenant,
    )


def fan_out_all(url: str, until: Any = None, timeout: float = 30) -> None:
    """Fan out on a connection of its own until nothing is left (and `until()` holds, if
    given: an event is final only once every older transaction of the cluster has
    ended)."""
    conn = psycopg2.connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with conn, conn.cursor() as cur:
                more = fanout.fan_out(cur, endpoints=50, page=500).more
            if not more and (until is None or until()):
                return
            assert time.monotonic() < deadline, "fan-out never reached the events"
            if not more:
                time.sleep(0.02)
    finally:
        conn.close()
