"""The webhook statements' locks, on a scratch database: fan-out, a redelivery asked for
by hand and the senders' records touch the same endpoint and delivery rows at once, and
never wait on each other in a cycle (a deadlock: a 503, a stalled round), nor does the
log of an attempt wait for a fan-out round."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import asyncpg
import psycopg2
import psycopg2.extensions
import pytest

from shared.webhooks import endpoints, fanout
from shared.webhooks import fanout_repository as fan_repo
from shared.webhooks import repository as repo
from tests.webhook_scratch import (
    execute,
    fan_out_all,
    new_delivery,
    new_endpoint,
    new_event,
    new_tenant,
    scratch,
)

Conn = psycopg2.extensions.connection
REDELIVERER = "paysys-test-redeliver"

db = pytest.fixture(scratch)


def locked_for_fan_out(fan: Conn, endpoint: uuid.UUID, timeout: float = 30) -> None:
    """Begin a fan-out round on `fan` and hold it once it has locked `endpoint` (which it
    does only once an event past its cursor is final)."""
    deadline = time.monotonic() + timeout
    while True:
        with fan.cursor() as cur:
            if endpoint in [row[0] for row in fan_repo.behind_endpoints(cur, 50)]:
                return
        fan.rollback()
        assert time.monotonic() < deadline, "the event never became final"
        time.sleep(0.02)


def redeliver(url: str, endpoint: uuid.UUID, event: uuid.UUID, tenant: uuid.UUID) -> Any:
    """`POST .../redeliveries` as the API runs it (asyncpg, its own connection)."""

    async def run() -> Any:
        conn = await asyncpg.connect(
            url, server_settings={"application_name": REDELIVERER, "lock_timeout": "10s"}
        )
        try:
            return await endpoints.redeliver(conn, endpoint, event, tenant)
        finally:
            await conn.close()

    return asyncio.run(run())


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = target(*args)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def done_or_waiting(conn: Conn, thread: threading.Thread, timeout: float = 10) -> None:
    """Until the redelivery has ended or waits on a lock."""
    deadline = time.monotonic() + timeout
    while thread.is_alive():
        waiting = execute(
            conn,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            REDELIVERER,
        )
        if waiting:
            return
        assert time.monotonic() < deadline, "the redelivery neither ended nor waited"
        time.sleep(0.01)


def test_a_redelivery_while_fan_out_holds_the_endpoint_never_deadlocks(
    db: tuple[str, Conn],
) -> None:
    """Fan-out has locked the endpoint and is about to make the delivery of an event that
    a redelivery by hand makes at the same moment: the redelivery's foreign key check
    must not wait for fan-out, which then waits for the redelivery."""
    url, conn = db
    tenant = new_tenant(conn)
    endpoint = new_endpoint(conn, tenant)
    fan = psycopg2.connect(url)
    try:
        with fan.cursor() as cur:
            cur.execute("SET lock_timeout = '10s'")
        fan.commit()
        for _ in range(3):
            event = new_event(conn, tenant)
            locked_for_fan_out(fan, endpoint)
            thread, outcome = in_thread(redeliver, url, endpoint, event, tenant)
            done_or_waiting(conn, thread)
            try:
                with fan.cursor() as cur:
                    fanout.fan_out(cur, endpoints=50, page=500)
                fan.commit()
            except psycopg2.Error as exc:
                fan.rollback()
                outcome.setdefault("fan-out error", exc)
            thread.join(30)
            assert "error" not in outcome and "fan-out error" not in outcome, outcome
            assert outcome["result"] is not None
            [(attempts, due)] = execute(
                conn,
                "SELECT attempts, next_attempt_at IS NOT NULL FROM webhook_delivery "
                "WHERE endpoint_id = %s AND event_id = %s",
                endpoint,
                event,
            )
            assert (attempts, due) == (0, True)
    finally:
        fan.close()


def test_redeliveries_and_fan_out_at_once_never_fail(db: tuple[str, Conn]) -> None:
    """The same, left to the scheduler: threads redelivering each new event and fanning
    out, many times."""
    url, conn = db
    tenant = new_tenant(conn)
    endpoint = new_endpoint(conn, tenant)
    errors: list[BaseException] = []
    stop = threading.Event()
    latest: list[uuid.UUID] = []

    def fan_out_loop() -> None:
        fan = psycopg2.connect(url)
        try:
            while not stop.is_set():
                try:
                    with fan, fan.cursor() as cur:
                        cur.execute("SET LOCAL lock_timeout = '10s'")
                        fanout.fan_out(cur, endpoints=50, page=500)
                except psycopg2.Error as exc:
                    errors.append(exc)
        finally:
            fan.close()

    def redeliver_loop() -> None:
        while not stop.is_set():
            if latest:
                try:
                    redeliver(url, endpoint, latest[-1], tenant)
                except Exception as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=f, daemon=True) for f in (fan_out_loop, redeliver_loop)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(150):
            latest.append(new_event(conn, tenant))
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    # Every event reached the endpoint once, one way or the other.
    sql = "SELECT event_id FROM webhook_delivery WHERE endpoint_id = %s"
    fan_out_all(url, until=lambda: {row[0] for row in execute(conn, sql, endpoint)} == set(latest))


def test_an_attempt_is_logged_while_fan_out_holds_the_endpoint(db: tuple[str, Conn]) -> None:
    """A sender's record of an attempt (its foreign key on the endpoint) does not wait for
    a fan-out round that holds the endpoint."""
    url, conn = db
    tenant = new_tenant(conn)
    endpoint = new_endpoint(conn, tenant)
    sent = new_event(conn, tenant)
    new_delivery(conn, endpoint, sent, tenant, due="now() + interval '1 minute'", attempts=1)
    execute(
        conn,
        "UPDATE webhook_endpoint SET fanout_xid = pg_snapshot_xmin(pg_current_snapshot()) "
        "WHERE id = %s",
        endpoint,
    )
    new_event(conn, tenant)  # past the cursor: fan-out locks the endpoint for it
    fan = psycopg2.connect(url)
    sender = psycopg2.connect(url)
    try:
        locked_for_fan_out(fan, endpoint)
        with sender, sender.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '2s'")
            outcome = {
                "endpoint_id": endpoint,
                "event_id": sent,
                "tenant_id": tenant,
                "attempt": 1,
                "status_code": 500,
                "error": "status 500",
                "delivered": False,
                "delay": 10.0,
            }
            repo.record(cur, [outcome], 3600.0)
        fan.commit()
        [(attempt,)] = execute(
            conn, "SELECT attempt FROM webhook_attempt WHERE endpoint_id = %s", endpoint
        )
        assert attempt == 1
    finally:
        fan.close()
        sender.close()
