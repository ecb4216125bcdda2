"""Claims of webhook deliveries (`shared.webhooks.claim_repository`), on a scratch
database: round-robin over the endpoints, each endpoint held to its cap (lower when it is
failing), a disabled endpoint's deliveries left as they are until it is enabled, a
deleted endpoint's retired, and a long backlog of an endpoint at its cap never read; and
the log of an attempt that a later claim overtook."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from shared.webhooks import claim_repository as claims
from shared.webhooks import repository as repo
from tests.webhook_scratch import (
    execute,
    new_delivery,
    new_endpoint,
    new_event,
    new_tenant,
    scratch,
)

Conn = psycopg2.extensions.connection

db = pytest.fixture(scratch)


def backlog(conn: Conn, endpoint: uuid.UUID, tenant: uuid.UUID, n: int, due: str) -> None:
    """`n` events of the tenant, each with a delivery to `endpoint` due at `due` plus a
    millisecond per event (in the events' order)."""
    execute(
        conn,
        "WITH made AS (INSERT INTO event (id, tenant_id, type, data) "
        "SELECT gen_random_uuid(), %s, 'account.created', '{}' FROM generate_series(1, %s) "
        "RETURNING id, tenant_id, created_at, seq) "
        f"INSERT INTO webhook_delivery (endpoint_id, event_id, tenant_id, next_attempt_at, "
        f"event_created_at) SELECT %s, id, tenant_id, "
        f"{due} + row_number() OVER (ORDER BY seq) * interval '1 ms', created_at FROM made",
        tenant,
        n,
        endpoint,
    )


def claim(conn: Conn, limit: int, busy: dict[uuid.UUID, int] | None = None) -> list[Any]:
    with conn.cursor() as cur:
        return claims.claim(
            cur, limit=limit, lease_seconds=60, cap=4, failing_cap=2, busy=busy or {}
        )


def test_claims_go_round_robin_each_endpoint_to_its_cap(db: tuple[str, Conn]) -> None:
    _, conn = db
    tenant = new_tenant(conn)
    old, new, failing = (new_endpoint(conn, tenant) for _ in range(3))
    execute(conn, "UPDATE webhook_endpoint SET failing_since = now() WHERE id = %s", failing)
    backlog(conn, old, tenant, 100, "now() - interval '1 hour'")  # long overdue
    backlog(conn, new, tenant, 5, "now() - interval '1 minute'")
    backlog(conn, failing, tenant, 5, "now() - interval '1 second'")

    first = claim(conn, 3)
    # One of each first, the soonest due first among them.
    assert [row[0] for row in first] != []
    assert Counter(row[0] for row in first) == {old: 1, new: 1, failing: 1}
    more = claim(conn, 50, busy=dict(Counter(row[0] for row in first)))
    held = Counter(row[0] for row in first + more)
    assert held == {old: 4, new: 4, failing: 2}  # each to its cap, counting what it holds
    assert claim(conn, 50, busy=dict(held)) == []
    assert claim(conn, 50, busy={**held, failing: 3}) == []  # over its cap: no room
    for row in first + more:
        assert row[3] == 1  # the attempt counted


def test_a_disabled_endpoints_deliveries_wait_until_it_is_enabled(db: tuple[str, Conn]) -> None:
    _, conn = db
    tenant = new_tenant(conn)
    disabled, deleted = new_endpoint(conn, tenant), new_endpoint(conn, tenant)
    waiting = new_event(conn, tenant)
    later = new_event(conn, tenant)
    new_delivery(conn, disabled, waiting, tenant, due="now() - interval '1 minute'", attempts=3)
    new_delivery(conn, deleted, waiting, tenant, due="now() - interval '1 minute'")
    new_delivery(conn, deleted, later, tenant, due="now() + interval '1 hour'")
    execute(
        conn,
        "UPDATE webhook_endpoint SET disabled_at = now(), disabled_reason = 'failing', "
        "failing_since = now() - interval '3 days' WHERE id = %s",
        disabled,
    )
    execute(conn, "UPDATE webhook_endpoint SET deleted_at = now() WHERE id = %s", deleted)
    with conn.cursor() as cur:
        assert claims.work_waiting(cur)  # the deleted endpoint's, to retire
    assert claim(conn, 10) == []
    # The deleted endpoint's are retired, due or not; the disabled one's are left as they
    # were, and nothing is due any more.
    rows = execute(
        conn,
        "SELECT endpoint_id, attempts, next_attempt_at IS NOT NULL, given_up_at IS NOT NULL "
        "FROM webhook_delivery ORDER BY endpoint_id = %s",
        disabled,
    )
    assert rows == [
        (deleted, 0, False, True),
        (deleted, 0, False, True),
        (disabled, 3, True, False),
    ]
    with conn.cursor() as cur:
        assert not claims.work_waiting(cur)
        assert claims.next_due_in(cur) is None

    execute(
        conn,
        "UPDATE webhook_endpoint SET disabled_at = NULL, disabled_reason = NULL, "
        "failing_since = NULL WHERE id = %s",
        disabled,
    )
    with conn.cursor() as cur:
        assert claims.work_waiting(cur)
        due_in = claims.next_due_in(cur)
        assert due_in is not None and due_in < 0
    [resumed] = claim(conn, 10)
    assert (resumed[0], resumed[1], resumed[3]) == (disabled, waiting, 4)


def test_a_long_backlog_of_an_endpoint_at_its_cap_is_not_read(db: tuple[str, Conn]) -> None:
    """Claims probe endpoint by endpoint: a backlog of 50,000 due deliveries of an endpoint
    that has its cap claimed already costs one probe, not a scan of the backlog."""
    _, conn = db
    tenant = new_tenant(conn)
    full, other = new_endpoint(conn, tenant), new_endpoint(conn, tenant)
    backlog(conn, full, tenant, 50_000, "now() - interval '1 hour'")
    backlog(conn, other, tenant, 1, "now() - interval '1 second'")
    execute(conn, "VACUUM ANALYZE webhook_delivery")
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + claims.CLAIM,
                {
                    "limit": 8,
                    "lease": 60,
                    "cap": 4,
                    "failing_cap": 2,
                    "busy_ids": [full],
                    "busy_counts": [4],
                    "retire": claims.RETIRE_PER_CLAIM,
                },
            )
            plan = "\n".join(row[0] for row in cur.fetchall())
            cur.execute("SELECT endpoint_id FROM webhook_delivery WHERE attempts = 1")
            assert [row[0] for row in cur.fetchall()] == [other]
    finally:
        conn.rollback()
        conn.autocommit = True
    # The first Buffers line is the whole statement's (its top node's).
    top = re.search(r"Buffers: shared hit=(\d+)(?: read=(\d+))?", plan)
    assert top is not None, plan
    touched = int(top.group(1)) + int(top.group(2) or 0)
    assert touched < 150, plan


