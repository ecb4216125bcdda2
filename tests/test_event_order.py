"""The feed's order is the order of application for each wallet, even when two drains
interleave: a drain that took its transaction id early, then waited for a wallet another
drain was applying, comes after that drain in the feed. Staged on a scratch database with
the real ledger service, the waits forced with a row lock held by the test."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from shared.ids import uuid7
from shared.ledger.service import DrainResult, drain_once
from shared.operations.kind import NewOperation
from tests.scratch_ledger import Conn, Tenant, scratch_database


@pytest.fixture
def scratch() -> Iterator[tuple[str, Conn]]:
    yield from scratch_database()


def feed(conn: Conn, tenant: Tenant) -> list[tuple[str, str]]:
    """(type, operation id) of the tenant's operation events, in feed order."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT type, data->>'id' FROM event WHERE tenant_id = %s AND type LIKE 'operation.%%'"
            " ORDER BY xid, seq",
            (tenant.id,),
        )
        return [(row[0], row[1]) for row in cur.fetchall()]


def test_a_drain_that_waited_for_a_wallet_follows_the_drain_it_waited_for(
    scratch: tuple[str, Conn],
) -> None:
    url, conn = scratch
    tenant = Tenant(conn)
    p, _, b, c = sorted(tenant.wallets)  # locks are taken in id order: P before B
    with conn, conn.cursor() as cur:
        replenish = tenant.record(
            cur, NewOperation("replenishment", 500, "USD", None, p, wallet_id=p)
        )
        credit = tenant.record(
            cur,
            NewOperation("transfer", 300, "USD", None, p, from_wallet_id=p, to_wallet_id=b),
        )

    blocker = psycopg2.connect(url)
    drain_x, drain_y = psycopg2.connect(url), psycopg2.connect(url)
    try:
        with blocker.cursor() as cur:  # holds P: drain X will wait for it
            cur.execute("SELECT id FROM wallet WHERE id = %s FOR NO KEY UPDATE", (p,))

        results: dict[str, DrainResult] = {}

        def run_x() -> None:
            # Claims P's queue, locks a funding wallet (its transaction id is taken now),
            # then waits for P.
            with drain_x, drain_x.cursor() as cur:
                results["x"] = drain_once(cur, 100)

        x = threading.Thread(target=run_x)
        x.start()
        time.sleep(0.5)
        assert x.is_alive()

        with conn, conn.cursor() as cur:  # B -> C, while B is empty: it fails
            debit = tenant.record(
                cur,
                NewOperation("transfer", 100, "USD", None, b, from_wallet_id=b, to_wallet_id=c),
            )
        with drain_y, drain_y.cursor() as cur:  # drain Y applies B's queue and commits first
            results["y"] = drain_once(cur, 100)
        assert [(op.id, status) for op, status, _ in results["y"].outcomes] == [(debit, "failed")]

        blocker.rollback()  # X goes on: it credits B after Y debited it
        x.join(timeout=30)
        assert not x.is_alive()
    finally:
        blocker.close()
        drain_x.close()
        drain_y.close()

    assert [(op.id, status) for op, status, _ in results["x"].outcomes] == [
        (replenish, "succeeded"),
        (credit, "succeeded"),
    ]
    assert feed(conn, tenant) == [
        ("operation.failed", str(debit)),
        ("operation.succeeded", str(replenish)),
        ("operation.succeeded", str(credit)),
    ]


def test_a_batch_is_completed_after_every_item_event_whichever_drain_completes_it(
    scratch: tuple[str, Conn],
) -> None:
    """Two drains apply a batch's two items; the one that took its transaction id first
    (then waited for a wallet) completes the batch: `batch.completed` must still come
    after the other drain's item event in the feed."""
    url, conn = scratch
    tenant = Tenant(conn)
    p, q = tenant.wallets[:2]
    batch = uuid7()
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO replenishment_batch (id, tenant_id, total) VALUES (%s, %s, 2)",
            (batch, tenant.id),
        )
        first = tenant.record(cur, NewOperation("replenishment", 100, "USD", None, p, wallet_id=p))
    in_batch(conn, batch, first)

    blocker = psycopg2.connect(url)
    drain_x, drain_y = psycopg2.connect(url), psycopg2.connect(url)
    results: dict[str, DrainResult] = {}
    try:
        with blocker.cursor() as cur:  # holds P: drain X will wait for it
            cur.execute("SELECT id FROM wallet WHERE id = %s FOR NO KEY UPDATE", (p,))

        def run_x() -> None:  # takes its id with a funding wallet, then waits for P
            with drain_x, drain_x.cursor() as cur:
                results["x"] = drain_once(cur, 100)

        x = threading.Thread(target=run_x)
        x.start()
        time.sleep(0.5)
        assert x.is_alive()
        with conn, conn.cursor() as cur:
            second = tenant.record(
                cur, NewOperation("replenishment", 100, "USD", None, q, wallet_id=q)
            )
        in_batch(conn, batch, second)
        with drain_y, drain_y.cursor() as cur:  # applies the second item, commits first
            results["y"] = drain_once(cur, 100)
        blocker.rollback()
        x.join(timeout=30)
        assert not x.is_alive()
    finally:
        blocker.close()
        drain_x.close()
        drain_y.close()

    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT type, data->>'id' FROM event WHERE tenant_id = %s AND type <> "
            "'account.created' ORDER BY xid, seq",
            (tenant.id,),
        )
        feed_order = [(row[0], row[1]) for row in cur.fetchall()]
    assert feed_order[-1] == ("batch.completed", str(batch)), feed_order
    assert sorted(feed_order[:-1]) == sorted(
        [("operation.succeeded", str(first)), ("operation.succeeded", str(second))]
    )


def in_batch(conn: Conn, batch: uuid.UUID, operation: uuid.UUID) -> None:
    """Make a recorded operation an item of the batch (the intake records batch items with
    their batch; the scratch ledger records single operations)."""
    with conn, conn.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # operation_final
        cur.execute("UPDATE operation SET batch_id = %s WHERE id = %s", (batch, operation))