def test_an_overtaken_attempt_is_logged_with_the_deliverys_next_attempt(
    db: tuple[str, Conn],
) -> None:
    """Attempt 1 outlived its lease and the delivery was claimed again (attempt 2, in
    flight): attempt 1's failure moves nothing, and its log says when the delivery is
    next due as it stands (the lease of attempt 2), not nothing."""
    _, conn = db
    tenant = new_tenant(conn)
    endpoint = new_endpoint(conn, tenant)
    event = new_event(conn, tenant)
    new_delivery(conn, endpoint, event, tenant, due="now() + interval '30 seconds'", attempts=2)
    with conn.cursor() as cur:
        outcome = {
            "endpoint_id": endpoint,
            "event_id": event,
            "tenant_id": tenant,
            "attempt": 1,
            "status_code": None,
            "error": "timeout",
            "delivered": False,
            "delay": 10.0,
        }
        repo.record(cur, [outcome], 3600.0)
    [(logged, due, attempts)] = execute(
        conn,
        "SELECT a.next_attempt_at, d.next_attempt_at, d.attempts FROM webhook_attempt a "
        "JOIN webhook_delivery d USING (endpoint_id, event_id) WHERE a.endpoint_id = %s",
        endpoint,
    )
    assert attempts == 2 and logged is not None and logged == due
